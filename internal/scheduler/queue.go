package scheduler

import (
	"container/heap"
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// Backoff and waiting times, Kubernetes' defaults.
const (
	DefaultInitialBackoff = 1 * time.Second
	DefaultMaxBackoff     = 10 * time.Second
	// DefaultMaxUnschedulable is how long a pod waits for a helpful
	// cluster event before it is tried again anyway.
	DefaultMaxUnschedulable = 5 * time.Minute
)

type podState int

const (
	stateActive podState = iota
	stateBackoff
	stateUnschedulable
	stateInFlight
)

// QueuedPod is a pending pod in the queue.
type QueuedPod struct {
	Pod *corev1.Pod
	// Attempts counts scheduling attempts so far.
	Attempts int
	// Added is when the pod first entered the queue.
	Added time.Time

	key         string
	timestamp   time.Time
	lastFailure time.Time
	rejectedBy  Plugin
	state       podState
	index       int
	cycle       int64
	updated     bool
}

// Key is "namespace/name".
func (qp *QueuedPod) Key() string { return qp.key }

// Queue holds the pods waiting to be scheduled:
//   - active, popped by priority, then first come first served;
//   - backing off after a failed attempt (1 s doubling up to 10 s);
//   - unschedulable, waiting for a cluster event that may let them fit
//     (MoveAll), or DefaultMaxUnschedulable at most;
//   - in flight: popped and being decided or bound.
//
// A pod that failed while a cluster event happened during its attempt goes
// to backoff rather than unschedulable, so that the event is not missed.
type Queue struct {
	mu   sync.Mutex
	cond *sync.Cond

	active        podHeap
	backoff       podHeap
	unschedulable map[string]*QueuedPod
	pods          map[string]*QueuedPod

	cycle int64
	// moveCycles[i] is the scheduling cycle of the last cluster event that
	// may help pods plugin 1<<i rejected.
	moveCycles [32]int64
	closed     bool

	now              func() time.Time
	initialBackoff   time.Duration
	maxBackoff       time.Duration
	maxUnschedulable time.Duration
}

// QueueConfig configures a Queue; zero values take the defaults.
type QueueConfig struct {
	InitialBackoff, MaxBackoff, MaxUnschedulable time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// NewQueue returns an empty queue.
func NewQueue(cfg QueueConfig) *Queue {
	q := &Queue{
		unschedulable:    map[string]*QueuedPod{},
		pods:             map[string]*QueuedPod{},
		now:              cfg.Now,
		initialBackoff:   cfg.InitialBackoff,
		maxBackoff:       cfg.MaxBackoff,
		maxUnschedulable: cfg.MaxUnschedulable,
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.initialBackoff <= 0 {
		q.initialBackoff = DefaultInitialBackoff
	}
	if q.maxBackoff <= 0 {
		q.maxBackoff = DefaultMaxBackoff
	}
	if q.maxUnschedulable <= 0 {
		q.maxUnschedulable = DefaultMaxUnschedulable
	}
	q.cond = sync.NewCond(&q.mu)
	q.active.less = func(a, b *QueuedPod) bool {
		pa, pb := podPriority(a.Pod), podPriority(b.Pod)
		if pa != pb {
			return pa > pb
		}
		return a.timestamp.Before(b.timestamp)
	}
	q.backoff.less = func(a, b *QueuedPod) bool { return q.backoffExpiry(a).Before(q.backoffExpiry(b)) }
	return q
}

func podPriority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// backoffDuration is 1 s after the first failed attempt, doubling up to 10 s.
func (q *Queue) backoffDuration(qp *QueuedPod) time.Duration {
	d := q.initialBackoff
	for i := 1; i < qp.Attempts && d < q.maxBackoff; i++ {
		d *= 2
	}
	return min(d, q.maxBackoff)
}

func (q *Queue) backoffExpiry(qp *QueuedPod) time.Time {
	return qp.lastFailure.Add(q.backoffDuration(qp))
}

// Add adds a pending pod, or updates the one queued under its key. An
// unschedulable pod whose spec or labels changed is tried again.
func (q *Queue) Add(p *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	key := podKey(p)
	qp := q.pods[key]
	if qp != nil && qp.Pod.UID != p.UID {
		q.remove(qp)
		qp = nil
	}
	if qp == nil {
		now := q.now()
		qp = &QueuedPod{Pod: p, key: key, Added: now, timestamp: now}
		q.pods[key] = qp
		q.pushActive(qp)
		return
	}
	changed := podSpecChanged(qp.Pod, p)
	qp.Pod = p
	switch qp.state {
	case stateInFlight:
		qp.updated = qp.updated || changed
	case stateUnschedulable:
		if changed {
			delete(q.unschedulable, key)
			q.moveOut(qp)
		}
	case stateActive:
		heap.Fix(&q.active, qp.index)
	}
}

// podSpecChanged says whether an update may change the decision (status
// updates, such as the scheduler's own condition, do not).
func podSpecChanged(old, new *corev1.Pod) bool {
	return !equality.Semantic.DeepEqual(old.Labels, new.Labels) || !equality.Semantic.DeepEqual(old.Spec, new.Spec)
}

// Delete forgets a pod (deleted, bound, or no longer ours).
func (q *Queue) Delete(p *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp := q.pods[podKey(p)]; qp != nil && qp.Pod.UID == p.UID {
		q.remove(qp)
	}
}

func (q *Queue) remove(qp *QueuedPod) {
	delete(q.pods, qp.key)
	switch qp.state {
	case stateActive:
		heap.Remove(&q.active, qp.index)
	case stateBackoff:
		heap.Remove(&q.backoff, qp.index)
	case stateUnschedulable:
		delete(q.unschedulable, qp.key)
	}
}

func (q *Queue) pushActive(qp *QueuedPod) {
	qp.state = stateActive
	heap.Push(&q.active, qp)
	q.cond.Signal()
}

// moveOut sends a pod to backoff if it is still backing off, else to active.
func (q *Queue) moveOut(qp *QueuedPod) {
	if qp.Attempts > 0 && q.now().Before(q.backoffExpiry(qp)) {
		qp.state = stateBackoff
		heap.Push(&q.backoff, qp)
		return
	}
	q.pushActive(qp)
}

// Pop waits for an active pod and hands it out; false once the queue is
// closed.
func (q *Queue) Pop() (*QueuedPod, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active.Len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	qp := heap.Pop(&q.active).(*QueuedPod)
	qp.state = stateInFlight
	qp.Attempts++
	q.cycle++
	qp.cycle = q.cycle
	qp.updated = false
	return qp, true
}

// Done forgets a pod that was scheduled (or is not to be scheduled).
func (q *Queue) Done(qp *QueuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pods[qp.key] == qp {
		delete(q.pods, qp.key)
	}
}

// Requeue puts back a pod whose attempt failed. An unschedulable pod
// (rejectedBy says which plugins turned it down) waits for a cluster event
// unless one happened during the attempt or the pod changed meanwhile; a
// pod that hit an error backs off.
func (q *Queue) Requeue(qp *QueuedPod, unschedulable bool, rejectedBy Plugin) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.pods[qp.key] != qp || qp.state != stateInFlight {
		return
	}
	qp.lastFailure = q.now()
	qp.timestamp = qp.lastFailure
	qp.rejectedBy = rejectedBy
	if unschedulable && !qp.updated && !q.movedSince(rejectedBy, qp.cycle) {
		qp.state = stateUnschedulable
		q.unschedulable[qp.key] = qp
		return
	}
	qp.state = stateBackoff
	heap.Push(&q.backoff, qp)
}

// movedSince says whether a cluster event that may help a pod rejected by
// the plugins happened during or after scheduling cycle.
func (q *Queue) movedSince(rejectedBy Plugin, cycle int64) bool {
	for i := range q.moveCycles {
		if (rejectedBy == 0 || rejectedBy&(1<<i) != 0) && q.moveCycles[i] >= cycle {
			return true
		}
	}
	return false
}

// MoveAll moves the unschedulable pods that one of the plugins in event
// rejected back to active (or to backoff, if still backing off): a cluster
// event happened that may let them fit.
func (q *Queue) MoveAll(event Plugin) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.moveCycles {
		if event&(1<<i) != 0 {
			q.moveCycles[i] = q.cycle
		}
	}
	for key, qp := range q.unschedulable {
		if qp.rejectedBy != 0 && qp.rejectedBy&event == 0 {
			continue
		}
		delete(q.unschedulable, key)
		q.moveOut(qp)
	}
}

// Flush moves pods whose backoff is over to active, and pods unschedulable
// for too long back to be tried again.
func (q *Queue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for q.backoff.Len() > 0 {
		qp := q.backoff.items[0]
		if now.Before(q.backoffExpiry(qp)) {
			break
		}
		heap.Pop(&q.backoff)
		q.pushActive(qp)
	}
	for key, qp := range q.unschedulable {
		if now.Sub(qp.lastFailure) > q.maxUnschedulable {
			delete(q.unschedulable, key)
			q.moveOut(qp)
		}
	}
}

// Run flushes the queue every interval until ctx is done, then closes it.
func (q *Queue) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			q.Close()
			return
		case <-t.C:
			q.Flush()
		}
	}
}

// Close wakes Pop callers; the queue takes nothing more.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Lens returns how many pods are active, backing off, unschedulable, and
// known in total (in flight included).
func (q *Queue) Lens() (active, backoff, unschedulable, total int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable), len(q.pods)
}

// podHeap is a heap of queued pods ordered by less.
type podHeap struct {
	items []*QueuedPod
	less  func(a, b *QueuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*QueuedPod)
	qp.index = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	qp := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	qp.index = -1
	return qp
}
