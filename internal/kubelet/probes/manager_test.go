package probes

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeContainer answers exec probes by command name ("startup", "live",
// "ready"): each fails until told to pass, and counts its calls.
type fakeContainer struct {
	mu    sync.Mutex
	pass  map[string]bool
	calls map[string]int
	first map[string]time.Time
}

func newFake() *fakeContainer {
	return &fakeContainer{pass: map[string]bool{}, calls: map[string]int{}, first: map[string]time.Time{}}
}

func (f *fakeContainer) set(name string, pass bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pass[name] = pass
}

func (f *fakeContainer) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

func (f *fakeContainer) target() Target {
	return Target{Exec: func(ctx context.Context, cmd []string) ([]byte, int, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.calls[cmd[0]] == 0 {
			f.first[cmd[0]] = time.Now()
		}
		f.calls[cmd[0]]++
		if f.pass[cmd[0]] {
			return []byte("ok"), 0, nil
		}
		return []byte(cmd[0] + " not ok"), 1, nil
	}}
}

func execProbe(name string, failures, successes int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{name}}},
		PeriodSeconds:    1,
		FailureThreshold: failures,
		SuccessThreshold: successes,
	}
}

type change struct {
	key    Key
	kind   Kind
	result Result
}

// recorder collects OnChange calls.
type recorder struct {
	mu      sync.Mutex
	changes []change
}

func (r *recorder) onChange(key Key, kind Kind, result Result, _ string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, change{key, kind, result})
}

func (r *recorder) of(kind Kind) []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Result
	for _, c := range r.changes {
		if c.kind == kind {
			out = append(out, c.result)
		}
	}
	return out
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within 30s", what)
}

func newManager(t *testing.T) (*Manager, *recorder) {
	rec := &recorder{}
	m := NewManager(Config{OnChange: rec.onChange})
	t.Cleanup(m.Stop)
	return m, rec
}

var key = Key{PodUID: "pod-1", Container: "app", ContainerID: "c1"}

func TestNoProbes(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	if m.Ready(key) || m.Started(key) {
		t.Error("unknown container reported ready or started")
	}
	m.Add(context.Background(), key, &corev1.Container{Name: "app"}, Target{})
	if !m.Ready(key) || !m.Started(key) {
		t.Error("container without probes is not ready and started at once")
	}
	m.Remove(key)
	if m.Ready(key) {
		t.Error("removed container still ready")
	}
}

func TestLivenessThreshold(t *testing.T) {
	t.Parallel()
	m, rec := newManager(t)
	f := newFake()
	m.Add(context.Background(), key, &corev1.Container{Name: "app", LivenessProbe: execProbe("live", 2, 1)}, f.target())

	eventually(t, "liveness failure reported", func() bool { return len(rec.of(Liveness)) == 1 })
	if got := rec.of(Liveness); got[0] != Failure {
		t.Fatalf("liveness changes %v", got)
	}
	if n := f.count("live"); n < 2 {
		t.Errorf("failure reported after %d attempts, threshold is 2", n)
	}
	// The worker keeps probing but reports the streak only once.
	n := f.count("live")
	eventually(t, "more liveness attempts", func() bool { return f.count("live") >= n+3 })
	if got := rec.of(Liveness); len(got) != 1 {
		t.Errorf("liveness changes %v, want one Failure per streak", got)
	}
	f.set("live", true)
	eventually(t, "liveness success reported", func() bool { return len(rec.of(Liveness)) == 2 })
	if got := rec.of(Liveness); got[1] != Success {
		t.Errorf("liveness changes %v", got)
	}
	if !m.Ready(key) {
		t.Error("no readiness probe: should be ready")
	}
}

