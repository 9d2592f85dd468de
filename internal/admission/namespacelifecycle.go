package admission

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// NamespaceLifecycle refuses new objects in a missing or terminating
// namespace, as Kubernetes' plugin of that name does.
type NamespaceLifecycle struct{ Getter Getter }

func (p NamespaceLifecycle) Admit(ctx context.Context, a *Attributes) error {
	if a.Operation != Create || a.Namespace == "" || a.Subresource != "" {
		return nil
	}
	obj, err := p.Getter.Get(ctx, corev1.SchemeGroupVersion.WithResource("namespaces"), "", a.Namespace)
	if err != nil {
		return err
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return fmt.Errorf("namespace %s is a %T", a.Namespace, obj)
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", a.Namespace))
	}
	return nil
}
