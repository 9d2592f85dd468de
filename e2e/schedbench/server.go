package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/server"
)

// inproc is a skiff server running in this process, in a temp data dir on
// free loopback ports.
type inproc struct {
	cfg    config.Server
	cancel context.CancelFunc
	done   chan error
}

// serverOptions says which control loops the server runs.
type serverOptions struct {
	dir         string
	scheduler   bool
	controllers bool
	logOut      io.Writer
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts a server and waits until its API answers.
func startServer(ctx context.Context, o serverOptions) (*inproc, error) {
	cfg := config.DefaultServer()
	cfg.DataDir = o.dir
	cfg.BindAddress = "127.0.0.1"
	cfg.KubeconfigPath = filepath.Join(o.dir, "kubeconfig.yaml")
	cfg.DisableAgent = true
	cfg.NodeName = "schedbench"
	cfg.DisableScheduler = !o.scheduler
	cfg.DisableControllerManager = !o.controllers
	// The fake nodes never renew their leases: keep the node lifecycle
	// controller from tainting them during the run.
	cfg.Controllers.NodeMonitorGracePeriod = 24 * time.Hour
	for _, p := range []*int{&cfg.HTTPSPort, &cfg.EtcdClientPort, &cfg.EtcdPeerPort} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		*p = port
	}
	out := o.logOut
	if out == nil {
		out = io.Discard
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.New(cfg, log, "schedbench")
	if err != nil {
		return nil, fmt.Errorf("new server: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s := &inproc{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(runCtx) }()
	select {
	case <-srv.Ready():
		return s, nil
	case err := <-s.done:
		cancel()
		return nil, fmt.Errorf("server failed to start: %w", err)
	case <-time.After(90 * time.Second):
		s.stop()
		return nil, errors.New("server not ready after 90s")
	case <-ctx.Done():
		s.stop()
		return nil, ctx.Err()
	}
}

// restConfig is the admin's client configuration with the given rate
// limit (qps <= 0: none).
func (s *inproc) restConfig(qps float32) (*rest.Config, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", s.cfg.KubeconfigPath)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	// A Dial of its own keeps client-go from sharing one cached transport
	// (so one HTTP/2 connection) among every client of this process: the
	// benchmark's clients and a standalone scheduler each get their own
	// connection, as separate processes would.
	rc.Dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if qps <= 0 {
		rc.QPS = -1
	} else {
		rc.QPS, rc.Burst = qps, int(2*qps)
	}
	return rc, nil
}

func (s *inproc) client(qps float32) (kubernetes.Interface, error) {
	rc, err := s.restConfig(qps)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

// stop stops the server and waits for it (30 s at most).
func (s *inproc) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("server did not stop within 30s")
	}
}
