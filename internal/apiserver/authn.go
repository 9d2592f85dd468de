package apiserver

import (
	"context"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// userInfo is the authenticated caller.
type userInfo struct {
	Name   string
	Groups []string
}

type userKey struct{}

// publicPaths answer anonymous requests, as Kubernetes' default RBAC allows.
var publicPaths = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true, "/version": true}

// authenticate identifies the caller by client certificate (CN is the user,
// O the groups); anonymous callers reach only publicPaths.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := s.identify(r)
		if !ok {
			if publicPaths[strings.TrimSuffix(r.URL.Path, "/")] || publicPaths[r.URL.Path] {
				next.ServeHTTP(w, r)
				return
			}
			writeError(w, s.log, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// identify knows callers by client certificate only: join tokens are not
// API credentials (they only open the join endpoints, join.go).
func (s *Server) identify(r *http.Request) (userInfo, bool) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.PeerCertificates) > 0 {
		c := r.TLS.PeerCertificates[0]
		return userInfo{Name: c.Subject.CommonName, Groups: c.Subject.Organization}, true
	}
	return userInfo{}, false
}
