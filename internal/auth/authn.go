package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Authenticator identifies the sender of a request. It returns ok=false
// with no error when the request carries no credential it understands, and
// an error when it carries one that is not valid (a forged or expired token,
// a certificate from another CA): such a request must get 401, never
// anonymous access.
type Authenticator interface {
	Authenticate(r *http.Request) (u *User, ok bool, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (*User, bool, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (*User, bool, error) { return f(r) }

// TokenAuthenticator identifies the holder of a bearer token; ok=false
// with no error means the token is not one it issues.
type TokenAuthenticator interface {
	AuthenticateToken(ctx context.Context, token string) (u *User, ok bool, err error)
}

// TokenAuthenticatorFunc adapts a function to TokenAuthenticator.
type TokenAuthenticatorFunc func(ctx context.Context, token string) (*User, bool, error)

// AuthenticateToken calls f.
func (f TokenAuthenticatorFunc) AuthenticateToken(ctx context.Context, token string) (*User, bool, error) {
	return f(ctx, token)
}

// ErrInvalidBearerToken is returned for a bearer token no token
// authenticator recognises.
var ErrInvalidBearerToken = errors.New("invalid bearer token")

// BearerToken authenticates "Authorization: Bearer <token>" with the first of
// tokens that recognises the token. On success the Authorization header is
// removed from the request, so it is never passed on to a backend.
func BearerToken(tokens ...TokenAuthenticator) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (*User, bool, error) {
		scheme, token, found := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		if !found || !strings.EqualFold(scheme, "bearer") {
			return nil, false, nil
		}
		token = strings.TrimSpace(token)
		if token == "" {
			return nil, false, nil
		}
		var errs []error
		for _, t := range tokens {
			u, ok, err := t.AuthenticateToken(r.Context(), token)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				r.Header.Del("Authorization")
				return u, true, nil
			}
		}
		if len(errs) > 0 {
			return nil, false, errors.Join(errs...)
		}
		return nil, false, ErrInvalidBearerToken
	})
}

// X509 authenticates TLS client certificates: the subject's CommonName is
// the user, its Organizations the groups. With roots, the certificate must
// chain to them for client authentication; with nil roots, the TLS server's
// own verification (tls.VerifyClientCertIfGiven against its ClientCAs) is
// trusted and a connection without verified chains is not authenticated.
func X509(roots *x509.CertPool) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (*User, bool, error) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return nil, false, nil
		}
		leaf := r.TLS.PeerCertificates[0]
		if roots == nil {
			if len(r.TLS.VerifiedChains) == 0 {
				return nil, false, nil
			}
		} else {
			opts := x509.VerifyOptions{
				Roots:         roots,
				Intermediates: x509.NewCertPool(),
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				CurrentTime:   time.Now(),
			}
			for _, c := range r.TLS.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := leaf.Verify(opts); err != nil {
				return nil, false, fmt.Errorf("verifying certificate %q failed: %w", leaf.Subject.CommonName, err)
			}
		}
		if leaf.Subject.CommonName == "" {
			return nil, false, nil
		}
		return &User{Name: leaf.Subject.CommonName, Groups: slices.Clone(leaf.Subject.Organization)}, true, nil
	})
}

// UnionAuthenticator tries each authenticator in turn; the first that recognises the
// request wins. If none does, the errors of those that failed are returned.
func UnionAuthenticator(as ...Authenticator) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (*User, bool, error) {
		var errs []error
		for _, a := range as {
			u, ok, err := a.Authenticate(r)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				return u, true, nil
			}
		}
		return nil, false, errors.Join(errs...)
	})
}

// NewAuthenticator is the API server's authenticator: the first of as that
// recognises the request wins, and system:authenticated is added to its
// groups. With allowAnonymous, a request carrying no credential at all is
// system:anonymous in system:unauthenticated (what it may do is up to the
// authorizer); a request with a bad credential always fails.
func NewAuthenticator(allowAnonymous bool, as ...Authenticator) Authenticator {
	union := UnionAuthenticator(as...)
	return AuthenticatorFunc(func(r *http.Request) (*User, bool, error) {
		u, ok, err := union.Authenticate(r)
		if ok {
			if !slices.Contains(u.Groups, AllAuthenticated) {
				c := *u
				c.Groups = append(slices.Clone(u.Groups), AllAuthenticated)
				u = &c
			}
			return u, true, nil
		}
		if err != nil || !allowAnonymous {
			return nil, false, err
		}
		return AnonymousUser(), true, nil
	})
}

// AnonymousUser is the identity of a request with no credential.
func AnonymousUser() *User {
	return &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}
}
