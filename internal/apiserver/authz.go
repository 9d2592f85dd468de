package apiserver

import (
	"context"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"

	"skiff/internal/auth"
	"skiff/internal/auth/stack"
)

// AuthConfig turns on authentication, impersonation and authorization
// with internal/auth. Without it (Config.Auth nil) the server keeps its
// first-wave behaviour: any client certificate is a cluster admin (a join
// token is not: it opens the join endpoints only).
type AuthConfig struct {
	// Authenticator identifies callers (auth.NewAuthenticator over
	// auth.X509, auth.BearerToken with service-account tokens, and
	// anonymous).
	Authenticator auth.Authenticator
	// Authorizer decides every request (auth.NewAuthorizer over the node
	// authorizer and RBAC) and answers rules reviews.
	Authorizer auth.AuthorizerResolver
	// Tokens answer TokenReviews (the service-account authenticator).
	Tokens []auth.TokenAuthenticator
	// Synced, when set, reports whether the authorizer's caches are
	// complete. Until then a request the authorizer does not allow gets
	// 503 with Retry-After (not a 403 that would be wrong a moment
	// later), and the health and version paths are served to anyone.
	Synced func() bool
	// OpenIDConfiguration and JWKS, when set, serve the service-account
	// issuer's discovery documents (serviceaccount.DiscoveryHandlers);
	// the authorizer decides who may read them.
	OpenIDConfiguration, JWKS http.Handler
}

// NewAuthConfig is the AuthConfig of an assembled auth stack.
func NewAuthConfig(st *stack.Stack) *AuthConfig {
	return &AuthConfig{
		Authenticator:       st.Authenticator,
		Authorizer:          st.Authorizer,
		Tokens:              []auth.TokenAuthenticator{st.Tokens},
		Synced:              st.HasSynced,
		OpenIDConfiguration: st.OpenIDConfiguration,
		JWKS:                st.JWKS,
	}
}

// Discovery paths of the service-account issuer, as upstream.
const (
	openIDConfigurationPath = "/.well-known/openid-configuration"
	jwksPath                = "/openid/v1/jwks"
)

// handleIssuerDiscovery adds the issuer's documents to mux when configured.
func (s *Server) handleIssuerDiscovery(mux *http.ServeMux) {
	if s.cfg.Auth == nil {
		return
	}
	if h := s.cfg.Auth.OpenIDConfiguration; h != nil {
		mux.Handle(openIDConfigurationPath, h)
	}
	if h := s.cfg.Auth.JWKS; h != nil {
		mux.Handle(jwksPath, h)
	}
}

// guard is the API's front door: with Config.Auth it authenticates,
// applies impersonation and authorizes; without, it is authenticate.
func (s *Server) guard(next http.Handler) http.Handler {
	a := s.cfg.Auth
	if a == nil {
		return s.authenticate(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok, err := a.Authenticator.Authenticate(r)
		if !ok {
			if err != nil {
				s.log.Debug("authentication failed", "path", r.URL.Path, "err", err)
			}
			writeError(w, s.log, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		ctx := r.Context()
		imp, err := auth.Impersonate(ctx, u, r.Header, a.Authorizer)
		if err != nil {
			writeError(w, s.log, err)
			return
		}
		if imp != nil {
			u = imp
			auth.DeleteImpersonationHeaders(r.Header)
		}
		attrs := requestAttributes(r, u)
		if err := s.authorizeRequest(ctx, attrs); err != nil {
			writeError(w, s.log, err)
			return
		}
		// Pods' exec, attach and port-forward over a WebSocket are GETs
		// that act like creates: both verbs are needed, as upstream.
		if attrs.ResourceRequest && attrs.Verb == "get" && attrs.Resource == "pods" &&
			(attrs.Subresource == "exec" || attrs.Subresource == "attach" || attrs.Subresource == "portforward") {
			attrs.Verb = "create"
			if err := s.authorizeRequest(ctx, attrs); err != nil {
				writeError(w, s.log, err)
				return
			}
		}
		ctx = auth.WithUser(ctx, u)
		ctx = context.WithValue(ctx, userKey{}, userInfo{Name: u.Name, Groups: u.Groups})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) authorizeRequest(ctx context.Context, attrs auth.Attributes) error {
	d, reason, err := s.cfg.Auth.Authorizer.Authorize(ctx, attrs)
	if d == auth.DecisionAllow {
		return nil
	}
	if synced := s.cfg.Auth.Synced; synced != nil && !synced() {
		if !attrs.ResourceRequest && (publicPaths[strings.TrimSuffix(attrs.Path, "/")] || publicPaths[attrs.Path]) {
			return nil
		}
		return apierrors.NewServiceUnavailable("the authorizer is starting; retry in a moment")
	}
	if err != nil {
		s.log.Debug("authorization error", "user", attrs.User.Name, "err", err)
	}
	return auth.Forbidden(attrs, reason)
}

// requestAttributes describes r for the authorizer as upstream's request
// info does: resource paths name a verb, group, resource, subresource,
// namespace and name; a list or watch of one object by a metadata.name
// field selector names it; everything else is a path with the lower-case
// method as verb.
func requestAttributes(r *http.Request, u *auth.User) auth.Attributes {
	query := r.URL.Query()
	ri, ok := parseResourcePath(r, query)
	if !ok || ri.verb == "" {
		return auth.Attributes{User: u, Verb: strings.ToLower(r.Method), Path: r.URL.Path}
	}
	a := auth.Attributes{
		User: u, Verb: ri.verb, ResourceRequest: true,
		APIGroup: ri.group, APIVersion: ri.version,
		Resource: ri.resource, Namespace: ri.namespace, Name: ri.name,
	}
	// A proxy path's tail (services/x/proxy/some/path) is not part of
	// the subresource.
	a.Subresource, _, _ = strings.Cut(ri.subresource, "/")
	if a.Resource == "namespaces" && a.Name != "" {
		a.Namespace = a.Name
	}
	if a.Name == "" && (a.Verb == "list" || a.Verb == "watch") {
		if sel, err := fields.ParseSelector(query.Get("fieldSelector")); err == nil {
			if name, found := sel.RequiresExactMatch("metadata.name"); found {
				a.Name = name
			}
		}
	}
	return a
}
