// Package apiserver serves the Kubernetes REST API over skiff's storage:
// discovery, CRUD, patch, watch, tables, subresources, authentication and
// admission (defaulting and validation from internal/registry). Handlers are
// generic over the registry's resources.
package apiserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	"skiff/internal/admission"
	"skiff/internal/config"
	"skiff/internal/openapi"
	"skiff/internal/pki"
	"skiff/internal/registry"
	"skiff/internal/storage"
)

// Config is what the API server needs.
type Config struct {
	Registry *registry.Registry
	Store    *storage.Store
	Logger   *slog.Logger

	BindAddress string
	Port        int
	// Listener, when set, is used instead of listening on BindAddress:Port.
	Listener net.Listener

	CertFile, KeyFile string
	ClientCA          *x509.CertPool
	// JoinTokens checks the join tokens the join endpoints take and
	// rotates them (join.go). No join token is an API credential.
	JoinTokens JoinTokens
	// CA, when set, is served at /cacerts, signs joining nodes'
	// certificates at /v1-skiff/node-certs, and verifies kubelets' serving
	// certificates when proxying to them (else ClientCA does).
	CA *pki.CA
	// KubeletClientCert is presented to kubelets when proxying pods/log,
	// exec, attach, portforward and nodes/proxy; without it those answer 503.
	KubeletClientCert *tls.Certificate
	// ServerJoin, when set, lets other servers join this one's cluster at
	// /v1-skiff/server-bootstrap and /v1-skiff/etcd-members.
	ServerJoin ServerJoiner
	// Auth, when set, authenticates with internal/auth, honours
	// impersonation and authorizes every request (authz.go).
	Auth *AuthConfig
	// PostStartHooks are work the server does once it serves, by name
	// (upstream's, such as "rbac/bootstrap-roles"): /readyz fails with
	// [-]poststarthook/<name> until each channel is closed.
	PostStartHooks map[string]<-chan struct{}
	// Admission, when set, returns plugins that run after the built-in
	// ones (ServiceAccount, NodeRestriction and RBAC escalation checks
	// with Auth); g reads stored objects for them.
	Admission func(g admission.Getter) []admission.Plugin

	// ServiceCIDR's first address is the kubernetes service's. Services'
	// addresses and node ports are allocated by the registry's service
	// strategy (registry.Options).
	ServiceCIDR *net.IPNet
	// AdvertiseIP is the address in the default/kubernetes endpoints.
	AdvertiseIP net.IP
	// ClusterDomain is the cluster's DNS domain (cluster.local when
	// empty): no node's serving certificate may name a service in it.
	ClusterDomain string
	// ServerNames and ServerIPs are this server's own names and addresses
	// (its node name, --tls-san, advertise addresses): only a server may
	// have a node certificate for them. Other servers' advertise addresses
	// are read from their registrations in etcd.
	ServerNames []string
	ServerIPs   []net.IP
	// ClusterDNS, when set, is reserved for the kube-system/kube-dns service
	// that every node's agent answers on.
	ClusterDNS net.IP
	// Version is skiff's version, reported in /version.
	Version string
	// EventTTL is how long events are kept (0: Kubernetes' 1 hour).
	EventTTL time.Duration

	// High availability (apiserverlease.go, quorum.go).
	//
	// Etcd, when set, registers this server under /skiff/apiserver-leases/
	// on an etcd lease, and default/kubernetes lists every registered
	// server; when nil it lists only this server.
	Etcd *clientv3.Client
	// EndpointLeaseTTL is how long a server that died without revoking its
	// registration stays in default/kubernetes (0: 15 s).
	EndpointLeaseTTL time.Duration
	// Quorum returns nil while this server's etcd member sees a leader, else
	// why not; then /api and /apis requests answer 503 and /readyz fails.
	// Nil means always fine.
	Quorum func() error
}

