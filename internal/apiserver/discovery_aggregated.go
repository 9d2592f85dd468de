package apiserver

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Aggregated discovery (apidiscovery.k8s.io/v2): /api and /apis answer
// every group, version and resource in one document when the client asks
// for it, as kubectl and client-go do, so a client learns a new custom
// resource in one request.

const aggregatedDiscoveryType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// wantsAggregatedDiscovery reports whether the Accept header asks for an
// APIGroupDiscoveryList of apidiscovery.k8s.io/v2.
func wantsAggregatedDiscovery(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
		if mt == "application/json" && params["as"] == "" {
			return false // the client prefers the legacy documents
		}
	}
	return false
}

// serveAggregatedDiscovery answers the legacy group (/api) or the named
// groups (/apis).
func (s *Server) serveAggregatedDiscovery(w http.ResponseWriter, legacy bool) {
	list := &apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
	}
	groups := map[string]int{}
	versions := map[schema.GroupVersion]int{}
	for _, res := range s.reg.All() {
		if (res.Group == "") != legacy {
			continue
		}
		gi, ok := groups[res.Group]
		if !ok {
			gi = len(list.Items)
			groups[res.Group] = gi
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: res.Group}})
		}
		g := &list.Items[gi]
		vi, ok := versions[res.GroupVersion()]
		if !ok {
			vi = len(g.Versions)
			versions[res.GroupVersion()] = vi
			g.Versions = append(g.Versions, apidiscoveryv2.APIVersionDiscovery{Version: res.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent})
		}
		g.Versions[vi].Resources = append(g.Versions[vi].Resources, resourceDiscovery(res.GroupVersion(), apiResources(res)))
	}
	data, err := json.Marshal(list)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	w.Header().Set("Content-Type", aggregatedDiscoveryType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// resourceDiscovery turns the legacy description of a resource and its
// subresources into the aggregated one.
func resourceDiscovery(gv schema.GroupVersion, all []metav1.APIResource) apidiscoveryv2.APIResourceDiscovery {
	main := all[0]
	scope := apidiscoveryv2.ScopeCluster
	if main.Namespaced {
		scope = apidiscoveryv2.ScopeNamespace
	}
	kind := func(a metav1.APIResource) *metav1.GroupVersionKind {
		g, v := a.Group, a.Version
		if g == "" && v == "" {
			g, v = gv.Group, gv.Version
		}
		return &metav1.GroupVersionKind{Group: g, Version: v, Kind: a.Kind}
	}
	out := apidiscoveryv2.APIResourceDiscovery{
		Resource: main.Name, ResponseKind: kind(main), Scope: scope, SingularResource: main.SingularName,
		Verbs: main.Verbs, ShortNames: main.ShortNames, Categories: main.Categories,
	}
	for _, sub := range all[1:] {
		_, name, _ := strings.Cut(sub.Name, "/")
		out.Subresources = append(out.Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource: name, ResponseKind: kind(sub), Verbs: sub.Verbs,
		})
	}
	return out
}
