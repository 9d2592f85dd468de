// Package etcd runs skiff's embedded etcd: it starts a member, waits until it
// serves, hands out an in-process client, reports a failure after start, and
// stops it cleanly.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap/zapcore"
)

// maxRequestBytes is what etcd accepts in one request. The API server takes
// bodies up to 3 MiB; the extra room is for the key and the Txn around it.
const maxRequestBytes = 4 << 20

// watchProgressInterval is how often etcd tells an idle watch its revision.
const watchProgressInterval = time.Minute

// Config configures the embedded etcd member.
type Config struct {
	// DataDir is etcd's data directory.
	DataDir string
	// Name is the member name; "default" if empty.
	Name string
	// ListenAddress is the IP etcd listens on for clients and peers.
	ListenAddress        string
	ClientPort, PeerPort int
	// QuotaBytes is the backend quota; 0 keeps etcd's default.
	QuotaBytes int64
	// CompactionRetention is the periodic auto-compaction window, in
	// etcd's flag syntax ("5m", or hours as a bare number); empty disables.
	CompactionRetention string
	// PeerAddress, when set, is the IP peers reach this member on: it
	// listens there for peers and advertises it. Empty keeps peers on
	// ListenAddress (a one-server cluster on loopback).
	PeerAddress string
	// PeerTLS, when set, secures peer traffic: both ends present a
	// certificate from the CA in CAFile (skiff's etcd CA).
	PeerTLS *TLSFiles
	// ClientTLS, when set, makes the client port HTTPS and has it refuse
	// a client without a certificate from the CA in CAFile. Without it
	// the port is plain HTTP, open to anyone who can reach it: only for
	// tests that use the in-process client alone.
	ClientTLS *TLSFiles
	// InitialCluster lists the members ("name=peerURL,...") a joining
	// member starts with; with it the member joins an existing cluster.
	// Ignored when the data dir already holds a member.
	InitialCluster string
	// ForceNewCluster makes an existing member the only member of its
	// cluster, keeping its data (`skiff server --cluster-reset`).
	ForceNewCluster bool
	// Logger receives etcd's messages and this package's lifecycle lines;
	// the caller names the component (e.g. With("component", "etcd")).
	// etcd is quiet (errors only) unless Debug lets its info messages through.
	Logger *slog.Logger
	Debug  bool
}

// TLSFiles name a listener's certificate and key, and the CA whose
// certificates it requires from the other end.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// tlsInfo is etcd's form of t: the other end must present a certificate
// from t's CA, or the handshake fails.
func (t *TLSFiles) tlsInfo() transport.TLSInfo {
	return transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ClientCertAuth: true}
}

// Etcd is a running embedded etcd member.
type Etcd struct {
	lg        *slog.Logger
	etcd      *embed.Etcd
	client    *clientv3.Client
	endpoints []string
	peerURL   string
	unlock    func()
	stopping  *atomic.Bool // set by Close; quietens etcd's shutdown noise

	errc  chan error    // at most one error after start; never closed
	stopc chan struct{} // closed by Close, before etcd is stopped
	done  chan struct{} // closed when the watch goroutine has returned

	closeOnce sync.Once
	closeErr  error
}

// Start starts etcd and returns once it is ready to serve. If it cannot
// start, fails before it is ready, or ctx is done first, whatever was started
// is torn down and the error says what failed.
func Start(ctx context.Context, cfg Config) (*Etcd, error) {
	return start(ctx, cfg, nil)
}

