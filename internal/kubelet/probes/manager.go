package probes

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Kind is a probe's role.
type Kind string

const (
	Liveness  Kind = "liveness"
	Readiness Kind = "readiness"
	Startup   Kind = "startup"
)

// Key names one run of a container; a restarted container has a new
// ContainerID and so a new Key.
type Key struct {
	PodUID, Container, ContainerID string
}

// Config configures a Manager.
type Config struct {
	// OnChange is called, from a probe worker's goroutine, when a probe's
	// thresholded result changes. It may call the Manager's methods. A call
	// can race with Remove for the same key; callers compare ContainerIDs.
	OnChange func(key Key, kind Kind, result Result, message string)
	Logger   *slog.Logger
}

// Manager runs probe workers for started containers.
type Manager struct {
	cfg Config
	log *slog.Logger
	wg  sync.WaitGroup

	mu         sync.Mutex
	containers map[Key]*container
}

// container is the probe state of one container run.
type container struct {
	cancel context.CancelFunc
	// results holds the current thresholded result per defined probe kind.
	results map[Kind]Result
}

// NewManager returns a Manager with no workers.
func NewManager(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log.With("component", "probes"), containers: map[Key]*container{}}
}

// Add starts the probe workers of a started container: one goroutine per
// probe it defines, until Remove, RemovePod, Stop or ctx ends. Adding a key
// that is already there does nothing.
//
// As in Kubernetes: the startup probe gates liveness and readiness (they
// do not run until it succeeds, and it stops once it has); readiness is
// Failure until its probe succeeds; liveness is Success until its probe
// fails failureThreshold times in a row, which is reported once per
// failure streak while the worker keeps probing.
func (m *Manager) Add(ctx context.Context, key Key, c *corev1.Container, t Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.containers[key]; ok {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	st := &container{cancel: cancel, results: map[Kind]Result{}}
	m.containers[key] = st
	probes := map[Kind]*corev1.Probe{Startup: c.StartupProbe, Liveness: c.LivenessProbe, Readiness: c.ReadinessProbe}
	initial := map[Kind]Result{Startup: Unknown, Liveness: Success, Readiness: Failure}
	for kind, p := range probes {
		if p == nil {
			continue
		}
		st.results[kind] = initial[kind]
		w := &worker{m: m, key: key, kind: kind, probe: p.DeepCopy(), c: c.DeepCopy(), target: t, last: initial[kind]}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run(wctx)
		}()
	}
	m.log.Debug("probes started", "pod", key.PodUID, "container", key.Container, "containerID", key.ContainerID, "probes", len(st.results))
}

// Remove stops the workers of key and forgets its state.
func (m *Manager) Remove(key Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.containers[key]; ok {
		st.cancel()
		delete(m.containers, key)
	}
}

// RemovePod removes every container of a pod.
func (m *Manager) RemovePod(podUID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, st := range m.containers {
		if k.PodUID == podUID {
			st.cancel()
			delete(m.containers, k)
		}
	}
}

// Stop removes everything and waits for all workers to return.
func (m *Manager) Stop() {
	m.mu.Lock()
	for k, st := range m.containers {
		st.cancel()
		delete(m.containers, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Started reports whether key's startup probe has passed; true if it has
// none. Unknown keys are not started.
func (m *Manager) Started(key Key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.containers[key]
	return ok && st.started()
}

// Ready reports whether key is ready: started, and its readiness probe (if
// any) succeeding. Unknown keys are not ready.
func (m *Manager) Ready(key Key) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.containers[key]
	if !ok || !st.started() {
		return false
	}
	r, has := st.results[Readiness]
	return !has || r == Success
}

func (st *container) started() bool {
	r, has := st.results[Startup]
	return !has || r == Success
}

// worker runs one probe of one container.
type worker struct {
	m      *Manager
	key    Key
	kind   Kind
	probe  *corev1.Probe
	c      *corev1.Container
	target Target

	last    Result // thresholded result last reported
	lastRaw Result // result of the last attempt
	streak  int    // attempts in a row with lastRaw
}

func seconds(v, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func (w *worker) run(ctx context.Context) {
	// The initial delay counts from Add, i.e. from when the container
	// started; a startup probe does not push it back.
	if d := time.Duration(w.probe.InitialDelaySeconds) * time.Second; d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
	tick := time.NewTicker(seconds(w.probe.PeriodSeconds, 10))
	defer tick.Stop()
	for {
		if !w.step(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// step runs one attempt if the probe is due, and reports whether the
// worker should go on.
func (w *worker) step(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if w.kind != Startup && !w.m.Started(w.key) {
		return true // gated by the startup probe
	}
	r, msg := Run(ctx, w.probe, w.c, w.target)
	if r == Unknown {
		return ctx.Err() == nil
	}
	if r == w.lastRaw {
		w.streak++
	} else {
		w.lastRaw, w.streak = r, 1
	}
	threshold := w.probe.FailureThreshold
	if threshold <= 0 {
		threshold = 3
	}
	if r == Success {
		threshold = w.probe.SuccessThreshold
		if threshold <= 0 {
			threshold = 1
		}
	}
	if w.streak >= int(threshold) && r != w.last {
		w.last = r
		if !w.set(ctx, r) {
			return false
		}
		w.m.log.Info("probe result changed", "kind", w.kind, "result", r, "pod", w.key.PodUID,
			"container", w.key.Container, "message", msg)
		if f := w.m.cfg.OnChange; f != nil {
			f(w.key, w.kind, r, msg)
		}
	}
	// A startup probe has done its job once it passes.
	return !(w.kind == Startup && w.last == Success)
}

// set records r as key's result for the worker's kind, unless the key was
// removed meanwhile.
func (w *worker) set(ctx context.Context, r Result) bool {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	st, ok := w.m.containers[w.key]
	if !ok || ctx.Err() != nil {
		return false
	}
	st.results[w.kind] = r
	return true
}
