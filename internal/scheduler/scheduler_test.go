package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// fakeBinding makes pods/binding on a fake clientset set the pod's node,
// as the API server does.
func fakeBinding(c *fake.Clientset) {
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca, ok := a.(k8stesting.CreateAction)
		if !ok || ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*corev1.Binding)
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := c.Tracker().Get(gvr, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		p := obj.(*corev1.Pod).DeepCopy()
		p.Spec.NodeName = b.Target.Name
		return true, b, c.Tracker().Update(gvr, p, p.Namespace)
	})
}

// TestShellBindsReportsAndStops runs the shell on a fake clientset: it
// binds what fits, reports what does not, and stops with its context.
func TestShellBindsReportsAndStops(t *testing.T) {
	objs := []runtime.Object{
		MakeNode().Name("n1").Capacity("2", "4Gi", 110).Obj(),
		MakeNode().Name("n2").Capacity("2", "4Gi", 110).Obj(),
		MakePod().Name("big").Req("3", "").Obj(),
		MakePod().Name("other-scheduler").Req("", "").Obj(),
	}
	objs[3].(*corev1.Pod).Spec.SchedulerName = "someone-else"
	for i := 0; i < 4; i++ {
		objs = append(objs, MakePod().Name(fmt.Sprintf("p%d", i)).Req("500m", "").Obj())
	}
	client := fake.NewClientset(objs...)
	fakeBinding(client)
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(100)
	s, err := New(&controller.Context{
		Client:    client,
		Informers: factory,
		Recorder:  func(string) record.EventRecorder { return rec },
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}

	pods := client.CoreV1().Pods("default")
	perNode := map[string]int{}
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("p%d", i)
		var p *corev1.Pod
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err = pods.Get(ctx, name, metav1.GetOptions{})
			return err == nil && p.Spec.NodeName != "", nil
		}); err != nil {
			t.Fatalf("%s not bound", name)
		}
		perNode[p.Spec.NodeName]++
	}
	if perNode["n1"] != 2 || perNode["n2"] != 2 {
		t.Errorf("per node %v, want 2 and 2", perNode)
	}

	var big *corev1.Pod
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		big, err = pods.Get(ctx, "big", metav1.GetOptions{})
		return err == nil && len(big.Status.Conditions) > 0, nil
	}); err != nil {
		t.Fatal("big pod has no condition")
	}
	c := big.Status.Conditions[0]
	if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionFalse || c.Reason != corev1.PodReasonUnschedulable ||
		!strings.HasPrefix(c.Message, "0/2 nodes are available: 2 Insufficient cpu.") {
		t.Errorf("condition = %+v", c)
	}
	if p, _ := pods.Get(ctx, "other-scheduler", metav1.GetOptions{}); p.Spec.NodeName != "" || len(p.Status.Conditions) > 0 {
		t.Errorf("a pod for another scheduler was touched: %+v", p)
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	close(rec.Events)
	var scheduled, failed int
	for e := range rec.Events {
		switch {
		case strings.HasPrefix(e, "Normal Scheduled Successfully assigned default/p"):
			scheduled++
		case strings.HasPrefix(e, "Warning FailedScheduling 0/2 nodes are available: 2 Insufficient cpu."):
			failed++
		default:
			t.Errorf("unexpected event %q", e)
		}
	}
	if scheduled != 4 || failed < 1 {
		t.Errorf("events: %d Scheduled, %d FailedScheduling", scheduled, failed)
	}
}
