package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// ClientConfig configures a client of etcd's client port, for a process
// other than the server (`skiff etcd-snapshot`, tests): the server itself
// uses the in-process Client.
type ClientConfig struct {
	// Endpoints are client URLs (https://127.0.0.1:2379).
	Endpoints []string
	// TLS names the client certificate and key, and the CA that signed
	// the server's certificate (skiff's etcd CA).
	TLS TLSFiles
	// DialTimeout bounds the first connection; 5s if zero.
	DialTimeout time.Duration
	// DialContext, when set, makes the connections (into another network
	// namespace, in tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ClientTLSConfig is the TLS configuration of a client that presents the
// certificate in t and trusts only t's CA.
func ClientTLSConfig(t TLSFiles) (*tls.Config, error) {
	if t.CertFile == "" || t.KeyFile == "" || t.CAFile == "" {
		return nil, errors.New("etcd client: a certificate, its key and the etcd CA are all required")
	}
	info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return c, nil
}

// NewClient connects to etcd over mutual TLS and checks the first endpoint
// answers, so that a missing server or a refused certificate is an error
// here that says so, not a failure of the first request.
func NewClient(ctx context.Context, cfg ClientConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd client: no endpoints")
	}
	tc, err := ClientTLSConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := probe(sctx, cfg, tc); err != nil {
		return nil, err
	}
	ccfg := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         tc,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(),
	}
	if dial := cfg.DialContext; dial != nil {
		ccfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dial(ctx, "tcp", addr)
		})}
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", cfg.Endpoints, err)
	}
	if _, err := cli.Status(sctx, cfg.Endpoints[0]); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s: %w", cfg.Endpoints[0], err)
	}
	return cli, nil
}

// probe asks the first endpoint for etcd's version over HTTPS. gRPC retries
// a refused handshake until its deadline and then reports only that; this
// returns etcd's TLS alert itself ("tls: unknown certificate authority").
func probe(ctx context.Context, cfg ClientConfig, tc *tls.Config) error {
	tr := &http.Transport{TLSClientConfig: tc.Clone(), DialContext: cfg.DialContext}
	defer tr.CloseIdleConnections()
	url := strings.TrimSuffix(cfg.Endpoints[0], "/") + "/version"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("etcd endpoint %s: %w", cfg.Endpoints[0], err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("etcd at %s: %w", cfg.Endpoints[0], err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd at %s: /version answered %s", cfg.Endpoints[0], resp.Status)
	}
	return nil
}
