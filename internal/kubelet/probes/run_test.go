package probes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

// recordingDial dials on the host and remembers the addresses asked for.
type recordingDial struct {
	mu    sync.Mutex
	addrs []string
}

func (r *recordingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.addrs = append(r.addrs, addr)
	r.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func TestRunExec(t *testing.T) {
	c := &corev1.Container{Name: "app"}
	exec := func(out string, code int, err error) Target {
		return Target{Exec: func(ctx context.Context, cmd []string) ([]byte, int, error) { return []byte(out), code, err }}
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}}

	if r, msg := Run(context.Background(), probe, c, exec("ok", 0, nil)); r != Success {
		t.Errorf("exit 0: %v %q", r, msg)
	}
	r, msg := Run(context.Background(), probe, c, exec("cat: /tmp/healthy: No such file", 1, nil))
	if r != Failure || !strings.Contains(msg, "No such file") || !strings.Contains(msg, "exited with 1") {
		t.Errorf("exit 1: %v %q", r, msg)
	}
	if r, msg := Run(context.Background(), probe, c, exec("", 0, errors.New("container not running"))); r != Failure || !strings.Contains(msg, "container not running") {
		t.Errorf("exec error: %v %q", r, msg)
	}
	hang := Target{Exec: func(ctx context.Context, cmd []string) ([]byte, int, error) {
		<-ctx.Done()
		return nil, -1, ctx.Err()
	}}
	if r, msg := Run(context.Background(), probe, c, hang); r != Failure || !strings.Contains(msg, "timed out") {
		t.Errorf("hung command: %v %q", r, msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r, _ := Run(ctx, probe, c, hang); r != Unknown {
		t.Errorf("cancelled: %v, want Unknown", r)
	}
}

func TestRunHTTP(t *testing.T) {
	var mu sync.Mutex
	var gotHeader, gotHost, gotUA, gotQuery string
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotHeader, gotHost, gotUA, gotQuery = r.Header.Get("X-Probe"), r.Host, r.UserAgent(), r.URL.RawQuery
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusInternalServerError)
	})
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/fail", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, port := hostPort(t, srv.Listener.Addr().String())

	rec := &recordingDial{}
	target := Target{Dial: rec.dial, Host: host}
	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	get := func(path string, p intstr.IntOrString, headers ...corev1.HTTPHeader) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: p, HTTPHeaders: headers}}}
	}

	r, msg := Run(context.Background(), get("/healthz?full=1", intstr.FromString("http"),
		corev1.HTTPHeader{Name: "X-Probe", Value: "yes"}, corev1.HTTPHeader{Name: "Host", Value: "app.example"}), c, target)
	if r != Success {
		t.Fatalf("named port: %v %q", r, msg)
	}
	mu.Lock()
	if gotHeader != "yes" || gotHost != "app.example" || !strings.HasPrefix(gotUA, "kube-probe/") || gotQuery != "full=1" {
		t.Errorf("request: X-Probe=%q Host=%q UA=%q query=%q", gotHeader, gotHost, gotUA, gotQuery)
	}
	mu.Unlock()

	if r, msg := Run(context.Background(), get("/fail", intstr.FromInt32(int32(port))), c, target); r != Failure || !strings.Contains(msg, "500") {
		t.Errorf("500: %v %q", r, msg)
	}
	// A same-host redirect is followed (to a failing page).
	if r, msg := Run(context.Background(), get("/same", intstr.FromInt32(int32(port))), c, target); r != Failure {
		t.Errorf("same-host redirect: %v %q", r, msg)
	}
	// A redirect to another host is not followed; the 302 itself counts.
	if r, msg := Run(context.Background(), get("/away", intstr.FromInt32(int32(port))), c, target); r != Success {
		t.Errorf("other-host redirect: %v %q", r, msg)
	}
	rec.mu.Lock()
	for _, a := range rec.addrs {
		if strings.Contains(a, "elsewhere") {
			t.Errorf("dialled %s", a)
		}
	}
	rec.mu.Unlock()
	if r, msg := Run(context.Background(), get("/healthz", intstr.FromString("metrics")), c, target); r != Failure || !strings.Contains(msg, `"metrics"`) {
		t.Errorf("unknown named port: %v %q", r, msg)
	}

	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	_, tport := hostPort(t, tlsSrv.Listener.Addr().String())
	p := get("/healthz", intstr.FromInt32(int32(tport)))
	p.HTTPGet.Scheme = corev1.URISchemeHTTPS
	if r, msg := Run(context.Background(), p, c, target); r != Success {
		t.Errorf("https with self-signed cert: %v %q", r, msg)
	}
}

func TestRunTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := hostPort(t, l.Addr().String())
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	c := &corev1.Container{Name: "db", Ports: []corev1.ContainerPort{{Name: "pg", ContainerPort: int32(port)}}}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("pg")}}}
	target := Target{Dial: (&net.Dialer{}).DialContext, Host: "127.0.0.1"}
	if r, msg := Run(context.Background(), probe, c, target); r != Success {
		t.Errorf("listening: %v %q", r, msg)
	}
	l.Close()
	if r, msg := Run(context.Background(), probe, c, target); r != Failure {
		t.Errorf("closed: %v %q", r, msg)
	}
}

func TestRunGRPC(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	_, port := hostPort(t, l.Addr().String())

	probe := &corev1.Probe{TimeoutSeconds: 5, ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port)}}}
	target := Target{Dial: (&net.Dialer{}).DialContext, Host: "127.0.0.1"}
	c := &corev1.Container{Name: "app"}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if r, msg := Run(context.Background(), probe, c, target); r != Success {
		t.Errorf("serving: %v %q", r, msg)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r, msg := Run(context.Background(), probe, c, target); r != Failure || !strings.Contains(msg, "NOT_SERVING") {
		t.Errorf("not serving: %v %q", r, msg)
	}
}
