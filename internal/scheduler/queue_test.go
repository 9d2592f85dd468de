package scheduler

import (
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestQueue() (*Queue, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	return NewQueue(QueueConfig{Now: clk.Now}), clk
}

func mustPop(t *testing.T, q *Queue) *QueuedPod {
	t.Helper()
	if a, _, _, _ := q.Lens(); a == 0 {
		t.Fatal("no active pod to pop")
	}
	qp, ok := q.Pop()
	if !ok {
		t.Fatal("queue closed")
	}
	return qp
}

func TestQueueOrder(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("first").Obj())
	clk.Step(time.Millisecond)
	q.Add(MakePod().Name("second").Obj())
	clk.Step(time.Millisecond)
	q.Add(MakePod().Name("urgent").Priority(1000).Obj())
	for _, want := range []string{"urgent", "first", "second"} {
		if got := mustPop(t, q).Pod.Name; got != want {
			t.Errorf("popped %s, want %s", got, want)
		}
	}
}

func TestQueueBackoff(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("p").Obj())
	for attempt, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		qp := mustPop(t, q)
		if qp.Attempts != attempt+1 {
			t.Fatalf("attempts = %d", qp.Attempts)
		}
		q.Requeue(qp, false, 0)
		clk.Step(want - time.Millisecond)
		q.Flush()
		if a, b, _, _ := q.Lens(); a != 0 || b != 1 {
			t.Fatalf("attempt %d: active %d backoff %d before %v", attempt+1, a, b, want)
		}
		clk.Step(time.Millisecond)
		q.Flush()
		if a, _, _, _ := q.Lens(); a != 1 {
			t.Fatalf("attempt %d: not active after %v", attempt+1, want)
		}
	}
}

func TestQueueUnschedulableMovedByHelpfulEvents(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("cpu").Obj())
	q.Add(MakePod().Name("affinity").Obj())
	cpu, aff := mustPop(t, q), mustPop(t, q)
	q.Requeue(cpu, true, PluginNodeResourcesFit)
	q.Requeue(aff, true, PluginInterPodAffinity|PluginNodeAffinity)
	if _, _, u, _ := q.Lens(); u != 2 {
		t.Fatalf("unschedulable = %d, want 2", u)
	}

	// Backoff is over: a pod landing somewhere helps only affinity.
	clk.Step(2 * time.Second)
	q.MoveAll(eventPodPlaced)
	if a, _, u, _ := q.Lens(); a != 1 || u != 1 {
		t.Fatalf("after pod placed: active %d unschedulable %d", a, u)
	}
	if got := mustPop(t, q).Pod.Name; got != "affinity" {
		t.Errorf("moved %s", got)
	}
	// A new node helps everyone.
	q.MoveAll(eventNodeChange)
	if got := mustPop(t, q).Pod.Name; got != "cpu" {
		t.Errorf("moved %s", got)
	}
}

func TestQueueEventDuringAttemptMeansBackoff(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("p").Obj())
	qp := mustPop(t, q)
	q.MoveAll(eventNodeChange) // a node arrived while p was being decided
	q.Requeue(qp, true, PluginNodeResourcesFit)
	if _, b, u, _ := q.Lens(); b != 1 || u != 0 {
		t.Fatalf("backoff %d unschedulable %d, want the pod backing off", b, u)
	}
	clk.Step(time.Second)
	q.Flush()
	if a, _, _, _ := q.Lens(); a != 1 {
		t.Fatal("not retried after its backoff")
	}

	// An event that cannot help does not count.
	qp = mustPop(t, q)
	q.MoveAll(eventVolumeChange)
	q.Requeue(qp, true, PluginNodeResourcesFit)
	if _, _, u, _ := q.Lens(); u != 1 {
		t.Fatal("pod should wait as unschedulable")
	}
}

func TestQueueMovedWhileBackingOff(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("p").Obj())
	q.Requeue(mustPop(t, q), true, PluginNodeResourcesFit)
	q.MoveAll(eventNodeChange)
	if a, b, _, _ := q.Lens(); a != 0 || b != 1 {
		t.Fatalf("active %d backoff %d: a moved pod still backs off", a, b)
	}
	clk.Step(time.Second)
	q.Flush()
	if a, _, _, _ := q.Lens(); a != 1 {
		t.Fatal("not active after backoff")
	}
}

func TestQueueLongUnschedulableRetried(t *testing.T) {
	q, clk := newTestQueue()
	q.Add(MakePod().Name("p").Obj())
	q.Requeue(mustPop(t, q), true, PluginNodeResourcesFit)
	clk.Step(DefaultMaxUnschedulable - time.Second)
	q.Flush()
	if _, _, u, _ := q.Lens(); u != 1 {
		t.Fatal("moved too early")
	}
	clk.Step(2 * time.Second)
	q.Flush()
	if a, _, _, _ := q.Lens(); a != 1 {
		t.Fatal("not retried after the maximum wait")
	}
}

func TestQueueUpdatesAndDeletes(t *testing.T) {
	q, clk := newTestQueue()
	pod := MakePod().Name("p").Obj()
	q.Add(pod)
	qp := mustPop(t, q)
	q.Requeue(qp, true, PluginNodeAffinity)
	clk.Step(time.Minute)

	// A status-only update (like our own condition) changes nothing.
	st := pod.DeepCopy()
	st.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	q.Add(st)
	if _, _, u, _ := q.Lens(); u != 1 {
		t.Fatal("status update moved the pod")
	}
	// A label change may change the decision.
	lb := st.DeepCopy()
	lb.Labels = map[string]string{"new": "label"}
	q.Add(lb)
	if a, _, u, _ := q.Lens(); a != 1 || u != 0 {
		t.Fatalf("label change: active %d unschedulable %d", a, u)
	}

	// Updated while in flight: a failure goes to backoff, not unschedulable.
	qp = mustPop(t, q)
	sp := lb.DeepCopy()
	sp.Spec.NodeSelector = map[string]string{"a": "b"}
	q.Add(sp)
	q.Requeue(qp, true, PluginNodeAffinity)
	if _, b, u, _ := q.Lens(); b != 1 || u != 0 {
		t.Fatalf("updated in flight: backoff %d unschedulable %d", b, u)
	}
	if qp.Pod != sp {
		t.Error("queued pod not updated")
	}

	// Deleted while in flight: the requeue is dropped.
	clk.Step(time.Minute)
	q.Flush()
	qp = mustPop(t, q)
	q.Delete(sp)
	q.Requeue(qp, true, PluginNodeAffinity)
	if a, b, u, total := q.Lens(); a+b+u+total != 0 {
		t.Fatalf("deleted pod still queued: %d %d %d %d", a, b, u, total)
	}

	// A pod recreated under the same name replaces the old one.
	q.Add(pod)
	again := MakePod().Name("p").Obj()
	again.UID = "other"
	q.Add(again)
	if got := mustPop(t, q).Pod.UID; got != "other" {
		t.Errorf("popped uid %s", got)
	}
	if _, _, _, total := q.Lens(); total != 1 {
		t.Errorf("total = %d", total)
	}
}

func TestQueueCloseWakesPop(t *testing.T) {
	q, _ := newTestQueue()
	done := make(chan bool)
	go func() {
		_, ok := q.Pop()
		done <- ok
	}()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	select {
	case ok := <-done:
		if ok {
			t.Error("Pop returned a pod from an empty closed queue")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pop not woken by Close")
	}
}
