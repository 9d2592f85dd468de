package garbagecollector_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"skiff/internal/server/servertest"
)

// never checks that f keeps returning nil for d.
func never(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createNS(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func configMap(t *testing.T, c kubernetes.Interface, ns, name string, owners ...metav1.OwnerReference) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: owners},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap %s: %v", name, err)
	}
	return cm
}

func ownedBy(cm *corev1.ConfigMap, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID, BlockOwnerDeletion: ptr.To(block)}
}

func gone(c kubernetes.Interface, ns, name string) func() error {
	return func() error {
		_, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("configmap %s/%s still exists", ns, name)
	}
}

func exists(c kubernetes.Interface, ns, name string) func() error {
	return func() error {
		_, err := c.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		return err
	}
}

func TestGarbageCollector(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	const ns = "gc"
	createNS(t, c, ns)

	t.Run("background", func(t *testing.T) {
		owner := configMap(t, c, ns, "bg-owner")
		dep := configMap(t, c, ns, "bg-dep", ownedBy(owner, false))
		grand := configMap(t, c, ns, "bg-grand", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: dep.Name, UID: dep.UID})
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "dependent collected", gone(c, ns, dep.Name))
		servertest.Eventually(t, 20*time.Second, "dependent of the dependent collected", gone(c, ns, grand.Name))
	})

	t.Run("dependent whose owner never existed", func(t *testing.T) {
		dep := configMap(t, c, ns, "ghost-dep", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "ghost", UID: types.UID("5b6f1c3e-0000-4000-8000-000000000001")})
		servertest.Eventually(t, 20*time.Second, "dependent of a missing owner collected", gone(c, ns, dep.Name))
	})

	t.Run("one owner left keeps the dependent", func(t *testing.T) {
		a := configMap(t, c, ns, "two-a")
		b := configMap(t, c, ns, "two-b")
		dep := configMap(t, c, ns, "two-dep", ownedBy(a, false), ownedBy(b, false))
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, a.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "reference to the deleted owner removed", func() error {
			cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, dep.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(cur.OwnerReferences) != 1 || cur.OwnerReferences[0].UID != b.UID {
				return fmt.Errorf("owner references %v", cur.OwnerReferences)
			}
			return nil
		})
	})

	t.Run("foreground", func(t *testing.T) {
		owner := withFinalizer(t, c, ns, "fg-owner", metav1.FinalizerDeleteDependents)
		blocking := configMap(t, c, ns, "fg-blocking", ownedBy(owner, true))
		// The blocking dependent is held by a finalizer of someone else:
		// the owner must wait for it.
		blocking.Finalizers = []string{"example.com/hold"}
		if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, blocking, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		free := configMap(t, c, ns, "fg-free", ownedBy(owner, false))
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "non-blocking dependent deleted", gone(c, ns, free.Name))
		servertest.Eventually(t, 20*time.Second, "blocking dependent being deleted", func() error {
			cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, blocking.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.DeletionTimestamp == nil {
				return fmt.Errorf("no deletionTimestamp")
			}
			return nil
		})
		never(t, 2*time.Second, "owner waits for its blocking dependent", exists(c, ns, owner.Name))
		// Release the blocking dependent: the owner goes too.
		cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, blocking.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Finalizers = nil
		if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "blocking dependent gone", gone(c, ns, blocking.Name))
		servertest.Eventually(t, 20*time.Second, "owner gone after its dependents", gone(c, ns, owner.Name))
	})

	t.Run("propagation policies through the API", func(t *testing.T) {
		// The API server adds the finalizers for Foreground and Orphan.
		owner := configMap(t, c, ns, "api-fg-owner")
		hold := configMap(t, c, ns, "api-fg-dep", ownedBy(owner, true))
		hold.Finalizers = []string{"example.com/hold"}
		if _, err := c.CoreV1().ConfigMaps(ns).Update(ctx, hold, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationForeground)}); err != nil {
			t.Fatal(err)
		}
		cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			t.Skip("the API server does not add the foregroundDeletion finalizer yet")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(cur.Finalizers, metav1.FinalizerDeleteDependents) {
			t.Fatalf("owner finalizers %v: want %s", cur.Finalizers, metav1.FinalizerDeleteDependents)
		}
		servertest.Eventually(t, 20*time.Second, "blocking dependent being deleted", func() error {
			d, err := c.CoreV1().ConfigMaps(ns).Get(ctx, hold.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.DeletionTimestamp == nil {
				return fmt.Errorf("no deletionTimestamp")
			}
			d.Finalizers = nil
			_, err = c.CoreV1().ConfigMaps(ns).Update(ctx, d, metav1.UpdateOptions{})
			return err
		})
		servertest.Eventually(t, 20*time.Second, "owner gone", gone(c, ns, owner.Name))

		owner = configMap(t, c, ns, "api-or-owner")
		dep := configMap(t, c, ns, "api-or-dep", ownedBy(owner, true))
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "owner gone", gone(c, ns, owner.Name))
		servertest.Eventually(t, 20*time.Second, "dependent orphaned", func() error {
			d, err := c.CoreV1().ConfigMaps(ns).Get(ctx, dep.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(d.OwnerReferences) != 0 {
				return fmt.Errorf("owner references %v", d.OwnerReferences)
			}
			return nil
		})
	})

	t.Run("orphan", func(t *testing.T) {
		owner := withFinalizer(t, c, ns, "or-owner", metav1.FinalizerOrphanDependents)
		other := configMap(t, c, ns, "or-other")
		dep := configMap(t, c, ns, "or-dep", ownedBy(owner, true))
		dep2 := configMap(t, c, ns, "or-dep2", ownedBy(owner, false), ownedBy(other, false))
		if err := c.CoreV1().ConfigMaps(ns).Delete(ctx, owner.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "owner gone", gone(c, ns, owner.Name))
		for _, name := range []string{dep.Name, dep2.Name} {
			cur, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("orphaned dependent %s: %v", name, err)
			}
			for _, r := range cur.OwnerReferences {
				if r.UID == owner.UID {
					t.Fatalf("dependent %s still references its deleted owner", name)
				}
			}
		}
		never(t, 2*time.Second, "orphans stay", func() error {
			if err := exists(c, ns, dep.Name)(); err != nil {
				return err
			}
			return exists(c, ns, dep2.Name)()
		})
	})

	t.Run("pods owned by a replicaset", func(t *testing.T) {
		// Whether or not a replica set controller runs, every pod the
		// replica set owns must go with it.
		rs := replicaSet(t, c, ns, "rs")
		for i := 0; i < 3; i++ {
			_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rs-pod-%d", i), Namespace: ns, Labels: map[string]string{"app": rs.Name},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := c.AppsV1().ReplicaSets(ns).Delete(ctx, rs.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "pods of the deleted replica set collected", func() error {
			pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				for _, r := range p.OwnerReferences {
					if r.UID == rs.UID {
						return fmt.Errorf("pod %s remains", p.Name)
					}
				}
			}
			return nil
		})
	})
}

func replicaSet(t *testing.T, c kubernetes.Interface, ns, name string) *appsv1.ReplicaSet {
	t.Helper()
	labels := map[string]string{"app": name}
	rs, err := c.AppsV1().ReplicaSets(ns).Create(context.Background(), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replica set: %v", err)
	}
	return rs
}

// withFinalizer creates the owner already carrying f, as the API server
// leaves an object deleted with the matching propagation policy, so the
// test does not depend on the API server adding it.
func withFinalizer(t *testing.T, c kubernetes.Interface, ns, name, f string) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Finalizers: []string{f}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap %s: %v", name, err)
	}
	return cm
}