func TestInitialDelay(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	f := newFake()
	f.set("live", true)
	p := execProbe("live", 3, 1)
	p.InitialDelaySeconds = 2
	added := time.Now()
	m.Add(context.Background(), key, &corev1.Container{Name: "app", LivenessProbe: p}, f.target())
	eventually(t, "first liveness attempt", func() bool { return f.count("live") > 0 })
	f.mu.Lock()
	first := f.first["live"]
	f.mu.Unlock()
	if d := first.Sub(added); d < 2*time.Second {
		t.Errorf("first attempt %v after Add, before the 2s initial delay", d)
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	t.Parallel()
	m, rec := newManager(t)
	f := newFake()
	f.set("live", true)
	f.set("ready", true)
	c := &corev1.Container{Name: "app",
		StartupProbe:   execProbe("startup", 100, 1),
		LivenessProbe:  execProbe("live", 1, 1),
		ReadinessProbe: execProbe("ready", 1, 1),
	}
	m.Add(context.Background(), key, c, f.target())
	eventually(t, "startup attempts", func() bool { return f.count("startup") >= 3 })
	if f.count("live") != 0 || f.count("ready") != 0 {
		t.Errorf("liveness (%d) or readiness (%d) ran before startup passed", f.count("live"), f.count("ready"))
	}
	if m.Started(key) || m.Ready(key) {
		t.Error("started or ready before the startup probe passed")
	}
	f.set("startup", true)
	eventually(t, "started", func() bool { return m.Started(key) })
	eventually(t, "ready", func() bool { return m.Ready(key) })
	eventually(t, "liveness runs", func() bool { return f.count("live") > 0 })
	if got := rec.of(Startup); len(got) != 1 || got[0] != Success {
		t.Errorf("startup changes %v", got)
	}
	// The startup probe stops once it has passed.
	n := f.count("startup")
	eventually(t, "more liveness attempts", func() bool { return f.count("live") >= 3 })
	if f.count("startup") != n {
		t.Errorf("startup probe kept running after success")
	}
	if got := rec.of(Liveness); len(got) != 0 {
		t.Errorf("liveness changes %v, want none (it starts as Success)", got)
	}
}

func TestStartupWithoutReadiness(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	f := newFake()
	m.Add(context.Background(), key, &corev1.Container{Name: "app", StartupProbe: execProbe("startup", 100, 1)}, f.target())
	if m.Ready(key) {
		t.Error("ready before startup passed")
	}
	f.set("startup", true)
	eventually(t, "ready once started", func() bool { return m.Ready(key) })
}

func TestReadinessFlips(t *testing.T) {
	t.Parallel()
	m, rec := newManager(t)
	f := newFake()
	m.Add(context.Background(), key, &corev1.Container{Name: "app", ReadinessProbe: execProbe("ready", 2, 2)}, f.target())
	if m.Ready(key) {
		t.Error("ready before the readiness probe passed")
	}
	eventually(t, "readiness attempts", func() bool { return f.count("ready") >= 3 })
	if m.Ready(key) || len(rec.of(Readiness)) != 0 {
		t.Errorf("failing readiness: ready=%v changes=%v (initial Failure is not a change)", m.Ready(key), rec.of(Readiness))
	}
	f.set("ready", true)
	eventually(t, "ready", func() bool { return m.Ready(key) })
	f.set("ready", false)
	eventually(t, "unready", func() bool { return !m.Ready(key) })
	if got := rec.of(Readiness); fmt.Sprint(got) != "[Success Failure]" {
		t.Errorf("readiness changes %v", got)
	}
}

func TestRemoveStopsWorkers(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	m := NewManager(Config{OnChange: rec.onChange})
	f := newFake()
	k2 := Key{PodUID: "pod-2", Container: "app", ContainerID: "c2"}
	c := &corev1.Container{Name: "app", LivenessProbe: execProbe("live", 1, 1)}
	m.Add(context.Background(), key, c, f.target())
	m.Add(context.Background(), key, c, f.target()) // no second set of workers
	m.Add(context.Background(), k2, c, f.target())
	eventually(t, "probes ran", func() bool { return len(rec.of(Liveness)) == 2 })
	m.RemovePod("pod-1")
	if m.Started(key) || !m.Started(k2) {
		t.Error("RemovePod removed the wrong pod")
	}
	m.Stop() // waits for every worker
	n := f.count("live")
	time.Sleep(1500 * time.Millisecond)
	if f.count("live") != n {
		t.Error("probes ran after Stop")
	}
}
