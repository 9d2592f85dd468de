package loadbalancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is a fake API server: it greets each connection with its name
// and then echoes.
type backend struct {
	t     *testing.T
	name  string
	addr  string
	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	b := &backend{t: t, name: name, addr: l.Addr().String()}
	b.serve(l)
	t.Cleanup(b.kill)
	return b
}

func (b *backend) serve(l net.Listener) {
	b.mu.Lock()
	b.l = l
	b.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			go func() {
				fmt.Fprintf(c, "%s\n", b.name)
				io.Copy(c, c)
			}()
		}
	}()
}

// partition stops accepting but leaves open connections hanging, as when
// a server's machine drops off the network.
func (b *backend) partition() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.l.Close()
}

// kill stops the server and closes its connections.
func (b *backend) kill() {
	b.partition()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

func (b *backend) revive() {
	b.t.Helper()
	var l net.Listener
	eventually(b.t, 10*time.Second, "listen again on "+b.addr, func() error {
		var err error
		l, err = net.Listen("tcp", b.addr)
		return err
	})
	b.serve(l)
}

func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs lb until the test ends and checks that it stops cleanly.
func start(t *testing.T, cfg Config) *LoadBalancer {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = time.Second
	}
	lb, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of cancel")
		}
	})
	return lb
}

// connect opens a connection through lb and returns the name of the
// backend that answered.
func connect(t *testing.T, lb *LoadBalancer) (string, net.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", lb.Addr(), 10*time.Second)
	if err != nil {
		t.Fatalf("dial load balancer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return strings.TrimSpace(line), c, err
}

func expectBackend(t *testing.T, lb *LoadBalancer, want string) net.Conn {
	t.Helper()
	got, c, err := connect(t, lb)
	if err != nil || got != want {
		t.Fatalf("connection went to %q (err %v), want %q", got, err, want)
	}
	return c
}

func (lb *LoadBalancer) isDown(addr string) bool {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.down[addr]
}

func TestPrefersLastWorkingServerAndFailsOver(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	// No health checks during the test: failover comes from dialing alone.
	lb := start(t, Config{Servers: []string{a.addr, b.addr, c.addr}, HealthInterval: time.Hour})
	if !strings.HasPrefix(lb.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", lb.Addr())
	}
	for range 3 {
		expectBackend(t, lb, "a")
	}
	a.kill()
	expectBackend(t, lb, "b")
	// b is now preferred even once a is back.
	a.revive()
	for range 3 {
		expectBackend(t, lb, "b")
	}
	b.kill()
	// a is marked down (its dial failed earlier) but the health check has
	// not run; c is healthy so it comes first.
	expectBackend(t, lb, "c")
	c.kill()
	// Only a (marked down) answers: any server beats none.
	expectBackend(t, lb, "a")
}

func TestNoServerClosesClient(t *testing.T) {
	a := newBackend(t, "a")
	lb := start(t, Config{Servers: []string{a.addr}, HealthInterval: time.Hour})
	a.kill()
	if got, _, err := connect(t, lb); err == nil {
		t.Fatalf("connection with every server down answered %q, want it closed", got)
	}
}

func TestClosesConnectionsToDeadServer(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	lb := start(t, Config{Servers: []string{a.addr, b.addr}, HealthInterval: 200 * time.Millisecond})
	conn := expectBackend(t, lb, "a")
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo through the balancer = %q, %v", line, err)
	}

	// a stops accepting but keeps the connection open and silent: only
	// the balancer can tell the client to reconnect.
	a.partition()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a connection to a dead server: %v, want EOF (closed by the balancer)", err)
	}
	expectBackend(t, lb, "b")
}

func TestHealthCheckBringsServerBack(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	lb := start(t, Config{Servers: []string{a.addr, b.addr}, HealthInterval: 200 * time.Millisecond})
	a.kill()
	eventually(t, 20*time.Second, "a marked down", func() error {
		if !lb.isDown(a.addr) {
			return errors.New("a is still up")
		}
		return nil
	})
	expectBackend(t, lb, "b")
	a.revive()
	eventually(t, 20*time.Second, "a marked up again", func() error {
		if lb.isDown(a.addr) {
			return errors.New("a is still down")
		}
		return nil
	})
	expectBackend(t, lb, "b") // the working server stays preferred
	b.kill()
	expectBackend(t, lb, "a")
}

