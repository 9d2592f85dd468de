// Package registry describes every resource skiff serves: its names, its Go
// types, and its strategy (defaults, validation, status split, table columns,
// selectable fields). The API server is generic; adding a resource is an entry
// in resources() plus its strategy functions, not a new handler.
package registry

import (
	"fmt"
	"reflect"
	"slices"

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
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one served API resource.
type Resource struct {
	Group, Version, Resource string // "apps", "v1", "deployments"
	Kind, SingularName       string
	Namespaced               bool
	ShortNames, Categories   []string
	// Subresources served besides the main resource: "status", "scale",
	// "binding", "eviction", and those proxied to kubelets: pods' "log",
	// "exec", "attach", "portforward" and nodes' "proxy".
	Subresources []string
	// Review marks a create-only resource that is answered, not stored
	// (SelfSubjectAccessReview, SelfSubjectReview).
	Review bool
	// Expires marks objects that the store drops after the server's event
	// TTL (events, as in Kubernetes).
	Expires bool

	newObj, newList func() runtime.Object
	opts            Options
	// fields returns the field-selector fields beyond metadata.name and
	// metadata.namespace; nil when there are none.
	fields func(obj runtime.Object) fields.Set
	// fieldLabels is the set of field-selector keys, computed once.
	fieldLabels map[string]bool
}

// GroupVersion of the resource.
func (r *Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GVK is the kind's group/version/kind.
func (r *Resource) GVK() schema.GroupVersionKind { return r.GroupVersion().WithKind(r.Kind) }

// GroupResource is used in API errors ("pods", "deployments.apps").
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// New returns an empty object of the resource's kind with TypeMeta set.
func (r *Resource) New() runtime.Object {
	o := r.newObj()
	o.GetObjectKind().SetGroupVersionKind(r.GVK())
	return o
}

// NewList returns an empty list of the resource's kind with TypeMeta set.
func (r *Resource) NewList() runtime.Object {
	o := r.newList()
	o.GetObjectKind().SetGroupVersionKind(r.GroupVersion().WithKind(r.Kind + "List"))
	return o
}

// HasSubresource reports whether sub ("status", "scale", ...) is served.
func (r *Resource) HasSubresource(sub string) bool { return slices.Contains(r.Subresources, sub) }

// Fields returns the field-selector fields of obj.
func (r *Resource) Fields(obj runtime.Object) fields.Set {
	set := fields.Set{}
	if m, ok := obj.(metav1.Object); ok {
		set["metadata.name"] = m.GetName()
		if r.Namespaced {
			set["metadata.namespace"] = m.GetNamespace()
		}
	}
	if r.fields != nil {
		for k, v := range r.fields(obj) {
			set[k] = v
		}
	}
	return set
}

// SupportsField reports whether key is a field-selector key of the resource.
func (r *Resource) SupportsField(key string) bool { return r.fieldLabels[key] }

// PrepareForCreate clears what a client may not set on create (for most
// resources with a status subresource, the status) and sets initial status
// fields, as Kubernetes does (a pod starts Pending, a namespace Active).
func (r *Resource) PrepareForCreate(obj runtime.Object) { prepareForCreate(obj) }

// Default applies Kubernetes' field defaults.
func (r *Resource) Default(obj runtime.Object) { defaultObject(obj, r.opts) }

// Validate checks a new object; errors name the offending field.
func (r *Resource) Validate(obj runtime.Object) field.ErrorList { return validateObject(obj) }

// ValidateUpdate checks an update against the stored object (immutable
// fields and the like), in addition to Validate.
func (r *Resource) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return append(validateObject(obj), validateObjectUpdate(obj, old)...)
}

// TableColumns are the columns of `kubectl get` for this resource.
func (r *Resource) TableColumns() []metav1.TableColumnDefinition {
	if cols := tableColumns(r.GroupResource()); cols != nil {
		return cols
	}
	return defaultColumns()
}

// TableRow returns the cells of obj's row, matching TableColumns.
func (r *Resource) TableRow(obj runtime.Object) []interface{} {
	if cells := tableRow(obj); cells != nil {
		return cells
	}
	return defaultRow(obj)
}

// StatusOf returns obj's Status field, or nil when the kind has none.
func StatusOf(obj runtime.Object) interface{} {
	v := reflect.ValueOf(obj).Elem().FieldByName("Status")
	if !v.IsValid() {
		return nil
	}
	return v.Interface()
}

// CopyStatus sets dst's Status field to src's (both the same kind).
func CopyStatus(dst, src runtime.Object) {
	d := reflect.ValueOf(dst).Elem().FieldByName("Status")
	s := reflect.ValueOf(src).Elem().FieldByName("Status")
	if d.IsValid() && s.IsValid() && d.CanSet() {
		d.Set(s)
	}
}

// SpecEqual reports whether a and b (the same kind) are equal in everything
// but TypeMeta, ObjectMeta and Status: what decides a generation bump.
func SpecEqual(a, b runtime.Object) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		switch t.Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// Registry is the set of served resources.
type Registry struct {
	all    []*Resource
	byGVR  map[schema.GroupVersionResource]*Resource
	scheme *runtime.Scheme
}

// Options are the cluster settings that change defaulting.
type Options struct {
	// DefaultNotReadyTolerationSeconds is the tolerationSeconds pods get
	// for the not-ready and unreachable taints (0: Kubernetes' 300).
	DefaultNotReadyTolerationSeconds int64
}

func (o Options) notReadyTolerationSeconds() int64 {
	if o.DefaultNotReadyTolerationSeconds > 0 {
		return o.DefaultNotReadyTolerationSeconds
	}
	return defaultNotReadyTolerationSeconds
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
		authorizationv1.AddToScheme, authenticationv1.AddToScheme,
		metav1.AddMetaToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	reg := &Registry{byGVR: map[schema.GroupVersionResource]*Resource{}, scheme: scheme}
	for _, r := range resources() {
		r.opts = opts
		r.fieldLabels = map[string]bool{}
		for k := range r.Fields(r.New()) {
			r.fieldLabels[k] = true
		}
		reg.all = append(reg.all, r)
		reg.byGVR[schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}] = r
	}
	return reg, nil
}

