package scheduler_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/scheduler"
	"skiff/internal/server/servertest"
)

// schedulerOnly runs the scheduler without the other controllers, so these
// tests see the scheduler's work alone.
func schedulerOnly(c *config.Server) { c.DisableControllerManager = true }

func createPod(t *testing.T, c kubernetes.Interface, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	p.UID = "" // the API assigns it
	out, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	return out
}

// waitPod polls a pod until cond holds.
func waitPod(t *testing.T, c kubernetes.Interface, ns, name string, timeout time.Duration, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		if last == nil {
			t.Fatalf("pod %s/%s: %s: not within %v (never read)", ns, name, what, timeout)
		}
		t.Fatalf("pod %s/%s: %s: not within %v (last: node %q, conditions %+v)", ns, name, what, timeout, last.Spec.NodeName, last.Status.Conditions)
	}
	return last
}

func bound(p *corev1.Pod) bool { return p.Spec.NodeName != "" }

func scheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// podEvents lists the events of a pod the way kubectl describe does.
func podEvents(t *testing.T, c kubernetes.Interface, p *corev1.Pod) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": p.Name, "involvedObject.namespace": p.Namespace, "involvedObject.uid": string(p.UID)}
	l, err := c.CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return l.Items
}

func waitEvent(t *testing.T, c kubernetes.Interface, p *corev1.Pod, reason string, timeout time.Duration) corev1.Event {
	t.Helper()
	var found *corev1.Event
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		for _, e := range podEvents(t, c, p) {
			if e.Reason == reason {
				found = &e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no %s event for pod %s within %v", reason, p.Name, timeout)
	}
	return *found
}

func TestSchedulerBindsAndReportsUnschedulable(t *testing.T) {
	srv := servertest.Start(t, "", schedulerOnly)
	c := srv.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "small-1", servertest.WithCapacity("2", "4Gi", 110))
	servertest.AddNode(t, c, "small-2", servertest.WithCapacity("2", "4Gi", 110))
	servertest.AddNode(t, c, "control-plane", servertest.WithCapacity("8", "16Gi", 110),
		servertest.WithTaints(corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}))

	t.Run("pods go to fitting nodes", func(t *testing.T) {
		var names []string
		for i := 0; i < 4; i++ {
			p := createPod(t, c, scheduler.MakePod().Name(fmt.Sprintf("web-%d", i)).Req("500m", "512Mi").Obj())
			names = append(names, p.Name)
		}
		perNode := map[string]int{}
		for _, n := range names {
			p := waitPod(t, c, "default", n, 20*time.Second, "bound", bound)
			perNode[p.Spec.NodeName]++
			if cond := scheduledCondition(p); cond == nil || cond.Status != corev1.ConditionTrue {
				t.Errorf("%s: PodScheduled = %+v", n, cond)
			}
		}
		if perNode["small-1"] != 2 || perNode["small-2"] != 2 {
			t.Errorf("pods per node = %v, want 2 on each small node and none on the tainted one", perNode)
		}
		p, _ := c.CoreV1().Pods("default").Get(ctx, names[0], metav1.GetOptions{})
		ev := waitEvent(t, c, p, scheduler.ReasonScheduled, 10*time.Second)
		want := fmt.Sprintf("Successfully assigned default/%s to %s", p.Name, p.Spec.NodeName)
		if ev.Type != corev1.EventTypeNormal || ev.Message != want || ev.Source.Component != "default-scheduler" {
			t.Errorf("Scheduled event = %s %q from %q, want Normal %q from default-scheduler", ev.Type, ev.Message, ev.Source.Component, want)
		}
	})

	var big *corev1.Pod
	t.Run("a pod too big for every node is unschedulable", func(t *testing.T) {
		big = createPod(t, c, scheduler.MakePod().Name("big").Req("6", "1Gi").Obj())
		const want = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. " +
			"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
		p := waitPod(t, c, "default", "big", 20*time.Second, "PodScheduled=False", func(p *corev1.Pod) bool {
			cond := scheduledCondition(p)
			return cond != nil && cond.Status == corev1.ConditionFalse
		})
		cond := scheduledCondition(p)
		if cond.Reason != corev1.PodReasonUnschedulable || cond.Message != want {
			t.Errorf("condition = %s %q\nwant %s %q", cond.Reason, cond.Message, corev1.PodReasonUnschedulable, want)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("bound to %s", p.Spec.NodeName)
		}
		ev := waitEvent(t, c, big, scheduler.ReasonFailedScheduling, 10*time.Second)
		if ev.Type != corev1.EventTypeWarning || ev.Message != want || ev.Source.Component != "default-scheduler" {
			t.Errorf("FailedScheduling event = %s %q from %q", ev.Type, ev.Message, ev.Source.Component)
		}
	})

	t.Run("a big enough node arriving gets it bound", func(t *testing.T) {
		if big == nil {
			t.Skip("previous step failed")
		}
		start := time.Now()
		servertest.AddNode(t, c, "big-node", servertest.WithCapacity("8", "16Gi", 110))
		p := waitPod(t, c, "default", "big", 20*time.Second, "bound after a node was added", bound)
		if p.Spec.NodeName != "big-node" {
			t.Errorf("bound to %s, want big-node", p.Spec.NodeName)
		}
		// Retried on the event, not after the 5 minute wait.
		t.Logf("bound %v after the node was added", time.Since(start))
	})

	t.Run("taints are respected unless tolerated", func(t *testing.T) {
		pin := func(p *scheduler.PodWrapper) *scheduler.PodWrapper {
			return p.NodeSelector(corev1.LabelHostname, "control-plane")
		}
		tolerating := createPod(t, c, pin(scheduler.MakePod().Name("tolerating")).
			Toleration("node-role.kubernetes.io/control-plane", "", corev1.TaintEffectNoSchedule).Req("100m", "").Obj())
		p := waitPod(t, c, "default", tolerating.Name, 20*time.Second, "bound", bound)
		if p.Spec.NodeName != "control-plane" {
			t.Errorf("bound to %s", p.Spec.NodeName)
		}
		createPod(t, c, pin(scheduler.MakePod().Name("intolerant")).Req("100m", "").Obj())
		p = waitPod(t, c, "default", "intolerant", 20*time.Second, "unschedulable", func(p *corev1.Pod) bool {
			cond := scheduledCondition(p)
			return cond != nil && cond.Status == corev1.ConditionFalse
		})
		const want = "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, " +
			"3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
		if msg := scheduledCondition(p).Message; msg != want {
			t.Errorf("message %q\nwant %q", msg, want)
		}
	})

	t.Run("a deleted pod makes room", func(t *testing.T) {
		// Fill small-1 and small-2 (1 cpu left each after the web pods),
		// then ask for 2 cpu on small-1: only deleting a pod there helps.
		createPod(t, c, scheduler.MakePod().Name("waiter").NodeSelector(corev1.LabelHostname, "small-1").Req("2", "").Obj())
		waitPod(t, c, "default", "waiter", 20*time.Second, "unschedulable", func(p *corev1.Pod) bool {
			cond := scheduledCondition(p)
			return cond != nil && cond.Status == corev1.ConditionFalse
		})
		l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=small-1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			if err := c.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
				t.Fatal(err)
			}
		}
		p := waitPod(t, c, "default", "waiter", 20*time.Second, "bound after pods were deleted", bound)
		if p.Spec.NodeName != "small-1" {
			t.Errorf("bound to %s", p.Spec.NodeName)
		}
	})
}

