package apiserver

import (
	"net"
	"net/http"
	"runtime"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"skiff/internal/registry"
)

// KubernetesVersion is the Kubernetes API version skiff speaks.
const KubernetesVersion = "v1.37.2"

var mainVerbs = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func (s *Server) serveAPIVersions(w http.ResponseWriter, r *http.Request) {
	if wantsAggregatedDiscovery(r) {
		s.serveAggregatedDiscovery(w, true)
		return
	}
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{
			ClientCIDR: "0.0.0.0/0", ServerAddress: s.serverAddress(r),
		}},
	})
}

func (s *Server) serverAddress(r *http.Request) string {
	if ip := s.cfg.AdvertiseIP; ip != nil {
		_, port, _ := net.SplitHostPort(r.Host)
		if port == "" {
			port = "6443"
		}
		return net.JoinHostPort(ip.String(), port)
	}
	return r.Host
}

func (s *Server) apiGroups() []metav1.APIGroup {
	var groups []metav1.APIGroup
	index := map[string]int{}
	for _, gv := range s.reg.GroupVersions() {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		if i, ok := index[gv.Group]; ok {
			groups[i].Versions = append(groups[i].Versions, v)
			continue
		}
		index[gv.Group] = len(groups)
		groups = append(groups, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	return groups
}

func (s *Server) serveAPIGroupList(w http.ResponseWriter, r *http.Request) {
	if wantsAggregatedDiscovery(r) {
		s.serveAggregatedDiscovery(w, false)
		return
	}
	writeJSON(w, http.StatusOK, &metav1.APIGroupList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups:   s.apiGroups(),
	})
}

// serveDiscovery answers /apis/<group> and the resource lists of
// /api/v1 and /apis/<group>/<version>. It reports whether it answered.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) bool {
	parts := splitPath(r.URL.Path)
	var gv schema.GroupVersion
	switch {
	case len(parts) == 2 && parts[0] == "api":
		gv = schema.GroupVersion{Version: parts[1]}
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range s.apiGroups() {
			if g.Name == parts[1] {
				g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
				writeJSON(w, http.StatusOK, &g)
				return true
			}
		}
		return false
	case len(parts) == 3 && parts[0] == "apis":
		gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
	default:
		return false
	}
	list := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
	}
	for _, res := range s.reg.All() {
		if res.GroupVersion() != gv {
			continue
		}
		list.APIResources = append(list.APIResources, apiResources(res)...)
	}
	if len(list.APIResources) == 0 {
		return false
	}
	writeJSON(w, http.StatusOK, list)
	return true
}

// apiResources describes a resource and its subresources for discovery.
func apiResources(res *registry.Resource) []metav1.APIResource {
	verbs := mainVerbs
	if res.Review {
		verbs = metav1.Verbs{"create"}
	}
	out := []metav1.APIResource{{
		Name: res.Resource, SingularName: res.SingularName, Namespaced: res.Namespaced,
		Kind: res.Kind, Verbs: verbs, ShortNames: res.ShortNames, Categories: res.Categories,
	}}
	for _, sub := range res.Subresources {
		a := metav1.APIResource{
			Name: res.Resource + "/" + sub.Name, Namespaced: res.Namespaced, Kind: res.Kind,
			Group: sub.Group, Version: sub.Version, Verbs: sub.Verbs,
		}
		if sub.Kind != "" {
			a.Kind = sub.Kind
		}
		out = append(out, a)
	}
	return out
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	v := strings.TrimPrefix(KubernetesVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	writeJSON(w, http.StatusOK, &version.Info{
		Major:      parts[0],
		Minor:      parts[1],
		GitVersion: KubernetesVersion + "+skiff-" + strings.TrimPrefix(s.cfg.Version, "v"),
		GoVersion:  runtime.Version(),
		Compiler:   runtime.Compiler,
		Platform:   runtime.GOOS + "/" + runtime.GOARCH,
	})
}
