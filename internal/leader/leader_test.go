package leader_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/etcd"
	"skiff/internal/leader"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startEtcd(t *testing.T) *etcd.Etcd {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), ListenAddress: "127.0.0.1",
		ClientPort: freePort(t), PeerPort: freePort(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// arena counts the candidates acting as leader at once.
type arena struct {
	mu      sync.Mutex
	leading int
	overlap bool // two acted at the same time
}

func (a *arena) enter() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.leading++
	a.overlap = a.overlap || a.leading > 1
}

func (a *arena) leave() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.leading--
}

func (a *arena) overlapped() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.overlap
}

// candidate records when its leadership starts and stops.
type candidate struct {
	arena   *arena
	mu      sync.Mutex
	leading bool
	started chan struct{}
	stopped chan struct{}
}

func newCandidate(ar *arena) *candidate {
	return &candidate{arena: ar, started: make(chan struct{}, 10), stopped: make(chan struct{}, 10)}
}

func (c *candidate) lead(ctx context.Context) {
	c.arena.enter()
	c.mu.Lock()
	c.leading = true
	c.mu.Unlock()
	c.started <- struct{}{}
	<-ctx.Done()
	c.mu.Lock()
	c.leading = false
	c.mu.Unlock()
	c.arena.leave()
	c.stopped <- struct{}{}
}

func (c *candidate) isLeading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func run(t *testing.T, ar *arena, client *clientv3.Client, name string, ttl time.Duration) (*candidate, context.CancelFunc) {
	el, err := leader.New(leader.Config{Client: client, Prefix: "/test/election", Identity: name, TTL: ttl,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c := newCandidate(ar)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = el.Run(ctx, c.lead); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, cancel
}

func waitFor(t *testing.T, ch chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		t.Fatalf("%s did not happen within %v", what, within)
	}
}

func TestOneLeaderAndFailoverWithinTTL(t *testing.T) {
	e := startEtcd(t)
	const ttl = 3 * time.Second
	ar := &arena{}
	a, stopA := run(t, ar, e.Client(), "a", ttl)
	waitFor(t, a.started, 10*time.Second, "a leading")
	b, _ := run(t, ar, e.Client(), "b", ttl)
	time.Sleep(500 * time.Millisecond)
	if b.isLeading() {
		t.Fatal("two leaders at once")
	}
	// A clean stop hands over at once (the lease is revoked).
	stopA()
	waitFor(t, a.stopped, 5*time.Second, "a stepping down")
	waitFor(t, b.started, ttl, "b taking over")
	if ar.overlapped() {
		t.Fatal("two leaders acted at once during the handover")
	}
}

func TestLeaderStepsDownWhenItsLeaseIsGone(t *testing.T) {
	e := startEtcd(t)
	const ttl = 3 * time.Second
	ar := &arena{}
	a, _ := run(t, ar, e.Client(), "a", ttl)
	waitFor(t, a.started, 10*time.Second, "a leading")
	b, _ := run(t, ar, e.Client(), "b", ttl)

	// Kill a's session from outside. Unlike an expiry, which a sees coming
	// and steps down before, a revoke is sudden: b may win a moment before
	// a notices, so this test checks stepping down and taking over, and the
	// handover test checks that two leaders never act at once.
	resp, err := e.Client().Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.Leases {
		if _, err := e.Client().Revoke(context.Background(), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, a.stopped, ttl, "a stepping down after losing its lease")
	waitFor(t, b.started, ttl, "b taking over")
	if a.isLeading() {
		t.Fatal("a still leads after losing its lease")
	}
}
