package etcd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func testConfig(t *testing.T, dir string) Config {
	return Config{
		DataDir:             dir,
		ListenAddress:       "127.0.0.1",
		ClientPort:          freePort(t),
		PeerPort:            freePort(t),
		QuotaBytes:          64 << 20,
		CompactionRetention: "5m",
		Logger:              slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func mustStart(t *testing.T, cfg Config) *Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// portFree reports whether the port can be listened on again, i.e. a failed
// or closed etcd let go of it.
func portFree(t *testing.T, port int) bool {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestStartPutGetRestart(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, t.TempDir())
	e := mustStart(t, cfg)

	want := "http://127.0.0.1:" + itoa(cfg.ClientPort)
	if eps := e.Endpoints(); len(eps) != 1 || eps[0] != want {
		t.Errorf("Endpoints() = %v, want [%s]", eps, want)
	}
	ctx := context.Background()
	if _, err := e.Client().Put(ctx, "/registry/test", "hello"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := e.Client().Get(ctx, "/registry/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello" {
		t.Fatalf("Get = %v, %v", resp, err)
	}

	// The API server accepts 3 MiB bodies; etcd must take them.
	big := strings.Repeat("x", 3<<20)
	if _, err := e.Client().Put(ctx, "/registry/big", big); err != nil {
		t.Errorf("Put of 3 MiB: %v", err)
	}

	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-e.Err():
		t.Errorf("Err() reported %v after a clean Close", err)
	default:
	}
	if !portFree(t, cfg.ClientPort) || !portFree(t, cfg.PeerPort) {
		t.Fatal("ports still in use after Close")
	}

	e2 := mustStart(t, cfg)
	resp, err = e2.Client().Get(ctx, "/registry/test")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "hello" {
		t.Fatalf("after restart: Get = %v, %v", resp, err)
	}
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
	checkGoroutines(t, before)
}

// checkGoroutines waits for the goroutine count to come back to about
// where it was; etcd's listeners and raft loop must all be gone.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCloseConcurrent(t *testing.T) {
	e := mustStart(t, testConfig(t, t.TempDir()))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestBusyPort(t *testing.T) {
	for _, which := range []string{"client", "peer"} {
		t.Run(which, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			port := cfg.ClientPort
			if which == "peer" {
				port = cfg.PeerPort
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			e, err := Start(ctx, cfg)
			if err == nil {
				e.Close()
				t.Fatal("Start on a busy port succeeded")
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("Start took %v to fail", d)
			}
			msg := err.Error()
			if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(msg, "127.0.0.1:"+itoa(port)) ||
				!strings.Contains(msg, "--etcd-"+which+"-port") {
				t.Errorf("error %q: want address in use, the address and --etcd-%s-port", msg, which)
			}
			l.Close()
			// Whatever was started must be gone: the other port is free and a
			// new Start on the same dir works.
			if !portFree(t, cfg.ClientPort) || !portFree(t, cfg.PeerPort) {
				t.Error("a port is still held after the failed Start")
			}
			mustStart(t, cfg).Close()
		})
	}
}

func TestSameDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	mustStart(t, testConfig(t, dir))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := Start(ctx, testConfig(t, dir))
	if err == nil {
		e.Close()
		t.Fatal("second etcd on the same data dir started")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q: want it to say the data dir is in use", err)
	}
}

func TestStartCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, testConfig(t, t.TempDir())); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled ctx: err = %v, want context.Canceled", err)
	}
}

func TestStartCancelledWhileWaiting(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := start(ctx, cfg, cancel)
	if err == nil {
		e.Close()
		t.Fatal("Start succeeded although ctx was cancelled while waiting")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !portFree(t, cfg.ClientPort) || !portFree(t, cfg.PeerPort) {
		t.Fatal("ports still held after a cancelled Start")
	}
	checkGoroutines(t, before)
	// The half-started member was torn down cleanly: it starts again.
	mustStart(t, cfg).Close()
}

func TestBadConfig(t *testing.T) {
	base := testConfig(t, t.TempDir())
	for name, mutate := range map[string]func(*Config){
		"no data dir": func(c *Config) { c.DataDir = "" },
		"bad address": func(c *Config) { c.ListenAddress = "localhost" },
		"port 0":      func(c *Config) { c.ClientPort = 0 },
		"same ports":  func(c *Config) { c.PeerPort = c.ClientPort },
		"bad retention": func(c *Config) {
			c.CompactionRetention = "soon"
		},
		"client TLS without a CA": func(c *Config) { c.ClientTLS = &TLSFiles{CertFile: "a.crt", KeyFile: "a.key"} },
		"peer TLS without a key":  func(c *Config) { c.PeerTLS = &TLSFiles{CertFile: "a.crt", CAFile: "ca.crt"} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base
			mutate(&cfg)
			if e, err := Start(context.Background(), cfg); err == nil {
				e.Close()
				t.Fatal("Start succeeded")
			} else {
				t.Log(err)
			}
		})
	}
}

func TestEtcdLogsAreQuiet(t *testing.T) {
	for _, debug := range []bool{false, true} {
		var buf bytes.Buffer
		cfg := testConfig(t, t.TempDir())
		cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		cfg.Debug = debug
		mustStart(t, cfg).Close()
		out := buf.String()
		if !strings.Contains(out, "msg=ready") || !strings.Contains(out, "msg=stopped") {
			t.Errorf("debug=%v: skiff's own lifecycle lines missing:\n%s", debug, out)
		}
		// "starting an etcd server" is one of etcd's info messages.
		if got := strings.Contains(out, "starting an etcd server"); got != debug {
			t.Errorf("debug=%v: etcd info messages shown = %v:\n%s", debug, got, out)
		}
	}
}

func TestErrReportsUnexpectedStop(t *testing.T) {
	e := mustStart(t, testConfig(t, t.TempDir()))
	// Stop the server behind the wrapper's back, as a fatal etcd error would.
	e.etcd.Server.Stop()
	select {
	case err := <-e.Err():
		if err == nil || !strings.HasPrefix(err.Error(), "etcd: ") {
			t.Errorf("Err() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Err() reported nothing after etcd stopped")
	}
	if err := e.Close(); err != nil {
		t.Errorf("Close after failure: %v", err)
	}
}
