package apiserver

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/openapi"
)

// newOpenAPI makes the service behind /openapi/v2 and /openapi/v3. It
// describes what discovery reports, so a resource served later (a custom
// resource) appears in the documents on the next request.
func (s *Server) newOpenAPI() (*openapi.Service, error) {
	return openapi.New(openapi.Config{
		Resources: s.servedResourceLists,
		Scheme:    s.reg.Scheme(),
		Title:     "Kubernetes",
		Version:   KubernetesVersion,
	})
}

// OpenAPI is the service describing the API, for adding the schemas of
// custom resources (AddSchema, RemoveSchema).
func (s *Server) OpenAPI() *openapi.Service { return s.openapi }

// servedResourceLists is discovery's resource lists, one per group-version.
func (s *Server) servedResourceLists() []*metav1.APIResourceList {
	var out []*metav1.APIResourceList
	index := map[schema.GroupVersion]*metav1.APIResourceList{}
	for _, res := range s.reg.All() {
		gv := res.GroupVersion()
		l, ok := index[gv]
		if !ok {
			l = &metav1.APIResourceList{GroupVersion: gv.String()}
			index[gv] = l
			out = append(out, l)
		}
		l.APIResources = append(l.APIResources, apiResources(res)...)
	}
	return out
}
