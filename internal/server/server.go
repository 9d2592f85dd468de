// Package server composes `skiff server`: TLS material, the embedded etcd,
// and the API server. Each part is started, waited for and stopped here;
// none of them knows about flags.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/controller/manager"
	"skiff/internal/etcd"
	"skiff/internal/pki"
	"skiff/internal/registry"
	"skiff/internal/storage"
)

// Server is a running (or runnable) skiff server.
type Server struct {
	cfg     config.Server
	log     *slog.Logger
	version string
	ready   chan struct{}

	mu         sync.Mutex
	memberName string // set by Run before etcd starts
}

// New checks cfg and returns a server to Run.
func New(cfg config.Server, log *slog.Logger, version string) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: a data dir is required")
	}
	if cfg.ServiceCIDR == nil {
		return nil, errors.New("server: a service CIDR is required")
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("server: no --node-name and no hostname: %w", err)
		}
		cfg.NodeName = strings.ToLower(h)
	}
	if cfg.LeaderElectTTL == 0 {
		cfg.LeaderElectTTL = config.DefaultServer().LeaderElectTTL
	}
	if cfg.EtcdSnapshots.Retention == 0 {
		cfg.EtcdSnapshots.Retention = config.DefaultEtcdSnapshotRetention
	}
	if !cfg.EtcdSnapshots.Disable && cfg.EtcdSnapshots.Schedule != "" {
		if _, err := etcd.ParseSchedule(cfg.EtcdSnapshots.Schedule); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if cfg.EtcdSnapshots.RestorePath != "" && !cfg.EtcdSnapshots.ClusterReset {
		return nil, errors.New("server: restoring a snapshot needs --cluster-reset as well as --cluster-reset-restore-path")
	}
	return &Server{cfg: cfg, log: log, version: version, ready: make(chan struct{})}, nil
}

// Ready is closed once the API server answers and the default objects exist.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Layout is the server's data-dir layout.
func (s *Server) Layout() config.Layout { return config.Layout{DataDir: s.cfg.DataDir} }

