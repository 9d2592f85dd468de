package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/pki"
	"skiff/internal/registry"
	"skiff/internal/storage"
)

// haCluster is one etcd with a CA and a serving certificate for loopback,
// over which tests run several API servers.
type haCluster struct {
	db       *etcd.Etcd
	ca       *pki.CA
	certFile string
	keyFile  string
	// adminCert and adminKey authenticate the tests' clients as an admin.
	adminCert, adminKey []byte
}

func newHACluster(t *testing.T) *haCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var db *etcd.Etcd
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// A port found free may be taken before etcd binds it: retry.
		db, err = etcd.Start(ctx, etcd.Config{
			DataDir:       t.TempDir(),
			ListenAddress: "127.0.0.1",
			ClientPort:    fuzzFreePort(t),
			PeerPort:      fuzzFreePort(t),
			Logger:        slog.New(slog.DiscardHandler),
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "apiserver", []string{"localhost"},
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(dir, "admin", "system:admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	return &haCluster{db: db, ca: ca, certFile: certFile, keyFile: keyFile, adminCert: adminCert, adminKey: adminKey}
}

// haServer is a running API server of a haCluster.
type haServer struct {
	s      *Server
	url    string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// start runs an API server listening on ln with the cluster's etcd as its
// store and, unless mod changes it, as its Config.Etcd.
func (c *haCluster) start(t *testing.T, ln net.Listener, mod func(*Config)) *haServer {
	t.Helper()
	reg, err := testRegistry(c.db.Client())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := Config{
		Registry: reg,
		Store:    storage.New(c.db.Client(), reg.Scheme()),
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
		Listener: ln,
		CertFile: c.certFile,
		KeyFile:  c.keyFile,
		ClientCA: c.ca.CertPool(),
		CA:       c.ca,
		Etcd:     c.db.Client(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &haServer{s: s, url: "https://" + ln.Addr().String(), logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-h.done:
		cancel()
		t.Fatalf("API server failed to start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("API server not ready after 60s")
	}
	t.Cleanup(func() { h.stop(t) })
	return h
}

// stop stops the server cleanly and waits for it; a second call does nothing.
func (h *haServer) stop(t *testing.T) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("API server stopped with an error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("API server did not stop within 30s")
	}
}

func (h *haServer) restConfig(c *haCluster) *rest.Config {
	return &rest.Config{
		Host:            h.url,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ca.CertPEM, CertData: c.adminCert, KeyData: c.adminKey},
		QPS:             1000,
		Burst:           2000,
	}
}

func (h *haServer) client(t *testing.T, c *haCluster) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(h.restConfig(c))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// syncBuffer collects a server's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listenSamePort listens on one port on each of hosts (loopback addresses),
// as servers on different machines all listen on 6443.
func listenSamePort(t *testing.T, hosts ...string) []net.Listener {
	t.Helper()
	for attempt := 0; attempt < 10; attempt++ {
		first, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		lns := []net.Listener{first}
		port := strconv.Itoa(first.Addr().(*net.TCPAddr).Port)
		for _, h := range hosts[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(hosts) {
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("found no port free on all of %v", hosts)
	return nil
}

// eventually calls f every 100 ms until it returns nil, and fails the test
// with f's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// apiServersListed is what `kubectl get endpoints kubernetes` and the
// EndpointSlice the agents read show: it returns an error unless both list
// exactly want, on port.
func apiServersListed(ctx context.Context, c kubernetes.Interface, port int, want ...string) error {
	ep, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(ep.Subsets) != 1 {
		return fmt.Errorf("endpoints kubernetes: %d subsets, want 1: %+v", len(ep.Subsets), ep.Subsets)
	}
	var ips []string
	for _, a := range ep.Subsets[0].Addresses {
		ips = append(ips, a.IP)
	}
	if !slices.Equal(ips, want) {
		return fmt.Errorf("endpoints kubernetes lists %v, want %v", ips, want)
	}
	if ps := ep.Subsets[0].Ports; len(ps) != 1 || ps[0].Port != int32(port) || ps[0].Name != "https" {
		return fmt.Errorf("endpoints kubernetes ports %+v, want https %d", ps, port)
	}
	slice, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return err
	}
	ips = nil
	for _, e := range slice.Endpoints {
		if len(e.Addresses) != 1 || e.Conditions.Ready == nil || !*e.Conditions.Ready {
			return fmt.Errorf("endpointslice kubernetes: endpoint %+v is not one ready address", e)
		}
		ips = append(ips, e.Addresses[0])
	}
	if !slices.Equal(ips, want) {
		return fmt.Errorf("endpointslice kubernetes lists %v, want %v", ips, want)
	}
	if ps := slice.Ports; len(ps) != 1 || ps[0].Port == nil || *ps[0].Port != int32(port) {
		return fmt.Errorf("endpointslice kubernetes ports %+v, want %d", ps, port)
	}
	return nil
}

// logged returns an error unless the server logged the list of API
// servers as servers (in slog's text form).
func logged(logs *syncBuffer, servers string) error {
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `level=INFO msg="API server endpoints updated"`) && strings.HasSuffix(line, " "+servers) {
			return nil
		}
	}
	return fmt.Errorf("the server did not log %s:\n%s", servers, logs)
}

func TestEndpointsListEveryAPIServer(t *testing.T) {
	ctx := ctxTimeout(t)
	c := newHACluster(t)
	lns := listenSamePort(t, "127.0.0.1", "127.0.0.2")
	port := lns[0].Addr().(*net.TCPAddr).Port
	a := c.start(t, lns[0], func(cfg *Config) { cfg.AdvertiseIP = net.ParseIP("10.0.0.1") })
	ca := a.client(t, c)
	// The first server is ready: it lists itself.
	if err := apiServersListed(ctx, ca, port, "10.0.0.1"); err != nil {
		t.Fatalf("one server: %v", err)
	}

	b := c.start(t, lns[1], func(cfg *Config) { cfg.AdvertiseIP = net.ParseIP("10.0.0.2") })
	cb := b.client(t, c)
	// The second one lists both as soon as it is ready, and the first
	// server serves the same list.
	if err := apiServersListed(ctx, cb, port, "10.0.0.1", "10.0.0.2"); err != nil {
		t.Fatalf("two servers, just after the second is ready: %v", err)
	}
	eventually(t, 5*time.Second, func() error { return apiServersListed(ctx, ca, port, "10.0.0.1", "10.0.0.2") })
	eventually(t, 5*time.Second, func() error {
		return logged(a.logs, `servers="[10.0.0.1 10.0.0.2]"`)
	})

	// Reconciling an unchanged list writes nothing.
	before, err := ca.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	beforeSlice, err := ca.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &endpointReconciler{s: a.s, client: c.db.Client(), ip: netip.MustParseAddr("10.0.0.1")}
	for i := 0; i < 3; i++ {
		if _, err := r.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := ca.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	afterSlice, _ := ca.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if after.ResourceVersion != before.ResourceVersion || afterSlice.ResourceVersion != beforeSlice.ResourceVersion {
		t.Fatalf("an unchanged list was written again: endpoints %s → %s, slice %s → %s",
			before.ResourceVersion, after.ResourceVersion, beforeSlice.ResourceVersion, afterSlice.ResourceVersion)
	}

	// A clean stop revokes the registration: the other server drops the
	// stopped one at once, not after the lease TTL.
	stopped := time.Now()
	stopDone := make(chan struct{})
	go func() {
		defer close(stopDone)
		b.stop(t)
	}()
	eventually(t, 3*time.Second, func() error { return apiServersListed(ctx, ca, port, "10.0.0.1") })
	t.Logf("the stopped server was dropped after %s", time.Since(stopped).Round(time.Millisecond))
	<-stopDone
	eventually(t, 3*time.Second, func() error {
		return logged(a.logs, `servers=[10.0.0.1]`)
	})
}

func TestKilledAPIServerDropsOutAfterLeaseTTL(t *testing.T) {
	ctx := ctxTimeout(t)
	c := newHACluster(t)
	lns := listenSamePort(t, "127.0.0.1", "127.0.0.2")
	port := lns[0].Addr().(*net.TCPAddr).Port
	a := c.start(t, lns[0], func(cfg *Config) { cfg.AdvertiseIP = net.ParseIP("10.0.0.1") })
	// b registers over its own connection to etcd, which the test cuts to
	// play a server that dies without revoking its lease.
	conn, err := clientv3.New(clientv3.Config{Endpoints: c.db.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	const ttl = 3 * time.Second
	c.start(t, lns[1], func(cfg *Config) {
		cfg.AdvertiseIP = net.ParseIP("10.0.0.2")
		cfg.Etcd = conn
		cfg.EndpointLeaseTTL = ttl
	})
	ca := a.client(t, c)
	eventually(t, 5*time.Second, func() error { return apiServersListed(ctx, ca, port, "10.0.0.1", "10.0.0.2") })

	killed := time.Now()
	_ = conn.Close()
	// Nothing revoked the lease: the dead server stays listed for a while...
	if err := apiServersListed(ctx, ca, port, "10.0.0.1", "10.0.0.2"); err != nil {
		t.Fatalf("just after the kill: %v", err)
	}
	// ... and drops out once its lease expires.
	eventually(t, ttl+5*time.Second, func() error { return apiServersListed(ctx, ca, port, "10.0.0.1") })
	t.Logf("the killed server was dropped after %s (lease TTL %s)", time.Since(killed).Round(time.Millisecond), ttl)
}

func TestEndpointsWithoutEtcdListThisServer(t *testing.T) {
	ctx := ctxTimeout(t)
	c := newHACluster(t)
	lns := listenSamePort(t, "127.0.0.1")
	port := lns[0].Addr().(*net.TCPAddr).Port
	a := c.start(t, lns[0], func(cfg *Config) {
		cfg.AdvertiseIP = net.ParseIP("10.0.0.7")
		cfg.Etcd = nil
	})
	if err := apiServersListed(ctx, a.client(t, c), port, "10.0.0.7"); err != nil {
		t.Fatal(err)
	}
}

func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testRegistry is the registry a server gets, with service allocators over
// the cluster's etcd and the default ranges.
func testRegistry(c *clientv3.Client) (*registry.Registry, error) {
	def := config.DefaultServer()
	ips, err := registry.NewServiceIPAllocator(c, def.ServiceCIDR)
	if err != nil {
		return nil, err
	}
	return registry.NewWithOptions(registry.Options{ServiceIPs: ips, NodePorts: registry.NewNodePortAllocator(c, def.NodePortRange)})
}
