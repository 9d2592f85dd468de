package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/join"
	"skiff/internal/storage"
)

// The join protocol's paths and bodies are shared with the agent in
// internal/join.
const (
	CACertsPath   = join.CACertsPath
	NodeCertsPath = join.NodeCertsPath
)

// NodeCertsRequest is the body of POST /v1-skiff/node-certs.
type NodeCertsRequest = join.NodeCertsRequest

// NodeCertsResponse is the answer to POST /v1-skiff/node-certs.
type NodeCertsResponse = join.NodeCertsResponse

// maxJoinBodyBytes bounds an unauthenticated-until-checked body; two CSRs
// and a few names fit many times over.
const maxJoinBodyBytes = 256 << 10

func (s *Server) serveCACerts(w http.ResponseWriter, r *http.Request) {
	if s.cfg.CA == nil {
		writeError(w, s.log, apierrors.NewNotFound(joinResource(), "cacerts"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, s.log, apierrors.NewMethodNotSupported(joinResource(), r.Method))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.cfg.CA.CertPEM)
}

// JoinRole is what a join token grants.
type JoinRole int

const (
	// JoinRoleNone: not a current join token.
	JoinRoleNone JoinRole = iota
	// JoinRoleAgent: the agent token joins agents only.
	JoinRoleAgent
	// JoinRoleServer: the server token joins servers and agents.
	JoinRoleServer
)

// JoinTokens checks and rotates the cluster's join tokens.
type JoinTokens interface {
	// Role is what the token secret grants now. An error says it cannot
	// tell (etcd unreachable), not that the secret is wrong.
	Role(ctx context.Context, secret string) (JoinRole, error)
	// Rotate replaces the token of role with one of secret (a random one
	// when empty) on every server and returns the new full token. Errors
	// that are the request's fault are Kubernetes API errors.
	Rotate(ctx context.Context, role JoinRole, secret string) (string, error)
}

// joinCaller is who calls a join endpoint.
type joinCaller struct {
	role JoinRole
	// secret is the join token's secret, when the caller sent one.
	secret string
	// admin: a client certificate of group system:masters, as every
	// server holds.
	admin bool
}

// callerOf authenticates a join endpoint's caller: a verified client
// certificate of a cluster admin (group system:masters), or a join token
// ("K10<hash>::<user>:<secret>" or its secret) as a bearer token.
func (s *Server) callerOf(r *http.Request) (joinCaller, error) {
	var c joinCaller
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 &&
		slices.Contains(r.TLS.PeerCertificates[0].Subject.Organization, "system:masters") {
		c.admin = true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || s.cfg.JoinTokens == nil {
		return c, nil
	}
	token = strings.TrimSpace(token)
	if i := strings.LastIndex(token, ":"); i >= 0 {
		token = token[i+1:]
	}
	if token == "" {
		return c, nil
	}
	role, err := s.cfg.JoinTokens.Role(r.Context(), token)
	if err != nil {
		s.log.Warn("cannot check a join token", "err", err)
		return c, apierrors.NewServiceUnavailable("cannot check the join token now; retry in a moment")
	}
	c.role = role
	if role != JoinRoleNone {
		c.secret = token
	}
	return c, nil
}

// errJoinUnauthorized answers a join request without a current token.
func errJoinUnauthorized() error {
	return apierrors.NewUnauthorized("Unauthorized: a valid join token is required (Authorization: Bearer <token>)")
}

// serveNodeCerts signs a joining node's client and serving certificates.
// The node's identity comes from the validated request, never from the
// CSRs, so the token grants node certificates and nothing more. A node
// joining with the agent token gets a serving certificate for its own
// names and addresses only (nodeSANs).
func (s *Server) serveNodeCerts(w http.ResponseWriter, r *http.Request) {
	if s.cfg.CA == nil {
		writeError(w, s.log, apierrors.NewNotFound(joinResource(), "node-certs"))
		return
	}
	caller, err := s.callerOf(r)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	if caller.role == JoinRoleNone {
		writeError(w, s.log, errJoinUnauthorized())
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, s.log, apierrors.NewMethodNotSupported(joinResource(), r.Method))
		return
	}
	var req NodeCertsRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBodyBytes))
	if err := dec.Decode(&req); err != nil {
		writeError(w, s.log, badRequest("decode node certificate request: %v", err))
		return
	}
	ips, errs := validateNodeCertsRequest(&req)
	if len(errs) > 0 {
		writeError(w, s.log, apierrors.NewBadRequest(errs.ToAggregate().Error()))
		return
	}
	if errs := s.checkNodeSANs(r, caller.role, &req, ips); len(errs) > 0 {
		writeError(w, s.log, apierrors.NewForbidden(joinResource(), "node-certs", errs.ToAggregate()))
		return
	}
	if err := s.checkNodePassword(r.Context(), req.NodeName, req.NodePassword); err != nil {
		writeError(w, s.log, err)
		return
	}
	user := "system:node:" + req.NodeName
	groups := []string{"system:nodes"}
	clientPEM, err := s.cfg.CA.SignClientCSR([]byte(req.ClientCSR), user, groups)
	if err != nil {
		writeError(w, s.log, apierrors.NewBadRequest(field.Invalid(field.NewPath("clientCSR"), "<PEM>", err.Error()).Error()))
		return
	}
	dns := append([]string{req.NodeName}, req.Hostnames...)
	if caller.role == JoinRoleServer {
		// A server's own agent is reached on loopback too; an agent's
		// certificate must not be good for another machine's loopback.
		dns = append(dns, "localhost")
		ips = append(ips, net.IPv4(127, 0, 0, 1))
	}
	servingPEM, err := s.cfg.CA.SignServingCSR([]byte(req.ServingCSR), user, groups, dns, ips)
	if err != nil {
		writeError(w, s.log, apierrors.NewBadRequest(field.Invalid(field.NewPath("servingCSR"), "<PEM>", err.Error()).Error()))
		return
	}
	resp := &NodeCertsResponse{ClientCert: string(clientPEM), ServingCert: string(servingPEM), CA: string(s.cfg.CA.CertPEM)}
	for _, c := range []struct {
		csr, field, user string
		out              *string
	}{
		{req.ProxyCSR, "proxyCSR", join.ProxyUser, &resp.ProxyCert},
		{req.DNSCSR, "dnsCSR", join.DNSUser, &resp.DNSCert},
	} {
		if c.csr == "" {
			continue // an agent of an older version
		}
		certPEM, err := s.cfg.CA.SignClientCSR([]byte(c.csr), c.user, nil)
		if err != nil {
			writeError(w, s.log, apierrors.NewBadRequest(field.Invalid(field.NewPath(c.field), "<PEM>", err.Error()).Error()))
			return
		}
		*c.out = string(certPEM)
	}
	s.log.Info("signed node certificates", "node", req.NodeName, "addresses", req.Addresses, "remote", r.RemoteAddr, "token", caller.role.String())
	writeJSON(w, http.StatusOK, resp)
}

