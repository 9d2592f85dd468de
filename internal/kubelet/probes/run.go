// Package probes runs Kubernetes container probes (exec, httpGet, tcpSocket,
// grpc) and keeps per-container startup, liveness and readiness state with
// the Kubernetes thresholds and timings.
package probes

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Result is the outcome of a probe.
type Result int

const (
	Unknown Result = iota
	Success
	Failure
)

func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	}
	return "Unknown"
}

// Target says how to reach a container: exec inside it, or dial from inside
// its pod's network.
type Target struct {
	// Exec runs cmd in the container and returns its combined output and
	// exit code; err is for failing to run it at all.
	Exec func(ctx context.Context, cmd []string) (output []byte, exitCode int, err error)
	// Dial dials inside the pod's network namespace; nil uses the host's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Host is the pod IP, or "127.0.0.1" while pods have no routable IP.
	Host string
}

// userAgent is what the kubelet sends; some apps special-case it.
const userAgent = "kube-probe/1.37"

// maxOutput bounds how much probe output ends up in a message.
const maxOutput = 1024

// Run performs one attempt of p against container c, bounded by
// p.TimeoutSeconds (default 1), and returns the result with a message
// saying why it failed. It returns Unknown only if ctx ends first.
func Run(ctx context.Context, p *corev1.Probe, c *corev1.Container, t Target) (Result, string) {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r Result
	var msg string
	switch {
	case p.Exec != nil:
		r, msg = runExec(pctx, p.Exec, t)
	case p.HTTPGet != nil:
		r, msg = runHTTP(pctx, p.HTTPGet, c, t)
	case p.TCPSocket != nil:
		r, msg = runTCP(pctx, p.TCPSocket, c, t)
	case p.GRPC != nil:
		r, msg = runGRPC(pctx, p.GRPC, t)
	default:
		return Failure, "probe has no handler (exec, httpGet, tcpSocket or grpc)"
	}
	if r != Success && ctx.Err() != nil {
		return Unknown, "probe cancelled"
	}
	if r != Success && pctx.Err() != nil {
		return Failure, fmt.Sprintf("probe timed out after %v: %s", timeout, msg)
	}
	return r, msg
}

func truncate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxOutput {
		s = s[:maxOutput] + "..."
	}
	return s
}

func runExec(ctx context.Context, e *corev1.ExecAction, t Target) (Result, string) {
	if t.Exec == nil {
		return Failure, "exec probe: no way to exec into this container"
	}
	out, code, err := t.Exec(ctx, e.Command)
	if err != nil {
		return Failure, fmt.Sprintf("exec %q: %v", e.Command, err)
	}
	if code != 0 {
		return Failure, fmt.Sprintf("command %q exited with %d: %s", e.Command, code, truncate(out))
	}
	return Success, truncate(out)
}

// resolvePort turns a probe port (number or container port name) into a
// number.
func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	if c != nil {
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("port %q not found in the container's ports", p.StrVal)
}

func dialer(t Target) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if t.Dial != nil {
		return t.Dial
	}
	var d net.Dialer
	return d.DialContext
}

func pick(host string, t Target) string {
	if host != "" {
		return host
	}
	if t.Host != "" {
		return t.Host
	}
	return "127.0.0.1"
}

func runHTTP(ctx context.Context, h *corev1.HTTPGetAction, c *corev1.Container, t Target) (Result, string) {
	port, err := resolvePort(h.Port, c)
	if err != nil {
		return Failure, "httpGet probe: " + err.Error()
	}
	scheme := strings.ToLower(string(h.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(pick(h.Host, t), strconv.Itoa(port))}
	// The path may carry a query; parse it rather than escape it.
	ref, err := url.Parse(path)
	if err != nil {
		return Failure, fmt.Sprintf("httpGet probe: bad path %q: %v", h.Path, err)
	}
	u = u.ResolveReference(ref)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Failure, fmt.Sprintf("httpGet probe: %v", err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.HTTPHeaders {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Set(hd.Name, hd.Value)
	}
	tr := &http.Transport{
		DialContext:       dialer(t),
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // probes check health, not identity, as in Kubernetes
		DisableKeepAlives: true,
		Proxy:             nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// Redirects are followed only within the same host; a redirect
		// elsewhere counts as the (successful) 3xx answer itself.
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if r.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return Failure, fmt.Sprintf("HTTP probe failed: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return Success, ""
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, truncate(body))
}

func runTCP(ctx context.Context, s *corev1.TCPSocketAction, c *corev1.Container, t Target) (Result, string) {
	port, err := resolvePort(s.Port, c)
	if err != nil {
		return Failure, "tcpSocket probe: " + err.Error()
	}
	addr := net.JoinHostPort(pick(s.Host, t), strconv.Itoa(port))
	conn, err := dialer(t)(ctx, "tcp", addr)
	if err != nil {
		return Failure, fmt.Sprintf("dial tcp %s: %v", addr, err)
	}
	_ = conn.Close()
	return Success, ""
}

func runGRPC(ctx context.Context, g *corev1.GRPCAction, t Target) (Result, string) {
	if g.Port <= 0 || g.Port > 65535 {
		return Failure, fmt.Sprintf("grpc probe: invalid port %d", g.Port)
	}
	addr := net.JoinHostPort(pick("", t), strconv.Itoa(int(g.Port)))
	dial := dialer(t)
	// passthrough: the address is dialled as is, with no name resolution.
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(userAgent),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return dial(ctx, "tcp", a) }),
	)
	if err != nil {
		return Failure, fmt.Sprintf("grpc probe: %v", err)
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return Failure, fmt.Sprintf("grpc health check %s: %v", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return Success, ""
}