// start is Start with a hook run between launching etcd and waiting for it,
// so tests can cancel at that exact point.
func start(ctx context.Context, cfg Config, launched func()) (_ *Etcd, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: not started: %w", err)
	}
	cfg, err = cfg.complete()
	if err != nil {
		return nil, err
	}
	lg := cfg.Logger
	stopping := new(atomic.Bool)
	ecfg := cfg.embedConfig(stopping)

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd: create data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()

	lg.Info("starting",
		"name", cfg.Name, "data-dir", cfg.DataDir,
		"client-url", ecfg.AdvertiseClientUrls[0].String(), "peer-url", ecfg.AdvertisePeerUrls[0].String(),
		"existing-data", memberExists(cfg.DataDir))

	ee, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, explainStartError(err, cfg)
	}
	defer func() {
		if err != nil {
			stopping.Store(true)
			ee.Close()
		}
	}()
	if launched != nil {
		launched()
	}

	select {
	case <-ee.Server.ReadyNotify():
	case err := <-ee.Err():
		return nil, fmt.Errorf("etcd: failed before it was ready: %w", err)
	case <-ee.Server.StopNotify():
		return nil, errors.New("etcd: stopped before it was ready; see the etcd errors logged above")
	case <-ctx.Done():
	}
	// Checked after the select too: when etcd became ready just as ctx
	// ended, the caller has given up already and must not get a live etcd.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("etcd: gave up waiting for etcd to be ready: %w", err)
	}

	e := &Etcd{
		lg:        lg,
		etcd:      ee,
		stopping:  stopping,
		client:    v3client.New(ee.Server),
		endpoints: []string{ecfg.AdvertiseClientUrls[0].String()},
		peerURL:   ecfg.AdvertisePeerUrls[0].String(),
		unlock:    unlock,
		errc:      make(chan error, 1),
		stopc:     make(chan struct{}),
		done:      make(chan struct{}),
	}
	go e.watch()
	lg.Info("ready", "member-id", ee.Server.MemberID().String(), "endpoints", e.endpoints)
	return e, nil
}

// watch turns etcd stopping on its own into one error on Err.
func (e *Etcd) watch() {
	defer close(e.done)
	var err error
	select {
	case <-e.stopc:
		return
	case err = <-e.etcd.Err():
	case <-e.etcd.Server.StopNotify():
	}
	select {
	case <-e.stopc:
		// Close stopped etcd; that is not a failure.
		return
	default:
	}
	if err == nil {
		err = errors.New("server stopped unexpectedly; see the etcd errors logged above")
	}
	err = fmt.Errorf("etcd: %w", err)
	e.lg.Error("failed", "err", err)
	e.errc <- err
}

// Client returns an in-process client that calls the etcd server directly,
// without a network hop. It belongs to e and is closed by Close.
func (e *Etcd) Client() *clientv3.Client { return e.client }

// Endpoints returns etcd's client URLs.
func (e *Etcd) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Err receives at most one error, when etcd fails after Start returned.
// It is never closed, so reading it after Close blocks.
func (e *Etcd) Err() <-chan error { return e.errc }

// Close stops etcd and waits until it has stopped. It is safe to call more
// than once and from several goroutines.
func (e *Etcd) Close() error {
	e.closeOnce.Do(func() {
		e.lg.Info("stopping")
		e.stopping.Store(true)
		close(e.stopc)
		// The in-process client's Close always reports context.Canceled;
		// it is how the client ends its own watches and leases.
		if err := e.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
			e.closeErr = fmt.Errorf("etcd: close client: %w", err)
		}
		e.etcd.Close()
		<-e.done
		e.unlock()
		e.lg.Info("stopped")
	})
	return e.closeErr
}

// complete fills in defaults and checks cfg, so that mistakes are reported
// in skiff's terms rather than as etcd URL errors.
func (cfg Config) complete() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = "default"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("etcd: data dir is required")
	}
	if net.ParseIP(cfg.ListenAddress) == nil {
		return cfg, fmt.Errorf("etcd: listen address %q is not an IP address", cfg.ListenAddress)
	}
	if cfg.PeerAddress != "" && net.ParseIP(cfg.PeerAddress) == nil {
		return cfg, fmt.Errorf("etcd: peer address %q is not an IP address", cfg.PeerAddress)
	}
	for _, p := range []struct {
		name string
		port int
	}{{"client", cfg.ClientPort}, {"peer", cfg.PeerPort}} {
		// Port 0 would have etcd advertise ":0" to its peers.
		if p.port < 1 || p.port > 65535 {
			return cfg, fmt.Errorf("etcd: %s port %d: want 1-65535", p.name, p.port)
		}
	}
	if cfg.ClientPort == cfg.PeerPort {
		return cfg, fmt.Errorf("etcd: client and peer port are both %d; they must differ", cfg.ClientPort)
	}
	for _, t := range []struct {
		name  string
		files *TLSFiles
	}{{"client", cfg.ClientTLS}, {"peer", cfg.PeerTLS}} {
		if t.files != nil && (t.files.CertFile == "" || t.files.KeyFile == "" || t.files.CAFile == "") {
			return cfg, fmt.Errorf("etcd: %s TLS needs a certificate, its key and a CA", t.name)
		}
	}
	if cfg.QuotaBytes < 0 {
		return cfg, fmt.Errorf("etcd: quota %d bytes is negative", cfg.QuotaBytes)
	}
	return cfg, nil
}