// Server is the API server.
type Server struct {
	cfg       Config
	log       *slog.Logger
	reg       *registry.Registry
	store     *storage.Store
	admission admission.Chain
	fields    *fieldManagers
	handler   http.Handler
	protobuf  *protobuf.Serializer
	ready     chan struct{}
	// kubelets carries proxied requests to kubelets.
	kubelets *http.Transport
	openapi  *openapi.Service
}

// maxBodyBytes is the largest request body accepted, as Kubernetes' 3 MiB.
const maxBodyBytes = 3 << 20

// New builds a server; Run starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Store == nil {
		return nil, errors.New("apiserver: registry and store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ServiceCIDR == nil {
		cfg.ServiceCIDR = config.DefaultServer().ServiceCIDR
	}
	if cfg.EventTTL == 0 {
		cfg.EventTTL = time.Hour
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "apiserver"),
		reg:   cfg.Registry,
		store: cfg.Store,
		ready: make(chan struct{}),
	}
	if _, ok := cfg.Registry.Lookup("", "v1", "namespaces"); !ok {
		return nil, errors.New("apiserver: the registry serves no namespaces")
	}
	s.admission = admission.Default(storeGetter{s})
	if cfg.Admission != nil {
		s.admission = append(s.admission, cfg.Admission(storeGetter{s})...)
	}
	s.fields = newFieldManagers(cfg.Registry.Scheme())
	s.protobuf = protobuf.NewSerializer(cfg.Registry.Scheme(), cfg.Registry.Scheme())
	s.kubelets = s.kubeletTransport()
	var err error
	if s.openapi, err = s.newOpenAPI(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the server's HTTP handler (authentication included).
func (s *Server) Handler() http.Handler { return s.handler }

// Ready is closed once the server serves and the default objects exist.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln := s.cfg.Listener
	if ln == nil {
		addr := net.JoinHostPort(s.cfg.BindAddress, strconv.Itoa(s.cfg.Port))
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("apiserver: listen on %s: %w (is another server using the port? set --https-listen-port)", addr, err)
		}
	}
	certs, err := newCertReloader(s.cfg.CertFile, s.cfg.KeyFile, s.log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("apiserver: load serving certificate: %w", err)
	}
	srv := &http.Server{
		Handler: s.handler,
		TLSConfig: &tls.Config{
			GetCertificate: certs.get,
			ClientAuth:     tls.VerifyClientCertIfGiven,
			ClientCAs:      s.cfg.ClientCA,
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
		},
		ReadHeaderTimeout: 30 * time.Second,
		// As kube-apiserver: an idle keep-alive connection is closed
		// after 90 s, so clients that went away do not hold sockets.
		IdleTimeout: 90 * time.Second,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	cacheCtx, stopCache := context.WithCancel(ctx)
	cacheDone := s.startWatchCache(cacheCtx)
	defer func() { stopCache(); <-cacheDone }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()

	if err := s.bootstrap(ctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("apiserver: create default objects: %w", err)
	}
	crds, err := newCRDServer(s)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("apiserver: %w", err)
	}
	crdCtx, stopCRDs := context.WithCancel(ctx)
	crdsDone, err := crds.start(crdCtx)
	if err != nil {
		stopCRDs()
		_ = srv.Close()
		return fmt.Errorf("apiserver: %w", err)
	}
	defer func() { stopCRDs(); <-crdsDone }()
	endpointsCtx, stopEndpoints := context.WithCancel(ctx)
	endpointsDone, err := s.startEndpointReconciler(endpointsCtx)
	defer func() { stopEndpoints(); <-endpointsDone }()
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("apiserver: %w", err)
	}
	if err := s.store.WaitWatchCache(ctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("apiserver: %w", err)
	}
	s.log.Info("ready", "address", ln.Addr().String())
	close(s.ready)

	select {
	case err := <-serveErr:
		return fmt.Errorf("apiserver: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Watches never finish on their own; Shutdown waits for them up to the
	// timeout, then Close cuts them.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	s.kubelets.CloseIdleConnections()
	s.log.Info("stopped")
	return nil
}
