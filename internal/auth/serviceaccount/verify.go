package serviceaccount

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/auth"
)

// Getter looks up the objects a token refers to. It returns a non-nil
// object, or a NotFound API error for an object that does not exist.
type Getter interface {
	ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error)
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	Node(ctx context.Context, name string) (*corev1.Node, error)
}

// deletionGrace is how long a token stays valid after its bound object
// started terminating, as upstream's 60 s.
const deletionGrace = 60 * time.Second

// AuthenticatorConfig configures token verification.
type AuthenticatorConfig struct {
	// Issuers whose bound tokens are accepted; the first is usually the
	// signer's. Tokens from other issuers are not ours (ok=false), so
	// another authenticator may try them.
	Issuers []string
	// Keys verify signatures (the current key and any older ones).
	Keys []crypto.PublicKey
	// Audiences are the API server's: a bound token must carry one of
	// them. Empty means Issuers[0].
	Audiences []string
	// Legacy accepts Secret-based tokens.
	Legacy bool
	// Getter checks that the objects a token names still exist.
	Getter Getter
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

type authenticator struct {
	cfg  AuthenticatorConfig
	keys map[string]crypto.PublicKey
}

// NewAuthenticator returns a token authenticator for service-account JWTs.
// Error texts are for logs; the API answers any failure with a bare 401.
func NewAuthenticator(cfg AuthenticatorConfig) (auth.TokenAuthenticator, error) {
	if len(cfg.Issuers) == 0 && !cfg.Legacy {
		return nil, errors.New("serviceaccount: an issuer is required")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("serviceaccount: a verification key is required")
	}
	if cfg.Getter == nil {
		return nil, errors.New("serviceaccount: a getter is required")
	}
	if len(cfg.Audiences) == 0 && len(cfg.Issuers) > 0 {
		cfg.Audiences = cfg.Issuers[:1]
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &authenticator{cfg: cfg, keys: map[string]crypto.PublicKey{}}
	for _, k := range cfg.Keys {
		if _, err := signingMethod(k); err != nil {
			return nil, err
		}
		kid, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		a.keys[kid] = k
	}
	return a, nil
}

// AuthenticateToken implements auth.TokenAuthenticator.
func (a *authenticator) AuthenticateToken(ctx context.Context, token string) (*auth.User, bool, error) {
	if strings.Count(token, ".") != 2 {
		return nil, false, nil
	}
	// Read the issuer first, unverified, to tell our tokens from others'.
	var peek claims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &peek); err != nil {
		return nil, false, nil
	}
	legacy := peek.Issuer == LegacyIssuer
	switch {
	case legacy && !a.cfg.Legacy:
		return nil, false, nil
	case !legacy && !slices.Contains(a.cfg.Issuers, peek.Issuer):
		return nil, false, nil
	}

	var c claims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "ES256", "ES384", "ES512"}),
		jwt.WithTimeFunc(a.cfg.Now),
		jwt.WithLeeway(time.Minute), // clock skew between servers, as upstream
	}
	if !legacy {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	parser := jwt.NewParser(opts...)
	if _, err := parser.ParseWithClaims(token, &c, a.keyFor); err != nil {
		return nil, false, fmt.Errorf("service account token: %w", err)
	}
	if legacy {
		return a.legacy(ctx, token, &c)
	}
	return a.bound(ctx, &c)
}

func (a *authenticator) keyFor(t *jwt.Token) (any, error) {
	if kid, _ := t.Header["kid"].(string); kid != "" {
		if k, ok := a.keys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown key ID")
	}
	// No key ID: try each key.
	keys := jwt.VerificationKeySet{}
	for _, k := range a.cfg.Keys {
		keys.Keys = append(keys.Keys, k)
	}
	return keys, nil
}

