package kubelet

import (
	"context"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"skiff/internal/kubelet/runtime"
)

// Labels the kubelet puts on its containers; the runtime persists them, so
// a restarted kubelet can tell which pod and container an instance is.
const (
	labelPodUID       = "io.skiff.pod.uid"
	labelPodNamespace = "io.skiff.pod.namespace"
	labelPodName      = "io.skiff.pod.name"
	labelContainer    = "io.skiff.container.name"
	labelAttempt      = "io.skiff.container.attempt"
	labelInit         = "io.skiff.container.init"
	labelImage        = "io.skiff.container.image"
	labelImageID      = "io.skiff.container.image-id"
	labelImageRef     = "io.skiff.container.image-ref"
	labelTermMsgPath  = "io.skiff.container.termination-log"
)

// podWorker owns one pod on this node: a single goroutine syncs it, so no
// two syncs of a pod ever race. Anything that may change the pod's desired
// or actual state (an API update, a container exit, a probe result) kicks it.
type podWorker struct {
	k      *Kubelet
	uid    types.UID
	static bool
	kickc  chan struct{}

	mu      sync.Mutex
	pod     *corev1.Pod
	removed bool // gone from the API or the manifest folder
	// pendingLive holds liveness failures reported by probe goroutines
	// until the worker goroutine takes them.
	pendingLive [][2]string

	// Owned by the worker goroutine.
	watched  map[string]bool   // container IDs with a Wait goroutine
	probed   map[string]bool   // container IDs with probes running
	waiting  map[string]reason // container name → why it is not running
	liveFail map[string]string // container name → liveness failure being acted on
	written  *corev1.PodStatus // status last written to the API
	deadline bool              // activeDeadlineSeconds exceeded
	podIP    net.IP            // the pod's address on the pod network
}

// reason is a container's waiting reason and message, as kubectl shows it.
type reason struct{ Reason, Message string }

func newPodWorker(k *Kubelet, uid types.UID, static bool) *podWorker {
	return &podWorker{
		k: k, uid: uid, static: static,
		kickc:    make(chan struct{}, 1),
		watched:  map[string]bool{},
		probed:   map[string]bool{},
		waiting:  map[string]reason{},
		liveFail: map[string]string{},
	}
}

func (w *podWorker) update(p *corev1.Pod) {
	w.mu.Lock()
	w.pod = p.DeepCopy()
	w.removed = false
	w.mu.Unlock()
	w.kick()
}

func (w *podWorker) gone() {
	w.mu.Lock()
	w.removed = true
	w.mu.Unlock()
	w.kick()
}

func (w *podWorker) kick() {
	select {
	case w.kickc <- struct{}{}:
	default:
	}
}

func (w *podWorker) current() *corev1.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pod == nil {
		return nil
	}
	return w.pod
}

func (w *podWorker) snapshot() (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.pendingLive {
		w.liveFail[f[0]] = f[1]
	}
	w.pendingLive = nil
	if w.pod == nil {
		return nil, w.removed
	}
	return w.pod.DeepCopy(), w.removed
}

// run syncs the pod until it has been torn down or ctx ends. The worker is
// started before it is handed its pod: the first update or gone kicks it.
func (w *podWorker) run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-w.kickc:
	}
	for {
		next, done := w.sync(ctx)
		if done || ctx.Err() != nil {
			return
		}
		if next <= 0 || next > w.k.cfg.Agent.SyncInterval {
			next = w.k.cfg.Agent.SyncInterval
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.kickc:
			t.Stop()
		case <-t.C:
		}
	}
}

// instances are a pod's containers as the runtime knows them, grouped by
// container name, newest attempt first.
type instances map[string][]runtime.ContainerState

func attemptOf(c runtime.ContainerState) int {
	n, _ := strconv.Atoi(c.Labels[labelAttempt])
	return n
}

func (w *podWorker) instances(ctx context.Context) (instances, error) {
	all, err := w.k.rt.ListPrefix(ctx, podPrefix(w.uid))
	if err != nil {
		return nil, err
	}
	out := instances{}
	for _, c := range all {
		if c.Labels[labelPodUID] != string(w.uid) {
			continue
		}
		name := c.Labels[labelContainer]
		out[name] = append(out[name], c)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return attemptOf(list[i]) > attemptOf(list[j]) })
	}
	return out, nil
}

func (in instances) latest(name string) *runtime.ContainerState {
	if l := in[name]; len(l) > 0 {
		return &l[0]
	}
	return nil
}

func (in instances) previous(name string) *runtime.ContainerState {
	if l := in[name]; len(l) > 1 {
		return &l[1]
	}
	return nil
}

func running(c *runtime.ContainerState) bool {
	return c != nil && (c.Status == runtime.StatusRunning || c.Status == runtime.StatusCreated)
}

func exited(c *runtime.ContainerState) bool { return c != nil && c.Status == runtime.StatusExited }

// watch starts a goroutine that kicks the worker when the container exits;
// it also adopts containers started by an earlier agent process.
func (w *podWorker) watch(ctx context.Context, c runtime.ContainerState) {
	if w.watched[c.ID] || !running(&c) {
		return
	}
	w.watched[c.ID] = true
	w.k.wg.Add(1)
	go func() {
		defer w.k.wg.Done()
		if _, err := w.k.rt.Wait(ctx, c.ID); err == nil {
			w.kick()
		}
	}()
}
