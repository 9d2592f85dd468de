package rbac

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/component-helpers/auth/rbac/validation"

	"skiff/internal/auth"
)

// fullAuthority is what setting an aggregationRule requires, as upstream.
var fullAuthority = []rbacv1.PolicyRule{
	{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
	{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
}

// EscalationChecker guards writes to roles and bindings: nobody may grant
// permissions they do not hold, unless they may escalate (roles) or bind
// (bindings). The registry's strategies for the four RBAC kinds call it on
// create and update, as upstream's policy-based storage does.
type EscalationChecker struct {
	az    auth.Authorizer
	rules *Authorizer
}

// NewEscalationChecker checks the escalate and bind verbs with az (the full
// authorizer chain) and reads the caller's rules from rules.
func NewEscalationChecker(az auth.Authorizer, rules *Authorizer) *EscalationChecker {
	return &EscalationChecker{az: az, rules: rules}
}

// CheckRole checks a create (old nil) or update of a *rbacv1.Role or
// *rbacv1.ClusterRole by u. The error is a 403 API status.
func (c *EscalationChecker) CheckRole(ctx context.Context, u *auth.User, obj, old runtime.Object) error {
	var resource, namespace, name string
	var rules []rbacv1.PolicyRule
	aggregated := false
	switch r := obj.(type) {
	case *rbacv1.Role:
		resource, namespace, name, rules = "roles", r.Namespace, r.Name, r.Rules
	case *rbacv1.ClusterRole:
		resource, name, rules = "clusterroles", r.Name, r.Rules
		aggregated = r.AggregationRule != nil
		if o, ok := old.(*rbacv1.ClusterRole); ok && o.AggregationRule != nil {
			aggregated = true
		}
	default:
		return fmt.Errorf("rbac: CheckRole of %T", obj)
	}
	if old != nil && onlyGCFieldsChanged(obj, old) {
		return nil
	}
	if u.InGroup(auth.SystemPrivilegedGroup) {
		return nil
	}
	gr := schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}
	escalate := auth.Attributes{User: u, Verb: "escalate", ResourceRequest: true, APIGroup: rbacv1.GroupName, APIVersion: "*", Resource: resource, Namespace: namespace, Name: name}
	if auth.Allowed(ctx, c.az, escalate) {
		return nil
	}
	if err := c.ConfirmNoEscalation(u, namespace, rules); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	// An aggregationRule can gather anything: setting, changing or
	// removing one needs full authority.
	if aggregated {
		if err := c.ConfirmNoEscalation(u, namespace, fullAuthority); err != nil {
			return apierrors.NewForbidden(gr, name, errors.New("must have cluster-admin privileges to use the aggregationRule"))
		}
	}
	return nil
}

// CheckBinding checks a create (old nil) or update of a
// *rbacv1.RoleBinding or *rbacv1.ClusterRoleBinding by u: u must hold the
// bind verb on the role referred to, or every permission it grants.
func (c *EscalationChecker) CheckBinding(ctx context.Context, u *auth.User, obj, old runtime.Object) error {
	var resource, namespace, name string
	var ref rbacv1.RoleRef
	switch b := obj.(type) {
	case *rbacv1.RoleBinding:
		resource, namespace, name, ref = "rolebindings", b.Namespace, b.Name, b.RoleRef
	case *rbacv1.ClusterRoleBinding:
		resource, name, ref = "clusterrolebindings", b.Name, b.RoleRef
	default:
		return fmt.Errorf("rbac: CheckBinding of %T", obj)
	}
	if old != nil && onlyGCFieldsChanged(obj, old) {
		return nil
	}
	if u.InGroup(auth.SystemPrivilegedGroup) {
		return nil
	}
	bind := auth.Attributes{User: u, Verb: "bind", ResourceRequest: true, APIGroup: ref.APIGroup, Namespace: namespace, Name: ref.Name}
	switch ref.Kind {
	case "ClusterRole":
		bind.Resource = "clusterroles"
	case "Role":
		bind.Resource = "roles"
	}
	if bind.Resource != "" && auth.Allowed(ctx, c.az, bind) {
		return nil
	}
	gr := schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}
	rules, err := c.rules.RoleRefRules(ref, namespace)
	if err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	if err := c.ConfirmNoEscalation(u, namespace, rules); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	return nil
}

// ConfirmNoEscalation returns an error naming the permissions in rules that
// u does not hold in namespace, in upstream's words.
func (c *EscalationChecker) ConfirmNoEscalation(u *auth.User, namespace string, rules []rbacv1.PolicyRule) error {
	owner, resolveErr := c.rules.PolicyRules(u, namespace)
	covered, missing := validation.Covers(owner, rules)
	if covered {
		return nil
	}
	var lines []string
	for _, r := range compactRules(missing) {
		if s := CompactString(r); !slices.Contains(lines, s) {
			lines = append(lines, s)
		}
	}
	slices.Sort(lines)
	msg := fmt.Sprintf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s", u.Name, u.Groups, strings.Join(lines, "\n"))
	if resolveErr != nil {
		msg += fmt.Sprintf("; resolution errors: %v", resolveErr)
	}
	return errors.New(msg)
}

// onlyGCFieldsChanged reports whether an update changes nothing but owner
// references and finalizers (and bookkeeping), which the garbage collector
// must always be able to do.
func onlyGCFieldsChanged(obj, old runtime.Object) bool {
	o := old.DeepCopyObject()
	om, err1 := metaOf(o)
	nm, err2 := metaOf(obj)
	if err1 != nil || err2 != nil {
		return false
	}
	om.SetOwnerReferences(nm.GetOwnerReferences())
	om.SetFinalizers(nm.GetFinalizers())
	om.SetResourceVersion(nm.GetResourceVersion())
	om.SetManagedFields(nm.GetManagedFields())
	return equality.Semantic.DeepEqual(o, obj)
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}
