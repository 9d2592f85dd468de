package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"

	apiextensionsapply "k8s.io/apiextensions-apiserver/pkg/client/applyconfiguration"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/applyconfigurations"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/yaml"

	"skiff/internal/registry"
	"skiff/internal/storage"
)

// Server-side apply and managed fields, with apimachinery's managedfields
// package as Kubernetes' API server uses it: every write records which
// manager owns which fields (metadata.managedFields), and an apply patch
// merges the manager's intent into the live object, answering 409 when it
// would take fields another manager owns (unless forced).

// fieldManagers builds and caches one field manager per resource and
// subresource.
type fieldManagers struct {
	scheme   *runtime.Scheme
	builtins managedfields.TypeConverter

	mu       sync.Mutex
	managers map[fieldManagerKey]*managedfields.FieldManager
}

type fieldManagerKey struct {
	res         *registry.Resource
	subresource string
}

func newFieldManagers(scheme *runtime.Scheme) *fieldManagers {
	return &fieldManagers{
		scheme: scheme,
		builtins: byGroup{
			"apiextensions.k8s.io": apiextensionsapply.NewTypeConverter(scheme),
			"":                     applyconfigurations.NewTypeConverter(scheme),
		},
		managers: map[fieldManagerKey]*managedfields.FieldManager{},
	}
}

// byGroup is the type converter of the built-in kinds: client-go's
// applyconfigurations schema for Kubernetes' own groups, apiextensions'
// for CustomResourceDefinitions (key "" is the default).
type byGroup map[string]managedfields.TypeConverter

func (b byGroup) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	c, ok := b[obj.GetObjectKind().GroupVersionKind().Group]
	if !ok {
		c = b[""]
	}
	return c.ObjectToTyped(obj, opts...)
}

func (b byGroup) TypedToObject(v *typed.TypedValue) (runtime.Object, error) {
	return b[""].TypedToObject(v)
}

// forResource returns the field manager of res (and subresource).
func (f *fieldManagers) forResource(res *registry.Resource, subresource string) (*managedfields.FieldManager, error) {
	k := fieldManagerKey{res: res, subresource: subresource}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.managers[k]; ok {
		return m, nil
	}
	var (
		m   *managedfields.FieldManager
		err error
	)
	if _, custom := res.New().(*unstructured.Unstructured); custom {
		tc, terr := customTypeConverter(res)
		if terr != nil {
			return nil, terr
		}
		m, err = managedfields.NewDefaultCRDFieldManager(tc, unstructuredConvertor{}, resourceDefaulter{res},
			unstructuredCreater{}, res.GVK(), res.GroupVersion(), subresource, nil)
	} else {
		m, err = managedfields.NewDefaultFieldManager(f.builtins, f.scheme, resourceDefaulter{res},
			f.scheme, res.GVK(), res.GroupVersion(), subresource, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("field manager of %s: %w", res.GroupResource(), err)
	}
	f.managers[k] = m
	return m, nil
}

// forget drops the managers of resources no longer served (a custom
// resource whose definition changed).
func (f *fieldManagers) forget(res *registry.Resource) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.managers {
		if k.res == res {
			delete(f.managers, k)
		}
	}
}

// schemaProvider is a custom resource whose strategy knows its OpenAPI
// schema.
type schemaProvider interface {
	TypeConverter() (managedfields.TypeConverter, error)
}

func customTypeConverter(res *registry.Resource) (managedfields.TypeConverter, error) {
	if p, ok := res.Strategy.(schemaProvider); ok {
		return p.TypeConverter()
	}
	return managedfields.NewDeducedTypeConverter(), nil
}

// resourceDefaulter applies a kind's defaults to objects of its kind.
type resourceDefaulter struct{ res *registry.Resource }

func (d resourceDefaulter) Default(obj runtime.Object) {
	if obj.GetObjectKind().GroupVersionKind().GroupKind() == d.res.GVK().GroupKind() {
		d.res.Default(obj)
	}
}

// unstructuredConvertor converts custom objects between versions of one
// kind: conversion None, where only apiVersion changes.
type unstructuredConvertor struct{}

func (unstructuredConvertor) Convert(in, out, context interface{}) error {
	u, ok1 := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	o.Object = runtime.DeepCopyJSON(u.Object)
	return nil
}

func (unstructuredConvertor) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	gvk, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("no version of %s for %v", u.GroupVersionKind(), gv)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(gvk)
	return out, nil
}

func (unstructuredConvertor) ConvertFieldLabel(_ schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

// unstructuredCreater makes empty custom objects.
type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// managerName is the field manager a write is recorded under: the
// fieldManager parameter, else the client's user agent up to its first
// "/", as Kubernetes does.
func (q *request) managerName() string {
	if m := q.query.Get("fieldManager"); m != "" {
		return m
	}
	ua := q.r.Header.Get("User-Agent")
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

// validateFieldManager checks the fieldManager parameter as upstream does.
func (q *request) validateFieldManager(apply bool) error {
	m := q.query.Get("fieldManager")
	p := field.NewPath("fieldManager")
	switch {
	case apply && m == "":
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}, "",
			field.ErrorList{field.Required(p, "is required for apply patch")})
	case len(m) > 128:
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}, "",
			field.ErrorList{field.TooLong(p, "", 128)})
	}
	return nil
}

