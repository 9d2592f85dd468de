package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/registry"
)

// defaultKubeletPort is used when a node does not report its kubelet port.
const defaultKubeletPort = 10250

// kubeletTransport dials kubelets over TLS, verifying their serving
// certificates against the cluster CA and presenting the API server's
// kubelet-client certificate. It speaks HTTP/1.1 only: exec, attach and
// port-forward are connection upgrades, which HTTP/2 cannot carry.
func (s *Server) kubeletTransport() *http.Transport {
	pool := s.cfg.ClientCA
	if s.cfg.CA != nil {
		pool = s.cfg.CA.CertPool()
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if s.cfg.KubeletClientCert != nil {
		tc.Certificates = []tls.Certificate{*s.cfg.KubeletClientCert}
	}
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
}

// kubeletPath is the kubelet API path (without query) a proxied request
// goes to, and the node that runs it.
type kubeletPath struct {
	nodeName string
	path     string
}

// serveKubeletProxy serves the subresources a kind proxies to a node's
// kubelet (pods' log, exec, attach, portforward; nodes' proxy). It reports
// false when ri is none of those.
func (s *Server) serveKubeletProxy(w http.ResponseWriter, r *http.Request, ri requestInfo, res *registry.Resource) bool {
	conn := res.KubeletConnecter()
	if conn == nil || ri.name == "" || ri.subresource == "" {
		return false
	}
	methods := conn.KubeletMethods(ri.subresource)
	if methods == nil {
		return false
	}
	if !slices.Contains(methods, r.Method) {
		writeError(w, s.log, apierrors.NewMethodNotSupported(res.GroupResource(), r.Method))
		return true
	}
	if res.Namespaced && ri.namespace == "" {
		writeError(w, s.log, apierrors.NewNotFound(res.GroupResource(), ri.name+"/"+ri.subresource))
		return true
	}
	obj, err := s.store.Get(r.Context(), key(res, ri.namespace, ri.name))
	if err != nil {
		writeError(w, s.log, storeErr(err, res.GroupResource(), ri.name))
		return true
	}
	// What follows the subresource's name comes from the raw path:
	// splitting it lost a trailing slash, which matters to the kubelet.
	sub, _, _ := strings.Cut(ri.subresource, "/")
	rest := ""
	if i := strings.Index(r.URL.Path, "/"+ri.name+"/"+sub); i >= 0 {
		rest = r.URL.Path[i+len("/"+ri.name+"/"+sub):]
	}
	query := r.URL.Query()
	node, path, err := conn.KubeletPath(obj, sub, rest, query)
	if err != nil {
		writeError(w, s.log, err)
		return true
	}
	u, err := s.kubeletURL(r.Context(), kubeletPath{nodeName: node, path: path})
	if err != nil {
		writeError(w, s.log, err)
		return true
	}
	// The container is part of the kubelet's path, not its query.
	query.Del("container")
	u.RawQuery = query.Encode()
	s.proxyToKubelet(w, r, u)
	return true
}

// kubeletURL is the HTTPS URL of path on the kubelet of the node.
func (s *Server) kubeletURL(ctx context.Context, target kubeletPath) (*url.URL, error) {
	nodes, ok := s.reg.Lookup("", "v1", "nodes")
	if !ok {
		return nil, errors.New("the registry serves no nodes")
	}
	obj, err := s.store.Get(ctx, key(nodes, "", target.nodeName))
	if err != nil {
		return nil, storeErr(err, nodes.GroupResource(), target.nodeName)
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil, fmt.Errorf("stored node %s is a %T", target.nodeName, obj)
	}
	host := nodeAddress(node)
	if host == "" {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has no address to reach its kubelet at", node.Name))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port == 0 {
		port = defaultKubeletPort
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: target.path}, nil
}

// nodeAddress picks the address to reach a kubelet at, preferring IPs: a
// name needs DNS the server may not have. The kubelet's serving
// certificate covers its addresses and names, so any of them verifies.
func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// proxyToKubelet forwards r to u, streaming the answer (logs that follow)
// and passing connection upgrades (websocket or SPDY for exec, attach and
// port-forward) through untouched: the protocols are between the client
// and the kubelet.
func (s *Server) proxyToKubelet(w http.ResponseWriter, r *http.Request, u *url.URL) {
	if s.cfg.KubeletClientCert == nil {
		writeError(w, s.log, apierrors.NewServiceUnavailable("the API server has no kubelet client certificate"))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = u
			pr.Out.Host = ""
			// The caller's credentials are for the API server, not for
			// kubelets; the API server speaks for itself there.
			pr.Out.Header.Del("Authorization")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
		},
		Transport:     s.kubelets,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The client went away; nobody is left to answer.
				return
			}
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			s.log.Debug("kubelet proxy failed", "url", u.Redacted(), "err", err)
			writeError(w, s.log, &apierrors.StatusError{ErrStatus: metav1.Status{
				Status: metav1.StatusFailure, Code: http.StatusBadGateway, Reason: metav1.StatusReasonInternalError,
				Message: fmt.Sprintf("error dialing backend: %v", err),
			}})
		},
	}
	rp.ServeHTTP(w, r)
}
