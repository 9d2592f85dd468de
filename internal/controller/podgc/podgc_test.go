package podgc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

func createPod(t *testing.T, c kubernetes.Interface, name, node string) *corev1.Pod {
	t.Helper()
	p, err := c.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	return p
}

func finish(t *testing.T, c kubernetes.Interface, p *corev1.Pod, phase corev1.PodPhase) {
	t.Helper()
	p.Status.Phase = phase
	if _, err := c.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finish pod %s: %v", p.Name, err)
	}
}

func podGone(c kubernetes.Interface, name string) func() error {
	return func() error {
		_, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("pod %s still exists", name)
	}
}

func podThere(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	if _, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{}); err != nil {
		t.Fatalf("pod %s: %v", name, err)
	}
}

func TestPodGC(t *testing.T) {
	s := servertest.Start(t, "", func(c *config.Server) {
		c.Controllers.TerminatedPodGCThreshold = 1
		// Also the time a pod's node must be missing before the pod goes.
		c.Controllers.NodeMonitorGracePeriod = 2 * time.Second
	})
	c := s.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "node-a")
	servertest.AddNode(t, c, "node-b")

	t.Run("finished pods beyond the threshold, oldest first", func(t *testing.T) {
		// Creation times have a resolution of a second.
		old := createPod(t, c, "done-old", "node-a")
		time.Sleep(1100 * time.Millisecond)
		mid := createPod(t, c, "done-mid", "node-a")
		time.Sleep(1100 * time.Millisecond)
		young := createPod(t, c, "done-young", "node-a")
		running := createPod(t, c, "running", "node-a")
		finish(t, c, young, corev1.PodSucceeded)
		finish(t, c, mid, corev1.PodFailed)
		finish(t, c, old, corev1.PodSucceeded)
		servertest.Eventually(t, 15*time.Second, "oldest finished pods deleted", func() error {
			if err := podGone(c, old.Name)(); err != nil {
				return err
			}
			return podGone(c, mid.Name)()
		})
		podThere(t, c, young.Name)
		podThere(t, c, running.Name)
	})

	t.Run("pods of nodes that no longer exist", func(t *testing.T) {
		onB := createPod(t, c, "on-b", "node-b")
		ghost := createPod(t, c, "on-ghost", "ghost")
		onA := createPod(t, c, "on-a", "node-a")
		if err := c.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		servertest.Eventually(t, 15*time.Second, "orphaned pods deleted", func() error {
			if err := podGone(c, onB.Name)(); err != nil {
				return err
			}
			return podGone(c, ghost.Name)()
		})
		if took := time.Since(start); took < time.Second {
			t.Errorf("orphans deleted after %v, before the quarantine", took)
		}
		podThere(t, c, onA.Name)
	})
}
