// Package servertest starts a real skiff server in-process for tests: real
// etcd on free loopback ports, TLS, temp dirs.
package servertest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/server"
)

// Server is a running test server.
type Server struct {
	DataDir        string
	KubeconfigPath string
	Config         config.Server
	cancel         context.CancelFunc
	done           chan error
}

// Option changes the server's config before it starts.
type Option func(*config.Server)

// NoControlPlane runs the API only: no scheduler, no controllers.
func NoControlPlane(c *config.Server) {
	c.DisableScheduler = true
	c.DisableControllerManager = true
}

// NodeRBAC turns on the default authorization (Node,RBAC), which Start
// otherwise leaves off.
func NodeRBAC(c *config.Server) { c.AuthorizationMode = config.AuthorizationNodeRBAC }

// FastLeaderElection shortens the leader lease so tests see failover quickly.
func FastLeaderElection(c *config.Server) { c.LeaderElectTTL = 3 * time.Second }

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts a server in dataDir ("" for a new temp dir) and stops it when
// the test ends.
func Start(t testing.TB, dataDir string, opts ...Option) *Server {
	t.Helper()
	fresh := dataDir == ""
	// Free ports are found by listening and closing, so another test may
	// take one in between: retry with new ports when that happens.
	for attempt := 1; ; attempt++ {
		if fresh {
			dataDir = t.TempDir()
		}
		cfg := config.DefaultServer()
		cfg.DataDir = dataDir
		cfg.BindAddress = "127.0.0.1"
		cfg.HTTPSPort = FreePort(t)
		cfg.EtcdClientPort = FreePort(t)
		cfg.EtcdPeerPort = FreePort(t)
		cfg.KubeconfigPath = filepath.Join(dataDir, "kubeconfig.yaml")
		cfg.DisableAgent = true
		cfg.NodeName = "server-" + strconv.Itoa(cfg.HTTPSPort)
		// Tests of one part (a controller, the kubelet) create pods in
		// namespaces whose default service account no controller may be
		// there to make; they opt in to authorization with NodeRBAC. The
		// e2e tests run the default.
		cfg.AuthorizationMode = config.AuthorizationAlwaysAllow
		for _, o := range opts {
			o(&cfg)
		}
		s, err := start(t, cfg)
		if err == nil {
			return s
		}
		if attempt < 5 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("server failed to start: %v", err)
	}
}

// StartConfig starts a server with exactly cfg.
func StartConfig(t testing.TB, cfg config.Server) *Server {
	t.Helper()
	s, err := start(t, cfg)
	if err != nil {
		t.Fatalf("server failed to start: %v", err)
	}
	return s
}

func start(t testing.TB, cfg config.Server) (*Server, error) {
	t.Helper()
	srv, err := server.New(cfg, testLogger(), "test")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{DataDir: cfg.DataDir, KubeconfigPath: cfg.KubeconfigPath, Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-s.done:
		cancel()
		return nil, err
	case <-time.After(60 * time.Second):
		cancel()
		<-s.done
		return nil, fmt.Errorf("server not ready after 60s")
	}
	t.Cleanup(func() { s.Stop(t) })
	return s, nil
}

// Stop stops the server and waits for it; calling it twice is fine.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server stopped with an error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("server did not stop within 30s")
	}
}

// RESTConfig is the admin's client configuration.
func (s *Server) RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", s.KubeconfigPath)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg
}

// Client is an admin clientset.
func (s *Server) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.RESTConfig(t))
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	return c
}

// EtcdClient is a client of the server's etcd over its mutual-TLS client
// port; it is closed when the test ends.
func (s *Server) EtcdClient(t testing.TB) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", s.Config.EtcdClientPort)},
		TLS:       server.EtcdClientTLS(s.DataDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
