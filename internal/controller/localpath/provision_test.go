package localpath

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
	"skiff/internal/controller/volumebinder"
)

type claimOpt func(*corev1.PersistentVolumeClaim)

// askedClaim is a claim of class local-path the binder handed to this
// provisioner, with node "n1" selected.
func askedClaim(opts ...claimOpt) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "data", UID: types.UID("1234"), ResourceVersion: "7",
			Annotations: map[string]string{
				volumebinder.AnnStorageProvisioner: ProvisionerName,
				volumebinder.AnnSelectedNode:       "n1",
			}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("3Gi")}},
			StorageClassName: new(DefaultClassName),
			VolumeMode:       new(corev1.PersistentVolumeFilesystem),
		},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func TestVolumeFor(t *testing.T) {
	class := DefaultClass()
	class.MountOptions = []string{"noatime"}
	v := volumeFor(askedClaim(), class, "host-1", "/var/lib/skiff/storage")
	if v.Name != "pvc-1234" || v.Annotations[volumebinder.AnnDynamicallyProvisioned] != ProvisionerName {
		t.Errorf("name %q annotations %v", v.Name, v.Annotations)
	}
	if v.Spec.Local == nil || v.Spec.Local.Path != "/var/lib/skiff/storage/pvc-1234_web_data" || v.Spec.HostPath != nil {
		t.Errorf("source %+v", v.Spec.PersistentVolumeSource)
	}
	if q := v.Spec.Capacity[corev1.ResourceStorage]; q.String() != "3Gi" {
		t.Errorf("capacity %s", q.String())
	}
	if len(v.Spec.AccessModes) != 2 || v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		v.Spec.StorageClassName != DefaultClassName || len(v.Spec.MountOptions) != 1 || *v.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("spec %+v", v.Spec)
	}
	if r := v.Spec.ClaimRef; r == nil || r.Namespace != "web" || r.Name != "data" || r.UID != "1234" || r.Kind != "PersistentVolumeClaim" {
		t.Errorf("claimRef %+v", r)
	}
	terms := v.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 {
		t.Fatalf("node affinity %+v", terms)
	}
	if e := terms[0].MatchExpressions[0]; e.Key != corev1.LabelHostname || e.Operator != corev1.NodeSelectorOpIn || len(e.Values) != 1 || e.Values[0] != "host-1" {
		t.Errorf("node affinity %+v", e)
	}

	class.ReclaimPolicy = new(corev1.PersistentVolumeReclaimRetain)
	if v := volumeFor(askedClaim(), class, "host-1", "/d"); v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("reclaim policy %s, want the class's Retain", v.Spec.PersistentVolumeReclaimPolicy)
	}
}

func TestAsksUsAndUnsupported(t *testing.T) {
	tests := []struct {
		name        string
		claim       *corev1.PersistentVolumeClaim
		asks        bool
		unsupported bool
	}{
		{"asked", askedClaim(), true, false},
		{"asked through the beta annotation", askedClaim(func(c *corev1.PersistentVolumeClaim) {
			delete(c.Annotations, volumebinder.AnnStorageProvisioner)
			c.Annotations[volumebinder.AnnBetaStorageProvisioner] = ProvisionerName
		}), true, false},
		{"another provisioner", askedClaim(func(c *corev1.PersistentVolumeClaim) {
			c.Annotations[volumebinder.AnnStorageProvisioner] = "example.com/nfs"
		}), false, false},
		{"not asked", askedClaim(func(c *corev1.PersistentVolumeClaim) { c.Annotations = nil }), false, false},
		{"bound already", askedClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "v" }), false, false},
		{"being deleted", askedClaim(func(c *corev1.PersistentVolumeClaim) { c.DeletionTimestamp = &metav1.Time{} }), false, false},
		{"block mode", askedClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeMode = new(corev1.PersistentVolumeBlock) }), true, true},
		{"selector", askedClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.Selector = &metav1.LabelSelector{} }), true, true},
		{"data source", askedClaim(func(c *corev1.PersistentVolumeClaim) {
			c.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "src"}
		}), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asksUs(tt.claim); got != tt.asks {
				t.Errorf("asksUs = %v, want %v", got, tt.asks)
			}
			if got := unsupported(tt.claim) != ""; got != tt.unsupported {
				t.Errorf("unsupported = %q", unsupported(tt.claim))
			}
		})
	}
}