// Run starts everything and serves until ctx is done, then stops it all.
func (s *Server) Run(ctx context.Context) error {
	layout := s.Layout()
	s.log.Info("starting", "dataDir", s.cfg.DataDir, "version", s.version)
	hadEtcdCA, err := etcdCAExists(layout)
	if err != nil {
		return err
	}
	var joinRoots *x509.CertPool
	if s.joining(layout) {
		var err error
		if joinRoots, err = s.fetchClusterBootstrap(ctx, layout); err != nil {
			return err
		}
	}
	tlsFiles, err := s.ensureTLS(layout)
	if err != nil {
		return err
	}
	keeper, err := s.loadEncryption(layout)
	if err != nil {
		return err
	}
	memberName, err := ensureMemberName(layout, s.cfg.NodeName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.memberName = memberName
	s.mu.Unlock()

	etcdCfg := etcd.Config{
		Name:                memberName,
		DataDir:             layout.EtcdDir(),
		ListenAddress:       s.cfg.EtcdListenAddress,
		ClientPort:          s.cfg.EtcdClientPort,
		PeerPort:            s.cfg.EtcdPeerPort,
		QuotaBytes:          s.cfg.EtcdQuotaBytes,
		CompactionRetention: s.cfg.EtcdCompactionRetention,
		Logger:              s.log.With("component", "etcd"),
		Debug:               s.cfg.Debug,
	}
	etcdCA, err := s.ensureEtcdTLS(layout, &etcdCfg)
	if err != nil {
		return err
	}
	onClusterCA := false
	if s.clustered(layout) {
		if onClusterCA, err = s.peersOnClusterCA(layout, hadEtcdCA); err != nil {
			return err
		}
		if err := s.peerSetup(layout, tlsFiles.ca, etcdCA, onClusterCA, &etcdCfg); err != nil {
			return err
		}
	} else if err := s.loopbackPeerTLS(layout, etcdCA, &etcdCfg); err != nil {
		return err
	}
	reset, err := s.clusterReset(ctx, &etcdCfg)
	if err != nil {
		return err
	}
	// After a reset the member is alone: no peer needs the cluster CA any
	// more. The mark goes once etcd has started so: a reset that fails
	// leaves the member as it was.
	leaveClusterCA := reset && onClusterCA
	if leaveClusterCA {
		onClusterCA = false
		if err := s.peerSetup(layout, tlsFiles.ca, etcdCA, false, &etcdCfg); err != nil {
			return err
		}
	}
	if onClusterCA {
		s.log.Warn("etcd peers still authenticate with the cluster CA, which also signs agents and users; the client port requires the etcd CA already. Once every server runs this version, move the peers to the etcd CA as the README says (etcd's ports, upgrading)",
			"component", "etcd")
	}
	if joinRoots != nil {
		if err := s.addEtcdMember(ctx, joinRoots, &etcdCfg); err != nil {
			return err
		}
	}
	db, err := etcd.Start(ctx, etcdCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if leaveClusterCA {
		if err := unmarkPeersOnClusterCA(layout); err != nil {
			return err
		}
		s.log.Info("cluster reset: etcd peers now authenticate with the etcd CA; servers that join get it", "component", "etcd")
	}
	if db.IsLearner() {
		// A learner cannot serve the API's linearizable reads and writes.
		s.log.Info("catching up with the cluster as an etcd learner")
		if err := db.PromoteSelf(ctx); err != nil {
			return err
		}
	}

	encRev, err := s.syncEncryption(ctx, db.Client(), layout, keeper, onClusterCA)
	if err != nil {
		return err
	}

	serviceIPs, err := registry.NewServiceIPAllocator(db.Client(), s.cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	rc, err := loopbackConfig(tlsFiles.adminKubeconfig)
	if err != nil {
		return err
	}
	var authn *authSetup
	if s.authEnabled() {
		if authn, err = s.newAuth(layout, tlsFiles, rc); err != nil {
			return err
		}
	}
	regOpts := registry.Options{
		DefaultNotReadyTolerationSeconds: s.cfg.Controllers.DefaultNotReadyTolerationSeconds,
		ServiceIPs:                       serviceIPs,
		NodePorts:                        registry.NewNodePortAllocator(db.Client(), s.cfg.NodePortRange),
	}
	if authn != nil {
		authn.registryOptions(&regOpts)
	}
	reg, err := registry.NewWithOptions(regOpts)
	if err != nil {
		return err
	}
	tokens := newJoinTokens(db.Client(), layout, tlsFiles.ca.CertPEM, s.cfg.Token, s.log)
	serverNames, serverIPs := s.ownNamesAndIPs()
	apiCfg := apiserver.Config{
		Registry:          reg,
		Store:             storage.NewWithTransformers(db.Client(), reg.Scheme(), keeper),
		Logger:            s.log,
		BindAddress:       s.cfg.BindAddress,
		Port:              s.cfg.HTTPSPort,
		CertFile:          tlsFiles.servingCert,
		KeyFile:           tlsFiles.servingKey,
		ClientCA:          tlsFiles.ca.CertPool(),
		CA:                tlsFiles.ca,
		KubeletClientCert: &tlsFiles.kubeletClient,
		JoinTokens:        tokens,
		ServerJoin:        &serverJoin{db: db, layout: layout, takesPeers: s.clustered(layout)},
		ClusterDomain:     s.cfg.ClusterDomain,
		ServerNames:       serverNames,
		ServerIPs:         serverIPs,
		Etcd:              db.Client(),
		Quorum:            db.CheckQuorum,
		ServiceCIDR:       s.cfg.ServiceCIDR,
		AdvertiseIP:       s.advertiseIP(),
		EventTTL:          s.cfg.EventTTL,
		ClusterDNS:        s.cfg.ClusterDNS,
		Version:           s.version,
	}
	if authn != nil {
		authn.apiConfig(&apiCfg)
	}
	api, err := apiserver.New(apiCfg)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Run(runCtx) }()

	select {
	case <-api.Ready():
	case err := <-apiDone:
		return err
	case err := <-db.Err():
		cancel()
		<-apiDone
		return fmt.Errorf("etcd failed: %w", err)
	}

	var extra []manager.Entry
	noAuth := make(chan struct{})
	close(noAuth)
	var authDone <-chan struct{} = noAuth
	var ids *componentIdentities
	reconciled := noAuth
	if authn != nil {
		ids = authn.identities
		authDone = authn.start(runCtx, s.log.With("component", "auth"))
		extra = authn.controllers()
		reconciled = authn.reconciled
	}
	// Ready once the default roles exist: before, every client but an
	// admin would be refused.
	select {
	case <-reconciled:
		close(s.ready)
		s.log.Info("ready", "kubeconfig", s.cfg.KubeconfigPath, "api", s.localURL())
	case err := <-apiDone:
		cancel()
		<-authDone
		return err
	case err := <-db.Err():
		cancel()
		<-authDone
		<-apiDone
		return fmt.Errorf("etcd failed: %w", err)
	case <-ctx.Done():
		// Stopped while starting: the shutdown below waits for everything.
	}
	// The control loops stop first, while the API still answers them.
	cpCtx, stopControlPlane := context.WithCancel(runCtx)
	cpDone := make(chan error, 1)
	go func() { cpDone <- s.runControlPlane(cpCtx, db, rc, ids, extra) }()
	snapDone := s.startSnapshots(cpCtx, db.Client())
	membershipDone := s.startMembership(cpCtx, db, layout, onClusterCA)
	tokensDone := tokens.run(cpCtx)
	labelDone := make(chan struct{})
	go func() {
		defer close(labelDone)
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			s.log.Error("control-plane label: client", "err", err)
			return
		}
		labelOwnNode(cpCtx, client, s.cfg.NodeName, s.log.With("component", "node-label"))
	}()
	encryptionDone := s.watchEncryption(runCtx, db.Client(), layout, keeper, encRev)

	select {
	case <-ctx.Done():
		s.log.Info("stopping")
	case err = <-apiDone:
		apiDone <- err
	case err = <-db.Err():
		err = fmt.Errorf("etcd failed: %w", err)
	}
	stopControlPlane()
	if cpErr := <-cpDone; cpErr != nil && err == nil {
		err = cpErr
	}
	<-snapDone
	<-membershipDone
	<-tokensDone
	<-labelDone
	cancel()
	<-encryptionDone
	<-authDone
	if apiErr := <-apiDone; apiErr != nil && err == nil {
		err = apiErr
	}
	if cerr := db.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.log.Info("stopped")
	return err
}

type tlsFiles struct {
	ca                      *pki.CA
	servingCert, servingKey string
	adminKubeconfig         []byte
	// kubeletClient is the API server's identity towards kubelets.
	kubeletClient tls.Certificate
}

// ensureTLS creates (first start) or loads the CA, the serving and admin
// certificates, the join token and the admin kubeconfig.
func (s *Server) ensureTLS(layout config.Layout) (*tlsFiles, error) {
	ca, err := pki.EnsureCA(layout.TLSDir())
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	dns, ips := s.servingSANs()
	certFile, keyFile, err := ca.EnsureServingCert(layout.TLSDir(), "serving-kube-apiserver", dns, ips)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	adminCert, adminKey, err := ca.EnsureClientCert(layout.TLSDir(), "client-admin", "system:admin", []string{"system:masters"})
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	kcCert, kcKey, err := ca.EnsureClientCert(layout.TLSDir(), "client-kube-apiserver-kubelet", "kube-apiserver-kubelet-client", []string{"system:masters"})
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	kubeletClient, err := tls.X509KeyPair(kcCert, kcKey)
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	if s.cfg.JoinURL == "" && !etcd.MemberExists(layout.EtcdDir()) {
		// A new cluster's server token is --token when given, as k3s.
		if err := adoptFlagToken(layout, s.cfg.Token, ca.CertPEM); err != nil {
			return nil, fmt.Errorf("server token: %w", err)
		}
	}
	if _, err := pki.EnsureToken(layout.TokenFile(), ca.CertPEM); err != nil {
		return nil, fmt.Errorf("server token: %w", err)
	}
	if _, err := pki.EnsureTokenFile(layout.AgentTokenFile(), ca.CertPEM, pki.AgentTokenUser); err != nil {
		return nil, fmt.Errorf("agent token: %w", err)
	}
	kc, err := pki.Kubeconfig("default", s.localURL(), ca.CertPEM, adminCert, adminKey)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(layout.AdminKubeconfig(), kc, 0o600); err != nil {
		return nil, fmt.Errorf("write admin kubeconfig: %w", err)
	}
	if p := s.cfg.KubeconfigPath; p != "" {
		mode := os.FileMode(s.cfg.KubeconfigMode)
		if mode == 0 {
			mode = 0o600
		}
		if err := pki.WriteFileAtomic(p, kc, mode); err != nil {
			return nil, fmt.Errorf("write kubeconfig to %s: %w (use --write-kubeconfig to choose another path)", p, err)
		}
	}
	if _, err := ensureServiceAccountKey(layout.ServiceAccountKeyFile()); err != nil {
		return nil, err
	}
	return &tlsFiles{ca: ca, servingCert: certFile, servingKey: keyFile, adminKubeconfig: kc, kubeletClient: kubeletClient}, nil
}

// bindIP is the one address the API listens on, or nil when it listens on
// all of them.
func (s *Server) bindIP() net.IP {
	if ip := net.ParseIP(s.cfg.BindAddress); ip != nil && !ip.IsUnspecified() {
		return ip
	}
	return nil
}

// localURL is the API's URL in the admin kubeconfig: loopback, unless the
// API listens on one address only.
func (s *Server) localURL() string {
	host := "127.0.0.1"
	if ip := s.bindIP(); ip != nil {
		host = ip.String()
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(s.cfg.HTTPSPort))
}

func (s *Server) advertiseIP() net.IP {
	if len(s.cfg.AdvertiseIPs) > 0 {
		return s.cfg.AdvertiseIPs[0]
	}
	if ip := s.bindIP(); ip != nil {
		return ip
	}
	return s.defaultAdvertiseIP()
}

// ownNamesAndIPs are the names and addresses that name this server in
// particular (not the service names, nor loopback): its node name, its
// --tls-san names and addresses, its advertise and bind addresses. Agents
// get no node certificate for them.
func (s *Server) ownNamesAndIPs() ([]string, []net.IP) {
	names := []string{s.cfg.NodeName}
	ips := append([]net.IP{s.advertiseIP()}, s.cfg.AdvertiseIPs...)
	if ip := s.bindIP(); ip != nil {
		ips = append(ips, ip)
	}
	sanNames, sanIPs := splitSANs(s.cfg.TLSSANs)
	return append(names, sanNames...), append(ips, sanIPs...)
}

// splitSANs splits --tls-san values into names and addresses.
func splitSANs(sans []string) (names []string, ips []net.IP) {
	for _, san := range sans {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			names = append(names, san)
		}
	}
	return names, ips
}

