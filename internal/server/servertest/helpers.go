package servertest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/manager"
)

// SlowNodeMonitor keeps the node lifecycle controller from marking nodes
// without a kubelet unknown during a test.
func SlowNodeMonitor(c *config.Server) { c.Controllers.NodeMonitorGracePeriod = 10 * time.Minute }

// testLogger logs at debug level to stderr when SKIFF_TEST_LOG is set,
// else nowhere.
func testLogger() *slog.Logger {
	var out io.Writer = io.Discard
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		out = os.Stderr
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Eventually calls f every 100 ms until it returns nil, and fails the test
// with f's last error if that does not happen within timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// RunController runs a controller manager with the one controller build
// makes, named name, against s until the test ends (start s with
// DisableControllerManager so it is the only one). The returned context is
// done when the test ends; the manager is waited for and its error
// reported through t.
func (s *Server) RunController(t testing.TB, name string, build func(*controller.Context) (manager.Runner, error)) context.Context {
	t.Helper()
	rc := s.RESTConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- manager.Run(ctx, manager.Config{
			RESTConfig:  rc,
			Logger:      testLogger(),
			Controllers: []manager.Entry{{Name: name, New: build}},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
	return ctx
}

// SetPodRunning sets the pod's status as a kubelet would: Running, with
// address ip (unless "") and a Ready condition of ready. It returns the
// updated pod.
func SetPodRunning(t testing.TB, c kubernetes.Interface, ns, name, ip string, ready bool) *corev1.Pod {
	t.Helper()
	cur, err := c.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	cur.Status.Phase = corev1.PodRunning
	if ip != "" {
		cur.Status.PodIP, cur.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	}
	cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	out, err := c.CoreV1().Pods(ns).UpdateStatus(context.Background(), cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("pod %s status: %v", name, err)
	}
	return out
}

// StartCluster starts a server whose controllers run, with no scheduler:
// RunBinder stands in for it, binding pods to nodes, which FakeKubelet
// plays. The dead nodes are added without a kubelet, so pods bound to them
// (by a kubernetes.io/hostname node selector) never start. All stops when
// the test ends; it returns an admin client.
func StartCluster(t testing.TB, nodes []string, dead ...string) kubernetes.Interface {
	t.Helper()
	s := Start(t, "", func(c *config.Server) { c.DisableScheduler = true })
	client := s.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	for _, n := range nodes {
		AddNode(t, client, n)
		FakeKubelet(ctx, t, client, n)
	}
	for _, n := range dead {
		AddNode(t, client, n)
	}
	RunBinder(ctx, client, nodes)
	return client
}

// RunBinder stands in for the scheduler until ctx is done: it binds every
// unassigned pod that is not being deleted to the node its
// kubernetes.io/hostname node selector names, or else to the next of
// nodes in turn.
func RunBinder(ctx context.Context, c kubernetes.Interface, nodes []string) {
	var next atomic.Int64
	bind := func(p *corev1.Pod) {
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			return
		}
		node := p.Spec.NodeSelector[corev1.LabelHostname]
		if node == "" {
			node = nodes[int(next.Add(1))%len(nodes)]
		}
		_ = c.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
	}
	go func() {
		opts := metav1.ListOptions{FieldSelector: "spec.nodeName="}
		for ctx.Err() == nil {
			list, err := c.CoreV1().Pods("").List(ctx, opts)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for i := range list.Items {
				bind(&list.Items[i])
			}
			wopts := opts
			wopts.ResourceVersion = list.ResourceVersion
			w, err := c.CoreV1().Pods("").Watch(ctx, wopts)
			if err != nil {
				continue
			}
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
					bind(p)
				}
			}
		}
	}()
}
