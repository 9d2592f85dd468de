package admission

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/auth"
	"skiff/internal/auth/node"
	"skiff/internal/auth/rbac"
	"skiff/internal/auth/serviceaccount"
)

// The plugins below need the caller, which the API server's front door
// puts in the request context (auth.WithUser) when Config.Auth is set.
// Without a caller they let everything pass.

// NodeRestriction limits what nodes write (auth/node): mirror pods only for
// themselves, only their own pods, Node and Lease, no
// node-restriction.kubernetes.io/ labels, no control-plane role, tokens
// only for their pods.
type NodeRestriction struct{ Restriction *node.NodeRestriction }

func (p NodeRestriction) Admit(ctx context.Context, a *Attributes) error {
	u, ok := auth.UserFrom(ctx)
	if !ok {
		return nil
	}
	return p.Restriction.Admit(node.Request{
		User: u, Operation: string(a.Operation),
		APIGroup: a.Resource.Group, Resource: a.Resource.Resource, Subresource: a.Subresource,
		Namespace: a.Namespace, Name: a.Name, Object: a.Object, OldObject: a.OldObject,
	})
}

// RBACEscalation refuses roles and bindings that grant more than their
// author holds, unless the author may escalate or bind (auth/rbac), as
// upstream's RBAC storage does.
type RBACEscalation struct{ Checker *rbac.EscalationChecker }

func (p RBACEscalation) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Group != rbacv1.GroupName || a.Subresource != "" || (a.Operation != Create && a.Operation != Update) {
		return nil
	}
	u, ok := auth.UserFrom(ctx)
	if !ok {
		return nil
	}
	switch a.Resource.Resource {
	case "roles", "clusterroles":
		return p.Checker.CheckRole(ctx, u, a.Object, a.OldObject)
	case "rolebindings", "clusterrolebindings":
		return p.Checker.CheckBinding(ctx, u, a.Object, a.OldObject)
	}
	return nil
}

// ServiceAccount gives every new pod a service account and, unless it opts
// out, the projected kube-api-access volume with a bound token, the
// cluster CA and its namespace (auth/serviceaccount.AdmitPod). It needs
// the default ServiceAccount and kube-root-ca.crt in every namespace
// (internal/controller/serviceaccount and rootcacert).
type ServiceAccount struct{ Getter Getter }

func (p ServiceAccount) Admit(ctx context.Context, a *Attributes) error {
	if a.Operation != Create || a.Resource.Group != "" || a.Resource.Resource != "pods" || a.Subresource != "" {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	if err := serviceaccount.AdmitPod(ctx, waitForDefault{objectGetter{p.Getter}}, pod); err != nil {
		return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name, err)
	}
	return nil
}

// objectGetter is serviceaccount.Getter over a Getter.
type objectGetter struct{ g Getter }

func getAs[T any](ctx context.Context, g Getter, resource, namespace, name string) (T, error) {
	var none T
	obj, err := g.Get(ctx, schema.GroupVersionResource{Version: "v1", Resource: resource}, namespace, name)
	if err != nil {
		return none, err
	}
	t, ok := obj.(T)
	if !ok {
		return none, fmt.Errorf("%s %s/%s is a %T", resource, namespace, name, obj)
	}
	return t, nil
}

func (o objectGetter) ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	return getAs[*corev1.ServiceAccount](ctx, o.g, "serviceaccounts", namespace, name)
}

func (o objectGetter) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	return getAs[*corev1.Pod](ctx, o.g, "pods", namespace, name)
}

func (o objectGetter) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	return getAs[*corev1.Secret](ctx, o.g, "secrets", namespace, name)
}

func (o objectGetter) Node(ctx context.Context, name string) (*corev1.Node, error) {
	return getAs[*corev1.Node](ctx, o.g, "nodes", "", name)
}

// waitForDefault gives the service-account controller a few seconds to
// create a new namespace's default ServiceAccount, so that a namespace and
// its first pods created together (a Helm chart, kubectl apply -f dir)
// are not refused for a race they cannot see. Other accounts are the
// user's to create, and their absence is answered at once.
type waitForDefault struct{ objectGetter }

// defaultAccountWait bounds the wait; the controller usually needs far less.
const defaultAccountWait = 5 * time.Second

func (w waitForDefault) ServiceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	sa, err := w.objectGetter.ServiceAccount(ctx, namespace, name)
	if name != serviceaccount.DefaultServiceAccountName || !apierrors.IsNotFound(err) {
		return sa, err
	}
	ctx, cancel := context.WithTimeout(ctx, defaultAccountWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return sa, err
		case <-tick.C:
		}
		if sa, err = w.objectGetter.ServiceAccount(ctx, namespace, name); !apierrors.IsNotFound(err) {
			return sa, err
		}
	}
}
