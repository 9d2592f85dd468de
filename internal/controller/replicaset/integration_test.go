package replicaset_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"skiff/internal/server/servertest"
)

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

func ownedActive(pods []corev1.Pod, uid types.UID) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == uid && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func TestReplicaSetIntegration(t *testing.T) {
	client := servertest.StartCluster(t, []string{"node-a", "node-b"})
	ctx := context.Background()
	ns := "rs-it"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "web"}
	rs, err := client.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := func() []corev1.Pod {
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	waitStatus := func(n int32) {
		t.Helper()
		eventually(t, "replicaset status", func() (bool, string) {
			cur, err := client.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			s := cur.Status
			ok := s.ObservedGeneration == cur.Generation && s.Replicas == n && s.ReadyReplicas == n &&
				s.AvailableReplicas == n && s.FullyLabeledReplicas == n && len(ownedActive(pods(), rs.UID)) == int(n)
			return ok, strings.TrimSpace(s.String())
		})
	}
	waitStatus(3)
	for _, p := range ownedActive(pods(), rs.UID) {
		ref := metav1.GetControllerOf(&p)
		if !strings.HasPrefix(p.Name, "web-") || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion || p.Spec.NodeName == "" {
			t.Errorf("pod %s: owner %+v node %q", p.Name, ref, p.Spec.NodeName)
		}
	}
	eventually(t, "SuccessfulCreate events", func() (bool, string) {
		evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, e := range evs.Items {
			if e.Reason == "SuccessfulCreate" && e.InvolvedObject.Name == "web" && strings.HasPrefix(e.Message, "Created pod: web-") {
				n += int(max(e.Count, 1))
			}
		}
		return n >= 3, ""
	})

	// Adoption: a matching orphan is taken over, and one pod too many goes.
	// The orphan starts outside the selector and joins once it runs, and a
	// high deletion cost keeps it from being the pod that goes.
	if _, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stray", Labels: map[string]string{"app": "stray"},
			Annotations: map[string]string{"controller.kubernetes.io/pod-deletion-cost": "1000"}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the orphan running", func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "stray", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
	if _, err := client.CoreV1().Pods(ns).Patch(ctx, "stray", types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"web"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "adoption of the orphan", func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "stray", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ref := metav1.GetControllerOf(p)
		return ref != nil && ref.UID == rs.UID, "not adopted yet"
	})
	waitStatus(3)
	if p, err := client.CoreV1().Pods(ns).Get(ctx, "stray", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Errorf("the adopted pod was deleted rather than a cheaper one: %v", err)
	}

	// Release: a pod relabelled out of the selector is let go and replaced.
	victim := ownedActive(pods(), rs.UID)[0].Name
	if _, err := client.CoreV1().Pods(ns).Patch(ctx, victim, types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"debug"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "release of the relabelled pod", func() (bool, string) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(p.OwnerReferences) == 0, "still owned"
	})
	waitStatus(3)

	// Scale down. The controller writes the status meanwhile, so the
	// update is retried on a conflict, as any client's would be.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := client.AppsV1().ReplicaSets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Replicas = new(int32(1))
		_, err = client.AppsV1().ReplicaSets(ns).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(1)
	// The released pod is left alone.
	if _, err := client.CoreV1().Pods(ns).Get(ctx, victim, metav1.GetOptions{}); err != nil {
		t.Errorf("released pod: %v", err)
	}
}

func TestReplicaSetMinReadySeconds(t *testing.T) {
	client := servertest.StartCluster(t, []string{"node-a"})
	ctx := context.Background()
	labels := map[string]string{"app": "slow"}
	if _, err := client.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "slow"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32(2)),
			MinReadySeconds: 3,
			Selector:        &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	get := func() appsv1.ReplicaSetStatus {
		rs, err := client.AppsV1().ReplicaSets("default").Get(ctx, "slow", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return rs.Status
	}
	eventually(t, "ready pods", func() (bool, string) { s := get(); return s.ReadyReplicas == 2, s.String() })
	readyAt := time.Now()
	if s := get(); s.AvailableReplicas == 2 {
		t.Errorf("pods available as soon as ready despite minReadySeconds: %s", s.String())
	}
	// Nothing changes when they become available: the controller has to
	// come back by itself.
	eventually(t, "available pods", func() (bool, string) { s := get(); return s.AvailableReplicas == 2, s.String() })
	if waited := time.Since(readyAt); waited > 10*time.Second {
		t.Errorf("availability took %v after readiness", waited)
	}
}
