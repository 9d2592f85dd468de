package apiserver

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/join"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	health := func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/readyz") {
			// Checked first: without quorum the etcd read below would wait.
			if err := s.checkQuorum(); err != nil {
				http.Error(w, fmt.Sprintf("[-]etcd-quorum failed: %v\nreadyz check failed", err), http.StatusInternalServerError)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if _, err := s.store.CurrentRevision(ctx); err != nil {
				http.Error(w, fmt.Sprintf("[-]etcd failed: %v\nreadyz check failed", err), http.StatusInternalServerError)
				return
			}
			if err := s.store.WatchCacheHealth(); err != nil {
				http.Error(w, fmt.Sprintf("[-]watch-cache failed: %v\nreadyz check failed", err), http.StatusInternalServerError)
				return
			}
			select {
			case <-s.ready:
			default:
				http.Error(w, "[-]bootstrap not finished\nreadyz check failed", http.StatusInternalServerError)
				return
			}
			for _, name := range slices.Sorted(maps.Keys(s.cfg.PostStartHooks)) {
				select {
				case <-s.cfg.PostStartHooks[name]:
				default:
					http.Error(w, "[-]poststarthook/"+name+" failed: not finished\nreadyz check failed", http.StatusInternalServerError)
					return
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	}
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, health)
		mux.HandleFunc(p+"/", health)
	}
	mux.HandleFunc("/version", s.serveVersion)
	mux.HandleFunc("/version/", s.serveVersion)
	mux.HandleFunc("/openapi/v2", s.openapi.ServeV2)
	mux.HandleFunc("/openapi/v3", s.openapi.ServeV3)
	mux.HandleFunc("/openapi/v3/", s.openapi.ServeV3)
	mux.HandleFunc("/api", s.serveAPIVersions)
	mux.HandleFunc("/api/", s.serveResource)
	mux.HandleFunc("/apis", s.serveAPIGroupList)
	mux.HandleFunc("/apis/", s.serveResource)
	s.handleIssuerDiscovery(mux)
	// The join endpoints are served before authentication: a joining node
	// has no credentials yet but its token (see join.go).
	outer := http.NewServeMux()
	outer.HandleFunc(CACertsPath, s.serveCACerts)
	outer.HandleFunc(NodeCertsPath, s.serveNodeCerts)
	outer.HandleFunc(ServerBootstrapPath, s.serveServerBootstrap)
	outer.HandleFunc(EtcdMembersPath, s.serveEtcdMembers)
	outer.HandleFunc(join.TokensPath, s.serveTokens)
	outer.Handle("/", s.guard(mux))
	return s.recoverPanics(outer)
}

// recoverPanics turns a handler panic into a 500: one bad request must
// never take the server down.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked; please report this bug", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, s.log, apierrors.NewInternalError(fmt.Errorf("%v", v)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// serveResource routes /api/... and /apis/... to discovery or to the
// resource handlers.
func (s *Server) serveResource(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && s.serveDiscovery(w, r) {
		return
	}
	query := r.URL.Query()
	ri, ok := parseResourcePath(r, query)
	if !ok {
		writeError(w, s.log, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	res, ok := s.reg.Lookup(ri.group, ri.version, ri.resource)
	if !ok {
		writeError(w, s.log, apierrors.NewNotFound(schema.GroupResource{Group: ri.group, Resource: ri.resource}, ri.name))
		return
	}
	if ri.namespace != "" && !res.Namespaced {
		writeError(w, s.log, apierrors.NewNotFound(res.GroupResource(), ri.name))
		return
	}
	if ri.verb == "" {
		writeError(w, s.log, apierrors.NewMethodNotSupported(res.GroupResource(), r.Method))
		return
	}
	// Every request below reads or writes etcd, which would hang.
	if s.refuseWithoutQuorum(w, r) {
		return
	}
	if s.serveKubeletProxy(w, r, ri, res) {
		return
	}
	// Watches and the kubelet proxy above are long-running: no deadline.
	if ri.verb != "watch" {
		var cancel context.CancelFunc
		w, r, cancel = withRequestTimeout(w, r)
		defer cancel()
	}
	if ri.subresource != "" && !res.HasSubresource(ri.subresource) {
		writeError(w, s.log, apierrors.NewNotFound(res.GroupResource(), ri.name+"/"+ri.subresource))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	}
	req := &request{s: s, w: w, r: r, query: query, ri: ri, res: res}
	req.serve()
}
