package openapi

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/openapiconv"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// documents is one build of every document, immutable once built (the v2
// protobuf form is computed on first request).
type documents struct {
	key        string
	generation uint64

	v2      doc
	v2Proto lazyDoc
	// v3 is keyed by the index path: "api/v1", "apis/apps/v1".
	v3      map[string]doc
	v3Index doc
}

type doc struct {
	data []byte
	etag string
}

// lazyDoc is a document form computed once, on first use.
type lazyDoc struct {
	once sync.Once
	doc  doc
	err  error
}

func (l *lazyDoc) get(from []byte, convert func([]byte) ([]byte, error)) (doc, error) {
	l.once.Do(func() {
		data, err := convert(from)
		l.doc, l.err = doc{data: data, etag: etagOf(data)}, err
	})
	return l.doc, l.err
}

func newDoc(data []byte) doc { return doc{data: data, etag: etagOf(data)} }

// etagOf hashes a document as upstream does (SHA-512, upper-case hex).
func etagOf(data []byte) string { return fmt.Sprintf("%X", sha512.Sum512(data)) }

// Common definitions every group-version document references.
var (
	deleteOptionsModel = metav1.DeleteOptions{}.OpenAPIModelName()
	statusModel        = metav1.Status{}.OpenAPIModelName()
	patchModel         = metav1.Patch{}.OpenAPIModelName()
	watchEventModel    = metav1.WatchEvent{}.OpenAPIModelName()
	objectMetaModel    = metav1.ObjectMeta{}.OpenAPIModelName()
	listMetaModel      = metav1.ListMeta{}.OpenAPIModelName()
)

type buildInput struct {
	lists          []*metav1.APIResourceList
	custom         map[schema.GroupVersionKind]*spec.Schema
	names          *namer
	title, version string
}

// kinds resolves definition names: built-in models from the scheme, custom
// kinds from AddSchema, and a schema-less custom kind for a served kind
// that has neither.
type kinds struct {
	in *buildInput
	// custom maps a custom model name to its kind and schema (nil when
	// served without a schema); lists are included, marked by list.
	custom map[string]customKind
}

type customKind struct {
	gvk    schema.GroupVersionKind
	schema *spec.Schema
	list   bool
}

// model returns the definition name of gvk, registering a served kind that
// has no definition as a schema-less custom kind when register is set.
func (k *kinds) model(gvk schema.GroupVersionKind, register bool) (string, bool) {
	if s, ok := k.in.custom[gvk]; ok {
		name := customModelName(gvk)
		k.custom[name] = customKind{gvk: gvk, schema: s}
		return name, true
	}
	if name, ok := k.in.names.modelOf[gvk]; ok {
		return name, true
	}
	if base, isList := strings.CutSuffix(gvk.Kind, "List"); isList {
		bk := gvk.GroupVersion().WithKind(base)
		if _, ok := k.custom[customModelName(bk)]; ok {
			name := customModelName(gvk)
			k.custom[name] = customKind{gvk: gvk, list: true}
			return name, true
		}
	}
	if !register {
		return "", false
	}
	name := customModelName(gvk)
	k.custom[name] = customKind{gvk: gvk}
	return name, true
}

// definitionName is GetDefinitionName for the builders: names are model
// names already; kinds get x-kubernetes-group-version-kind.
func (k *kinds) definitionName(name string) (string, spec.Extensions) {
	if gvks, ok := k.in.names.kindsOf[name]; ok {
		return name, spec.Extensions{"x-kubernetes-group-version-kind": gvkExtension(gvks...)}
	}
	if c, ok := k.custom[name]; ok {
		return name, spec.Extensions{"x-kubernetes-group-version-kind": gvkExtension(c.gvk)}
	}
	return name, nil
}

