package nodelifecycle_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

const grace = 3 * time.Second

func fastMonitor(c *config.Server) { c.Controllers.NodeMonitorGracePeriod = grace }

// heartbeats renews the leases of the nodes whose flag is set, every
// 300 ms, until the test ends.
type heartbeats struct {
	alive map[string]*atomic.Bool
}

func startHeartbeats(t *testing.T, c kubernetes.Interface, nodes ...string) *heartbeats {
	h := &heartbeats{alive: map[string]*atomic.Bool{}}
	for _, n := range nodes {
		h.alive[n] = &atomic.Bool{}
		h.alive[n].Store(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for n, a := range h.alive {
				if a.Load() {
					renew(ctx, c, n)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return h
}

func renew(ctx context.Context, c kubernetes.Interface, node string) {
	leases := c.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	l, err := leases.Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
}

// postStatus plays the kubelet posting its Ready condition.
func postStatus(t *testing.T, c kubernetes.Interface, node string, status corev1.ConditionStatus) {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	for i := range n.Status.Conditions {
		if cond := &n.Status.Conditions[i]; cond.Type == corev1.NodeReady {
			cond.Status, cond.Reason, cond.Message, cond.LastHeartbeatTime, cond.LastTransitionTime = status, "KubeletReady", "", now, now
		}
	}
	if _, err := c.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func runningPod(t *testing.T, c kubernetes.Interface, name, node string, tolerations ...corev1.Toleration) *corev1.Pod {
	t.Helper()
	_, err := c.CoreV1().Pods("default").Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{NodeName: node, Tolerations: tolerations,
			Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	return servertest.SetPodRunning(t, c, "default", name, "10.42.9.9", true)
}

// taintsOf renders the node's taints as "key:Effect".
func taintsOf(c kubernetes.Interface, node string) (map[string]corev1.Taint, error) {
	n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]corev1.Taint{}
	for _, t := range n.Spec.Taints {
		out[t.Key+":"+string(t.Effect)] = t
	}
	return out, nil
}

func expectTaints(t *testing.T, c kubernetes.Interface, node string, want ...string) map[string]corev1.Taint {
	t.Helper()
	var got map[string]corev1.Taint
	servertest.Eventually(t, 15*time.Second, "taints of "+node, func() error {
		var err error
		if got, err = taintsOf(c, node); err != nil {
			return err
		}
		if len(got) != len(want) {
			return fmt.Errorf("taints %v, want %v", keys(got), want)
		}
		for _, w := range want {
			if _, ok := got[w]; !ok {
				return fmt.Errorf("taints %v, want %v", keys(got), want)
			}
		}
		return nil
	})
	return got
}

func keys(m map[string]corev1.Taint) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// evicted reports when the pod was marked for deletion (or is gone).
func evicted(c kubernetes.Interface, name string) (bool, error) {
	p, err := c.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return p.DeletionTimestamp != nil, nil
}

const (
	unreachableNoExecute  = corev1.TaintNodeUnreachable + ":NoExecute"
	unreachableNoSchedule = corev1.TaintNodeUnreachable + ":NoSchedule"
	notReadyNoExecute     = corev1.TaintNodeNotReady + ":NoExecute"
	notReadyNoSchedule    = corev1.TaintNodeNotReady + ":NoSchedule"
)

func TestNodeLifecycle(t *testing.T) {
	s := servertest.Start(t, "", fastMonitor)
	c := s.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "healthy")
	servertest.AddNode(t, c, "sick")
	hb := startHeartbeats(t, c, "healthy", "sick")

	// No toleration matches the unreachable taint (the value differs), so
	// admission adds no default one either.
	runningPod(t, c, "intolerant", "sick", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoExecute})
	runningPod(t, c, "short", "sick", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To(int64(4))})
	runningPod(t, c, "forever", "sick", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	runningPod(t, c, "defaulted", "sick") // 300 s by admission
	runningPod(t, c, "elsewhere", "healthy")

	// Healthy for longer than the grace period while leases are renewed.
	time.Sleep(grace + time.Second)
	expectTaints(t, c, "sick")

	hb.alive["sick"].Store(false)
	stopped := time.Now()
	servertest.Eventually(t, grace+10*time.Second, "node marked unknown", func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, "sick", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status != corev1.ConditionUnknown || cond.Reason != "NodeStatusUnknown" || cond.Message != "Kubelet stopped posting node status." {
					return fmt.Errorf("ready condition %+v", cond)
				}
				return nil
			}
		}
		return fmt.Errorf("no ready condition")
	})
	if since := time.Since(stopped); since < grace-500*time.Millisecond {
		t.Errorf("node marked unknown %v after its last renewal, before the %v grace period", since, grace)
	}
	taints := expectTaints(t, c, "sick", unreachableNoExecute, unreachableNoSchedule)
	if taints[unreachableNoExecute].TimeAdded == nil {
		t.Errorf("NoExecute taint without timeAdded")
	}
	tainted := time.Now()
	expectTaints(t, c, "healthy")

	servertest.Eventually(t, 5*time.Second, "pod without a matching toleration evicted at once", func() error {
		if ok, err := evicted(c, "intolerant"); err != nil || !ok {
			return fmt.Errorf("not evicted (%v)", err)
		}
		return nil
	})
	servertest.Eventually(t, 5*time.Second, "pods of the unreachable node not ready", func() error {
		for _, name := range []string{"short", "forever", "defaulted"} {
			p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status != corev1.ConditionFalse {
					return fmt.Errorf("pod %s ready", name)
				}
			}
		}
		return nil
	})
	servertest.Eventually(t, 15*time.Second, "pod tolerating for 4s evicted", func() error {
		if ok, err := evicted(c, "short"); err != nil || !ok {
			return fmt.Errorf("not evicted (%v)", err)
		}
		return nil
	})
	if since := time.Since(tainted); since < 3*time.Second {
		t.Errorf("pod tolerating the taint for 4s evicted %v after the taint", since)
	}
	for _, name := range []string{"forever", "defaulted", "elsewhere"} {
		if ok, err := evicted(c, name); err != nil || ok {
			t.Errorf("pod %s evicted (%v)", name, err)
		}
	}

	// The kubelet is back: lease renewed, status posted. The taints go.
	hb.alive["sick"].Store(true)
	postStatus(t, c, "sick", corev1.ConditionTrue)
	expectTaints(t, c, "sick")

	// The kubelet says not ready: not-ready taints.
	postStatus(t, c, "sick", corev1.ConditionFalse)
	expectTaints(t, c, "sick", notReadyNoExecute, notReadyNoSchedule)
	postStatus(t, c, "sick", corev1.ConditionTrue)
	expectTaints(t, c, "sick")

	// Cordoned: the unschedulable taint follows spec.unschedulable.
	n, err := c.CoreV1().Nodes().Get(ctx, "sick", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = true
	if _, err := c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectTaints(t, c, "sick", corev1.TaintNodeUnschedulable+":NoSchedule")
	if ok, err := evicted(c, "forever"); err != nil || ok {
		t.Errorf("pod tolerating forever evicted (%v)", err)
	}
}

func TestNoNodeReadyStopsEvictions(t *testing.T) {
	s := servertest.Start(t, "", fastMonitor)
	c := s.Client(t)
	servertest.AddNode(t, c, "only")
	runningPod(t, c, "intolerant", "only", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoExecute})

	// The only node goes silent: it is marked unknown and unschedulable,
	// but as no node at all is ready the fault is likely the control
	// plane's, so nothing is evicted.
	expectTaints(t, c, "only", unreachableNoSchedule)
	time.Sleep(2 * time.Second)
	expectTaints(t, c, "only", unreachableNoSchedule)
	if ok, err := evicted(c, "intolerant"); err != nil || ok {
		t.Errorf("pod evicted while no node was ready (%v)", err)
	}
}
