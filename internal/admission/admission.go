// Package admission is the API server's admission chain: plugins that see
// every write after decoding and defaulting and before validation and
// storage, and may change it (mutating) or refuse it (validating), as
// Kubernetes' admission plugins do. Plugins read cluster state through a
// Getter, never through the generic handlers, and name the kinds they act
// on; the handlers name none.
package admission

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Operation is what a request does.
type Operation string

// The operations, as in AdmissionReview.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Attributes describe one write.
type Attributes struct {
	Operation   Operation
	Resource    schema.GroupVersionResource
	Subresource string
	// Namespace is empty for cluster-scoped resources.
	Namespace, Name string
	// Object is the object to write (nil on delete); plugins may change it
	// on create and update. OldObject is the stored one (nil on create).
	Object, OldObject runtime.Object
	DryRun            bool
}

// Getter reads cluster state for plugins.
type Getter interface {
	// Get returns an object, or an error that apierrors.IsNotFound knows.
	Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, error)
	// List returns every object of a resource in namespace ("": all).
	List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) ([]runtime.Object, error)
}

// Plugin admits or refuses one write.
type Plugin interface {
	Admit(ctx context.Context, a *Attributes) error
}

// Chain runs plugins in order; the first refusal wins.
type Chain []Plugin

// Admit runs every plugin.
func (c Chain) Admit(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if err := p.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// Default is the chain skiff runs: the plugins Kubernetes enables by
// default that skiff has.
func Default(g Getter) Chain {
	return Chain{NamespaceLifecycle{Getter: g}, DefaultStorageClass{Getter: g}}
}
