package daemonset_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/daemonset"
	"skiff/internal/controller/manager"
	"skiff/internal/server/servertest"
)

const ns = "default"

// cluster starts a server whose scheduler runs but whose controllers do
// not, and runs the DaemonSet controller against it. Nodes are added with
// addNode.
func cluster(t *testing.T) (kubernetes.Interface, context.Context) {
	t.Helper()
	s := servertest.Start(t, "", func(c *config.Server) { c.DisableControllerManager = true })
	client := s.Client(t)
	ctx := s.RunController(t, "daemonset", func(c *controller.Context) (manager.Runner, error) {
		return daemonset.New(c, daemonset.Options{})
	})
	return client, ctx
}

// addNode adds a Ready node played by FakeKubelet.
func addNode(t *testing.T, ctx context.Context, c kubernetes.Interface, name string, opts ...servertest.NodeOption) {
	t.Helper()
	servertest.AddNode(t, c, name, opts...)
	servertest.FakeKubelet(ctx, t, c, name)
}

func newDaemonSet(name string, mutate func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	l := map[string]string{"app": name}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "agent:1"}}},
			},
		},
	}
	if mutate != nil {
		mutate(ds)
	}
	return ds
}

// waitFor is servertest.Eventually for a condition that reports whether
// it holds and the state it saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	servertest.Eventually(t, 30*time.Second, what, func() error {
		if ok, state := cond(); !ok {
			return fmt.Errorf("last: %s", state)
		}
		return nil
	})
}

// placed maps node → the live pods of the DaemonSet there (by image).
func placed(t *testing.T, c kubernetes.Interface, name string) map[string][]string {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := map[string][]string{}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p.Spec.Containers[0].Image)
	}
	return out
}

func describe(m map[string][]string) string {
	var parts []string
	for n, imgs := range m {
		parts = append(parts, fmt.Sprintf("%s=%v", n, imgs))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// onNodes: exactly one running pod with image on each of nodes, none elsewhere.
func onNodes(t *testing.T, c kubernetes.Interface, name, image string, nodes ...string) func() (bool, string) {
	return func() (bool, string) {
		got := placed(t, c, name)
		if len(got) != len(nodes) {
			return false, describe(got)
		}
		for _, n := range nodes {
			if len(got[n]) != 1 || got[n][0] != image {
				return false, describe(got)
			}
		}
		return true, ""
	}
}

func getDS(t *testing.T, c kubernetes.Interface, name string) *appsv1.DaemonSet {
	t.Helper()
	ds, err := c.AppsV1().DaemonSets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get daemonset: %v", err)
	}
	return ds
}

func statusIs(t *testing.T, c kubernetes.Interface, name string, want appsv1.DaemonSetStatus) func() (bool, string) {
	return func() (bool, string) {
		ds := getDS(t, c, name)
		st := ds.Status
		ok := st.DesiredNumberScheduled == want.DesiredNumberScheduled &&
			st.CurrentNumberScheduled == want.CurrentNumberScheduled &&
			st.NumberReady == want.NumberReady &&
			st.NumberAvailable == want.NumberAvailable &&
			st.UpdatedNumberScheduled == want.UpdatedNumberScheduled &&
			st.NumberMisscheduled == want.NumberMisscheduled &&
			st.NumberUnavailable == want.NumberUnavailable &&
			st.ObservedGeneration == ds.Generation
		return ok, fmt.Sprintf("%+v (generation %d)", st, ds.Generation)
	}
}

func full(n int32) appsv1.DaemonSetStatus {
	return appsv1.DaemonSetStatus{DesiredNumberScheduled: n, CurrentNumberScheduled: n, NumberReady: n, NumberAvailable: n, UpdatedNumberScheduled: n}
}

func updateDS(t *testing.T, c kubernetes.Interface, name string, mutate func(*appsv1.DaemonSet)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds := getDS(t, c, name)
		mutate(ds)
		_, err := c.AppsV1().DaemonSets(ns).Update(context.Background(), ds, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("update daemonset: %v", err)
	}
}

func TestDaemonSetOnePodPerNode(t *testing.T) {
	c, ctx := cluster(t)
	addNode(t, ctx, c, "n1")
	addNode(t, ctx, c, "n2")
	addNode(t, ctx, c, "tainted", servertest.WithTaints(corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}))
	// A cordoned node still runs daemons (they tolerate the taint).
	addNode(t, ctx, c, "cordoned", servertest.WithTaints(corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}))

	if _, err := c.AppsV1().DaemonSets(ns).Create(ctx, newDaemonSet("agent", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pod on n1, n2 and cordoned", onNodes(t, c, "agent", "agent:1", "n1", "n2", "cordoned"))
	waitFor(t, "status", statusIs(t, c, "agent", full(3)))

	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
			t.Errorf("pod %s on %s: affinity %+v", p.Name, p.Spec.NodeName, terms)
		}
		keys := map[string]bool{}
		for _, tol := range p.Spec.Tolerations {
			keys[tol.Key] = true
		}
		for _, k := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeDiskPressure,
			corev1.TaintNodeMemoryPressure, corev1.TaintNodePIDPressure, corev1.TaintNodeUnschedulable} {
			if !keys[k] {
				t.Errorf("pod %s lacks the toleration of %s", p.Name, k)
			}
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == "" {
			t.Errorf("pod %s has no %s label", p.Name, appsv1.DefaultDaemonSetUniqueLabelKey)
		}
	}

	// A node added later gets its pod.
	addNode(t, ctx, c, "n3")
	waitFor(t, "a pod on the new node", onNodes(t, c, "agent", "agent:1", "n1", "n2", "cordoned", "n3"))
	waitFor(t, "status after the new node", statusIs(t, c, "agent", full(4)))

	// A rolling update replaces every pod, one node at a time (maxUnavailable 1).
	updateDS(t, c, "agent", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "agent:2" })
	waitFor(t, "every pod updated", onNodes(t, c, "agent", "agent:2", "n1", "n2", "cordoned", "n3"))
	waitFor(t, "status after the update", statusIs(t, c, "agent", full(4)))

	// A NoExecute taint the pods do not tolerate evicts the daemon.
	taint(t, c, "n3", corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute})
	waitFor(t, "the pod gone from the NoExecute node", onNodes(t, c, "agent", "agent:2", "n1", "n2", "cordoned"))
	waitFor(t, "status after the taint", statusIs(t, c, "agent", full(3)))

	// A NoSchedule taint added later leaves the pod running there, counted
	// as misscheduled.
	taint(t, c, "n2", corev1.Taint{Key: "late", Effect: corev1.TaintEffectNoSchedule})
	waitFor(t, "status with a misscheduled pod", statusIs(t, c, "agent", appsv1.DaemonSetStatus{
		DesiredNumberScheduled: 2, CurrentNumberScheduled: 2, NumberReady: 2, NumberAvailable: 2, UpdatedNumberScheduled: 2, NumberMisscheduled: 1}))
	waitFor(t, "the pod kept on the NoSchedule node", onNodes(t, c, "agent", "agent:2", "n1", "n2", "cordoned"))
}

