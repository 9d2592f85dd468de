// Package server is the kubelet's HTTPS API (port 10250): container logs,
// exec, attach and port-forward, speaking the protocols kubectl and
// client-go use, so the API server can proxy pods/log, pods/exec,
// pods/attach and pods/portforward to it unchanged.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Provider is what the kubelet gives the server.
type Provider interface {
	// LogPath returns the log file of the container's current (or previous)
	// instance and a func reporting whether that instance has exited (for
	// follow). Unknown pods or containers give a NotFound API error
	// (apierrors.NewNotFound); a missing previous instance gives an error
	// saying "previous terminated container ... not found" (any other error
	// than an API status is answered with 400 Bad Request).
	LogPath(ns, pod, container string, previous bool) (path string, exited func() bool, err error)
	// Exec runs cmd in the container with the given streams and returns its
	// exit code. err is for failures to run it at all.
	Exec(ctx context.Context, ns, pod, container string, cmd []string, streams Streams) (exitCode int, err error)
	// Attach connects the streams to the container's main process. It may
	// return an "attach not supported" error.
	Attach(ctx context.Context, ns, pod, container string, streams Streams) error
	// PortForward dials the port inside the pod's network namespace.
	PortForward(ctx context.Context, ns, pod string, port int32) (net.Conn, error)
}

// TermSize is a terminal size sent by the client of a tty session.
type TermSize struct{ Width, Height uint16 }

// Streams are the client's side of an exec or attach session. Unrequested
// streams are nil. Resize is closed when the session ends.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Tty            bool
	Resize         <-chan TermSize
}

// DefaultClientCN is the common name of the API server's kubelet client
// certificate, the only client allowed without Config.Client.
const DefaultClientCN = "kube-apiserver-kubelet-client"

// Config configures a Server.
type Config struct {
	Addr              string // listen address, e.g. ":10250"
	CertFile, KeyFile string // serving certificate
	// ClientCA verifies client certificates; a request without a verified
	// certificate is refused with 401 (except /healthz).
	ClientCA *x509.CertPool
	// Client, when set, is the node's client of the API server, which then
	// decides who may use this API (see authz.go): certificates verified
	// against ClientCA and bearer tokens (TokenReview) authenticate, and
	// every request needs a SubjectAccessReview allowing the user the
	// node's nodes/<subresource>. AllowedClientCNs is ignored then.
	Client kubernetes.Interface
	// NodeName is this node, the object of those reviews.
	NodeName string
	// Clock times the review caches (nil: the real clock).
	Clock cache.Clock
	// AllowedClientCNs are, without Client, the certificate common names
	// allowed to use the API (others get 403). Default: {DefaultClientCN}.
	AllowedClientCNs []string
	Provider         Provider
	Logger           *slog.Logger
}

// Server serves the kubelet API.
type Server struct {
	cfg     Config
	cert    tls.Certificate
	log     *slog.Logger
	handler http.Handler

	mu       sync.Mutex
	sessions map[io.Closer]struct{} // hijacked connections, closed on shutdown
}

// New validates cfg and loads the serving certificate.
func New(cfg Config) (*Server, error) {
	if cfg.Provider == nil {
		return nil, errors.New("kubelet server: no provider")
	}
	if cfg.ClientCA == nil {
		return nil, errors.New("kubelet server: no client CA")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":10250"
	}
	if cfg.Client != nil && cfg.NodeName == "" {
		return nil, errors.New("kubelet server: a node name is required to authorize requests")
	}
	if len(cfg.AllowedClientCNs) == 0 {
		cfg.AllowedClientCNs = []string{DefaultClientCN}
	} else {
		cfg.AllowedClientCNs = slices.Clone(cfg.AllowedClientCNs)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "kubelet-server"),
		sessions: map[io.Closer]struct{}{},
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kubelet server: load serving certificate: %w", err)
		}
		s.cert = cert
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler (with client authentication,
// which needs a TLS connection that verified the client certificate
// against Config.ClientCA, see TLSConfig).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig is the TLS configuration Run serves with: the serving
// certificate, client certificates verified against ClientCA when given,
// and HTTP/1.1 only, since streaming upgrades do not exist in HTTP/2.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.cfg.ClientCA,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
}

// Run serves until ctx ends, then stops: requests in flight are cancelled
// and streaming sessions (exec, attach, port-forward) are closed.
func (s *Server) Run(ctx context.Context) error {
	if len(s.cert.Certificate) == 0 {
		return errors.New("kubelet server: no serving certificate (CertFile/KeyFile)")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("kubelet server: listen %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.TLSConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		// Request contexts end with ctx, so log followers and sessions stop.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.log.Info("starting", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	s.log.Info("ready", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		s.closeSessions()
		return fmt.Errorf("kubelet server: serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("stopping")
	s.closeSessions()
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		srv.Close()
	}
	<-errc
	s.log.Info("stopped")
	return nil
}

// track registers a hijacked connection so shutdown can close it; the
// returned func unregisters it.
func (s *Server) track(c io.Closer) func() {
	s.mu.Lock()
	s.sessions[c] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.sessions, c)
		s.mu.Unlock()
	}
}

func (s *Server) closeSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.sessions {
		c.Close()
	}
	clear(s.sessions)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.handleLogs)
	for _, p := range []string{"/exec/{ns}/{pod}/{container}", "/exec/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.handleExec)
	}
	for _, p := range []string{"/attach/{ns}/{pod}/{container}", "/attach/{ns}/{pod}/{uid}/{container}"} {
		mux.HandleFunc(p, s.handleAttach)
	}
	for _, p := range []string{"/portForward/{ns}/{pod}", "/portForward/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(p, s.handlePortForward)
	}
	if s.cfg.Client != nil {
		clk := s.cfg.Clock
		if clk == nil {
			clk = clock.RealClock{}
		}
		return newDelegate(s.cfg.Client, s.cfg.NodeName, clk).filter(s, mux)
	}
	return s.authenticate(mux)
}

// authenticate admits only clients with a verified certificate whose
// common name is allowed. /healthz stays open so probes need no cert.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeStatus(w, apierrors.NewUnauthorized("a verified client certificate is required"))
			return
		}
		cn := r.TLS.VerifiedChains[0][0].Subject.CommonName
		if !slices.Contains(s.cfg.AllowedClientCNs, cn) {
			s.log.Warn("refused client", "cn", cn, "path", r.URL.Path)
			writeStatus(w, apierrors.NewForbidden(schemaNodes, "proxy",
				fmt.Errorf("user %q may not use the kubelet API", cn)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeStatus answers with err as a metav1.Status, the form client-go
// decodes into a readable error. Non-API errors become 500s.
func writeStatus(w http.ResponseWriter, err error) {
	var st metav1.Status
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		st = apiStatus.Status()
	} else {
		st = apierrors.NewInternalError(err).ErrStatus
	}
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&st)
}
