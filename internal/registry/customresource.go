package registry

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	schemavalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/client-go/util/jsonpath"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// customResourceStrategy is one served version of a CustomResourceDefinition:
// a strategy built at run time over unstructured objects. Its rules are the
// version's structural schema (pruning, defaulting, OpenAPI validation and
// x-kubernetes-validations CEL rules), as Kubernetes' apiextensions server
// applies them.
type customResourceStrategy struct {
	info Info
	// crdName is the definition's name.
	crdName string
	// storageVersion is the version objects are stored in (conversion None:
	// only apiVersion changes between versions).
	storageVersion string

	structural *structuralschema.Structural // nil: no schema
	validator  schemavalidation.SchemaValidator
	cel        *cel.Validator // nil: no CEL rules

	// hasDefaults: the schema has defaults, applied on read too.
	hasDefaults bool
	hasStatus   bool
	scale       *apiextensionsv1.CustomResourceSubresourceScale
	columns     []apiextensionsv1.CustomResourceColumnDefinition
}

// NewCustomResource builds the strategy of one served version of crd.
func NewCustomResource(crd *apiextensionsv1.CustomResourceDefinition, version string) (Strategy, error) {
	var v *apiextensionsv1.CustomResourceDefinitionVersion
	storage := ""
	for i := range crd.Spec.Versions {
		if crd.Spec.Versions[i].Name == version {
			v = &crd.Spec.Versions[i]
		}
		if crd.Spec.Versions[i].Storage {
			storage = crd.Spec.Versions[i].Name
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%s has no version %s", crd.Name, version)
	}
	names := crd.Status.AcceptedNames
	if names.Plural == "" {
		names = crd.Spec.Names
	}
	s := &customResourceStrategy{
		info: Info{
			Group: crd.Spec.Group, Version: version, Resource: names.Plural,
			Kind: names.Kind, ListKind: names.ListKind, SingularName: names.Singular,
			Namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			ShortNames: names.ShortNames, Categories: names.Categories,
		},
		crdName:        crd.Name,
		storageVersion: storage,
		columns:        v.AdditionalPrinterColumns,
	}
	if s.info.SingularName == "" {
		s.info.SingularName = strings.ToLower(names.Kind)
	}
	if sub := v.Subresources; sub != nil {
		if sub.Status != nil {
			s.hasStatus = true
			s.info.Subresources = append(s.info.Subresources, statusSubresource())
		}
		if sub.Scale != nil {
			s.scale = sub.Scale
			s.info.Subresources = append(s.info.Subresources, scaleSubresource())
		}
	}
	if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
		internal := &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, fmt.Errorf("%s %s: convert schema: %w", crd.Name, version, err)
		}
		st, err := structuralschema.NewStructural(internal)
		if err != nil {
			return nil, fmt.Errorf("%s %s: schema is not structural: %w", crd.Name, version, err)
		}
		s.structural = st
		s.hasDefaults = hasDefaults(st)
		if s.validator, _, err = schemavalidation.NewSchemaValidator(internal); err != nil {
			return nil, fmt.Errorf("%s %s: schema: %w", crd.Name, version, err)
		}
		s.cel = cel.NewValidator(st, true, celconfig.PerCallLimit)
	}
	return s, nil
}

func (s *customResourceStrategy) Info() *Info { return &s.info }

func (s *customResourceStrategy) New() runtime.Object { return &unstructured.Unstructured{} }
func (s *customResourceStrategy) NewList() runtime.Object {
	return &unstructured.UnstructuredList{Object: map[string]interface{}{}}
}

func unstructuredContent(obj runtime.Object) map[string]interface{} {
	u, ok := obj.(runtime.Unstructured)
	if !ok {
		return nil
	}
	return u.UnstructuredContent()
}

// PrepareForCreate drops the status of a kind with a status subresource.
func (s *customResourceStrategy) PrepareForCreate(obj runtime.Object) {
	if s.hasStatus {
		delete(unstructuredContent(obj), "status")
	}
}

// PrepareForUpdate keeps the stored status when the status is a
// subresource.
func (s *customResourceStrategy) PrepareForUpdate(obj, old runtime.Object) {
	if s.hasStatus {
		s.CopyStatus(obj, old)
	}
}

// Default prunes what the schema does not know, then applies its defaults.
func (s *customResourceStrategy) Default(obj runtime.Object) {
	if s.structural == nil {
		return
	}
	c := unstructuredContent(obj)
	pruning.Prune(c, s.structural, true)
	defaulting.Default(c, s.structural)
}

