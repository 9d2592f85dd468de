package serviceaccount

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"skiff/internal/auth"
)

// Signer issues tokens with one private key.
type Signer struct {
	issuer string
	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
}

// NewSigner returns a signer for bound tokens from issuer (the
// --service-account-issuer URL, for example
// https://kubernetes.default.svc.cluster.local), signing with an RSA
// (RS256) or ECDSA (ES256, ES384, ES512) key.
func NewSigner(issuer string, key crypto.Signer) (*Signer, error) {
	if issuer == "" {
		return nil, errors.New("serviceaccount: an issuer is required")
	}
	method, err := signingMethod(key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := KeyID(key.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{issuer: issuer, key: key, method: method, kid: kid}, nil
}

// Issuer is the signer's issuer URL.
func (s *Signer) Issuer() string { return s.issuer }

// PublicKey is the key tokens are verified with.
func (s *Signer) PublicKey() crypto.PublicKey { return s.key.Public() }

func signingMethod(pub crypto.PublicKey) (jwt.SigningMethod, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jwt.SigningMethodES256, nil
		case elliptic.P384():
			return jwt.SigningMethodES384, nil
		case elliptic.P521():
			return jwt.SigningMethodES512, nil
		}
	}
	return nil, fmt.Errorf("serviceaccount: unsupported signing key %T (use RSA or ECDSA)", pub)
}

// KeyID is upstream's key ID: the unpadded base64url SHA-256 of the public
// key's PKIX encoding.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("serviceaccount: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// BoundToken describes a token to issue, as a TokenRequest does.
type BoundToken struct {
	ServiceAccount *corev1.ServiceAccount
	// Audiences the token is for; the caller fills in the API server's
	// audiences when the request names none.
	Audiences []string
	// Expiration is the token's life (upstream's minimum is 10 minutes;
	// the caller validates it).
	Expiration time.Duration
	// At most one of Pod, Secret and Node is the object the token is bound
	// to. For a pod, PodNode (the node it runs on), when known, is recorded
	// too, as upstream.
	Pod     *corev1.Pod
	PodNode *corev1.Node
	Secret  *corev1.Secret
	Node    *corev1.Node
	// WarnAfter, when set, is when a client should be warned the token is
	// stale (upstream's extended expiration for projected tokens).
	WarnAfter time.Time
	// Now is the issue time (zero: time.Now).
	Now time.Time
}

// Issue signs a bound token and returns it with its expiry.
func (s *Signer) Issue(t BoundToken) (string, time.Time, error) {
	sa := t.ServiceAccount
	if sa == nil || sa.Name == "" || sa.Namespace == "" {
		return "", time.Time{}, errors.New("serviceaccount: a service account is required")
	}
	if t.Expiration <= 0 {
		return "", time.Time{}, errors.New("serviceaccount: the expiration must be positive")
	}
	bound := 0
	for _, set := range []bool{t.Pod != nil, t.Secret != nil, t.Node != nil} {
		if set {
			bound++
		}
	}
	if bound > 1 {
		return "", time.Time{}, errors.New("serviceaccount: a token is bound to one object at most")
	}
	now := t.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.Truncate(time.Second)
	exp := now.Add(t.Expiration)
	k := &kubernetesClaims{
		Namespace:      sa.Namespace,
		ServiceAccount: &ref{Name: sa.Name, UID: string(sa.UID)},
	}
	switch {
	case t.Pod != nil:
		k.Pod = &ref{Name: t.Pod.Name, UID: string(t.Pod.UID)}
		if t.PodNode != nil {
			k.Node = &ref{Name: t.PodNode.Name, UID: string(t.PodNode.UID)}
		}
	case t.Secret != nil:
		k.Secret = &ref{Name: t.Secret.Name, UID: string(t.Secret.UID)}
	case t.Node != nil:
		k.Node = &ref{Name: t.Node.Name, UID: string(t.Node.UID)}
	}
	if !t.WarnAfter.IsZero() {
		k.WarnAfter = jwt.NewNumericDate(t.WarnAfter)
	}
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   auth.ServiceAccountUsername(sa.Namespace, sa.Name),
			Audience:  jwt.ClaimStrings(t.Audiences),
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        string(uuid.NewUUID()),
		},
		Kubernetes: k,
	}
	tok, err := s.sign(c)
	return tok, exp, err
}

// IssueLegacy signs a token for a Secret of type
// kubernetes.io/service-account-token; it never expires and is valid while
// the Secret holds it and the ServiceAccount exists.
func (s *Signer) IssueLegacy(sa *corev1.ServiceAccount, secret *corev1.Secret) (string, error) {
	if sa == nil || secret == nil || sa.Namespace != secret.Namespace {
		return "", errors.New("serviceaccount: a service account and a secret in its namespace are required")
	}
	return s.sign(claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:  LegacyIssuer,
			Subject: auth.ServiceAccountUsername(sa.Namespace, sa.Name),
		},
		LegacyNamespace:  sa.Namespace,
		LegacySecretName: secret.Name,
		LegacySAName:     sa.Name,
		LegacySAUID:      string(sa.UID),
	})
}

func (s *Signer) sign(c claims) (string, error) {
	tok := jwt.NewWithClaims(s.method, c)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("serviceaccount: sign token: %w", err)
	}
	return out, nil
}
