// Package registry describes every resource skiff serves. Each kind is one
// strategy value (strategy.go says what a strategy provides; kind_*.go holds
// one kind each): its names, Go types, defaults, validation, status split,
// table columns and selectable fields. The API server is generic over them;
// adding a built-in kind is a file plus an entry in builtins(), and a custom
// resource is a strategy built at run time and added with Add.
package registry

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one served API resource: its names and its strategy.
type Resource struct {
	Info
	Strategy Strategy
	// fieldLabels is the set of field-selector keys, computed once.
	fieldLabels map[string]bool
}

func newResource(s Strategy) *Resource {
	r := &Resource{Info: *s.Info(), Strategy: s}
	if r.ListKind == "" {
		r.ListKind = r.Kind + "List"
	}
	r.fieldLabels = map[string]bool{}
	for k := range r.Fields(r.New()) {
		r.fieldLabels[k] = true
	}
	return r
}

// GroupVersion of the resource.
func (r *Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GVK is the kind's group/version/kind.
func (r *Resource) GVK() schema.GroupVersionKind { return r.GroupVersion().WithKind(r.Kind) }

// GVR is the resource's group/version/resource.
func (r *Resource) GVR() schema.GroupVersionResource {
	return r.GroupVersion().WithResource(r.Resource)
}

// GroupResource is used in API errors ("pods", "deployments.apps").
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// New returns an empty object of the resource's kind with TypeMeta set.
func (r *Resource) New() runtime.Object {
	o := r.Strategy.New()
	o.GetObjectKind().SetGroupVersionKind(r.GVK())
	return o
}

// NewList returns an empty list of the resource's kind with TypeMeta set.
func (r *Resource) NewList() runtime.Object {
	o := r.Strategy.NewList()
	o.GetObjectKind().SetGroupVersionKind(r.GroupVersion().WithKind(r.ListKind))
	return o
}

// HasSubresource reports whether sub ("status", "scale", ...) is served.
func (r *Resource) HasSubresource(sub string) bool {
	return slices.ContainsFunc(r.Subresources, func(s Subresource) bool { return s.Name == sub })
}

// Fields returns the field-selector fields of obj.
func (r *Resource) Fields(obj runtime.Object) fields.Set {
	set := fields.Set{}
	if m, ok := obj.(metav1.Object); ok {
		set["metadata.name"] = m.GetName()
		if r.Namespaced {
			set["metadata.namespace"] = m.GetNamespace()
		}
	}
	for k, v := range r.Strategy.SelectableFields(obj) {
		set[k] = v
	}
	return set
}

// SupportsField reports whether key is a field-selector key of the resource.
func (r *Resource) SupportsField(key string) bool { return r.fieldLabels[key] }

// PrepareForCreate: see Strategy.
func (r *Resource) PrepareForCreate(obj runtime.Object) { r.Strategy.PrepareForCreate(obj) }

// PrepareForUpdate: see Strategy.
func (r *Resource) PrepareForUpdate(obj, old runtime.Object) { r.Strategy.PrepareForUpdate(obj, old) }

// Default applies Kubernetes' field defaults.
func (r *Resource) Default(obj runtime.Object) { r.Strategy.Default(obj) }

// Validate checks a new object; errors name the offending field.
func (r *Resource) Validate(obj runtime.Object) field.ErrorList { return r.Strategy.Validate(obj) }

// ValidateUpdate checks an update against the stored object: the object
// itself, metadata that may not change, and the kind's immutable fields.
func (r *Resource) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	if w, ok := r.Strategy.(WholeUpdateValidator); ok {
		return append(w.ValidateWholeUpdate(obj, old), validateMetaUpdate(objectMetaOf(obj), objectMetaOf(old))...)
	}
	errs := r.Strategy.Validate(obj)
	errs = append(errs, validateMetaUpdate(objectMetaOf(obj), objectMetaOf(old))...)
	return append(errs, r.Strategy.ValidateUpdate(obj, old)...)
}

// ValidateStatusUpdate checks a status write: the kind's status rules when
// it has some, else the same as ValidateUpdate.
func (r *Resource) ValidateStatusUpdate(obj, old runtime.Object) field.ErrorList {
	if v, ok := r.Strategy.(StatusValidator); ok {
		return append(validateMetaUpdate(objectMetaOf(obj), objectMetaOf(old)), v.ValidateStatusUpdate(obj, old)...)
	}
	return r.ValidateUpdate(obj, old)
}