// Validate checks metadata, the OpenAPI schema and the CEL rules.
func (s *customResourceStrategy) Validate(obj runtime.Object) field.ErrorList {
	return s.validate(obj, nil)
}

func (s *customResourceStrategy) validate(obj, old runtime.Object) field.ErrorList {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("%T is not unstructured", obj))}
	}
	errs := ValidateObjectMetaAccessor(u, s.info.Namespaced)
	if s.validator == nil {
		return errs
	}
	if old != nil {
		errs = append(errs, schemavalidation.ValidateCustomResourceUpdate(nil, u.Object, unstructuredContent(old), s.validator)...)
	} else {
		errs = append(errs, schemavalidation.ValidateCustomResource(nil, u.Object, s.validator)...)
	}
	if s.cel != nil {
		var oldObj interface{}
		if old != nil {
			oldObj = unstructuredContent(old)
		}
		celErrs, _ := s.cel.Validate(context.Background(), nil, s.structural, u.Object, oldObj, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// ValidateUpdate is not used: an update is checked whole by
// ValidateWholeUpdate, which runs the schema once with the old object.
func (s *customResourceStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList { return nil }

// ValidateWholeUpdate checks an updated object against the schema and the
// CEL rules with the old object, so transition rules (oldSelf) see it.
func (s *customResourceStrategy) ValidateWholeUpdate(obj, old runtime.Object) field.ErrorList {
	return s.validate(obj, old)
}

func (s *customResourceStrategy) CopyStatus(dst, src runtime.Object) {
	d, sc := unstructuredContent(dst), unstructuredContent(src)
	if st, ok := sc["status"]; ok {
		d["status"] = runtime.DeepCopyJSONValue(st)
	} else {
		delete(d, "status")
	}
}

// SpecChanged: a custom object's generation counts every change but those
// of its metadata and (with a status subresource) its status.
func (s *customResourceStrategy) SpecChanged(obj, old runtime.Object) bool {
	strip := func(o runtime.Object) map[string]interface{} {
		m := map[string]interface{}{}
		for k, v := range unstructuredContent(o) {
			if k == "metadata" || k == "apiVersion" || k == "kind" || s.hasStatus && k == "status" {
				continue
			}
			m[k] = v
		}
		return m
	}
	return !equality.Semantic.DeepEqual(strip(obj), strip(old))
}

func (s *customResourceStrategy) SelectableFields(runtime.Object) fields.Set { return nil }

// TableColumns are the version's additionalPrinterColumns after Name, with
// Age when none is given, as kubectl shows custom resources.
func (s *customResourceStrategy) TableColumns() []metav1.TableColumnDefinition {
	cols := []metav1.TableColumnDefinition{tableNameColumn()}
	if len(s.columns) == 0 {
		return append(cols, tableAgeColumn())
	}
	for _, c := range s.columns {
		cols = append(cols, metav1.TableColumnDefinition{
			Name: c.Name, Type: c.Type, Format: c.Format, Description: c.Description, Priority: c.Priority,
		})
	}
	return cols
}

func (s *customResourceStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	m, _ := obj.(metav1.Object)
	if m == nil {
		return nil
	}
	cells := []interface{}{m.GetName()}
	if len(s.columns) == 0 {
		return append(cells, tableAge(m.GetCreationTimestamp(), now))
	}
	data := unstructuredContent(obj)
	for _, c := range s.columns {
		cells = append(cells, columnCell(data, c, now))
	}
	return cells
}

// columnCell evaluates a printer column's JSONPath on an object, rendering
// dates as ages and missing values as nil, as the API server does.
func columnCell(data map[string]interface{}, c apiextensionsv1.CustomResourceColumnDefinition, now time.Time) interface{} {
	jp := jsonpath.New(c.Name).AllowMissingKeys(true)
	if err := jp.Parse(fmt.Sprintf("{%s}", c.JSONPath)); err != nil {
		return nil
	}
	results, err := jp.FindResults(data)
	if err != nil || len(results) == 0 || len(results[0]) == 0 {
		return nil
	}
	v := results[0][0].Interface()
	if c.Type == "date" {
		if str, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339, str); err == nil {
				return tableAge(metav1.NewTime(t), now)
			}
		}
		return nil
	}
	switch v.(type) {
	case string, bool, int64, float64:
		return v
	case int:
		return int64(v.(int))
	}
	var buf bytes.Buffer
	if err := jp.PrintResults(&buf, results[0]); err != nil {
		return nil
	}
	return buf.String()
}

// Scale reads the scale subresource's paths.
func (s *customResourceStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	if s.scale == nil {
		return nil, fmt.Errorf("%s has no scale subresource", s.info.Kind)
	}
	c := unstructuredContent(obj)
	m := obj.(metav1.Object)
	var spec *int32
	if n, ok, _ := unstructured.NestedInt64(c, jsonPathFields(s.scale.SpecReplicasPath)...); ok {
		n32 := int32(n)
		spec = &n32
	}
	var status int32
	if n, ok, _ := unstructured.NestedInt64(c, jsonPathFields(s.scale.StatusReplicasPath)...); ok {
		status = int32(n)
	}
	sc := newScale(m, spec, status, nil)
	if p := s.scale.LabelSelectorPath; p != nil {
		if sel, ok, _ := unstructured.NestedString(c, jsonPathFields(*p)...); ok {
			sc.Status.Selector = sel
		}
	}
	return sc, nil
}

func (s *customResourceStrategy) SetReplicas(obj runtime.Object, n int32) error {
	if s.scale == nil {
		return fmt.Errorf("%s has no scale subresource", s.info.Kind)
	}
	return unstructured.SetNestedField(unstructuredContent(obj), int64(n), jsonPathFields(s.scale.SpecReplicasPath)...)
}

// jsonPathFields splits a simple JSON path (".spec.replicas").
func jsonPathFields(p string) []string {
	return strings.Split(strings.TrimPrefix(p, "."), ".")
}

// StorageVersion is the version objects are stored in.
func (s *customResourceStrategy) StorageVersion() string { return s.storageVersion }

// objectMetaFromAccessor copies the metadata of an object that has no
// typed ObjectMeta (an unstructured custom object).
func objectMetaFromAccessor(obj runtime.Object) *metav1.ObjectMeta {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil
	}
	return &metav1.ObjectMeta{
		Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
		ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(),
		CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
		DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(), Labels: m.GetLabels(),
		Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(),
	}
}

