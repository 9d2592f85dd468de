package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/encryption"
	"skiff/internal/etcd"
	"skiff/internal/kubelet/bootstrap"
	"skiff/internal/pki"
)

// A server joins another's cluster in two steps around ensureTLS: first it
// takes the cluster's CA, etcd CA and token (fetchClusterBootstrap), so that
// its own certificates come from them; then, with its etcd configured, it
// has itself added as an etcd learner (addEtcdMember) and starts etcd with
// the members it was given. A server that has etcd data already restarts
// from it and does neither.

// joining reports whether this start joins another server's cluster.
func (s *Server) joining(layout config.Layout) bool {
	return s.cfg.JoinURL != "" && !etcd.MemberExists(layout.EtcdDir())
}

// clustered reports whether etcd takes peers over TLS on the node address:
// asked for now, or set up so by an earlier start.
func (s *Server) clustered(layout config.Layout) bool {
	if s.cfg.ClusterInit || s.cfg.JoinURL != "" {
		return true
	}
	_, err := os.Stat(layout.ClusterMarker())
	return err == nil
}

// fetchClusterBootstrap pins the joined server's CA with the token, opens
// the cluster's bootstrap data with the token's secret, and writes the CA
// and the token into this server's data dir. It returns the CA pool the
// rest of the join trusts.
func (s *Server) fetchClusterBootstrap(ctx context.Context, layout config.Layout) (*x509.CertPool, error) {
	caHash, secret, err := pki.ParseToken(s.cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("join: --token: %w", err)
	}
	if caHash == "" {
		return nil, errors.New("join: the token has no CA hash: use the full server token (K10<hash>::server:<secret>) that `skiff token` prints on a server, so the server's identity can be checked")
	}
	log := s.log.With("component", "join", "server", s.cfg.JoinURL)
	log.Info("joining the cluster as another server")
	var caPEM []byte
	roots := x509.NewCertPool()
	var resp apiserver.ServerBootstrapResponse
	err = retryJoin(ctx, log, "fetch the cluster CA and bootstrap data", func() error {
		if caPEM == nil {
			pem, err := bootstrap.FetchCA(ctx, s.cfg.JoinURL, caHash)
			if err != nil {
				return err
			}
			caPEM = pem
			roots.AppendCertsFromPEM(caPEM)
		}
		return bootstrap.Call(ctx, s.cfg.JoinURL, s.cfg.Token, roots, http.MethodGet, apiserver.ServerBootstrapPath, nil, &resp)
	})
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", s.cfg.JoinURL, err)
	}
	data, err := openBootstrap(secret, resp.Sealed)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", s.cfg.JoinURL, err)
	}
	if !bytes.Equal(data.CACert, caPEM) {
		return nil, fmt.Errorf("join %s: the bootstrap data holds another CA than the server presents", s.cfg.JoinURL)
	}
	if _, err := pki.ParseKeyPEM(data.CAKey); err != nil {
		return nil, fmt.Errorf("join %s: bootstrap data: CA key: %w", s.cfg.JoinURL, err)
	}
	dir := layout.TLSDir()
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if cur, err := os.ReadFile(certFile); err == nil && !bytes.Equal(cur, caPEM) {
		return nil, fmt.Errorf("join %s: %s holds the CA of another cluster; this server was a server of its own. Remove %s to join (its data is lost)",
			s.cfg.JoinURL, certFile, s.cfg.DataDir)
	}
	if len(data.ServiceAccountKey) > 0 {
		if _, err := pki.ParseKeyPEM(data.ServiceAccountKey); err != nil {
			return nil, fmt.Errorf("join %s: bootstrap data: service-account key: %w", s.cfg.JoinURL, err)
		}
		if err := pki.WriteFileAtomic(layout.ServiceAccountKeyFile(), data.ServiceAccountKey, 0o600); err != nil {
			return nil, fmt.Errorf("join: write service-account key: %w", err)
		}
	}
	if len(data.EncryptionConfig) > 0 && s.cfg.EncryptionProviderConfig == "" {
		if _, err := encryption.Parse(data.EncryptionConfig); err != nil {
			return nil, fmt.Errorf("join %s: bootstrap data: %w", s.cfg.JoinURL, err)
		}
		if err := pki.WriteFileAtomic(layout.EncryptionConfigFile(), data.EncryptionConfig, 0o600); err != nil {
			return nil, fmt.Errorf("join: write the encryption configuration: %w", err)
		}
	}
	// The key first: EnsureCA treats a lone key as an unfinished CA.
	if err := pki.WriteFileAtomic(keyFile, data.CAKey, 0o600); err != nil {
		return nil, fmt.Errorf("join: write CA key: %w", err)
	}
	if err := pki.WriteFileAtomic(certFile, caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("join: write CA certificate: %w", err)
	}
	// The token this server joined with is the current server token (the
	// bootstrap data is found by it), whatever the data holds.
	if err := pki.WriteToken(layout.TokenFile(), pki.FormatToken(caPEM, pki.ServerTokenUser, secret)); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if data.AgentToken != "" {
		if err := pki.WriteToken(layout.AgentTokenFile(), data.AgentToken); err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
	}
	if err := s.takeEtcdCA(layout, data); err != nil {
		return nil, fmt.Errorf("join %s: %w", s.cfg.JoinURL, err)
	}
	return roots, nil
}

