// Package stack assembles internal/auth's pieces the way the API server
// uses them, over one shared informer factory: the authenticator chain
// (client certificates, service-account tokens, anonymous), the authorizer
// chain (system:masters, the node authorizer, RBAC), the escalation
// checks and NodeRestriction for admission, the token signer for
// TokenRequest, and the issuer's discovery documents.
package stack

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/auth"
	"skiff/internal/auth/node"
	"skiff/internal/auth/rbac"
	"skiff/internal/auth/serviceaccount"
)

// DefaultIssuer is the service-account issuer when none is configured, as
// kubeadm and k3s set it.
const DefaultIssuer = "https://kubernetes.default.svc.cluster.local"

// Config is what the stack needs.
type Config struct {
	// Client writes through the API (the aggregation controller) and
	// looks up objects the caches do not hold yet (fresh pods).
	Client kubernetes.Interface
	// Informers is the process's shared factory; New registers the
	// informers it needs, and the caller starts the factory.
	Informers informers.SharedInformerFactory
	// ClientCA verifies client certificates; nil trusts the TLS server's
	// own verification.
	ClientCA *x509.CertPool
	// Issuer is the service-account issuer URL (empty: DefaultIssuer).
	Issuer string
	// JWKSURI is where the discovery document says the keys are; empty
	// means the issuer's host. Set it to the API server's external
	// address (https://<address>:6443/openid/v1/jwks) when the issuer's
	// host resolves only inside the cluster, as upstream's
	// --service-account-jwks-uri.
	JWKSURI string
	// APIAudiences are the audiences the API accepts in bound tokens
	// (empty: the issuer).
	APIAudiences []string
	// SigningKey signs service-account tokens (RSA or ECDSA); every server
	// of a cluster must hold the same one.
	SigningKey crypto.Signer
	// VerifyKeys are older public keys whose tokens are still accepted.
	VerifyKeys []crypto.PublicKey
	// MaxTokenExpiration, when set, caps the life of requested tokens.
	MaxTokenExpiration time.Duration
	// DisableAnonymous refuses requests without credentials (401) instead
	// of treating them as system:anonymous.
	DisableAnonymous bool
	Logger           *slog.Logger
}

// Stack is the assembled authentication and authorization.
type Stack struct {
	// Authenticator is the API server's request authenticator.
	Authenticator auth.Authenticator
	// Tokens authenticates service-account tokens (TokenReview).
	Tokens auth.TokenAuthenticator
	// Authorizer decides requests and lists rules for reviews.
	Authorizer auth.AuthorizerResolver
	// RBAC is the RBAC authorizer alone (rules of a subject).
	RBAC *rbac.Authorizer
	// Escalation guards writes to roles and bindings.
	Escalation *rbac.EscalationChecker
	// NodeRestriction is the admission check for nodes' writes.
	NodeRestriction *node.NodeRestriction
	// Signer issues tokens for TokenRequest; Getter finds their bound
	// objects.
	Signer *serviceaccount.Signer
	Getter serviceaccount.Getter
	// OpenIDConfiguration and JWKS serve the issuer's discovery documents;
	// nil unless the issuer is an https URL.
	OpenIDConfiguration, JWKS http.Handler
	// Aggregation fills aggregated ClusterRoles. It is a controller: run
	// it on the leader only (it is a controller manager Runner).
	Aggregation *rbac.AggregationController

	tokenOpts serviceaccount.TokenRequestOptions
	synced    []cache.InformerSynced
}

// New assembles the stack. Nothing runs until the caller starts the
// informer factory; HasSynced says when decisions are complete.
func New(cfg Config) (*Stack, error) {
	if cfg.Client == nil || cfg.Informers == nil || cfg.SigningKey == nil {
		return nil, errors.New("auth stack: a client, an informer factory and a signing key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if len(cfg.APIAudiences) == 0 {
		cfg.APIAudiences = []string{cfg.Issuer}
	}
	f := cfg.Informers
	core, rbacInf := f.Core().V1(), f.Rbac().V1()

	s := &Stack{tokenOpts: serviceaccount.TokenRequestOptions{Audiences: cfg.APIAudiences, MaxExpiration: cfg.MaxTokenExpiration}}
	listers := rbac.Listers{
		Roles: rbacInf.Roles().Lister(), RoleBindings: rbacInf.RoleBindings().Lister(),
		ClusterRoles: rbacInf.ClusterRoles().Lister(), ClusterRoleBindings: rbacInf.ClusterRoleBindings().Lister(),
	}
	s.RBAC = rbac.New(listers)
	graph, err := node.NewGraph(core.Pods(), core.PersistentVolumeClaims(), core.PersistentVolumes())
	if err != nil {
		return nil, err
	}
	s.Authorizer = auth.NewAuthorizer(node.NewAuthorizer(graph), s.RBAC)
	s.Escalation = rbac.NewEscalationChecker(s.Authorizer, s.RBAC)
	s.NodeRestriction = node.NewNodeRestriction(core.Pods().Lister(), core.Nodes().Lister())

	if s.Signer, err = serviceaccount.NewSigner(cfg.Issuer, cfg.SigningKey); err != nil {
		return nil, err
	}
	s.Getter = serviceaccount.ListerGetter{
		ServiceAccounts: core.ServiceAccounts().Lister(), Pods: core.Pods().Lister(),
		Secrets: core.Secrets().Lister(), Nodes: core.Nodes().Lister(), Client: cfg.Client,
	}
	keys := append([]crypto.PublicKey{cfg.SigningKey.Public()}, cfg.VerifyKeys...)
	if s.Tokens, err = serviceaccount.NewAuthenticator(serviceaccount.AuthenticatorConfig{
		Issuers: []string{cfg.Issuer}, Keys: keys, Audiences: cfg.APIAudiences, Legacy: true, Getter: s.Getter,
	}); err != nil {
		return nil, err
	}
	s.Authenticator = auth.NewAuthenticator(!cfg.DisableAnonymous, auth.X509(cfg.ClientCA), auth.BearerToken(s.Tokens))

	if u, err := url.Parse(cfg.Issuer); err == nil && u.Scheme == "https" {
		if s.OpenIDConfiguration, s.JWKS, err = serviceaccount.DiscoveryHandlers(cfg.Issuer, cfg.JWKSURI, keys); err != nil {
			return nil, fmt.Errorf("auth stack: %w", err)
		}
	}
	if s.Aggregation, err = rbac.NewAggregationController(cfg.Client, rbacInf.ClusterRoles(), cfg.Logger); err != nil {
		return nil, err
	}
	s.synced = []cache.InformerSynced{
		rbacInf.Roles().Informer().HasSynced, rbacInf.RoleBindings().Informer().HasSynced,
		rbacInf.ClusterRoles().Informer().HasSynced, rbacInf.ClusterRoleBindings().Informer().HasSynced,
		graph.HasSynced, core.Nodes().Informer().HasSynced,
		core.ServiceAccounts().Informer().HasSynced, core.Secrets().Informer().HasSynced,
	}
	return s, nil
}

// HasSynced reports whether every cache the stack decides from has its
// first list; until then RBAC would deny what it should allow.
func (s *Stack) HasSynced() bool {
	for _, f := range s.synced {
		if !f() {
			return false
		}
	}
	return true
}

// IssueToken answers a TokenRequest for sa (POST
// serviceaccounts/<name>/token) with the API server's audiences and limits.
func (s *Stack) IssueToken(ctx context.Context, sa *corev1.ServiceAccount, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return s.Signer.IssueRequest(ctx, s.Getter, sa, req, s.tokenOpts)
}