func (a *authenticator) bound(ctx context.Context, c *claims) (*auth.User, bool, error) {
	k := c.Kubernetes
	if k == nil || k.ServiceAccount == nil || k.Namespace == "" || k.ServiceAccount.Name == "" {
		return nil, false, errors.New("service account token: missing kubernetes.io claims")
	}
	audiences := a.cfg.Audiences
	if auds, ok := auth.AudiencesFrom(ctx); ok {
		audiences = auds
	}
	if !slices.ContainsFunc(c.Audience, func(aud string) bool { return slices.Contains(audiences, aud) }) {
		return nil, false, fmt.Errorf("service account token: audiences %q are not among %q", []string(c.Audience), audiences)
	}
	if want := auth.ServiceAccountUsername(k.Namespace, k.ServiceAccount.Name); c.Subject != want {
		return nil, false, errors.New("service account token: subject does not match the service account")
	}
	now := a.cfg.Now()
	sa, err := a.cfg.Getter.ServiceAccount(ctx, k.Namespace, k.ServiceAccount.Name)
	if err := checkObject("service account", k.Namespace, k.ServiceAccount, sa, err, now); err != nil {
		return nil, false, err
	}
	extra := map[string][]string{}
	switch {
	case k.Pod != nil:
		pod, err := a.cfg.Getter.Pod(ctx, k.Namespace, k.Pod.Name)
		if err := checkObject("pod", k.Namespace, k.Pod, pod, err, now); err != nil {
			return nil, false, err
		}
		extra[ExtraPodName] = []string{k.Pod.Name}
		extra[ExtraPodUID] = []string{k.Pod.UID}
		if k.Node != nil {
			extra[ExtraNodeName] = []string{k.Node.Name}
			if k.Node.UID != "" {
				extra[ExtraNodeUID] = []string{k.Node.UID}
			}
		}
	case k.Secret != nil:
		secret, err := a.cfg.Getter.Secret(ctx, k.Namespace, k.Secret.Name)
		if err := checkObject("secret", k.Namespace, k.Secret, secret, err, now); err != nil {
			return nil, false, err
		}
	case k.Node != nil:
		node, err := a.cfg.Getter.Node(ctx, k.Node.Name)
		if err := checkObject("node", "", k.Node, node, err, now); err != nil {
			return nil, false, err
		}
		extra[ExtraNodeName] = []string{k.Node.Name}
		extra[ExtraNodeUID] = []string{k.Node.UID}
	}
	if c.ID != "" {
		extra[ExtraCredentialID] = []string{"JTI=" + c.ID}
	}
	if len(extra) == 0 {
		extra = nil
	}
	return &auth.User{
		Name:   c.Subject,
		UID:    string(sa.UID),
		Groups: auth.ServiceAccountGroups(k.Namespace),
		Extra:  extra,
	}, true, nil
}

// checkObject refuses a token whose bound object is gone, has another UID,
// or has been terminating for longer than deletionGrace. got is only used
// when err is nil.
func checkObject(kind, namespace string, want *ref, got metav1.Object, err error, now time.Time) error {
	name := want.Name
	if namespace != "" {
		name = namespace + "/" + name
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("service account token: %s %s not found", kind, name)
	}
	if err != nil {
		return fmt.Errorf("service account token: look up %s %s: %w", kind, name, err)
	}
	if want.UID != "" && string(got.GetUID()) != want.UID {
		return fmt.Errorf("service account token: %s %s has UID %s, the token names %s", kind, name, got.GetUID(), want.UID)
	}
	if dt := got.GetDeletionTimestamp(); dt != nil && dt.Add(deletionGrace).Before(now) {
		return fmt.Errorf("service account token: %s %s has been deleted", kind, name)
	}
	return nil
}

func (a *authenticator) legacy(ctx context.Context, token string, c *claims) (*auth.User, bool, error) {
	ns, secretName, saName := c.LegacyNamespace, c.LegacySecretName, c.LegacySAName
	if ns == "" || secretName == "" || saName == "" || c.Subject != auth.ServiceAccountUsername(ns, saName) {
		return nil, false, errors.New("service account token: missing or inconsistent legacy claims")
	}
	secret, err := a.cfg.Getter.Secret(ctx, ns, secretName)
	if err != nil || secret == nil || secret.DeletionTimestamp != nil {
		return nil, false, errors.New("service account token: token has been invalidated")
	}
	if subtle.ConstantTimeCompare(secret.Data[corev1.ServiceAccountTokenKey], []byte(token)) != 1 {
		return nil, false, errors.New("service account token: token does not match the server's copy")
	}
	sa, err := a.cfg.Getter.ServiceAccount(ctx, ns, saName)
	if err := checkObject("service account", ns, &ref{Name: saName, UID: c.LegacySAUID}, sa, err, a.cfg.Now()); err != nil {
		return nil, false, err
	}
	if sa.DeletionTimestamp != nil {
		return nil, false, fmt.Errorf("service account token: service account %s/%s has been deleted", ns, saName)
	}
	return &auth.User{Name: c.Subject, UID: string(sa.UID), Groups: auth.ServiceAccountGroups(ns)}, true, nil
}