func (r JoinRole) String() string {
	switch r {
	case JoinRoleAgent:
		return "agent"
	case JoinRoleServer:
		return "server"
	}
	return "none"
}

// serveTokens rotates a join token; only a cluster admin's client
// certificate may (`skiff token rotate` uses the server's admin
// kubeconfig).
func (s *Server) serveTokens(w http.ResponseWriter, r *http.Request) {
	caller, err := s.callerOf(r)
	switch {
	case s.cfg.JoinTokens == nil:
		writeError(w, s.log, apierrors.NewNotFound(joinResource(), "tokens"))
		return
	case err != nil:
		writeError(w, s.log, err)
		return
	case !caller.admin:
		writeError(w, s.log, apierrors.NewForbidden(joinResource(), "tokens", errors.New("only a cluster admin's client certificate (group system:masters) may rotate join tokens; run `skiff token rotate` on a server")))
		return
	case r.Method != http.MethodPost:
		writeError(w, s.log, apierrors.NewMethodNotSupported(joinResource(), r.Method))
		return
	}
	var req join.RotateTokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJoinBodyBytes)).Decode(&req); err != nil {
		writeError(w, s.log, badRequest("decode token rotation request: %v", err))
		return
	}
	var role JoinRole
	switch req.Role {
	case join.TokenRoleServer:
		role = JoinRoleServer
	case join.TokenRoleAgent:
		role = JoinRoleAgent
	default:
		writeError(w, s.log, apierrors.NewBadRequest(field.NotSupported(field.NewPath("role"), req.Role, []string{join.TokenRoleServer, join.TokenRoleAgent}).Error()))
		return
	}
	secret := strings.TrimSpace(req.Secret)
	if i := strings.LastIndex(secret, ":"); i >= 0 {
		secret = secret[i+1:]
	}
	if req.Secret != "" && len(secret) < 16 {
		writeError(w, s.log, apierrors.NewBadRequest(field.Invalid(field.NewPath("secret"), "<secret>", "a token secret has at least 16 characters").Error()))
		return
	}
	token, err := s.cfg.JoinTokens.Rotate(r.Context(), role, secret)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	s.log.Info("rotated a join token", "token", role.String(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, &join.RotateTokenResponse{Token: token})
}