func TestSchedulerSpreadsOwnedPods(t *testing.T) {
	srv := servertest.Start(t, "", schedulerOnly)
	c := srv.Client(t)
	for _, n := range []string{"n1", "n2", "n3"} {
		servertest.AddNode(t, c, n)
	}
	// n3 is busier, so least-allocated alone would put every pod on n1
	// and n2; spreading by owner must still give n3 its share.
	createPod(t, c, scheduler.MakePod().Name("filler").NodeSelector(corev1.LabelHostname, "n3").Req("1", "2Gi").Obj())
	waitPod(t, c, "default", "filler", 20*time.Second, "bound", bound)

	rs := types.UID("4c7f1ad6-0000-4000-8000-000000000001")
	var names []string
	for i := 0; i < 6; i++ {
		p := createPod(t, c, scheduler.MakePod().Name(fmt.Sprintf("web-%d", i)).Label("app", "web").
			Owner("ReplicaSet", "web", rs).Req("100m", "128Mi").Obj())
		names = append(names, p.Name)
	}
	perNode := map[string]int{}
	for _, n := range names {
		perNode[waitPod(t, c, "default", n, 20*time.Second, "bound", bound).Spec.NodeName]++
	}
	if perNode["n1"] != 2 || perNode["n2"] != 2 || perNode["n3"] != 2 {
		t.Errorf("pods per node = %v, want 2 each", perNode)
	}
}