// TableColumns are the columns of `kubectl get` for this resource.
func (r *Resource) TableColumns() []metav1.TableColumnDefinition { return r.Strategy.TableColumns() }

// TableRow returns the cells of obj's row, matching TableColumns.
func (r *Resource) TableRow(obj runtime.Object) []interface{} {
	return r.Strategy.TableRow(obj, time.Now())
}

// Status returns the kind's status strategy, or nil when it has none.
func (r *Resource) Status() StatusStrategy {
	s, _ := r.Strategy.(StatusStrategy)
	return s
}

// Scaler returns the kind's scale strategy, or nil when it has none.
func (r *Resource) Scaler() ScaleStrategy {
	s, _ := r.Strategy.(ScaleStrategy)
	return s
}

// TracksGeneration reports whether metadata.generation counts spec changes.
func (r *Resource) TracksGeneration() bool {
	_, ok := r.Strategy.(GenerationStrategy)
	return ok
}

// SpecChanged reports whether an update changes the desired state.
func (r *Resource) SpecChanged(obj, old runtime.Object) bool {
	g, ok := r.Strategy.(GenerationStrategy)
	return ok && g.SpecChanged(obj, old)
}

// Allocator returns the kind's allocation hooks, or nil.
func (r *Resource) Allocator() Allocator {
	a, _ := r.Strategy.(Allocator)
	return a
}

// Action returns the action behind subresource sub, if any.
func (r *Resource) Action(sub string) (*Action, bool) {
	a, ok := r.Strategy.(ActionStrategy)
	if !ok {
		return nil, false
	}
	return a.Action(sub)
}

// KubeletConnecter returns the kind's kubelet proxy hooks, or nil.
func (r *Resource) KubeletConnecter() KubeletConnecter {
	c, _ := r.Strategy.(KubeletConnecter)
	return c
}

// DeletionHeld reports whether something besides metadata.finalizers holds
// obj back from deletion.
func (r *Resource) DeletionHeld(obj runtime.Object) bool {
	h, ok := r.Strategy.(DeletionHolder)
	return ok && h.DeletionHeld(obj)
}

// GracePending reports an object whose graceful deletion still runs.
func (r *Resource) GracePending(obj runtime.Object) bool {
	g, ok := r.Strategy.(GracefulDeleter)
	return ok && g.GracePending(obj)
}

// MarkDeleting lets the kind update an object whose deletion begins.
func (r *Resource) MarkDeleting(obj runtime.Object) {
	if h, ok := r.Strategy.(DeletionHolder); ok {
		h.MarkDeleting(obj)
	}
}

// Options are the cluster settings that change built-in strategies.
type Options struct {
	// DefaultNotReadyTolerationSeconds is the tolerationSeconds pods get
	// for the not-ready and unreachable taints (0: Kubernetes' 300).
	DefaultNotReadyTolerationSeconds int64
	// ServiceIPs and NodePorts allocate services' cluster IPs and node
	// ports; nil leaves services' addresses as clients send them (for
	// tests of the strategies alone).
	ServiceIPs IPAllocator
	NodePorts  PortAllocator
	// Authority answers the access, rules and token reviews; nil lets
	// every authenticated user do everything.
	Authority Authority
	// Tokens issues service-account tokens (serviceaccounts/token); nil
	// serves no token subresource.
	Tokens TokenIssuer
}

func (o Options) notReadyTolerationSeconds() int64 {
	if o.DefaultNotReadyTolerationSeconds > 0 {
		return o.DefaultNotReadyTolerationSeconds
	}
	return defaultNotReadyTolerationSeconds
}

// Registry is the set of served resources: the built-in ones, fixed at
// start, and custom ones added and removed at run time.
type Registry struct {
	scheme *runtime.Scheme

	mu    sync.RWMutex
	all   []*Resource
	byGVR map[schema.GroupVersionResource]*Resource
	byGVK map[schema.GroupVersionKind]*Resource
	// changed is closed and replaced whenever the set changes.
	changed chan struct{}
}

// New returns the registry of everything skiff serves, with default options.
func New() (*Registry, error) { return NewWithOptions(Options{}) }

