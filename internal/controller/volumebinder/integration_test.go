package volumebinder_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/controller/volumebinder"
	"skiff/internal/server/servertest"
)

const ns = "default"

func staticVolume(name, size, class string, reclaim corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/" + name}},
		},
	}
}

func claim(name, size, class string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			StorageClassName: &class,
		},
	}
}

func waitBound(t *testing.T, c kubernetes.Interface, claimName, volumeName string) {
	t.Helper()
	ctx := context.Background()
	servertest.Eventually(t, 30*time.Second, "claim and volume bound", func() error {
		pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claimName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName != volumeName {
			return fmt.Errorf("claim phase %q volumeName %q", pvc.Status.Phase, pvc.Spec.VolumeName)
		}
		if pvc.Annotations[volumebinder.AnnBindCompleted] != "yes" {
			return fmt.Errorf("claim annotations %v", pvc.Annotations)
		}
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, volumeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeBound || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID {
			return fmt.Errorf("volume phase %q claimRef %+v", pv.Status.Phase, pv.Spec.ClaimRef)
		}
		return nil
	})
}

func waitAvailable(t *testing.T, c kubernetes.Interface, names ...string) {
	t.Helper()
	servertest.Eventually(t, 30*time.Second, "volumes Available", func() error {
		for _, name := range names {
			pv, err := c.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if pv.Status.Phase != corev1.VolumeAvailable || pv.Spec.ClaimRef != nil {
				return fmt.Errorf("%s: phase %q claimRef %+v", name, pv.Status.Phase, pv.Spec.ClaimRef)
			}
		}
		return nil
	})
}

func TestStaticBindingAndRetain(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	for _, v := range []*corev1.PersistentVolume{
		staticVolume("pv-big", "10Gi", "manual", corev1.PersistentVolumeReclaimRetain),
		staticVolume("pv-fit", "2Gi", "manual", corev1.PersistentVolumeReclaimRetain),
		staticVolume("pv-other-class", "2Gi", "slow", corev1.PersistentVolumeReclaimRetain),
	} {
		if _, err := c.CoreV1().PersistentVolumes().Create(ctx, v, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Like Kubernetes, the binder takes only Available volumes: wait until
	// all are, so that the smallest fit is among them.
	waitAvailable(t, c, "pv-big", "pv-fit", "pv-other-class")
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim("data", "1Gi", "manual"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, c, "data", "pv-fit")
	waitAvailable(t, c, "pv-big", "pv-other-class")

	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "volume Released", func() error {
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, "pv-fit", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeReleased {
			return fmt.Errorf("phase %q", pv.Status.Phase)
		}
		return nil
	})
	// Retain: it stays Released, still naming its old claim.
	time.Sleep(time.Second)
	pv, err := c.CoreV1().PersistentVolumes().Get(ctx, "pv-fit", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("a Retain volume went away: %v", err)
	}
	if pv.Status.Phase != corev1.VolumeReleased || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Name != "data" {
		t.Errorf("phase %q claimRef %+v", pv.Status.Phase, pv.Spec.ClaimRef)
	}
	// A new claim of the same name does not get the released volume.
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim("data", "1Gi", "manual"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, c, "data", "pv-big")

	// The administrator clears the claimRef: the volume is Available again.
	pv, err = c.CoreV1().PersistentVolumes().Get(ctx, "pv-fit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Spec.ClaimRef = nil
	if _, err := c.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "volume Available again", func() error {
		pv, err := c.CoreV1().PersistentVolumes().Get(ctx, "pv-fit", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeAvailable {
			return fmt.Errorf("phase %q", pv.Status.Phase)
		}
		return nil
	})
}

func TestStaticBindingPreBoundAndDelete(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	// The claim comes first and names no class; the volume appears later,
	// pre-bound to it by name.
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim("logs", "1Gi", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "FailedBinding event", func() error {
		evs, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "logs").String()})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == volumebinder.ReasonFailedBinding && e.Message == "no persistent volumes available for this claim and no storage class is set" {
				return nil
			}
		}
		return fmt.Errorf("events: %v", evs.Items)
	})
	v := staticVolume("pv-logs", "1Gi", "", corev1.PersistentVolumeReclaimDelete)
	v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: ns, Name: "logs"}
	if _, err := c.CoreV1().PersistentVolumes().Create(ctx, v, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(t, c, "logs", "pv-logs")

	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "logs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "Delete volume deleted", func() error {
		_, err := c.CoreV1().PersistentVolumes().Get(ctx, "pv-logs", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}
