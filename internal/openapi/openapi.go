// Package openapi serves the OpenAPI documents of the API: /openapi/v2 (JSON
// and protobuf) and /openapi/v3 (an index and one document per
// group-version), as kubectl explain, kubectl's validation and its patching
// read them.
//
// Built-in definitions are generated from k8s.io/api by kube-openapi's
// openapi-gen (zz_generated.openapi.go, see generate.go). Paths are built
// from the resources the API server reports serving, so the documents follow
// the served set. Custom kinds get their schema at run time with AddSchema.
//
// Documents are built on first request and kept until the served resources
// or the custom schemas change; each carries an ETag (the hash of its bytes)
// and answers If-None-Match with 304.
package openapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Config is what a Service needs from the API server.
type Config struct {
	// Resources returns what the server serves now, in the shape of
	// discovery: one list per group-version, subresources named
	// "<resource>/<sub>". It is called on every request, so it must be
	// cheap; a change in its answer rebuilds the documents.
	Resources func() []*metav1.APIResourceList
	// Scheme names the Go types of built-in kinds (for their definitions
	// and x-kubernetes-group-version-kind).
	Scheme *runtime.Scheme
	// Title and Version fill the documents' info.
	Title, Version string
}

// Service builds and serves the documents. It is safe for concurrent use.
type Service struct {
	cfg Config

	mu sync.Mutex
	// names is built on first request, as the documents are.
	names *namer
	// custom holds the schemas added at run time, by kind.
	custom map[schema.GroupVersionKind]*spec.Schema
	// generation counts changes to custom.
	generation uint64
	docs       *documents
}

// New returns a Service. Documents are built on first request.
func New(cfg Config) (*Service, error) {
	if cfg.Resources == nil || cfg.Scheme == nil {
		return nil, fmt.Errorf("openapi: Config needs Resources and Scheme")
	}
	if cfg.Title == "" {
		cfg.Title = "Kubernetes"
	}
	return &Service{
		cfg:    cfg,
		custom: map[schema.GroupVersionKind]*spec.Schema{},
	}, nil
}

// AddSchema sets the schema of a kind that is not built in (a custom
// resource), replacing any earlier one. s describes the object (an OpenAPI v3
// structural schema as in a CustomResourceDefinition); apiVersion, kind and
// metadata are added when absent, and the kind's list type is derived.
// ETags of the affected documents change.
func (s *Service) AddSchema(gvk schema.GroupVersionKind, sch *spec.Schema) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.custom[gvk] = sch
	s.generation++
}

// RemoveSchema forgets a kind's schema set by AddSchema.
func (s *Service) RemoveSchema(gvk schema.GroupVersionKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.custom[gvk]; ok {
		delete(s.custom, gvk)
		s.generation++
	}
}

// current returns the documents for the served resources, building them
// when the resources or schemas changed since the last build.
func (s *Service) current() (*documents, error) {
	lists := s.cfg.Resources()
	key := fingerprint(lists)
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.docs; d != nil && d.key == key && d.generation == s.generation {
		return d, nil
	}
	if s.names == nil {
		generated, err := builtinNames()
		if err != nil {
			return nil, err
		}
		s.names = newNamer(s.cfg.Scheme, generated)
	}
	custom := make(map[schema.GroupVersionKind]*spec.Schema, len(s.custom))
	for k, v := range s.custom {
		custom[k] = v
	}
	d, err := build(buildInput{
		lists: lists, custom: custom, names: s.names,
		title: s.cfg.Title, version: s.cfg.Version,
	})
	if err != nil {
		return nil, err
	}
	d.key, d.generation = key, s.generation
	s.docs = d
	return d, nil
}

// fingerprint is a cheap identity of the served set: the documents change
// exactly when it does.
func fingerprint(lists []*metav1.APIResourceList) string {
	var b strings.Builder
	for _, l := range lists {
		b.WriteString(l.GroupVersion)
		b.WriteByte('|')
		for _, r := range l.APIResources {
			fmt.Fprintf(&b, "%s,%s,%s,%s,%t,%s;", r.Name, r.Group, r.Version, r.Kind, r.Namespaced, strings.Join(r.Verbs, " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// ServeV2 answers /openapi/v2.
func (s *Service) ServeV2(w http.ResponseWriter, r *http.Request) {
	d, err := s.current()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d.serveV2(w, r)
}

// ServeV3 answers /openapi/v3 (the index) and /openapi/v3/<gv path>.
func (s *Service) ServeV3(w http.ResponseWriter, r *http.Request) {
	d, err := s.current()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p := strings.Trim(strings.TrimPrefix(r.URL.Path, "/openapi/v3"), "/")
	if p == "" {
		d.serveV3Index(w, r)
		return
	}
	d.serveV3(w, r, p)
}

// namer names the definitions of built-in types and knows their kinds.
type namer struct {
	// modelOf maps a kind to its model name.
	modelOf map[schema.GroupVersionKind]string
	// kindsOf maps a model name to every kind it serves as, sorted.
	kindsOf map[string][]schema.GroupVersionKind
}

type modelNamer interface{ OpenAPIModelName() string }

func newNamer(scheme *runtime.Scheme, generated map[string]bool) *namer {
	n := &namer{modelOf: map[schema.GroupVersionKind]string{}, kindsOf: map[string][]schema.GroupVersionKind{}}
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		obj, err := scheme.New(gvk)
		if err != nil {
			continue
		}
		m, ok := obj.(modelNamer)
		if !ok {
			continue
		}
		name := m.OpenAPIModelName()
		if !generated[name] {
			// A kind of a group not generated: served as a schema-less
			// kind, if at all.
			continue
		}
		n.modelOf[gvk] = name
		n.kindsOf[name] = append(n.kindsOf[name], gvk)
	}
	for _, kinds := range n.kindsOf {
		slices.SortFunc(kinds, func(a, b schema.GroupVersionKind) int {
			return strings.Compare(a.Group+"/"+a.Version+"/"+a.Kind, b.Group+"/"+b.Version+"/"+b.Kind)
		})
	}
	return n
}

// customModelName is the definition name of a custom kind, as upstream names
// them: the reversed group, the version and the kind
// (com.example.stable.v1.CronTab).
func customModelName(gvk schema.GroupVersionKind) string {
	parts := strings.Split(gvk.Group, ".")
	slices.Reverse(parts)
	return strings.Join(append(parts, gvk.Version, gvk.Kind), ".")
}

// gvkExtension is x-kubernetes-group-version-kind's value.
func gvkExtension(kinds ...schema.GroupVersionKind) []interface{} {
	out := make([]interface{}, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, map[string]interface{}{"group": k.Group, "version": k.Version, "kind": k.Kind})
	}
	return out
}
