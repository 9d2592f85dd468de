package registry

// A strategy is everything the generic API code needs to know about one kind,
// as Kubernetes' REST strategies are (pkg/registry/<group>/<kind>/strategy.go
// upstream). Every kind is one value implementing Strategy, in a file of its
// own (kind_<name>.go); what only some kinds have (a status subresource, a
// scale subresource, graceful deletion, allocations, kubelet subresources)
// is an optional interface the generic code asks for. Custom resources are
// strategies built at run time.

import (
	"context"
	"net/url"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Info names a resource and says what the API serves of it.
type Info struct {
	Group, Version, Resource string // "apps", "v1", "deployments"
	Kind, ListKind           string // "Deployment", "DeploymentList"
	SingularName             string
	Namespaced               bool
	ShortNames, Categories   []string
	// Subresources served besides the main resource.
	Subresources []Subresource
	// Review marks a create-only resource that is answered, not stored
	// (SelfSubjectAccessReview, SelfSubjectReview); its strategy is a
	// Reviewer.
	Review bool
	// Expires marks objects that the store drops after the server's event
	// TTL (events, as in Kubernetes).
	Expires bool
}

// Subresource describes one subresource for routing and discovery.
type Subresource struct {
	Name string // "status", "scale", "binding", "log", ...
	// Kind, Group and Version of the subresource's body when it is not the
	// resource's own kind ("Scale" in autoscaling/v1); empty: the parent's.
	Kind, Group, Version string
	Verbs                []string
}

// Strategy is what every kind provides.
type Strategy interface {
	Info() *Info
	// New returns an empty object of the kind (TypeMeta not set).
	New() runtime.Object
	// NewList returns an empty list of the kind (TypeMeta not set).
	NewList() runtime.Object
	// PrepareForCreate clears what a client may not set on create (for most
	// kinds with a status subresource, the status) and sets initial status
	// fields, as Kubernetes does (a pod starts Pending, a namespace Active).
	PrepareForCreate(obj runtime.Object)
	// PrepareForUpdate carries over from the stored object what an update of
	// the main resource may not change (the status, allocated addresses).
	PrepareForUpdate(obj, old runtime.Object)
	// Default applies Kubernetes' field defaults, on create and on update.
	Default(obj runtime.Object)
	// Validate checks a new object, or the new version of an updated one;
	// errors name the offending field.
	Validate(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks what may not change between old and obj; the
	// server calls Validate on obj too.
	ValidateUpdate(obj, old runtime.Object) field.ErrorList
	// SelectableFields returns the field-selector fields of obj beyond
	// metadata.name and metadata.namespace (nil: none).
	SelectableFields(obj runtime.Object) fields.Set
	// TableColumns are the columns of `kubectl get`.
	TableColumns() []metav1.TableColumnDefinition
	// TableRow returns the cells of obj's row at time now, matching
	// TableColumns.
	TableRow(obj runtime.Object, now time.Time) []interface{}
}

// StatusStrategy is a kind with a status subresource: a status write
// changes the status and nothing else, and a main-resource write keeps it.
type StatusStrategy interface {
	// CopyStatus sets dst's status to src's (both of the kind).
	CopyStatus(dst, src runtime.Object)
}

// GenerationStrategy is a kind whose metadata.generation counts changes of
// its desired state: 1 on create, one more on each change SpecChanged sees.
type GenerationStrategy interface {
	SpecChanged(obj, old runtime.Object) bool
}

// WholeUpdateValidator is a kind that validates an update in one pass
// with the old object (custom resources: the schema and CEL rules run
// once), instead of Validate on the new object plus ValidateUpdate.
type WholeUpdateValidator interface {
	ValidateWholeUpdate(obj, old runtime.Object) field.ErrorList
}

// StatusValidator is a status strategy with rules of its own for status
// writes, checked instead of ValidateUpdate.
type StatusValidator interface {
	ValidateStatusUpdate(obj, old runtime.Object) field.ErrorList
}

// ScaleStrategy is a kind with a scale subresource (autoscaling/v1 Scale).
type ScaleStrategy interface {
	// Scale reads obj's scale; ok is false when obj cannot say.
	Scale(obj runtime.Object) (*autoscalingv1.Scale, error)
	// SetReplicas writes the desired replicas into obj.
	SetReplicas(obj runtime.Object, replicas int32) error
}

// GracefulDeleter is a kind whose deletion waits for a component to stop
// it (a pod for its kubelet).
type GracefulDeleter interface {
	// GracefulDelete decides the grace period of deleting obj. It returns
	// the object to write (nil: nothing to change) and whether the deletion
	// is pending; pending false means the kind has nothing to wait for.
	GracefulDelete(obj runtime.Object, opts *metav1.DeleteOptions, now time.Time) (next runtime.Object, pending bool)
	// GracePending reports an object being deleted whose grace period
	// still runs: the removal of its last finalizer does not delete it.
	GracePending(obj runtime.Object) bool
}

// DeletionHolder is a kind that something besides metadata.finalizers can
// hold back from deletion (a namespace's spec.finalizers).
type DeletionHolder interface {
	// DeletionHeld reports whether obj, being deleted, must stay.
	DeletionHeld(obj runtime.Object) bool
	// MarkDeleting updates obj when its deletion begins (a namespace
	// becomes Terminating).
	MarkDeleting(obj runtime.Object)
}

// Allocator is a kind that claims cluster-wide resources outside its
// object (a service's cluster IP and node ports).
type Allocator interface {
	// AllocateOnCreate claims what obj needs; release undoes it when the
	// write then fails.
	AllocateOnCreate(ctx context.Context, obj runtime.Object, dryRun bool) (release func(), err error)
	// AllocateOnUpdate claims what obj newly needs and frees what old held
	// and obj no longer uses.
	AllocateOnUpdate(ctx context.Context, obj, old runtime.Object, dryRun bool) error
	// ReleaseOnDelete frees what a deleted object held.
	ReleaseOnDelete(ctx context.Context, obj runtime.Object) error
}

// Action is a subresource that changes or deletes the stored object from a
// request body (pods/binding, pods/eviction, namespaces/finalize).
type Action struct {
	// Verb is the one verb the subresource serves ("create", "update").
	Verb string
	// NewBody returns the body's object; BodyKind is its kind.
	NewBody  func() runtime.Object
	BodyKind schema.GroupVersionKind
	// Update returns the object to store from the body and the stored
	// object (a copy the function may change). Nil for a Delete action.
	Update func(body, cur runtime.Object) (runtime.Object, error)
	// Delete returns the options to delete the object with (an eviction).
	Delete func(body runtime.Object) *metav1.DeleteOptions
	// Respond answers from the body and the stored object without
	// changing it (a service account's TokenRequest); 201 with its result.
	Respond func(ctx context.Context, body, cur runtime.Object) (runtime.Object, error)
	// RespondStatus answers a Status (201 Created) instead of the object.
	RespondStatus bool
}

// ActionStrategy is a kind with action subresources.
type ActionStrategy interface {
	Action(subresource string) (*Action, bool)
}

// KubeletConnecter is a kind whose subresources the API server proxies to
// a node's kubelet (pods' log, exec, attach, portforward; nodes' proxy).
type KubeletConnecter interface {
	// KubeletMethods lists the HTTP methods subresource accepts (nil: the
	// subresource is not proxied).
	KubeletMethods(subresource string) []string
	// KubeletPath resolves a proxied request on obj to the node and the
	// kubelet API path; rest is what follows the subresource in the URL.
	KubeletPath(obj runtime.Object, subresource, rest string, query url.Values) (node, path string, err error)
}

// User is the caller a review is answered for.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Reviewer is a create-only kind that is answered, not stored.
type Reviewer interface {
	Review(ctx context.Context, user User, obj runtime.Object) (runtime.Object, error)
}
