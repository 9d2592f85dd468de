package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
)

// testPKI is a CA with a serving certificate and client certificates.
type testPKI struct {
	caPEM    []byte
	pool     *x509.CertPool
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	serving  tls.Certificate
	certFile string
	keyFile  string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	certPEM, keyPEM := p.issue(t, "kubelet", true)
	p.serving, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p.certFile, p.keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(p.certFile, certPEM, 0o600)
	os.WriteFile(p.keyFile, keyPEM, 0o600)
	return p
}

var serial atomic.Int64

func (p *testPKI) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// restConfig is a client-go config for a client with the given CN ("" for
// no client certificate).
func (p *testPKI) restConfig(t *testing.T, host, cn string) *rest.Config {
	cfg := &rest.Config{Host: host, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}}
	if cn != "" {
		cfg.CertData, cfg.KeyData = p.issue(t, cn, false)
	}
	return cfg
}

// fakeProvider stands in for the kubelet.
type fakeProvider struct {
	logPath  string
	prevPath string
	exited   atomic.Bool
	echoAddr string

	mu      sync.Mutex
	resizes []TermSize
}

func (f *fakeProvider) LogPath(ns, pod, container string, previous bool) (string, func() bool, error) {
	if ns != "default" || pod != "web" || container != "app" {
		return "", nil, apierrors.NewNotFound(schemaPods, ns+"/"+pod)
	}
	if previous {
		if f.prevPath == "" {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
		}
		return f.prevPath, nil, nil
	}
	return f.logPath, f.exited.Load, nil
}

type exitError int

func (e exitError) Error() string   { return fmt.Sprintf("exit status %d", int(e)) }
func (e exitError) ExitStatus() int { return int(e) }

func (f *fakeProvider) Exec(ctx context.Context, ns, pod, container string, cmd []string, st Streams) (int, error) {
	if pod != "web" {
		return 0, fmt.Errorf("pod %s/%s not found", ns, pod)
	}
	switch cmd[0] {
	case "echo":
		fmt.Fprintln(st.Stdout, strings.Join(cmd[1:], " "))
		return 0, nil
	case "fail":
		fmt.Fprintln(st.Stdout, "some output")
		fmt.Fprintln(st.Stderr, "bad things")
		return 3, nil
	case "cat":
		_, err := io.Copy(st.Stdout, st.Stdin)
		return 0, err
	case "tty":
		if !st.Tty || st.Stderr != nil {
			return 1, errors.New("want a tty without stderr")
		}
		select {
		case size, ok := <-st.Resize:
			if !ok {
				return 1, errors.New("resize closed")
			}
			fmt.Fprintf(st.Stdout, "size %dx%d\r\n", size.Width, size.Height)
		case <-ctx.Done():
			return 1, ctx.Err()
		}
		return 0, nil
	case "sleep":
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return 127, nil
}

func (f *fakeProvider) Attach(ctx context.Context, ns, pod, container string, st Streams) error {
	if container == "noattach" {
		return errors.New("attach not supported")
	}
	fmt.Fprintln(st.Stdout, "attached")
	return exitError(2)
}

func (f *fakeProvider) PortForward(ctx context.Context, ns, pod string, port int32) (net.Conn, error) {
	if port != 8080 {
		return nil, fmt.Errorf("connection refused on port %d", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.echoAddr)
}

type testEnv struct {
	pki  *testPKI
	prov *fakeProvider
	srv  *Server
	ts   *httptest.Server
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	pki := newTestPKI(t)
	prov := &fakeProvider{echoAddr: startEcho(t)}
	srv, err := New(Config{
		CertFile: pki.certFile, KeyFile: pki.keyFile,
		ClientCA: pki.pool,
		Provider: prov,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &testEnv{pki: pki, prov: prov, srv: srv, ts: ts}
}

// client is an HTTPS client presenting a certificate with cn.
func (e *testEnv) client(t *testing.T, cn string) *http.Client {
	cfg := e.pki.restConfig(t, e.ts.URL, cn)
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func startEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestAuthentication(t *testing.T) {
	e := newTestEnv(t)
	url := e.ts.URL + "/containerLogs/default/web/app"
	for _, tt := range []struct {
		cn   string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"system:node:other", http.StatusForbidden},
		{DefaultClientCN, http.StatusNotFound}, // authenticated; the log file does not exist
	} {
		resp, err := e.client(t, tt.cn).Get(url)
		if err != nil {
			t.Fatalf("cn %q: %v", tt.cn, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("cn %q: status %d, want %d", tt.cn, resp.StatusCode, tt.want)
		}
	}
	// A certificate from another CA is not verified: the handshake fails
	// or the request is refused.
	other := newTestPKI(t)
	cfg := &rest.Config{Host: e.ts.URL, TLSClientConfig: rest.TLSClientConfig{CAData: e.pki.caPEM}}
	cfg.CertData, cfg.KeyData = other.issue(t, DefaultClientCN, false)
	tr, _ := rest.TransportFor(cfg)
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err == nil {
		resp.Body.Close()
		t.Errorf("certificate from a foreign CA: got status %d, want refusal", resp.StatusCode)
	}

	resp, err = e.client(t, "").Get(e.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
}

func TestRunServesAndStops(t *testing.T) {
	pki := newTestPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv, err := New(Config{Addr: addr, CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCA: pki.pool,
		Provider: &fakeProvider{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	cfg := pki.restConfig(t, "https://"+addr, DefaultClientCN)
	tr, _ := rest.TransportFor(cfg)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became reachable: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{ClientCA: x509.NewCertPool()}); err == nil {
		t.Error("New without provider succeeded")
	}
	if _, err := New(Config{Provider: &fakeProvider{}}); err == nil {
		t.Error("New without client CA succeeded")
	}
	if _, err := New(Config{Provider: &fakeProvider{}, ClientCA: x509.NewCertPool(), CertFile: "/nonexistent", KeyFile: "/nonexistent"}); err == nil {
		t.Error("New with missing certificate files succeeded")
	}
}

// readAllString is io.ReadAll for tests.
func readAllString(t *testing.T, r io.Reader) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