// servingSANs lists the names and addresses the serving certificate covers.
func (s *Server) servingSANs() ([]string, []net.IP) {
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc." + s.cfg.ClusterDomain}
	if h, err := os.Hostname(); err == nil && h != "" {
		dns = append(dns, h)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), firstServiceIP(s.cfg.ServiceCIDR)}
	ips = append(ips, s.cfg.AdvertiseIPs...)
	ips = append(ips, hostIPs()...)
	if ip := s.bindIP(); ip != nil {
		ips = append(ips, ip)
	}
	sanNames, sanIPs := splitSANs(s.cfg.TLSSANs)
	return append(dns, sanNames...), append(ips, sanIPs...)
}

func firstServiceIP(cidr *net.IPNet) net.IP {
	ip := make(net.IP, len(cidr.IP.To4()))
	copy(ip, cidr.IP.To4())
	ip[len(ip)-1]++
	return ip
}

// hostIPs are the node's global unicast addresses.
func hostIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
			out = append(out, n.IP)
		}
	}
	return out
}

// ReadKubeconfig returns the admin kubeconfig kept in the data dir.
func ReadKubeconfig(dataDir string) ([]byte, error) {
	p := config.Layout{DataDir: dataDir}.AdminKubeconfig()
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no kubeconfig at %s: has `skiff server --data-dir %s` run yet?", p, filepath.Clean(dataDir))
	}
	return data, err
}