// TypeConverter is the structured-merge type of this version's objects,
// from its structural schema, for managed fields and server-side apply.
// Metadata is kept as a free-form object (its fields are tracked without
// the ObjectMeta schema); a version without a schema is deduced from the
// objects themselves.
func (s *customResourceStrategy) TypeConverter() (managedfields.TypeConverter, error) {
	if s.structural == nil {
		return managedfields.NewDeducedTypeConverter(), nil
	}
	root := s.structural.ToKubeOpenAPI()
	if root.Properties == nil {
		root.Properties = map[string]spec.Schema{}
	}
	str := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"string"}}}
	root.Properties["apiVersion"], root.Properties["kind"] = str, str
	md := spec.Schema{SchemaProps: spec.SchemaProps{Type: []string{"object"}}}
	md.AddExtension("x-kubernetes-preserve-unknown-fields", true)
	root.Properties["metadata"] = md
	root.AddExtension("x-kubernetes-group-version-kind", []interface{}{
		map[string]interface{}{"group": s.info.Group, "version": s.info.Version, "kind": s.info.Kind},
	})
	name := fmt.Sprintf("%s.%s.%s", s.info.Group, s.info.Version, s.info.Kind)
	return managedfields.NewTypeConverter(map[string]*spec.Schema{name: root}, false)
}

func hasDefaults(s *structuralschema.Structural) bool {
	if s == nil {
		return false
	}
	if s.Default.Object != nil {
		return true
	}
	for _, p := range s.Properties {
		if hasDefaults(&p) {
			return true
		}
	}
	if s.Items != nil && hasDefaults(s.Items) {
		return true
	}
	return s.AdditionalProperties != nil && hasDefaults(s.AdditionalProperties.Structural)
}

// HasReadDefaults reports whether the schema has defaults to apply to
// objects read from storage.
func (s *customResourceStrategy) HasReadDefaults() bool { return s.hasDefaults }

// DefaultOnRead applies the schema's defaults to an object read from
// storage (defaults added to a schema after the object was written), as
// Kubernetes does. obj must be the caller's own copy.
func (s *customResourceStrategy) DefaultOnRead(obj runtime.Object) {
	if s.hasDefaults {
		defaulting.Default(unstructuredContent(obj), s.structural)
	}
}

// UnknownFields lists the fields of obj that the schema does not declare
// (what Default prunes), as "spec.colr", for field validation.
func (s *customResourceStrategy) UnknownFields(obj runtime.Object) []string {
	if s.structural == nil {
		return nil
	}
	c := runtime.DeepCopyJSON(unstructuredContent(obj))
	return pruning.PruneWithOptions(c, s.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
}
