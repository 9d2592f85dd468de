package localpath_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"skiff/internal/controller/localpath"
	"skiff/internal/controller/volumebinder"
	"skiff/internal/server/servertest"
)

const ns = "default"

func waitDefaultClass(t *testing.T, c kubernetes.Interface) *storagev1.StorageClass {
	t.Helper()
	var sc *storagev1.StorageClass
	servertest.Eventually(t, 30*time.Second, "default storage class", func() error {
		var err error
		sc, err = c.StorageV1().StorageClasses().Get(context.Background(), localpath.DefaultClassName, metav1.GetOptions{})
		return err
	})
	return sc
}

func TestDefaultStorageClass(t *testing.T) {
	s := servertest.Start(t, "")
	sc := waitDefaultClass(t, s.Client(t))
	if sc.Annotations[localpath.AnnDefaultClass] != "true" || sc.Provisioner != localpath.ProvisionerName ||
		sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("class %+v", sc)
	}
}

// waitEvent waits for an event with reason about the object named name.
func waitEvent(t *testing.T, c kubernetes.Interface, name, reason string) {
	t.Helper()
	servertest.Eventually(t, 30*time.Second, reason+" event", func() error {
		evs, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", name).String()})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Reason == reason {
				return nil
			}
			seen = append(seen, e.Reason)
		}
		return fmt.Errorf("events with reasons %v", seen)
	})
}

// provisionForPod creates a claim of class and a pod using it, lets the
// scheduler (or, while skiff has none, the test) pick node for the pod, and
// waits for the provisioned volume to be bound. It returns the claim and
// the volume.
func provisionForPod(t *testing.T, c kubernetes.Interface, class, name, node string) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	t.Helper()
	ctx := context.Background()
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}},
			StorageClassName: &class,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, name, volumebinder.ReasonWaitForFirstConsumer)
	pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The scheduler annotates the claim, then binds the pod. Give it a
	// moment; if it is not running, play its part.
	deadline := time.Now().Add(5 * time.Second)
	selected := ""
	for selected == "" && time.Now().Before(deadline) {
		cur, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		selected = cur.Annotations[volumebinder.AnnSelectedNode]
		time.Sleep(50 * time.Millisecond)
	}
	if selected == "" {
		t.Logf("no scheduler annotated the claim; selecting node %s in the test", node)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			metav1.SetMetaDataAnnotation(&cur.ObjectMeta, volumebinder.AnnSelectedNode, node)
			_, err = c.CoreV1().PersistentVolumeClaims(ns).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("annotate claim: %v", err)
		}
		err = c.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsConflict(err) {
			t.Fatalf("bind pod: %v", err)
		}
	} else if selected != node {
		t.Fatalf("scheduler selected node %q, want the only node %q", selected, node)
	}

	var pv *corev1.PersistentVolume
	servertest.Eventually(t, 30*time.Second, "provisioned volume bound", func() error {
		cur, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pvc = cur
		want := "pvc-" + string(pvc.UID)
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName != want {
			return fmt.Errorf("claim phase %q volumeName %q, want Bound to %s", pvc.Status.Phase, pvc.Spec.VolumeName, want)
		}
		pv, err = c.CoreV1().PersistentVolumes().Get(ctx, want, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeBound {
			return fmt.Errorf("volume phase %q", pv.Status.Phase)
		}
		return nil
	})
	return pvc, pv
}

// checkVolume checks what the provisioner made for pvc on node.
func checkVolume(t *testing.T, s *servertest.Server, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, node string, reclaim corev1.PersistentVolumeReclaimPolicy) {
	t.Helper()
	wantPath := filepath.Join(s.DataDir, "storage", fmt.Sprintf("pvc-%s_%s_%s", pvc.UID, pvc.Namespace, pvc.Name))
	if pv.Spec.Local == nil || pv.Spec.Local.Path != wantPath {
		t.Errorf("volume source %+v, want local %s", pv.Spec.PersistentVolumeSource, wantPath)
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 1 || terms[0].MatchExpressions[0].Key != corev1.LabelHostname ||
		len(terms[0].MatchExpressions[0].Values) != 1 || terms[0].MatchExpressions[0].Values[0] != node {
		t.Errorf("node affinity %+v, want hostname In [%s]", terms, node)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "2Gi" {
		t.Errorf("capacity %s", q.String())
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != reclaim || pv.Annotations[volumebinder.AnnDynamicallyProvisioned] != localpath.ProvisionerName {
		t.Errorf("reclaim %s annotations %v", pv.Spec.PersistentVolumeReclaimPolicy, pv.Annotations)
	}
	if r := pv.Spec.ClaimRef; r == nil || r.UID != pvc.UID {
		t.Errorf("claimRef %+v", r)
	}
	if pvc.Annotations[volumebinder.AnnStorageProvisioner] != localpath.ProvisionerName {
		t.Errorf("claim annotations %v", pvc.Annotations)
	}
}

func TestProvisionBindAndDelete(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "node-a")
	waitDefaultClass(t, c)

	pvc, pv := provisionForPod(t, c, localpath.DefaultClassName, "data", "node-a")
	checkVolume(t, s, pvc, pv, "node-a", corev1.PersistentVolumeReclaimDelete)
	waitEvent(t, c, "data", "ProvisioningSucceeded")

	// Deleting the claim releases the volume, which is then deleted.
	w, err := c.CoreV1().PersistentVolumes().Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", pv.Name).String(), ResourceVersion: pv.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := c.CoreV1().Pods(ns).Delete(ctx, "data", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	sawReleased := false
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch closed")
			}
			v, _ := ev.Object.(*corev1.PersistentVolume)
			switch {
			case v == nil:
			case ev.Type == watch.Deleted:
				done = true
			case v.Status.Phase == corev1.VolumeReleased:
				sawReleased = true
			}
		case <-timeout:
			t.Fatal("volume not deleted within 30s")
		}
	}
	if !sawReleased {
		t.Error("the volume was deleted without being Released first")
	}
}

func TestRetainKeepsReleased(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "node-b")
	waitDefaultClass(t, c)
	_, err := c.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: "local-retain"},
		Provisioner:       localpath.ProvisionerName,
		ReclaimPolicy:     new(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode: new(storagev1.VolumeBindingWaitForFirstConsumer),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	pvc, pv := provisionForPod(t, c, "local-retain", "keep", "node-b")
	checkVolume(t, s, pvc, pv, "node-b", corev1.PersistentVolumeReclaimRetain)

	if err := c.CoreV1().Pods(ns).Delete(ctx, "keep", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "keep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "volume Released", func() error {
		cur, err := c.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Status.Phase != corev1.VolumeReleased {
			return fmt.Errorf("phase %q", cur.Status.Phase)
		}
		return nil
	})
	time.Sleep(time.Second)
	cur, err := c.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("a Retain volume went away: %v", err)
	}
	if cur.Status.Phase != corev1.VolumeReleased {
		t.Errorf("phase %q, want Released", cur.Status.Phase)
	}
}