// --- etcd snapshots and cluster reset ---

// SnapshotDir is where this server keeps its etcd snapshots.
func (s *Server) SnapshotDir() string {
	if d := s.cfg.EtcdSnapshots.Dir; d != "" {
		return d
	}
	return s.Layout().SnapshotDir()
}

// clusterReset runs before etcd starts. With a restore path it replaces the
// etcd data with that snapshot; without one it has etcd drop every other
// member on start, keeping the data. Either way this server then runs a
// one-member etcd cluster.
//
// It reports whether it reset: a restore done already is not done again.
func (s *Server) clusterReset(ctx context.Context, ec *etcd.Config) (bool, error) {
	snap := s.cfg.EtcdSnapshots
	if !snap.ClusterReset {
		return false, nil
	}
	if snap.RestorePath == "" {
		ec.ForceNewCluster = true
		s.log.Warn("cluster reset: etcd starts as the only member of its cluster, keeping its data; other servers must rejoin. Remove --cluster-reset before the next restart",
			"data-dir", ec.DataDir)
		return true, nil
	}
	// A restore is done once: flags left in a service unit must not
	// restore the same snapshot over newer data on every restart.
	marker := filepath.Join(filepath.Dir(ec.DataDir), "restored-from")
	stamp, err := snapshotStamp(snap.RestorePath)
	if err != nil {
		return false, fmt.Errorf("cluster reset: %w", err)
	}
	if done, _ := os.ReadFile(marker); string(done) == stamp {
		s.log.Warn("cluster reset: this snapshot was already restored; starting with the current data. Remove --cluster-reset and --cluster-reset-restore-path",
			"snapshot", snap.RestorePath)
		return false, nil
	}
	s.log.Warn("cluster reset: restoring etcd from a snapshot", "snapshot", snap.RestorePath, "data-dir", ec.DataDir)
	old, err := etcd.Restore(ctx, *ec, snap.RestorePath)
	if err != nil {
		return false, fmt.Errorf("cluster reset: %w", err)
	}
	if err := pki.WriteFileAtomic(marker, []byte(stamp), 0o600); err != nil {
		return false, fmt.Errorf("cluster reset: remember the restore: %w", err)
	}
	if old != "" {
		s.log.Warn("cluster reset: the previous etcd data was kept; delete it once the restored cluster is fine", "path", old)
	}
	s.log.Warn("cluster reset: restored; etcd is now a one-member cluster. Remove --cluster-reset and --cluster-reset-restore-path before the next restart, or it restores this snapshot again",
		"snapshot", snap.RestorePath)
	return true, nil
}

// startSnapshots runs scheduled etcd snapshots until ctx is done; the
// returned channel is closed once they have stopped.
func (s *Server) startSnapshots(ctx context.Context, cli *clientv3.Client) <-chan struct{} {
	done := make(chan struct{})
	snap := s.cfg.EtcdSnapshots
	if snap.Disable || snap.Schedule == "" {
		close(done)
		return done
	}
	sched, err := etcd.ParseSchedule(snap.Schedule) // checked by New already
	if err != nil {
		s.log.Error("etcd snapshots are off", "err", err)
		close(done)
		return done
	}
	lg := s.log.With("component", "etcd-snapshot")
	go func() {
		defer close(done)
		if err := etcd.RunSnapshotter(ctx, cli, etcd.SnapshotterConfig{
			Dir:       s.SnapshotDir(),
			Node:      s.cfg.NodeName,
			Schedule:  sched,
			Retention: snap.Retention,
			Logger:    lg,
		}); err != nil {
			lg.Error("etcd snapshots stopped", "err", err)
		}
	}()
	return done
}

// snapshotStamp names a snapshot file by path, size and modification time,
// which is enough to tell whether it was restored already.
func snapshotStamp(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d\n", abs, st.Size(), st.ModTime().UnixNano()), nil
}
