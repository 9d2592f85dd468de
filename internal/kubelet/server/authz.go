package server

// Authentication and authorization delegated to the API server, as
// upstream's kubelet runs with --authentication-token-webhook and
// --authorization-mode=Webhook: a client presents a certificate from the
// cluster CA (user = CN, groups = O) or a bearer token the API server
// vouches for (TokenReview), and each request is allowed only if the API
// server says the user may act on this node's nodes/<subresource>
// (SubjectAccessReview). Answers are cached as upstream's defaults: tokens
// for 2 minutes, allowed requests for 5 minutes, denied ones for 30 s.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/auth"
)

// Cache lifetimes, upstream's kubelet defaults
// (authentication.webhook.cacheTTL, authorization.webhook.cacheAuthorizedTTL
// and cacheUnauthorizedTTL).
const (
	tokenCacheTTL     = 2 * time.Minute
	allowedCacheTTL   = 5 * time.Minute
	deniedCacheTTL    = 30 * time.Second
	reviewCacheSize   = 4096
	reviewCallTimeout = 10 * time.Second
)

// delegate asks the API server who a client is and what it may do.
type delegate struct {
	client  kubernetes.Interface
	node    string
	authn   auth.Authenticator
	tokens  *cache.LRUExpireCache // sha256(token) → tokenAnswer
	answers *cache.LRUExpireCache // SubjectAccessReview spec (JSON) → accessAnswer
}

type tokenAnswer struct {
	user *auth.User
	ok   bool
}

type accessAnswer struct{ allowed bool }

func newDelegate(client kubernetes.Interface, node string, clk cache.Clock) *delegate {
	d := &delegate{
		client:  client,
		node:    node,
		tokens:  cache.NewLRUExpireCacheWithClock(reviewCacheSize, clk),
		answers: cache.NewLRUExpireCacheWithClock(reviewCacheSize, clk),
	}
	// The TLS handshake verified the certificate against Config.ClientCA;
	// no anonymous access, as upstream's kubelet runs in a secured cluster.
	d.authn = auth.NewAuthenticator(false, auth.X509(nil), auth.BearerToken(auth.TokenAuthenticatorFunc(d.reviewToken)))
	return d
}

// reviewToken asks the API server who holds token (TokenReview). An
// answer, yes or no, is cached; a failure to ask is not.
func (d *delegate) reviewToken(ctx context.Context, token string) (*auth.User, bool, error) {
	key := sha256.Sum256([]byte(token))
	if v, ok := d.tokens.Get(key); ok {
		a := v.(tokenAnswer)
		return a.user, a.ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewCallTimeout)
	defer cancel()
	tr, err := d.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, false, fmt.Errorf("token review: %w", err)
	}
	a := tokenAnswer{ok: tr.Status.Authenticated}
	if a.ok {
		u := tr.Status.User
		a.user = &auth.User{Name: u.Username, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			a.user.Extra = make(map[string][]string, len(u.Extra))
			for k, v := range u.Extra {
				a.user.Extra[k] = v
			}
		}
	}
	d.tokens.Add(key, a, tokenCacheTTL)
	return a.user, a.ok, nil
}

// authorize asks the API server whether the request's user may do it: the
// request is allowed when any of its attributes is (a fine-grained
// subresource such as nodes/pods, or the catch-all nodes/proxy). It
// returns the attributes named in a refusal.
func (d *delegate) authorize(ctx context.Context, r *http.Request, u *auth.User) (bool, auth.Attributes, error) {
	attrs := auth.KubeletRequestAttributes(r, u, d.node)
	var last auth.Attributes
	for _, a := range attrs {
		last = a
		ok, err := d.review(ctx, a)
		if err != nil {
			return false, a, err
		}
		if ok {
			return true, a, nil
		}
	}
	return false, last, nil
}

func (d *delegate) review(ctx context.Context, a auth.Attributes) (bool, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{
		User: a.User.Name, UID: a.User.UID, Groups: a.User.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.Verb, Group: a.APIGroup, Version: a.APIVersion,
			Resource: a.Resource, Subresource: a.Subresource, Name: a.Name, Namespace: a.Namespace,
		},
	}
	if len(a.User.Extra) > 0 {
		spec.Extra = make(map[string]authorizationv1.ExtraValue, len(a.User.Extra))
		for k, v := range a.User.Extra {
			spec.Extra[k] = v
		}
	}
	keyJSON, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	key := string(keyJSON)
	if v, ok := d.answers.Get(key); ok {
		return v.(accessAnswer).allowed, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reviewCallTimeout)
	defer cancel()
	sar, err := d.client.AuthorizationV1().SubjectAccessReviews().Create(ctx,
		&authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	ans := accessAnswer{allowed: sar.Status.Allowed}
	ttl := deniedCacheTTL
	if ans.allowed {
		ttl = allowedCacheTTL
	}
	d.answers.Add(key, ans, ttl)
	return ans.allowed, nil
}

// filter authenticates and authorizes every request but /healthz, with
// upstream's kubelet answers: 401 "Unauthorized", 403 naming the user,
// verb, resource and subresource, 500 when the API server cannot decide.
func (d *delegate) filter(s *Server, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		u, ok, err := d.authn.Authenticate(r)
		if err != nil || !ok {
			if err == nil {
				err = errors.New("no credential")
			}
			s.log.Debug("unauthenticated kubelet API request", "path", r.URL.Path, "err", err)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		allowed, a, err := d.authorize(r.Context(), r, u)
		if err != nil {
			s.log.Warn("kubelet API authorization failed", "user", u.Name, "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)",
				u.Name, a.Verb, a.Resource, a.Subresource), http.StatusInternalServerError)
			return
		}
		if !allowed {
			s.log.Info("kubelet API request forbidden", "user", u.Name, "verb", a.Verb, "subresource", a.Subresource, "path", r.URL.Path)
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource=%s)",
				u.Name, a.Verb, a.Resource, a.Subresource), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