func TestReadyzHealthCheckOverTLS(t *testing.T) {
	var ready [2]atomic.Bool
	var srvs [2]*httptest.Server
	for i := range srvs {
		ready[i].Store(true)
		srvs[i] = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/readyz" && !ready[i].Load() {
				http.Error(w, "[-]etcd failed", http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "server %d", i)
		}))
		t.Cleanup(srvs[i].Close)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srvs[0].Certificate())
	addr := func(i int) string { return strings.TrimPrefix(srvs[i].URL, "https://") }
	lb := start(t, Config{Servers: []string{addr(0), addr(1)}, CAPool: pool, HealthInterval: 200 * time.Millisecond})

	// A client verifying the servers against the CA, through the balancer.
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DisableKeepAlives: true,
	}}
	get := func() string {
		t.Helper()
		resp, err := client.Get("https://" + lb.Addr() + "/")
		if err != nil {
			t.Fatalf("GET through the balancer: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if got := get(); got != "server 0" {
		t.Fatalf("GET through the balancer = %q, want server 0", got)
	}
	ready[0].Store(false)
	eventually(t, 20*time.Second, "unready server marked down", func() error {
		if !lb.isDown(addr(0)) {
			return errors.New("still up")
		}
		return nil
	})
	if got := get(); got != "server 1" {
		t.Fatalf("GET with server 0 unready = %q, want server 1", got)
	}
	ready[0].Store(true)
	eventually(t, 20*time.Second, "ready server marked up", func() error {
		if lb.isDown(addr(0)) {
			return errors.New("still down")
		}
		return nil
	})
	if lb.isDown(addr(1)) {
		t.Fatalf("ready server 1 marked down")
	}
}

func TestServerListPersisted(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	state := filepath.Join(t.TempDir(), "agent", "servers.json")
	lb, err := New(Config{Servers: []string{a.addr}, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	lb.listener.Close()
	lb.SetServers([]string{b.addr, a.addr, b.addr})
	if got, want := lb.Servers(), []string{b.addr, a.addr}; !slices.Equal(got, want) {
		t.Fatalf("Servers() = %v, want %v", got, want)
	}
	lb.SetServers(nil) // ignored: never end up with no servers
	lb.SetServers([]string{"no-port"})
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var st struct{ Servers []string }
	if err := json.Unmarshal(data, &st); err != nil || !slices.Equal(st.Servers, []string{b.addr, a.addr}) {
		t.Fatalf("state file = %s (err %v), want servers %v", data, err, []string{b.addr, a.addr})
	}

	// A restarted agent whose configured server is down still reaches b.
	a.kill()
	lb2 := start(t, Config{Servers: []string{a.addr}, StateFile: state, HealthInterval: time.Hour})
	if got, want := lb2.Servers(), []string{b.addr, a.addr}; !slices.Equal(got, want) {
		t.Fatalf("reloaded Servers() = %v, want %v", got, want)
	}
	expectBackend(t, lb2, "b")

	// A damaged file is ignored, not fatal.
	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	lb3, err := New(Config{Servers: []string{a.addr}, StateFile: state})
	if err != nil {
		t.Fatalf("New with a damaged state file: %v", err)
	}
	lb3.listener.Close()
	if got := lb3.Servers(); !slices.Equal(got, []string{a.addr}) {
		t.Fatalf("Servers() with a damaged state file = %v, want the configured server", got)
	}
}

func TestSetServersClosesRemovedServers(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	lb := start(t, Config{Servers: []string{a.addr}, HealthInterval: time.Hour})
	lb.SetServers([]string{b.addr, c.addr})
	if got, want := lb.Servers(), []string{b.addr, c.addr, a.addr}; !slices.Equal(got, want) {
		t.Fatalf("Servers() = %v, want %v", got, want)
	}
	conn := expectBackend(t, lb, "b")
	lb.SetServers([]string{c.addr})
	// a is configured, so it stays as the fallback; b is gone.
	if got, want := lb.Servers(), []string{c.addr, a.addr}; !slices.Equal(got, want) {
		t.Fatalf("Servers() = %v, want %v", got, want)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on a connection to a removed server: %v, want EOF", err)
	}
	expectBackend(t, lb, "c")
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Errorf("New with no servers succeeded")
	}
	if _, err := New(Config{Servers: []string{"https://x:6443"}}); err == nil {
		t.Errorf("New with a URL instead of host:port succeeded")
	}
}