// takeEtcdCA writes the cluster's etcd CA from the bootstrap data into this
// server's data dir, replacing any it had (it has no etcd member yet, so
// nothing it signed is in use). Bootstrap data without an etcd CA comes from
// a cluster whose members still authenticate peers with the cluster CA
// (servers of an older version, or upgraded from one): this server's member
// does the same, or they would refuse it.
func (s *Server) takeEtcdCA(layout config.Layout, data bootstrapData) error {
	if len(data.EtcdCACert) == 0 {
		s.log.Warn("the cluster's etcd members authenticate their peers with the cluster CA (servers of an older version, or upgraded from one); this server's member does the same until the cluster moves to the etcd CA (see the README on upgrading)",
			"component", "join")
		return markPeersOnClusterCA(layout)
	}
	if _, err := pki.ParseCA(data.EtcdCACert, data.EtcdCAKey); err != nil {
		return fmt.Errorf("bootstrap data: etcd CA: %w", err)
	}
	dir := layout.EtcdTLSDir()
	// The key first: EnsureCA treats a lone key as an unfinished CA.
	if err := pki.WriteFileAtomic(filepath.Join(dir, "ca.key"), data.EtcdCAKey, 0o600); err != nil {
		return fmt.Errorf("write etcd CA key: %w", err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, "ca.crt"), data.EtcdCACert, 0o644); err != nil {
		return fmt.Errorf("write etcd CA certificate: %w", err)
	}
	return unmarkPeersOnClusterCA(layout)
}

// addEtcdMember has the joined server add this one as an etcd learner and
// points ec at the members to join.
func (s *Server) addEtcdMember(ctx context.Context, roots *x509.CertPool, ec *etcd.Config) error {
	log := s.log.With("component", "join", "server", s.cfg.JoinURL)
	req := apiserver.EtcdMemberRequest{Name: ec.Name, PeerURL: ec.PeerURL()}
	var resp apiserver.EtcdMemberResponse
	err := retryJoin(ctx, log, "become an etcd member", func() error {
		return bootstrap.Call(ctx, s.cfg.JoinURL, s.cfg.Token, roots, http.MethodPost, apiserver.EtcdMembersPath, &req, &resp)
	})
	if err != nil {
		return fmt.Errorf("join %s: %w", s.cfg.JoinURL, err)
	}
	log.Info("added as an etcd learner; starting etcd", "initial-cluster", resp.InitialCluster)
	ec.InitialCluster = resp.InitialCluster
	return nil
}