// trackUpdate records the caller as the manager of what it changed from
// live (an empty object on create) to obj.
func (q *request) trackUpdate(live, obj runtime.Object) runtime.Object {
	fm, err := q.s.fields.forResource(q.res, q.ri.subresource)
	if err != nil {
		q.s.log.Warn("managed fields", "err", err)
		return obj
	}
	if live == nil {
		live = q.res.New()
	}
	return fm.UpdateNoErrors(live, obj, q.managerName())
}

// decodeApplyPatch reads an apply patch (YAML or JSON) as an unstructured
// object of the resource's kind, named as the URL names it.
func (q *request) decodeApplyPatch(data []byte) (*unstructured.Unstructured, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, badRequest("the apply patch is not valid YAML: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, badRequest("the apply patch could not be decoded: %v", err)
	}
	want := q.res.GVK()
	if q.ri.subresource == "scale" {
		want = scaleGVK
	}
	if got := u.GroupVersionKind(); got != want {
		return nil, badRequest("the apply patch is a %s, but %s was expected (set apiVersion and kind)", got, want)
	}
	if u.GetName() != "" && u.GetName() != q.ri.name {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", u.GetName(), q.ri.name)
	}
	if len(u.GetManagedFields()) > 0 {
		return nil, badRequest("metadata.managedFields must be nil in an apply patch")
	}
	return u, nil
}

// apply merges an apply patch into live (nil: the object does not exist
// yet) and returns the object to write.
func (q *request) apply(patch *unstructured.Unstructured, live runtime.Object) (runtime.Object, error) {
	fm, err := q.s.fields.forResource(q.res, q.ri.subresource)
	if err != nil {
		return nil, err
	}
	if live == nil {
		live = q.res.New()
		m := live.(metav1.Object)
		m.SetName(q.ri.name)
		m.SetNamespace(q.ri.namespace)
	}
	force := q.query.Get("force") == "true"
	out, err := fm.Apply(live, patch, q.query.Get("fieldManager"), force)
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return nil, err
		}
		return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "apply", q.res.GroupResource(), q.ri.name, err.Error(), 0, false)
	}
	return out, nil
}

// isApplyPatch reports a server-side apply request.
func isApplyPatch(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return types.PatchType(ct) == types.ApplyYAMLPatchType || types.PatchType(ct) == types.ApplyCBORPatchType
}

// serveApply serves an apply patch: it creates the object when absent, or
// merges the manager's intent into the live one, then runs the usual
// create or update rules.
func (q *request) serveApply(data []byte) {
	if err := q.validateFieldManager(true); err != nil {
		q.fail(err)
		return
	}
	if ct, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type")); types.PatchType(ct) == types.ApplyCBORPatchType {
		var m map[string]interface{}
		if err := direct.Unmarshal(data, &m); err != nil {
			q.fail(badRequest("the apply patch is not valid CBOR: %v", err))
			return
		}
		j, err := json.Marshal(m)
		if err != nil {
			q.fail(badRequest("the apply patch could not be decoded: %v", err))
			return
		}
		data = j
	}
	if q.ri.subresource != "" && q.ri.subresource != "status" {
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), "apply to "+q.ri.subresource))
		return
	}
	patch, err := q.decodeApplyPatch(data)
	if err != nil {
		q.fail(err)
		return
	}
	ctx := q.r.Context()
	k := key(q.res, q.ri.namespace, q.ri.name)
	for {
		cur, err := q.s.store.Get(ctx, k)
		if errors.Is(err, storage.ErrNotFound) && q.ri.subresource == "" {
			obj, err := q.apply(patch, nil)
			if err != nil {
				q.fail(err)
				return
			}
			m, _ := meta.Accessor(obj)
			out, err := q.createObject(ctx, obj, m.GetManagedFields())
			if apierrors.IsAlreadyExists(err) {
				continue // created meanwhile: apply to it
			}
			if err != nil {
				q.fail(err)
				return
			}
			q.respond(http.StatusCreated, out)
			return
		}
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		obj, err := q.apply(patch, cur.DeepCopyObject())
		if err != nil {
			q.fail(err)
			return
		}
		// The apply patch names no resourceVersion unless the client set
		// one: then it is a precondition.
		m, _ := meta.Accessor(obj)
		if patch.GetResourceVersion() == "" {
			m.SetResourceVersion("")
		}
		out, code, err := q.admitUpdate(ctx, obj, cur, true)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			q.fail(err)
			return
		}
		q.respond(code, out)
		return
	}
}
