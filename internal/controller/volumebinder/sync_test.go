package volumebinder

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// fixture is a binder over a fake clientset whose listers are preloaded
// with the same objects, as in sample-controller's tests.
type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	c        *Controller
	recorder *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	c, err := New(&controller.Context{
		Client:    client,
		Informers: factory,
		Recorder:  func(string) record.EventRecorder { return recorder },
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	t.Cleanup(func() { c.claimQueue.ShutDown(); c.volumeQueue.ShutDown() })
	for _, o := range objs {
		var err error
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
			t.Fatalf("preload: %v", err)
		}
	}
	client.ClearActions()
	return &fixture{t: t, client: client, c: c, recorder: recorder}
}

// writes lists the write actions as "verb resource[/subresource]".
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

func (f *fixture) expectWrites(want ...string) {
	f.t.Helper()
	got := f.writes()
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		f.t.Errorf("writes = %q, want %q", got, want)
	}
}

func (f *fixture) expectEvent(substr string) {
	f.t.Helper()
	for {
		select {
		case e := <-f.recorder.Events:
			if strings.Contains(e, substr) {
				return
			}
		default:
			f.t.Errorf("no event containing %q", substr)
			return
		}
	}
}

func (f *fixture) claim(name string) *corev1.PersistentVolumeClaim {
	f.t.Helper()
	c, err := f.client.CoreV1().PersistentVolumeClaims("ns").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get claim %s: %v", name, err)
	}
	return c
}

func (f *fixture) volume(name string) *corev1.PersistentVolume {
	f.t.Helper()
	v, err := f.client.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get volume %s: %v", name, err)
	}
	return v
}

func class(name, provisioner string, mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner, VolumeBindingMode: &mode}
}

func TestSyncClaimBindsStaticVolume(t *testing.T) {
	f := newFixture(t, makePVC("c", "1Gi"), makePV("small", "1Gi"), makePV("big", "5Gi"))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	f.expectWrites("update persistentvolumes", "update persistentvolumes/status",
		"update persistentvolumeclaims", "update persistentvolumeclaims/status")
	v := f.volume("small")
	if r := v.Spec.ClaimRef; r == nil || r.Name != "c" || r.Namespace != "ns" || r.UID != "uid-c" || r.Kind != "PersistentVolumeClaim" {
		t.Errorf("claimRef = %+v", r)
	}
	if v.Annotations[AnnBoundByController] != "yes" || v.Status.Phase != corev1.VolumeBound || v.Status.LastPhaseTransitionTime == nil {
		t.Errorf("volume annotations %v, status %+v", v.Annotations, v.Status)
	}
	c := f.claim("c")
	if c.Spec.VolumeName != "small" || c.Annotations[AnnBindCompleted] != "yes" || c.Annotations[AnnBoundByController] != "yes" {
		t.Errorf("claim volumeName %q annotations %v", c.Spec.VolumeName, c.Annotations)
	}
	if c.Status.Phase != corev1.ClaimBound || c.Status.Capacity.Storage().String() != "1Gi" || len(c.Status.AccessModes) != 1 {
		t.Errorf("claim status %+v", c.Status)
	}
}

func TestSyncClaimPreBound(t *testing.T) {
	// A claim naming its volume: no bound-by-controller on the claim.
	claim := makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "v" })
	f := newFixture(t, claim, makePV("v", "1Gi"))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	if c := f.claim("c"); metav1.HasAnnotation(c.ObjectMeta, AnnBoundByController) || c.Status.Phase != corev1.ClaimBound {
		t.Errorf("claim %v %+v", c.Annotations, c.Status)
	}
	if v := f.volume("v"); v.Annotations[AnnBoundByController] != "yes" || v.Spec.ClaimRef.UID != "uid-c" {
		t.Errorf("volume %v %+v", v.Annotations, v.Spec.ClaimRef)
	}

	// A volume pre-bound to a claim by name: no bound-by-controller on it.
	f = newFixture(t, makePVC("c", "1Gi"), makePV("v", "1Gi", pvClaimRef("ns", "c", "")))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	if v := f.volume("v"); metav1.HasAnnotation(v.ObjectMeta, AnnBoundByController) || v.Spec.ClaimRef.UID != "uid-c" {
		t.Errorf("volume %v %+v", v.Annotations, v.Spec.ClaimRef)
	}

	// A claim naming a volume that does not fit.
	claim = makePVC("c", "5Gi", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "v" })
	f = newFixture(t, claim, makePV("v", "1Gi"))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	f.expectWrites()
	f.expectEvent(ReasonVolumeMismatch)
}