// retryJoin retries call while the server is unreachable or busy (it may
// be starting too, or another server may be joining), and gives up at once
// on a refusal.
func retryJoin(ctx context.Context, log interface{ Warn(string, ...any) }, what string, call func() error) error {
	delay := time.Second
	for {
		err := call()
		var se *bootstrap.StatusError
		if err == nil || errors.As(err, &se) && se.Code < 500 && se.Code != http.StatusTooManyRequests {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		}
		log.Warn("join: cannot "+what+" yet; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// peerSetup configures etcd for peers over TLS on the advertise address,
// with certificates from the etcd CA, or, for a member whose peers are
// still on it (onClusterCA), from the cluster CA as older versions did.
func (s *Server) peerSetup(layout config.Layout, clusterCA, etcdCA *pki.CA, onClusterCA bool, ec *etcd.Config) error {
	ip := s.advertiseIP()
	// A loopback address is taken only when given explicitly (several
	// servers on one machine, in tests).
	if ip.IsUnspecified() || ip.IsLoopback() && len(s.cfg.AdvertiseIPs) == 0 {
		return fmt.Errorf("other servers cannot reach this one at %s: set --node-ip to an address they can reach", ip)
	}
	ca, dir, name := etcdCA, layout.EtcdTLSDir(), etcdPeerCertName
	if onClusterCA {
		ca, dir, name = clusterCA, layout.TLSDir(), "etcd-peer"
	}
	certFile, keyFile, err := ca.EnsurePeerCert(dir, name, []string{s.cfg.NodeName, "localhost"}, []net.IP{ip, net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("etcd peer certificate: %w", err)
	}
	ec.PeerAddress = ip.String()
	ec.PeerTLS = &etcd.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: filepath.Join(dir, "ca.crt")}
	if err := pki.WriteFileAtomic(layout.ClusterMarker(), []byte(ec.PeerURL()+"\n"), 0o600); err != nil {
		return fmt.Errorf("remember the cluster setup: %w", err)
	}
	return nil
}

// serverJoin lets other servers join this one's cluster.
type serverJoin struct {
	db     *etcd.Etcd
	layout config.Layout
	// takesPeers is false on a server started without --cluster-init:
	// its etcd listens for peers on loopback only.
	takesPeers bool
}

func (j *serverJoin) BootstrapData(ctx context.Context, secret string) ([]byte, error) {
	if err := j.clustered(); err != nil {
		return nil, err
	}
	if secret == "" {
		var err error
		if secret, err = pki.ReadTokenSecret(j.layout.TokenFile()); err != nil {
			return nil, err
		}
	}
	sealed, err := loadBootstrap(ctx, j.db.Client(), secret)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	return sealed, nil
}

func (j *serverJoin) AddServer(ctx context.Context, name, peerURL string) (string, error) {
	if err := j.clustered(); err != nil {
		return "", err
	}
	if err := j.db.CheckQuorum(); err != nil {
		return "", apierrors.NewServiceUnavailable(err.Error())
	}
	ms, err := j.db.AddLearner(ctx, name, peerURL)
	if errors.Is(err, etcd.ErrVotingMember) {
		return "", apierrors.NewConflict(schema.GroupResource{Group: "skiff", Resource: "etcd-members"}, name, fmt.Errorf(
			"%v: a voting member is never replaced by a join. If that server is gone for good, remove it first (kubectl delete node <its node>); if this is another machine, start it with another --node-name or --node-ip", err))
	}
	if err != nil {
		// Mostly "too many learner members": another server is catching
		// up; the joining one retries.
		return "", apierrors.NewServiceUnavailable(err.Error())
	}
	return etcd.InitialCluster(ms, name, peerURL), nil
}

func (j *serverJoin) clustered() error {
	if !j.takesPeers {
		return apierrors.NewBadRequest("this server was not started with --cluster-init: its etcd takes no peers. Restart it with --cluster-init (its data is kept), then join again")
	}
	return nil
}