func newTestController(t *testing.T, objs ...runtime.Object) (*Controller, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(&controller.Context{
		Client:    client,
		Informers: factory,
		Recorder:  func(string) record.EventRecorder { return recorder },
		Logger:    slog.New(slog.DiscardHandler),
	}, Config{DataDir: "/data"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.claimQueue.ShutDown(); c.volumeQueue.ShutDown() })
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.PersistentVolumeClaim:
			err = factory.Core().V1().PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *corev1.PersistentVolume:
			err = factory.Core().V1().PersistentVolumes().Informer().GetIndexer().Add(o)
		case *storagev1.StorageClass:
			err = factory.Storage().V1().StorageClasses().Informer().GetIndexer().Add(o)
		case *corev1.Node:
			err = factory.Core().V1().Nodes().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c, client, recorder
}

func TestSyncClaim(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "n1.lan"}}}
	c, client, rec := newTestController(t, askedClaim(), DefaultClass(), node)
	if err := c.syncClaim(ctx, "web/data"); err != nil {
		t.Fatal(err)
	}
	v, err := client.CoreV1().PersistentVolumes().Get(ctx, "pvc-1234", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("volume not created: %v", err)
	}
	if v.Spec.Local.Path != "/data/storage/pvc-1234_web_data" {
		t.Errorf("path %q", v.Spec.Local.Path)
	}
	if got := v.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0]; got != "n1.lan" {
		t.Errorf("pinned to hostname %q, want the node's label n1.lan", got)
	}
	if e := <-rec.Events; !strings.Contains(e, "Normal ProvisioningSucceeded") {
		t.Errorf("event %q", e)
	}

	// Again, with the volume in the cache: nothing more.
	c, client, _ = newTestController(t, askedClaim(), DefaultClass(), v)
	client.ClearActions()
	if err := c.syncClaim(ctx, "web/data"); err != nil {
		t.Fatal(err)
	}
	if a := client.Actions(); len(a) != 0 {
		t.Errorf("actions %v", a)
	}

	// No node selected (an Immediate class): refused with an event.
	immediate := DefaultClass()
	immediate.VolumeBindingMode = new(storagev1.VolumeBindingImmediate)
	c, client, rec = newTestController(t, askedClaim(func(c *corev1.PersistentVolumeClaim) {
		delete(c.Annotations, volumebinder.AnnSelectedNode)
	}), immediate)
	if err := c.syncClaim(ctx, "web/data"); err != nil {
		t.Fatal(err)
	}
	if a := client.Actions(); len(a) != 0 {
		t.Errorf("actions %v", a)
	}
	if e := <-rec.Events; !strings.Contains(e, "Warning ProvisioningFailed") {
		t.Errorf("event %q", e)
	}

	// A class of another provisioner: not ours.
	other := DefaultClass()
	other.Provisioner = "example.com/nfs"
	c, client, _ = newTestController(t, askedClaim(), other)
	if err := c.syncClaim(ctx, "web/data"); err != nil {
		t.Fatal(err)
	}
	if a := client.Actions(); len(a) != 0 {
		t.Errorf("actions %v", a)
	}
}

func TestSyncVolume(t *testing.T) {
	ctx := context.Background()
	released := func(p corev1.PersistentVolumeReclaimPolicy, provisioner string) *corev1.PersistentVolume {
		v := volumeFor(askedClaim(), DefaultClass(), "n1", "/data/storage")
		v.Spec.PersistentVolumeReclaimPolicy = p
		v.Annotations[volumebinder.AnnDynamicallyProvisioned] = provisioner
		v.Status.Phase = corev1.VolumeReleased
		return v
	}
	tests := []struct {
		name    string
		volume  *corev1.PersistentVolume
		deleted bool
	}{
		{"released, Delete", released(corev1.PersistentVolumeReclaimDelete, ProvisionerName), true},
		{"released, Retain", released(corev1.PersistentVolumeReclaimRetain, ProvisionerName), false},
		{"released, another provisioner's", released(corev1.PersistentVolumeReclaimDelete, "example.com/nfs"), false},
		{"bound", func() *corev1.PersistentVolume {
			v := released(corev1.PersistentVolumeReclaimDelete, ProvisionerName)
			v.Status.Phase = corev1.VolumeBound
			return v
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client, _ := newTestController(t, tt.volume)
			if err := c.syncVolume(ctx, tt.volume.Name); err != nil {
				t.Fatal(err)
			}
			_, err := client.CoreV1().PersistentVolumes().Get(ctx, tt.volume.Name, metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); gone != tt.deleted {
				t.Errorf("deleted = %v, want %v (err %v)", gone, tt.deleted, err)
			}
		})
	}
}