// definitions returns the built-in definitions plus the custom ones, for
// OpenAPI v2 (refs to #/definitions/) or v3 (#/components/schemas/). v2
// strips what OpenAPI v2 cannot say from custom schemas. Only the built-in
// definitions roots need are decoded.
func (k *kinds) definitions(v2 bool, roots []string) (map[string]common.OpenAPIDefinition, error) {
	// Custom kinds refer to these.
	roots = append(slices.Clone(roots), objectMetaModel, listMetaModel)
	defs, err := builtinDefinitions(v2, roots)
	if err != nil {
		return nil, err
	}
	prefix := "#/components/schemas/"
	if v2 {
		prefix = "#/definitions/"
	}
	ref := func(name string) spec.Ref { return spec.MustCreateRef(prefix + common.EscapeJsonPointer(name)) }
	for name, c := range k.custom {
		if c.list {
			item := customModelName(c.gvk.GroupVersion().WithKind(strings.TrimSuffix(c.gvk.Kind, "List")))
			defs[name] = customListDefinition(c.gvk, item, ref)
			continue
		}
		defs[name] = customDefinition(c, ref, v2)
	}
	return defs, nil
}

func customDefinition(c customKind, ref common.ReferenceCallback, v2 bool) common.OpenAPIDefinition {
	var s spec.Schema
	if c.schema != nil {
		s = *copySchema(c.schema)
	} else {
		s.Extensions = spec.Extensions{"x-kubernetes-preserve-unknown-fields": true}
	}
	if v2 {
		s = *toV2(&s)
	}
	s.Type = spec.StringOrArray{"object"}
	if s.Properties == nil {
		s.Properties = map[string]spec.Schema{}
	}
	addProp := func(name string, p spec.Schema) {
		if _, ok := s.Properties[name]; !ok {
			s.Properties[name] = p
		}
	}
	addProp("apiVersion", *spec.StringProperty().WithDescription("The versioned schema of this representation of an object."))
	addProp("kind", *spec.StringProperty().WithDescription("The REST resource this object represents."))
	// Standard object metadata replaces whatever the custom schema says.
	s.Properties["metadata"] = spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(objectMetaModel)}}
	if s.Description == "" {
		s.Description = c.gvk.Kind + " is a custom resource of " + c.gvk.GroupVersion().String() + "."
	}
	return common.OpenAPIDefinition{Schema: s, Dependencies: []string{objectMetaModel}}
}

func customListDefinition(gvk schema.GroupVersionKind, item string, ref common.ReferenceCallback) common.OpenAPIDefinition {
	s := spec.Schema{SchemaProps: spec.SchemaProps{
		Description: gvk.Kind + " is a list of " + strings.TrimSuffix(gvk.Kind, "List") + ".",
		Type:        spec.StringOrArray{"object"},
		Required:    []string{"items"},
		Properties: map[string]spec.Schema{
			"apiVersion": *spec.StringProperty().WithDescription("The versioned schema of this representation of an object."),
			"kind":       *spec.StringProperty().WithDescription("The REST resource this object represents."),
			"items":      *spec.ArrayProperty(&spec.Schema{SchemaProps: spec.SchemaProps{Ref: ref(item)}}).WithDescription("The objects of the list."),
			"metadata":   {SchemaProps: spec.SchemaProps{Ref: ref(listMetaModel)}},
		},
	}}
	return common.OpenAPIDefinition{Schema: s, Dependencies: []string{item, listMetaModel}}
}

// copySchema deep-copies a schema through JSON.
func copySchema(s *spec.Schema) *spec.Schema {
	data, err := json.Marshal(s)
	if err != nil {
		return &spec.Schema{}
	}
	var out spec.Schema
	if err := json.Unmarshal(data, &out); err != nil {
		return &spec.Schema{}
	}
	return &out
}

// toV2 drops from a structural schema what OpenAPI v2 cannot express
// (oneOf, anyOf, not, nullable), as upstream does for custom resources.
func toV2(s *spec.Schema) *spec.Schema {
	if s == nil {
		return nil
	}
	s.OneOf, s.AnyOf, s.Not, s.Nullable = nil, nil, nil, false
	for k, p := range s.Properties {
		s.Properties[k] = *toV2(&p)
	}
	if s.Items != nil {
		s.Items.Schema = toV2(s.Items.Schema)
		for i := range s.Items.Schemas {
			s.Items.Schemas[i] = *toV2(&s.Items.Schemas[i])
		}
	}
	if s.AdditionalProperties != nil {
		s.AdditionalProperties.Schema = toV2(s.AdditionalProperties.Schema)
	}
	for i := range s.AllOf {
		s.AllOf[i] = *toV2(&s.AllOf[i])
	}
	return s
}

