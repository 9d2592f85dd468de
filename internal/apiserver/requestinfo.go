package apiserver

import (
	"net/http"
	"net/url"
	"strings"
)

// requestInfo is what a resource URL names.
type requestInfo struct {
	group, version string
	namespace      string
	resource, name string
	subresource    string
	// verb is Kubernetes' verb: get, list, watch, create, update, patch,
	// delete, deletecollection.
	verb string
}

// parseResourcePath parses /api/v1/... and /apis/<group>/<version>/...
// It returns ok=false when the path names no resource (discovery paths).
func parseResourcePath(r *http.Request, query url.Values) (requestInfo, bool) {
	parts := splitPath(r.URL.Path)
	var ri requestInfo
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		ri.version, parts = parts[1], parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		ri.group, ri.version, parts = parts[1], parts[2], parts[3:]
	default:
		return ri, false
	}
	watchPath := false
	if parts[0] == "watch" {
		watchPath, parts = true, parts[1:]
		if len(parts) == 0 {
			return ri, false
		}
	}
	// namespaces/<ns>/<resource>... is namespaced; namespaces[/<name>[/status|finalize]]
	// is the namespace resource itself.
	if parts[0] == "namespaces" && len(parts) >= 3 && !(len(parts) == 3 && (parts[2] == "status" || parts[2] == "finalize")) {
		ri.namespace, parts = parts[1], parts[2:]
	}
	ri.resource = parts[0]
	if len(parts) > 1 {
		ri.name = parts[1]
	}
	if len(parts) > 2 {
		ri.subresource = strings.Join(parts[2:], "/")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watchPath || query.Get("watch") == "true" || query.Get("watch") == "1":
			ri.verb = "watch"
		case ri.name == "":
			ri.verb = "list"
		default:
			ri.verb = "get"
		}
	case http.MethodPost:
		ri.verb = "create"
	case http.MethodPut:
		ri.verb = "update"
	case http.MethodPatch:
		ri.verb = "patch"
	case http.MethodDelete:
		if ri.name == "" {
			ri.verb = "deletecollection"
		} else {
			ri.verb = "delete"
		}
	}
	return ri, true
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
