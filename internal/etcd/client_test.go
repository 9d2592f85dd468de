package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"skiff/internal/pki"
)

// testTLS makes a CA in dir and signs what a server gives its etcd: the
// client port's certificate, a peer certificate and a client certificate.
func testTLS(t *testing.T, dir string) (server, peer, client TLSFiles) {
	t.Helper()
	ca, err := pki.EnsureNamedCA(dir, "test-etcd-ca")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}
	c, k, err := ca.EnsureServingCert(dir, "server", []string{"localhost"}, lo)
	if err != nil {
		t.Fatal(err)
	}
	server = TLSFiles{CertFile: c, KeyFile: k, CAFile: caFile}
	c, k, err = ca.EnsurePeerCert(dir, "peer", []string{"localhost"}, lo)
	if err != nil {
		t.Fatal(err)
	}
	peer = TLSFiles{CertFile: c, KeyFile: k, CAFile: caFile}
	if _, _, err := ca.EnsureClientCert(dir, "client", "test-client", nil); err != nil {
		t.Fatal(err)
	}
	client = TLSFiles{CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"), CAFile: caFile}
	return server, peer, client
}

// TestClientPortRequiresCertificate: with ClientTLS the client port is
// HTTPS and serves only clients with a certificate from the etcd CA; the
// others are refused at once in the TLS handshake, and the in-process
// client is unaffected.
func TestClientPortRequiresCertificate(t *testing.T) {
	serverTLS, peerTLS, clientTLS := testTLS(t, t.TempDir())
	_, _, otherTLS := testTLS(t, t.TempDir()) // another CA
	cfg := testConfig(t, t.TempDir())
	cfg.ClientTLS, cfg.PeerTLS = &serverTLS, &peerTLS
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := mustStart(t, cfg)

	want := "https://127.0.0.1:" + itoa(cfg.ClientPort)
	if eps := e.Endpoints(); len(eps) != 1 || eps[0] != want {
		t.Fatalf("Endpoints = %v, want [%s]", eps, want)
	}
	if got := e.PeerURL(); got != "https://127.0.0.1:"+itoa(cfg.PeerPort) {
		t.Errorf("PeerURL = %s, want https", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.Client().Put(ctx, "k", "in-process"); err != nil {
		t.Fatalf("in-process client: %v", err)
	}

	cli, err := NewClient(ctx, ClientConfig{Endpoints: e.Endpoints(), TLS: clientTLS})
	if err != nil {
		t.Fatalf("client with the etcd CA's certificate: %v", err)
	}
	resp, err := cli.Get(ctx, "k")
	cli.Close()
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "in-process" {
		t.Fatalf("get over TLS: %v %v", resp, err)
	}

	// A certificate of another CA: refused, and NewClient says so within
	// its dial timeout instead of hanging.
	start := time.Now()
	otherTLS.CAFile = clientTLS.CAFile // trusts the server, presents a stranger's certificate
	if cli, err := NewClient(ctx, ClientConfig{Endpoints: e.Endpoints(), TLS: otherTLS, DialTimeout: 3 * time.Second}); err == nil {
		cli.Close()
		t.Fatal("client with another CA's certificate was let in")
	} else if took := time.Since(start); took > 2*time.Second {
		t.Errorf("refusal took %v: %v", took, err)
	} else if !strings.Contains(err.Error(), "tls: unknown certificate authority") {
		t.Errorf("another CA's certificate: %v; want etcd's TLS alert", err)
	}

	// Raw HTTPS shows the TLS alert: without a certificate, and with one
	// of another CA, on both ports.
	other, err := tls.LoadX509KeyPair(otherTLS.CertFile, otherTLS.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		port  int
		certs []tls.Certificate
	}{
		{"client port, no certificate", cfg.ClientPort, nil},
		{"client port, another CA", cfg.ClientPort, []tls.Certificate{other}},
		{"peer port, no certificate", cfg.PeerPort, nil},
		{"peer port, another CA", cfg.PeerPort, []tls.Certificate{other}},
	} {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: tc.certs}, //nolint:gosec // the test checks the server's side only
		}}
		resp, err := hc.Get("https://127.0.0.1:" + itoa(tc.port) + "/version")
		hc.CloseIdleConnections()
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: answered %s, want a TLS refusal", tc.name, resp.Status)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: %v, want a refusal at once", tc.name, err)
		} else if !strings.Contains(err.Error(), "tls:") {
			t.Errorf("%s: %v, want a TLS alert", tc.name, err)
		}
	}

	// The refusals are logged (etcd is otherwise quiet: no Debug), with
	// the address that knocked.
	for _, port := range []string{"client", "peer"} {
		if out := logs.String(); !strings.Contains(out, "rejected connection on "+port+" endpoint") {
			t.Errorf("no refusal on the %s port in the log:\n%s", port, out)
		}
	}

	// Plain HTTP never gets etcd's answer.
	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get("http://127.0.0.1:" + itoa(cfg.ClientPort) + "/version"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "etcdserver") {
			t.Errorf("plain HTTP: %s %q, want no etcd answer", resp.Status, b)
		}
	}
}

func TestClientTLSConfigNeedsAllFiles(t *testing.T) {
	if _, err := ClientTLSConfig(TLSFiles{CertFile: "c", KeyFile: "k"}); err == nil {
		t.Error("no CA: accepted")
	}
	if _, err := NewClient(context.Background(), ClientConfig{TLS: TLSFiles{CertFile: "c", KeyFile: "k", CAFile: "ca"}}); err == nil {
		t.Error("no endpoints: accepted")
	}
}

// lockedBuffer is a buffer that etcd's goroutines may log into while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
