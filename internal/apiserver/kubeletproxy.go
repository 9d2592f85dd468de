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

// serveKubeletProxy serves pods/log, pods/exec, pods/attach,
// pods/portforward and nodes/proxy by proxying to the kubelet of the node
// concerned. It reports false when ri is none of those.
func (s *Server) serveKubeletProxy(w http.ResponseWriter, r *http.Request, ri requestInfo, res *registry.Resource) bool {
	if res.Group != "" || ri.name == "" {
		return false
	}
	var (
		target kubeletPath
		err    error
	)
	switch {
	case res.Resource == "pods":
		switch ri.subresource {
		case "log":
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				writeError(w, s.log, apierrors.NewMethodNotSupported(res.GroupResource(), r.Method))
				return true
			}
		case "exec", "attach", "portforward":
			if r.Method != http.MethodGet && r.Method != http.MethodPost {
				writeError(w, s.log, apierrors.NewMethodNotSupported(res.GroupResource(), r.Method))
				return true
			}
		default:
			return false
		}
		if ri.namespace == "" {
			writeError(w, s.log, apierrors.NewNotFound(res.GroupResource(), ri.name+"/"+ri.subresource))
			return true
		}
		target, err = s.podKubeletPath(r.Context(), res, ri, r.URL.Query().Get("container"))
	case res.Resource == "nodes" && (ri.subresource == "proxy" || strings.HasPrefix(ri.subresource, "proxy/")):
		// Take the rest from the raw path: splitting it lost a trailing
		// slash, which matters to the kubelet's handlers.
		rest := strings.TrimPrefix(r.URL.Path, "/api/"+ri.version+"/nodes/"+ri.name+"/proxy")
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		target = kubeletPath{nodeName: ri.name, path: rest}
	default:
		return false
	}
	if err != nil {
		writeError(w, s.log, err)
		return true
	}
	u, err := s.kubeletURL(r.Context(), target)
	if err != nil {
		writeError(w, s.log, err)
		return true
	}
	query := r.URL.Query()
	// The container is part of the kubelet's path, not its query.
	query.Del("container")
	u.RawQuery = query.Encode()
	s.proxyToKubelet(w, r, u)
	return true
}

// podKubeletPath resolves a pod subresource to its kubelet path.
func (s *Server) podKubeletPath(ctx context.Context, res *registry.Resource, ri requestInfo, container string) (kubeletPath, error) {
	obj, err := s.store.Get(ctx, key(res, ri.namespace, ri.name))
	if err != nil {
		return kubeletPath{}, storeErr(err, res.GroupResource(), ri.name)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return kubeletPath{}, fmt.Errorf("stored pod %s/%s is a %T", ri.namespace, ri.name, obj)
	}
	if pod.Spec.NodeName == "" {
		return kubeletPath{}, badRequest("pod %s does not have a host assigned", pod.Name)
	}
	ns, name := url.PathEscape(pod.Namespace), url.PathEscape(pod.Name)
	if ri.subresource == "portforward" {
		return kubeletPath{nodeName: pod.Spec.NodeName, path: "/portForward/" + ns + "/" + name}, nil
	}
	c, err := podContainer(pod, container)
	if err != nil {
		return kubeletPath{}, err
	}
	prefix := map[string]string{"log": "/containerLogs/", "exec": "/exec/", "attach": "/attach/"}[ri.subresource]
	return kubeletPath{nodeName: pod.Spec.NodeName, path: prefix + ns + "/" + name + "/" + url.PathEscape(c)}, nil
}

// podContainer picks the container a request is about: the one named, or
// the pod's only container. Messages are Kubernetes' own, which kubectl
// users know.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	var names, initNames []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		initNames = append(initNames, c.Name)
	}
	if name == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		if len(initNames) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", initNames)
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", badRequest("container %s is not valid for pod %s", name, pod.Name)
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