// embedConfig translates cfg into etcd's own configuration, once.
func (cfg Config) embedConfig(stopping *atomic.Bool) *embed.Config {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir

	clientURL := cfg.clientURL()
	peerURL := cfg.peerURL()
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	if t := cfg.PeerTLS; t != nil {
		ec.PeerTLSInfo = t.tlsInfo()
	}
	if t := cfg.ClientTLS; t != nil {
		ec.ClientTLSInfo = t.tlsInfo()
	}
	// A new single-member cluster, or joining the members a server gave
	// us. On a restart etcd finds the member's WAL and takes membership
	// from it, ignoring these settings.
	ec.InitialCluster = cfg.Name + "=" + peerURL.String()
	ec.ClusterState = embed.ClusterStateFlagNew
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	ec.InitialClusterToken = "skiff"
	// Refuse membership changes that would leave the cluster without
	// quorum, and let one server at a time catch up as a learner.
	ec.StrictReconfigCheck = true
	ec.ForceNewCluster = cfg.ForceNewCluster

	ec.MaxRequestBytes = maxRequestBytes
	if cfg.QuotaBytes > 0 {
		ec.QuotaBackendBytes = cfg.QuotaBytes
	}
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = cfg.CompactionRetention
	if ec.AutoCompactionRetention == "" {
		ec.AutoCompactionRetention = "0" // etcd's "disabled"
	}
	// skiff talks to etcd in-process and through gRPC; the JSON gateway
	// would only add an unused HTTP surface.
	ec.EnableGRPCGateway = false
	// Progress notifications let the API server send watch bookmarks, so an
	// idle watcher's resourceVersion stays ahead of compaction.
	ec.WatchProgressNotifyInterval = watchProgressInterval

	level := zapcore.ErrorLevel
	if cfg.Debug {
		level = zapcore.InfoLevel
	}
	ec.Logger = "zap"
	ec.LogLevel = level.String()
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(cfg.Logger, level, stopping))
	return ec
}

// clientURL is where clients reach this member.
func (cfg Config) clientURL() url.URL {
	scheme := "http"
	if cfg.ClientTLS != nil {
		scheme = "https"
	}
	return url.URL{Scheme: scheme, Host: net.JoinHostPort(cfg.ListenAddress, strconv.Itoa(cfg.ClientPort))}
}

// peerURL is where peers reach this member.
func (cfg Config) peerURL() url.URL {
	host := cfg.ListenAddress
	if cfg.PeerAddress != "" {
		host = cfg.PeerAddress
	}
	scheme := "http"
	if cfg.PeerTLS != nil {
		scheme = "https"
	}
	return url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(cfg.PeerPort))}
}

// PeerURL is where peers reach a member started with cfg.
func (cfg Config) PeerURL() string { u := cfg.peerURL(); return u.String() }

// MemberExists reports whether dataDir already holds a member: a server
// that has one restarts from it instead of joining again.
func MemberExists(dataDir string) bool { return memberExists(dataDir) }

// memberExists reports whether dataDir already holds a member, for the
// start-up log line: a restart and a brand-new cluster look alike otherwise.
func memberExists(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "member", "wal"))
	return err == nil
}

// explainStartError turns the usual start failures into advice.
func explainStartError(err error, cfg Config) error {
	var op *net.OpError
	if errors.Is(err, syscall.EADDRINUSE) && errors.As(err, &op) && op.Addr != nil {
		flag := "--etcd-client-port"
		if _, port, _ := net.SplitHostPort(op.Addr.String()); port == strconv.Itoa(cfg.PeerPort) {
			flag = "--etcd-peer-port"
		}
		return fmt.Errorf("etcd: listen on %s: %w; is another skiff server running? use %s to choose another port",
			op.Addr, syscall.EADDRINUSE, flag)
	}
	return fmt.Errorf("etcd: start: %w", err)
}