// groupVersion is one served group-version and what its document holds.
type groupVersion struct {
	gv    schema.GroupVersion
	list  *metav1.APIResourceList
	roots []string
	paths map[string]spec.PathItem
}

// indexPath is the group-version's path in the v3 index.
func (g *groupVersion) indexPath() string {
	if g.gv.Group == "" {
		return "api/" + g.gv.Version
	}
	return "apis/" + g.gv.Group + "/" + g.gv.Version
}

func build(in buildInput) (*documents, error) {
	k := &kinds{in: &in, custom: map[string]customKind{}}
	var gvs []*groupVersion
	for _, l := range in.lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return nil, fmt.Errorf("openapi: served group-version %q: %w", l.GroupVersion, err)
		}
		g := &groupVersion{gv: gv, list: l}
		g.paths, g.roots = buildPaths(gv, l.APIResources, k)
		gvs = append(gvs, g)
	}
	sort.Slice(gvs, func(i, j int) bool { return gvs[i].indexPath() < gvs[j].indexPath() })
	info := &spec.Info{InfoProps: spec.InfoProps{Title: in.title, Version: in.version}}

	// OpenAPI v2: one document with everything.
	var roots []string
	seen := map[string]bool{}
	for _, g := range gvs {
		for _, r := range g.roots {
			if !seen[r] {
				seen[r] = true
				roots = append(roots, r)
			}
		}
	}
	defs2, err := k.definitions(true, roots)
	if err != nil {
		return nil, err
	}
	sw, err := builder.BuildOpenAPIDefinitionsForResources(&common.Config{
		Info: info,
		// The definitions' refs are made already, as the builder would.
		GetDefinitions:    func(common.ReferenceCallback) map[string]common.OpenAPIDefinition { return defs2 },
		GetDefinitionName: k.definitionName,
	}, roots...)
	if err != nil {
		return nil, fmt.Errorf("openapi: v2 definitions: %w", err)
	}
	sw.Paths = &spec.Paths{Paths: map[string]spec.PathItem{}}
	for _, g := range gvs {
		for p, item := range g.paths {
			sw.Paths.Paths[p] = item
		}
	}
	v2, err := json.Marshal(sw)
	if err != nil {
		return nil, fmt.Errorf("openapi: v2: %w", err)
	}

	// OpenAPI v3: one document per group-version, sharing definitions.
	defs3, err := k.definitions(false, roots)
	if err != nil {
		return nil, err
	}
	d := &documents{v2: newDoc(v2), v3: map[string]doc{}}
	index := struct {
		Paths map[string]map[string]string `json:"paths"`
	}{Paths: map[string]map[string]string{}}
	for _, g := range gvs {
		schemas, err := builder3.BuildOpenAPIDefinitionsForResources(&common.OpenAPIV3Config{
			Info:              info,
			Definitions:       defs3,
			GetDefinitionName: k.definitionName,
		}, g.roots...)
		if err != nil {
			return nil, fmt.Errorf("openapi: v3 definitions of %s: %w", g.gv, err)
		}
		o := &spec3.OpenAPI{
			Version:    "3.0.0",
			Info:       info,
			Paths:      openapiconv.ConvertPaths(&spec.Paths{Paths: g.paths}),
			Components: &spec3.Components{Schemas: schemas},
		}
		data, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("openapi: v3 %s: %w", g.gv, err)
		}
		vd := newDoc(data)
		d.v3[g.indexPath()] = vd
		index.Paths[g.indexPath()] = map[string]string{"serverRelativeURL": "/openapi/v3/" + g.indexPath() + "?hash=" + vd.etag}
	}
	idx, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	d.v3Index = newDoc(idx)
	return d, nil
}