func TestSchedulerReplicaSetSpread(t *testing.T) {
	srv := servertest.Start(t, "")
	c := srv.Client(t)
	ctx := context.Background()
	for _, n := range []string{"n1", "n2", "n3"} {
		servertest.AddNode(t, c, n)
	}
	labels := map[string]string{"app": "spread"}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "spread", Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(6)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
			},
		},
	}
	if _, err := c.AppsV1().ReplicaSets("default").Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var perNode map[string]int
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=spread"})
		if err != nil {
			return false, nil
		}
		perNode = map[string]int{}
		for _, p := range l.Items {
			if p.Spec.NodeName == "" {
				return false, nil
			}
			perNode[p.Spec.NodeName]++
		}
		return len(l.Items) == 6, nil
	})
	if err != nil {
		t.Fatalf("the ReplicaSet's 6 pods were not all bound: %v (so far %v)", err, perNode)
	}
	if perNode["n1"] != 2 || perNode["n2"] != 2 || perNode["n3"] != 2 {
		t.Errorf("pods per node = %v, want 2 each", perNode)
	}
}

func TestSchedulerSelectsNodeForWaitForFirstConsumerClaim(t *testing.T) {
	srv := servertest.Start(t, "", schedulerOnly)
	c := srv.Client(t)
	ctx := context.Background()
	servertest.AddNode(t, c, "n1")
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local-wffc"}, Provisioner: "example.com/none",
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer)}
	if _, err := c.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("local-wffc"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod whose claim is missing waits, and goes once the claim exists.
	createPod(t, c, scheduler.MakePod().Name("early").Req("", "").Claim("later").Obj())
	p := waitPod(t, c, "default", "early", 20*time.Second, "unschedulable", func(p *corev1.Pod) bool {
		cond := scheduledCondition(p)
		return cond != nil && cond.Status == corev1.ConditionFalse
	})
	if want := `0/1 nodes are available: persistentvolumeclaim "later" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.`; scheduledCondition(p).Message != want {
		t.Errorf("message %q, want %q", scheduledCondition(p).Message, want)
	}

	createPod(t, c, scheduler.MakePod().Name("user").Req("", "").Claim("data").Obj())
	p = waitPod(t, c, "default", "user", 20*time.Second, "bound", bound)
	got, err := c.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sel := got.Annotations[scheduler.AnnSelectedNode]; sel != p.Spec.NodeName {
		t.Errorf("claim annotation %s = %q, want %q", scheduler.AnnSelectedNode, sel, p.Spec.NodeName)
	}

	later := pvc.DeepCopy()
	later.Name = "later"
	if _, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, c, "default", "early", 20*time.Second, "bound once its claim exists", bound)
}