func validateNodeCertsRequest(req *NodeCertsRequest) ([]net.IP, field.ErrorList) {
	var errs field.ErrorList
	if req.NodeName == "" {
		errs = append(errs, field.Required(field.NewPath("nodeName"), "the node's name"))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(req.NodeName) {
			errs = append(errs, field.Invalid(field.NewPath("nodeName"), req.NodeName, msg))
		}
	}
	for i, h := range req.Hostnames {
		for _, msg := range validation.IsDNS1123Subdomain(h) {
			errs = append(errs, field.Invalid(field.NewPath("hostnames").Index(i), h, msg))
		}
	}
	var ips []net.IP
	for i, a := range req.Addresses {
		ip := net.ParseIP(a)
		if ip == nil {
			errs = append(errs, field.Invalid(field.NewPath("addresses").Index(i), a, "must be an IP address"))
			continue
		}
		ips = append(ips, ip)
	}
	if req.NodePassword == "" {
		errs = append(errs, field.Required(field.NewPath("nodePassword"), "a secret the node keeps"))
	}
	if req.ClientCSR == "" {
		errs = append(errs, field.Required(field.NewPath("clientCSR"), "a PEM certificate request"))
	}
	if req.ServingCSR == "" {
		errs = append(errs, field.Required(field.NewPath("servingCSR"), "a PEM certificate request"))
	}
	return ips, errs
}

// NodePasswordSecret is the name of the Secret in kube-system that pins
// node to the password of its first join. Deleting it lets another machine
// take the name.
func NodePasswordSecret(node string) string { return node + ".node-password.skiff" }

// checkNodePassword stores the hash of a node's password on its first
// join and checks it on later ones. The create is a compare-and-swap in
// etcd, so of two machines racing for a new name exactly one wins.
func (s *Server) checkNodePassword(ctx context.Context, node, password string) error {
	res, ok := s.reg.Lookup("", "v1", "secrets")
	if !ok {
		return errors.New("the registry serves no secrets")
	}
	sum := sha256.Sum256([]byte(password))
	hash := []byte(hex.EncodeToString(sum[:]))
	name := NodePasswordSecret(node)
	k := key(res, metav1.NamespaceSystem, name)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: metav1.NamespaceSystem,
			UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{"skiff.io/node": node},
		},
		Type: "skiff.io/node-password",
		Data: map[string][]byte{"hash": hash},
	}
	secret.SetGroupVersionKind(res.GVK())
	res.PrepareForCreate(secret)
	res.Default(secret)
	_, err := s.store.Create(ctx, k, secret)
	if err == nil {
		s.log.Info("pinned node password", "node", node, "secret", metav1.NamespaceSystem+"/"+name)
		return nil
	}
	if !errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("store node password of %s: %w", node, err)
	}
	obj, err := s.store.Get(ctx, k)
	if err != nil {
		return fmt.Errorf("read node password of %s: %w", node, err)
	}
	cur, ok := obj.(*corev1.Secret)
	if !ok || subtle.ConstantTimeCompare(cur.Data["hash"], hash) != 1 {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, node, fmt.Errorf(
			"the node name is taken by a machine with another node password; to hand the name to a new machine, delete secret %s/%s", metav1.NamespaceSystem, name))
	}
	return nil
}

// joinResource names the join endpoints in errors.
func joinResource() schema.GroupResource {
	return schema.GroupResource{Group: "skiff", Resource: "joins"}
}