func taint(t *testing.T, c kubernetes.Interface, node string, taint corev1.Taint) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = append(n.Spec.Taints, taint)
		_, err = c.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("taint %s: %v", node, err)
	}
}

func TestDaemonSetNodeSelectorAndOnDelete(t *testing.T) {
	c, ctx := cluster(t)
	addNode(t, ctx, c, "edge1", servertest.WithLabels(map[string]string{"role": "edge"}))
	addNode(t, ctx, c, "core1")
	_, err := c.AppsV1().DaemonSets(ns).Create(ctx, newDaemonSet("edged", func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = map[string]string{"role": "edge"}
		ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pod on edge1 only", onNodes(t, c, "edged", "agent:1", "edge1"))
	waitFor(t, "status", statusIs(t, c, "edged", full(1)))

	// Labelling core1 makes it eligible; unlabelling edge1 removes its pod.
	label := func(node, value string) {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if value == "" {
				delete(n.Labels, "role")
			} else {
				n.Labels["role"] = value
			}
			_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	label("core1", "edge")
	waitFor(t, "pods on both nodes", onNodes(t, c, "edged", "agent:1", "edge1", "core1"))
	label("edge1", "")
	waitFor(t, "the pod gone from edge1", onNodes(t, c, "edged", "agent:1", "core1"))

	// OnDelete: a new template changes nothing until a pod is deleted.
	updateDS(t, c, "edged", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "agent:2" })
	waitFor(t, "status with the old pod", statusIs(t, c, "edged", appsv1.DaemonSetStatus{
		DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, NumberReady: 1, NumberAvailable: 1, UpdatedNumberScheduled: 0}))
	time.Sleep(300 * time.Millisecond)
	waitFor(t, "the old pod kept", onNodes(t, c, "edged", "agent:1", "core1"))
	l, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=edged"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			if err := c.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "the replacement from the new template", onNodes(t, c, "edged", "agent:2", "core1"))
	waitFor(t, "status after the replacement", statusIs(t, c, "edged", full(1)))
}