// Scheme knows every served kind (and meta/v1's).
func (g *Registry) Scheme() *runtime.Scheme { return g.scheme }

// All returns every resource in a stable order.
func (g *Registry) All() []*Resource { return g.all }

// Lookup finds a resource by group, version and plural name.
func (g *Registry) Lookup(group, version, resource string) (*Resource, bool) {
	r, ok := g.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: resource}]
	return r, ok
}

// ForObject finds the resource serving obj's kind.
func (g *Registry) ForObject(obj runtime.Object) (*Resource, bool) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	for _, r := range g.all {
		if r.GVK() == gvk {
			return r, true
		}
	}
	return nil, false
}

// GroupVersions lists the served group versions, the legacy core group first.
func (g *Registry) GroupVersions() []schema.GroupVersion {
	seen := map[schema.GroupVersion]bool{}
	var out []schema.GroupVersion
	for _, r := range g.all {
		if gv := r.GroupVersion(); !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

func resources() []*Resource {
	core := func(res, kind, singular string, namespaced bool, newObj, newList func() runtime.Object) *Resource {
		return &Resource{Version: "v1", Resource: res, Kind: kind, SingularName: singular, Namespaced: namespaced, newObj: newObj, newList: newList}
	}
	grp := func(group, res, kind, singular string, namespaced bool, newObj, newList func() runtime.Object) *Resource {
		r := core(res, kind, singular, namespaced, newObj, newList)
		r.Group = group
		return r
	}
	with := func(r *Resource, short, cats, subs []string) *Resource {
		r.ShortNames, r.Categories, r.Subresources = short, cats, subs
		return r
	}
	review := func(r *Resource) *Resource {
		r.Review = true
		r.newList = func() runtime.Object { return &metav1.List{} }
		return r
	}
	all := []string{"all"}
	status := []string{"status"}

	pods := with(core("pods", "Pod", "pod", true, func() runtime.Object { return &corev1.Pod{} }, func() runtime.Object { return &corev1.PodList{} }),
		[]string{"po"}, all, []string{"status", "binding", "eviction", "log", "exec", "attach", "portforward"})
	pods.fields = func(obj runtime.Object) fields.Set {
		p := obj.(*corev1.Pod)
		return fields.Set{
			"spec.nodeName":            p.Spec.NodeName,
			"spec.restartPolicy":       string(p.Spec.RestartPolicy),
			"spec.schedulerName":       p.Spec.SchedulerName,
			"spec.serviceAccountName":  p.Spec.ServiceAccountName,
			"spec.hostNetwork":         fmt.Sprint(p.Spec.HostNetwork),
			"status.phase":             string(p.Status.Phase),
			"status.podIP":             p.Status.PodIP,
			"status.nominatedNodeName": p.Status.NominatedNodeName,
		}
	}
	nodes := with(core("nodes", "Node", "node", false, func() runtime.Object { return &corev1.Node{} }, func() runtime.Object { return &corev1.NodeList{} }),
		[]string{"no"}, nil, []string{"status", "proxy"})
	nodes.fields = func(obj runtime.Object) fields.Set {
		return fields.Set{"spec.unschedulable": fmt.Sprint(obj.(*corev1.Node).Spec.Unschedulable)}
	}
	secrets := with(core("secrets", "Secret", "secret", true, func() runtime.Object { return &corev1.Secret{} }, func() runtime.Object { return &corev1.SecretList{} }), nil, nil, nil)
	secrets.fields = func(obj runtime.Object) fields.Set {
		return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
	}
	events := with(core("events", "Event", "event", true, func() runtime.Object { return &corev1.Event{} }, func() runtime.Object { return &corev1.EventList{} }), []string{"ev"}, nil, nil)
	events.Expires = true
	eventsV1 := with(grp("events.k8s.io", "events", "Event", "event", true, func() runtime.Object { return &eventsv1.Event{} }, func() runtime.Object { return &eventsv1.EventList{} }), []string{"ev"}, nil, nil)
	eventsV1.Expires = true
	events.fields = func(obj runtime.Object) fields.Set {
		e := obj.(*corev1.Event)
		return fields.Set{
			"involvedObject.kind":            e.InvolvedObject.Kind,
			"involvedObject.namespace":       e.InvolvedObject.Namespace,
			"involvedObject.name":            e.InvolvedObject.Name,
			"involvedObject.uid":             string(e.InvolvedObject.UID),
			"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
			"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
			"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
			"reason":                         e.Reason,
			"reportingComponent":             e.ReportingController,
			"source":                         e.Source.Component,
			"type":                           e.Type,
		}
	}
	namespaces := with(core("namespaces", "Namespace", "namespace", false, func() runtime.Object { return &corev1.Namespace{} }, func() runtime.Object { return &corev1.NamespaceList{} }), []string{"ns"}, nil, []string{"status", "finalize"})
	namespaces.fields = func(obj runtime.Object) fields.Set {
		return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
	}
	jobs := with(grp("batch", "jobs", "Job", "job", true, func() runtime.Object { return &batchv1.Job{} }, func() runtime.Object { return &batchv1.JobList{} }), nil, all, status)
	jobs.fields = func(obj runtime.Object) fields.Set {
		j := obj.(*batchv1.Job)
		s := "0"
		if j.Status.Succeeded > 0 {
			s = fmt.Sprint(j.Status.Succeeded)
		}
		return fields.Set{"status.successful": s}
	}

	return []*Resource{
		with(core("configmaps", "ConfigMap", "configmap", true, func() runtime.Object { return &corev1.ConfigMap{} }, func() runtime.Object { return &corev1.ConfigMapList{} }), []string{"cm"}, nil, nil),
		with(core("endpoints", "Endpoints", "endpoints", true, func() runtime.Object { return &corev1.Endpoints{} }, func() runtime.Object { return &corev1.EndpointsList{} }), []string{"ep"}, nil, nil),
		events,
		namespaces,
		nodes,
		with(core("persistentvolumeclaims", "PersistentVolumeClaim", "persistentvolumeclaim", true, func() runtime.Object { return &corev1.PersistentVolumeClaim{} }, func() runtime.Object { return &corev1.PersistentVolumeClaimList{} }), []string{"pvc"}, nil, status),
		with(core("persistentvolumes", "PersistentVolume", "persistentvolume", false, func() runtime.Object { return &corev1.PersistentVolume{} }, func() runtime.Object { return &corev1.PersistentVolumeList{} }), []string{"pv"}, nil, status),
		pods,
		secrets,
		with(core("serviceaccounts", "ServiceAccount", "serviceaccount", true, func() runtime.Object { return &corev1.ServiceAccount{} }, func() runtime.Object { return &corev1.ServiceAccountList{} }), []string{"sa"}, nil, nil),
		with(core("services", "Service", "service", true, func() runtime.Object { return &corev1.Service{} }, func() runtime.Object { return &corev1.ServiceList{} }), []string{"svc"}, all, status),

		with(grp("apps", "daemonsets", "DaemonSet", "daemonset", true, func() runtime.Object { return &appsv1.DaemonSet{} }, func() runtime.Object { return &appsv1.DaemonSetList{} }), []string{"ds"}, all, status),
		with(grp("apps", "deployments", "Deployment", "deployment", true, func() runtime.Object { return &appsv1.Deployment{} }, func() runtime.Object { return &appsv1.DeploymentList{} }), []string{"deploy"}, all, []string{"status", "scale"}),
		with(grp("apps", "replicasets", "ReplicaSet", "replicaset", true, func() runtime.Object { return &appsv1.ReplicaSet{} }, func() runtime.Object { return &appsv1.ReplicaSetList{} }), []string{"rs"}, all, []string{"status", "scale"}),
		with(grp("apps", "statefulsets", "StatefulSet", "statefulset", true, func() runtime.Object { return &appsv1.StatefulSet{} }, func() runtime.Object { return &appsv1.StatefulSetList{} }), []string{"sts"}, all, []string{"status", "scale"}),

		with(grp("batch", "cronjobs", "CronJob", "cronjob", true, func() runtime.Object { return &batchv1.CronJob{} }, func() runtime.Object { return &batchv1.CronJobList{} }), []string{"cj"}, all, status),
		jobs,

		with(grp("discovery.k8s.io", "endpointslices", "EndpointSlice", "endpointslice", true, func() runtime.Object { return &discoveryv1.EndpointSlice{} }, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }), nil, nil, nil),
		with(grp("coordination.k8s.io", "leases", "Lease", "lease", true, func() runtime.Object { return &coordinationv1.Lease{} }, func() runtime.Object { return &coordinationv1.LeaseList{} }), nil, nil, nil),
		with(grp("storage.k8s.io", "storageclasses", "StorageClass", "storageclass", false, func() runtime.Object { return &storagev1.StorageClass{} }, func() runtime.Object { return &storagev1.StorageClassList{} }), []string{"sc"}, nil, nil),
		eventsV1,

		review(grp("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview", "selfsubjectaccessreview", false, func() runtime.Object { return &authorizationv1.SelfSubjectAccessReview{} }, nil)),
		review(grp("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", "selfsubjectreview", false, func() runtime.Object { return &authenticationv1.SelfSubjectReview{} }, nil)),
	}
}
