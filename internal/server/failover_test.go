package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

// TestPodsMoveOffASilentNode is the whole control plane at work: a node
// stops renewing its lease, goes Unknown and gets tainted, its pods are
// evicted after their toleration, and the deployment's replacements are
// scheduled onto the node that is still alive.
func TestPodsMoveOffASilentNode(t *testing.T) {
	s := servertest.Start(t, "", func(c *config.Server) {
		c.Controllers.NodeMonitorGracePeriod = 3 * time.Second
		c.Controllers.DefaultNotReadyTolerationSeconds = 2
	})
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	// The lease renewers report through t: they must be done before the
	// test returns.
	var renewers sync.WaitGroup
	defer func() { cancel(); renewers.Wait() }()
	renew := func(ctx context.Context, node string) {
		renewers.Add(1)
		go func() { defer renewers.Done(); renewLeases(ctx, t, node, s) }()
	}

	servertest.AddNode(t, c, "doomed")
	doomedCtx, stopDoomed := context.WithCancel(ctx)
	servertest.FakeKubelet(doomedCtx, t, c, "doomed")
	renew(doomedCtx, "doomed")

	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runningOn := func(node string) int {
		pods, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return 0
		}
		n := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == node && p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				n++
			}
		}
		return n
	}
	servertest.Eventually(t, 30*time.Second, "2 pods running on the first node", func() error {
		if n := runningOn("doomed"); n != 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})

	servertest.AddNode(t, c, "survivor")
	servertest.FakeKubelet(ctx, t, c, "survivor")
	renew(ctx, "survivor")

	// The first node goes silent: no lease renewals, no kubelet.
	stopDoomed()
	servertest.Eventually(t, 30*time.Second, "the silent node marked Unknown and tainted unreachable", func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, "doomed", metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready, tainted := false, false
		for _, cond := range n.Status.Conditions {
			ready = ready || cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionUnknown
		}
		for _, taint := range n.Spec.Taints {
			tainted = tainted || taint.Key == corev1.TaintNodeUnreachable && taint.Effect == corev1.TaintEffectNoExecute
		}
		if !ready || !tainted {
			return fmt.Errorf("ready unknown %v, unreachable NoExecute taint %v", ready, tainted)
		}
		return nil
	})
	servertest.Eventually(t, 45*time.Second, "2 replacement pods running on the surviving node", func() error {
		if n := runningOn("survivor"); n != 2 {
			return fmt.Errorf("%d running on survivor", n)
		}
		return nil
	})
}

// renewLeases renews node's lease every second until ctx is done, as a
// kubelet does.
func renewLeases(ctx context.Context, t *testing.T, node string, s *servertest.Server) {
	c := s.Client(t)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			servertest.RenewLease(t, c, node)
		}
	}
}
