package auth

import (
	"net/http"
	"strings"
)

// KubeletRequestAttributes describes a request to a kubelet's API for the
// authorizer, as upstream's kubelet does: the node's nodes/<subresource>
// (stats, metrics, log, checkpoint, or proxy for everything else, exec and
// port-forward included), with /pods, /runningpods, /healthz and /configz
// first checked as their own subresources. The request is allowed when
// any of the returned attributes is.
func KubeletRequestAttributes(r *http.Request, u *User, nodeName string) []Attributes {
	var verb string
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodGet, http.MethodHead:
		verb = "get"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	path := r.URL.Path
	var subs []string
	switch {
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		subs = append(subs, "pods")
	case isSubpath(path, "/healthz"):
		subs = append(subs, "healthz")
	case isSubpath(path, "/configz"):
		subs = append(subs, "configz")
	}
	switch {
	case isSubpath(path, "/stats"):
		subs = append(subs, "stats")
	case isSubpath(path, "/metrics"):
		subs = append(subs, "metrics")
	case isSubpath(path, "/logs"):
		subs = append(subs, "log")
	case isSubpath(path, "/checkpoint"):
		subs = append(subs, "checkpoint")
	default:
		subs = append(subs, "proxy")
	}
	out := make([]Attributes, 0, len(subs))
	for _, s := range subs {
		out = append(out, Attributes{
			User: u, Verb: verb, ResourceRequest: true, APIVersion: "v1",
			Resource: "nodes", Subresource: s, Name: nodeName, Path: path,
		})
	}
	return out
}

func isSubpath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}