func TestSyncClaimWithoutVolume(t *testing.T) {
	f := newFixture(t, makePVC("c", "1Gi"))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	f.expectWrites()
	f.expectEvent("Normal FailedBinding no persistent volumes available for this claim and no storage class is set")
}

func TestSyncClaimAsksProvisioner(t *testing.T) {
	f := newFixture(t, makePVC("c", "1Gi", pvcClass("fast")), class("fast", "example.com/fast", storagev1.VolumeBindingImmediate))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	f.expectWrites("update persistentvolumeclaims")
	c := f.claim("c")
	if c.Annotations[AnnStorageProvisioner] != "example.com/fast" || c.Annotations[AnnBetaStorageProvisioner] != "example.com/fast" {
		t.Errorf("annotations %v", c.Annotations)
	}
	f.expectEvent(ReasonExternalProvisioning)
}

func TestSyncClaimWaitForFirstConsumer(t *testing.T) {
	wffc := class("local", "example.com/local", storagev1.VolumeBindingWaitForFirstConsumer)
	f := newFixture(t, makePVC("c", "1Gi", pvcClass("local")), makePV("free", "1Gi", pvClass("local")), wffc)
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	f.expectWrites()
	f.expectEvent("Normal WaitForFirstConsumer waiting for first consumer to be created before binding")

	// Once a node is selected: a volume on that node binds; none, and the
	// provisioner is asked.
	selected := func(c *corev1.PersistentVolumeClaim) {
		c.Annotations = map[string]string{AnnSelectedNode: "b"}
	}
	f = newFixture(t, makePVC("c", "1Gi", pvcClass("local"), selected), wffc, makeNode("a"), makeNode("b"),
		makePV("on-a", "1Gi", pvClass("local"), pvOnHost("a")), makePV("on-b", "1Gi", pvClass("local"), pvOnHost("b")))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	if c := f.claim("c"); c.Spec.VolumeName != "on-b" {
		t.Errorf("bound to %q, want on-b", c.Spec.VolumeName)
	}
	f = newFixture(t, makePVC("c", "1Gi", pvcClass("local"), selected), wffc, makeNode("b"),
		makePV("on-a", "1Gi", pvClass("local"), pvOnHost("a")))
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	if c := f.claim("c"); c.Spec.VolumeName != "" || c.Annotations[AnnStorageProvisioner] != "example.com/local" {
		t.Errorf("claim volumeName %q annotations %v", c.Spec.VolumeName, c.Annotations)
	}
}

func TestSyncBoundClaimLost(t *testing.T) {
	claim := makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) {
		c.Spec.VolumeName = "gone"
		c.Annotations = map[string]string{AnnBindCompleted: "yes"}
		c.Status.Phase = corev1.ClaimBound
	})
	f := newFixture(t, claim)
	if err := f.c.syncClaim(context.Background(), "ns/c"); err != nil {
		t.Fatal(err)
	}
	if c := f.claim("c"); c.Status.Phase != corev1.ClaimLost || c.Status.Capacity != nil {
		t.Errorf("status %+v", c.Status)
	}
	f.expectEvent(ReasonClaimLost)
}