// NewWithOptions returns the registry of everything skiff serves.
func NewWithOptions(opts Options) (*Registry, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		discoveryv1.AddToScheme, coordinationv1.AddToScheme, storagev1.AddToScheme,
		eventsv1.AddToScheme, policyv1.AddToScheme, autoscalingv1.AddToScheme,
		authorizationv1.AddToScheme, authenticationv1.AddToScheme, rbacv1.AddToScheme,
		apiextensionsv1.AddToScheme, metav1.AddMetaToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	reg := &Registry{
		scheme:  scheme,
		byGVR:   map[schema.GroupVersionResource]*Resource{},
		byGVK:   map[schema.GroupVersionKind]*Resource{},
		changed: make(chan struct{}),
	}
	for _, s := range append(builtins(opts), crdStrategy{served: reg.All}) {
		if err := reg.add(newResource(s)); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// builtins are the strategies of the built-in kinds, in discovery order.
func builtins(opts Options) []Strategy {
	return []Strategy{
		configMapStrategy{},
		endpointsStrategy{},
		eventStrategy{},
		namespaceStrategy{},
		nodeStrategy{},
		persistentVolumeClaimStrategy{},
		persistentVolumeStrategy{},
		podStrategy{opts: opts},
		secretStrategy{},
		serviceAccountStrategy{tokens: opts.Tokens},
		serviceStrategy{ips: opts.ServiceIPs, ports: opts.NodePorts},

		daemonSetStrategy{},
		deploymentStrategy{},
		replicaSetStrategy{},
		statefulSetStrategy{},

		cronJobStrategy{},
		jobStrategy{},

		endpointSliceStrategy{},
		leaseStrategy{},
		storageClassStrategy{},
		eventsV1Strategy{},

		roleStrategy{},
		clusterRoleStrategy{},
		roleBindingStrategy{},
		clusterRoleBindingStrategy{},

		selfSubjectAccessReviewStrategy{authority: opts.Authority},
		subjectAccessReviewStrategy{authority: opts.Authority},
		localSubjectAccessReviewStrategy{authority: opts.Authority},
		selfSubjectRulesReviewStrategy{authority: opts.Authority},
		selfSubjectReviewStrategy{},
		tokenReviewStrategy{authority: opts.Authority},
	}
}

// ErrExists is returned by Add for a resource or kind already served.
var ErrExists = errors.New("already served")

func (g *Registry) add(r *Resource) error {
	if _, ok := g.byGVR[r.GVR()]; ok {
		return fmt.Errorf("resource %s: %w", r.GVR(), ErrExists)
	}
	if _, ok := g.byGVK[r.GVK()]; ok {
		return fmt.Errorf("kind %s: %w", r.GVK(), ErrExists)
	}
	g.all = append(g.all, r)
	g.byGVR[r.GVR()] = r
	g.byGVK[r.GVK()] = r
	return nil
}

// Add serves a resource built at run time (a custom resource).
func (g *Registry) Add(s Strategy) (*Resource, error) {
	r := newResource(s)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.add(r); err != nil {
		return nil, err
	}
	g.notifyLocked()
	return r, nil
}

// Remove stops serving the resource gvr that Add added; built-in ones stay.
func (g *Registry) Remove(gvr schema.GroupVersionResource) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.byGVR[gvr]
	if !ok {
		return
	}
	delete(g.byGVR, gvr)
	delete(g.byGVK, r.GVK())
	g.all = slices.DeleteFunc(slices.Clone(g.all), func(x *Resource) bool { return x == r })
	g.notifyLocked()
}

func (g *Registry) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of the served set.
func (g *Registry) Changed() <-chan struct{} {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.changed
}

// Scheme knows every built-in kind (and meta/v1's).
func (g *Registry) Scheme() *runtime.Scheme { return g.scheme }

// All returns every resource in a stable order.
func (g *Registry) All() []*Resource {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.all
}

// Lookup finds a resource by group, version and plural name.
func (g *Registry) Lookup(group, version, resource string) (*Resource, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	r, ok := g.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
	return r, ok
}

// ForKind finds the resource serving a kind.
func (g *Registry) ForKind(gvk schema.GroupVersionKind) (*Resource, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	r, ok := g.byGVK[gvk]
	return r, ok
}

// ForObject finds the resource serving obj's kind.
func (g *Registry) ForObject(obj runtime.Object) (*Resource, bool) {
	return g.ForKind(obj.GetObjectKind().GroupVersionKind())
}

// GroupVersions lists the served group versions, the legacy core group first.
func (g *Registry) GroupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range g.All() {
		if gv := r.GroupVersion(); !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}
