package bootstrappolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/component-helpers/auth/rbac/reconciliation"
)

// Reconcile writes the default policy through client, as upstream's API
// server does at start: missing objects are created; existing ones get the
// rules, selectors and subjects they lack, keeping whatever a user added;
// an object annotated rbac.authorization.kubernetes.io/autoupdate=false is
// left as it is. It goes on past failures and returns them joined, so a
// caller may retry.
func Reconcile(ctx context.Context, client kubernetes.Interface, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	rbac := client.RbacV1()
	var errs []error
	note := func(kind, name string, op reconciliation.ReconcileOperation, protected bool, err error) {
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("reconcile %s %s: %w", kind, name, err))
		case protected && op != reconciliation.ReconcileNone:
			log.Info("default RBAC object not updated: autoupdate is false", "kind", kind, "name", name)
		case op != reconciliation.ReconcileNone:
			log.Debug("default RBAC object reconciled", "kind", kind, "name", name, "operation", op)
		}
	}
	onConflict := func(f func() error) error { return retry.RetryOnConflict(retry.DefaultBackoff, f) }

	for _, r := range ClusterRoles() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var res *reconciliation.ReconcileClusterRoleResult
		err := onConflict(func() (err error) {
			res, err = (&reconciliation.ReconcileRoleOptions{
				Role:    reconciliation.ClusterRoleRuleOwner{ClusterRole: r.DeepCopy()},
				Client:  reconciliation.ClusterRoleModifier{Client: rbac.ClusterRoles()},
				Confirm: true,
			}).Run()
			return err
		})
		op, protected := opOf(res)
		note("ClusterRole", r.Name, op, protected, err)
	}
	for _, b := range ClusterRoleBindings() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var res *reconciliation.ReconcileClusterRoleBindingResult
		err := onConflict(func() (err error) {
			res, err = (&reconciliation.ReconcileRoleBindingOptions{
				RoleBinding: reconciliation.ClusterRoleBindingAdapter{ClusterRoleBinding: b.DeepCopy()},
				Client:      reconciliation.ClusterRoleBindingClientAdapter{Client: rbac.ClusterRoleBindings()},
				Confirm:     true,
			}).Run()
			return err
		})
		op, protected := bindingOpOf(res)
		note("ClusterRoleBinding", b.Name, op, protected, err)
	}
	for _, r := range Roles() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var res *reconciliation.ReconcileClusterRoleResult
		err := onConflict(func() (err error) {
			res, err = (&reconciliation.ReconcileRoleOptions{
				Role:    reconciliation.RoleRuleOwner{Role: r.DeepCopy()},
				Client:  reconciliation.RoleModifier{Client: rbac, NamespaceClient: client.CoreV1().Namespaces()},
				Confirm: true,
			}).Run()
			return err
		})
		op, protected := opOf(res)
		note("Role", r.Namespace+"/"+r.Name, op, protected, err)
	}
	for _, b := range RoleBindings() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var res *reconciliation.ReconcileClusterRoleBindingResult
		err := onConflict(func() (err error) {
			res, err = (&reconciliation.ReconcileRoleBindingOptions{
				RoleBinding: reconciliation.RoleBindingAdapter{RoleBinding: b.DeepCopy()},
				Client:      reconciliation.RoleBindingClientAdapter{Client: rbac, NamespaceClient: client.CoreV1().Namespaces()},
				Confirm:     true,
			}).Run()
			return err
		})
		op, protected := bindingOpOf(res)
		note("RoleBinding", b.Namespace+"/"+b.Name, op, protected, err)
	}
	return errors.Join(errs...)
}

func opOf(r *reconciliation.ReconcileClusterRoleResult) (reconciliation.ReconcileOperation, bool) {
	if r == nil {
		return reconciliation.ReconcileNone, false
	}
	return r.Operation, r.Protected
}

func bindingOpOf(r *reconciliation.ReconcileClusterRoleBindingResult) (reconciliation.ReconcileOperation, bool) {
	if r == nil {
		return reconciliation.ReconcileNone, false
	}
	return r.Operation, r.Protected
}