func TestSyncVolume(t *testing.T) {
	boundTo := pvClaimRef("ns", "c", "uid-c")
	provisioned := func(v *corev1.PersistentVolume) {
		v.Annotations = map[string]string{AnnDynamicallyProvisioned: "example.com/p"}
	}
	reclaim := func(p corev1.PersistentVolumeReclaimPolicy) pvOpt {
		return func(v *corev1.PersistentVolume) { v.Spec.PersistentVolumeReclaimPolicy = p }
	}
	tests := []struct {
		name      string
		objs      []runtime.Object
		wantPhase corev1.PersistentVolumePhase // "" if deleted
	}{
		{"new volume becomes Available", []runtime.Object{makePV("v", "1Gi", pvPhase(corev1.VolumePending))}, corev1.VolumeAvailable},
		{"pre-bound by name stays Available", []runtime.Object{makePV("v", "1Gi", pvClaimRef("ns", "c", ""))}, corev1.VolumeAvailable},
		{"bound volume becomes Bound",
			[]runtime.Object{makePV("v", "1Gi", boundTo), makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "v" })},
			corev1.VolumeBound},
		{"claim gone, Retain: Released",
			[]runtime.Object{makePV("v", "1Gi", boundTo, pvPhase(corev1.VolumeBound), reclaim(corev1.PersistentVolumeReclaimRetain))},
			corev1.VolumeReleased},
		{"claim recreated under the same name: Released",
			[]runtime.Object{makePV("v", "1Gi", pvClaimRef("ns", "c", "uid-old"), pvPhase(corev1.VolumeBound), reclaim(corev1.PersistentVolumeReclaimRetain)), makePVC("c", "1Gi")},
			corev1.VolumeReleased},
		{"claim gone, Delete, made by hand: deleted",
			[]runtime.Object{makePV("v", "1Gi", boundTo, pvPhase(corev1.VolumeBound), reclaim(corev1.PersistentVolumeReclaimDelete))},
			""},
		{"claim gone, Delete, provisioned: Released for its provisioner",
			[]runtime.Object{makePV("v", "1Gi", boundTo, pvPhase(corev1.VolumeBound), reclaim(corev1.PersistentVolumeReclaimDelete), provisioned)},
			corev1.VolumeReleased},
		{"claim gone, Recycle: Failed",
			[]runtime.Object{makePV("v", "1Gi", boundTo, pvPhase(corev1.VolumeBound), reclaim(corev1.PersistentVolumeReclaimRecycle))},
			corev1.VolumeFailed},
		{"claim bound elsewhere: the controller's binding is undone",
			[]runtime.Object{
				makePV("v", "1Gi", boundTo, pvPhase(corev1.VolumeBound), func(v *corev1.PersistentVolume) {
					v.Annotations = map[string]string{AnnBoundByController: "yes"}
				}),
				makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "other" })},
			corev1.VolumeAvailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.c.syncVolume(context.Background(), "v"); err != nil {
				t.Fatal(err)
			}
			v, err := f.client.CoreV1().PersistentVolumes().Get(context.Background(), "v", metav1.GetOptions{})
			if tt.wantPhase == "" {
				if !apierrors.IsNotFound(err) {
					t.Errorf("volume still there (err %v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Status.Phase != tt.wantPhase {
				t.Errorf("phase %s, want %s", v.Status.Phase, tt.wantPhase)
			}
		})
	}
}

// TestSyncVolumeChecksAPIBeforeReleasing: a claim the cache has not seen
// yet keeps its volume.
func TestSyncVolumeChecksAPIBeforeReleasing(t *testing.T) {
	f := newFixture(t, makePV("v", "1Gi", pvClaimRef("ns", "c", "uid-c"), pvPhase(corev1.VolumeBound)))
	if _, err := f.client.CoreV1().PersistentVolumeClaims("ns").Create(context.Background(),
		makePVC("c", "1Gi", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "v" }), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	if err := f.c.syncVolume(context.Background(), "v"); err != nil {
		t.Fatal(err)
	}
	if v := f.volume("v"); v.Status.Phase != corev1.VolumeBound {
		t.Errorf("phase %s, want Bound", v.Status.Phase)
	}
	found := false
	for _, a := range f.client.Actions() {
		if g, ok := a.(k8stesting.GetAction); ok && a.GetResource().Resource == "persistentvolumeclaims" && g.GetName() == "c" {
			found = true
		}
	}
	if !found {
		t.Error("the claim was not looked up in the API")
	}
}
