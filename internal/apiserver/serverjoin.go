package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Paths with which another server joins: it fetches the cluster's sealed
// bootstrap data, then asks to be added as an etcd member. Both need the
// server token (or a server's admin client certificate); the agent token
// is refused.
const (
	ServerBootstrapPath = "/v1-skiff/server-bootstrap"
	EtcdMembersPath     = "/v1-skiff/etcd-members"
)

// ServerJoiner lets servers join this one's cluster.
type ServerJoiner interface {
	// BootstrapData is the cluster's bootstrap data (CA key, tokens),
	// sealed with a key derived from the server token's secret: only a
	// holder of the token can open it. secret is the current server
	// token's secret the caller sent, or "" for this server's own.
	BootstrapData(ctx context.Context, secret string) ([]byte, error)
	// AddServer adds a learner member named name reachable at peerURL and
	// returns the initial-cluster setting it starts etcd with. It never
	// removes a voting member. Errors that are the request's fault are
	// Kubernetes API errors.
	AddServer(ctx context.Context, name, peerURL string) (initialCluster string, err error)
}

// ServerBootstrapResponse is the answer to GET /v1-skiff/server-bootstrap.
type ServerBootstrapResponse struct {
	Sealed []byte `json:"sealed"`
}

// EtcdMemberRequest is the body of POST /v1-skiff/etcd-members.
type EtcdMemberRequest struct {
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
}

// EtcdMemberResponse is the answer to POST /v1-skiff/etcd-members.
type EtcdMemberResponse struct {
	InitialCluster string `json:"initialCluster"`
}

func (s *Server) serveServerBootstrap(w http.ResponseWriter, r *http.Request) {
	secret, ok := s.serverJoinAllowed(w, r, http.MethodGet)
	if !ok {
		return
	}
	sealed, err := s.cfg.ServerJoin.BootstrapData(r.Context(), secret)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, &ServerBootstrapResponse{Sealed: sealed})
}

func (s *Server) serveEtcdMembers(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.serverJoinAllowed(w, r, http.MethodPost); !ok {
		return
	}
	var req EtcdMemberRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBodyBytes)).Decode(&req); err != nil {
		writeError(w, s.log, badRequest("decode etcd member request: %v", err))
		return
	}
	if errs := validateEtcdMemberRequest(&req); len(errs) > 0 {
		writeError(w, s.log, apierrors.NewBadRequest(errs.ToAggregate().Error()))
		return
	}
	initial, err := s.cfg.ServerJoin.AddServer(r.Context(), req.Name, req.PeerURL)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	s.log.Info("server joining", "name", req.Name, "peer-url", req.PeerURL, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusCreated, &EtcdMemberResponse{InitialCluster: initial})
}

// serverJoinAllowed answers the request itself, with an error, unless
// servers may join, the caller may join one (the server token, or a
// server's admin client certificate) and the method is right. It returns
// the server token's secret the caller sent ("" for a certificate).
func (s *Server) serverJoinAllowed(w http.ResponseWriter, r *http.Request, method string) (string, bool) {
	if s.cfg.ServerJoin == nil {
		writeError(w, s.log, apierrors.NewNotFound(joinResource(), "servers"))
		return "", false
	}
	caller, err := s.callerOf(r)
	switch {
	case err != nil:
		writeError(w, s.log, err)
	case caller.role == JoinRoleAgent && !caller.admin:
		writeError(w, s.log, apierrors.NewForbidden(joinResource(), "servers", errors.New(
			"the agent token joins agents only: a server joins with the server token (`skiff token` on a server)")))
	case caller.role != JoinRoleServer && !caller.admin:
		writeError(w, s.log, errJoinUnauthorized())
	case r.Method != method:
		writeError(w, s.log, apierrors.NewMethodNotSupported(joinResource(), r.Method))
	default:
		if caller.role != JoinRoleServer {
			return "", true
		}
		return caller.secret, true
	}
	return "", false
}

func validateEtcdMemberRequest(req *EtcdMemberRequest) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(req.Name) {
		errs = append(errs, field.Invalid(field.NewPath("name"), req.Name, msg))
	}
	u, err := url.Parse(req.PeerURL)
	switch {
	case err != nil:
		errs = append(errs, field.Invalid(field.NewPath("peerURL"), req.PeerURL, err.Error()))
	case u.Scheme != "https" || u.Port() == "" || u.Path != "" && u.Path != "/":
		errs = append(errs, field.Invalid(field.NewPath("peerURL"), req.PeerURL, "want https://IP:PORT"))
	case net.ParseIP(u.Hostname()) == nil:
		errs = append(errs, field.Invalid(field.NewPath("peerURL"), req.PeerURL, "the host must be an IP address"))
	case net.ParseIP(u.Hostname()).IsUnspecified():
		errs = append(errs, field.Invalid(field.NewPath("peerURL"), req.PeerURL, "other servers cannot reach an unspecified address: start the joining server with --node-ip"))
	}
	return errs
}
