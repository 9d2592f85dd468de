package rbac

import (
	"context"
	"errors"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"

	"skiff/internal/auth"
)

// Listers are the informer caches RBAC is evaluated from.
type Listers struct {
	Roles               rbaclisters.RoleLister
	RoleBindings        rbaclisters.RoleBindingLister
	ClusterRoles        rbaclisters.ClusterRoleLister
	ClusterRoleBindings rbaclisters.ClusterRoleBindingLister
}

// Authorizer is the RBAC authorizer. It never reads storage: every
// decision comes from the listers.
type Authorizer struct {
	l Listers
}

// New returns an RBAC authorizer over l.
func New(l Listers) *Authorizer { return &Authorizer{l: l} }

var _ auth.AuthorizerResolver = (*Authorizer)(nil)

// visit calls fn for each rule that applies to u in namespace, with a
// description of the binding that grants it, until fn returns false.
// ClusterRoleBindings come first, then the namespace's RoleBindings.
// Errors (a binding naming a missing role) are passed to fn with a nil rule.
func (a *Authorizer) visit(u *auth.User, namespace string, fn func(source func() string, rule *rbacv1.PolicyRule, err error) bool) {
	if u == nil {
		return
	}
	crbs, err := a.l.ClusterRoleBindings.List(labels.Everything())
	if err != nil {
		if !fn(nil, nil, err) {
			return
		}
	}
	for _, b := range crbs {
		for _, s := range b.Subjects {
			if !appliesTo(u, s, "") {
				continue
			}
			rules, err := a.RoleRefRules(b.RoleRef, "")
			if err != nil {
				if !fn(nil, nil, err) {
					return
				}
				break
			}
			source := func() string {
				return fmt.Sprintf("ClusterRoleBinding %q of %s %q to %s", b.Name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(s, ""))
			}
			for i := range rules {
				if !fn(source, &rules[i], nil) {
					return
				}
			}
			break
		}
	}
	if namespace == "" {
		return
	}
	rbs, err := a.l.RoleBindings.RoleBindings(namespace).List(labels.Everything())
	if err != nil {
		if !fn(nil, nil, err) {
			return
		}
	}
	for _, b := range rbs {
		for _, s := range b.Subjects {
			if !appliesTo(u, s, namespace) {
				continue
			}
			rules, err := a.RoleRefRules(b.RoleRef, namespace)
			if err != nil {
				if !fn(nil, nil, err) {
					return
				}
				break
			}
			source := func() string {
				return fmt.Sprintf("RoleBinding \"%s/%s\" of %s %q to %s", b.Name, b.Namespace, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(s, namespace))
			}
			for i := range rules {
				if !fn(source, &rules[i], nil) {
					return
				}
			}
			break
		}
	}
}

// RoleRefRules returns the rules of the role a binding in bindingNamespace
// refers to ("" for a ClusterRoleBinding). The rules are shared with the
// cache: do not modify them.
func (a *Authorizer) RoleRefRules(ref rbacv1.RoleRef, bindingNamespace string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		r, err := a.l.Roles.Roles(bindingNamespace).Get(ref.Name)
		if err != nil {
			return nil, err
		}
		return r.Rules, nil
	case "ClusterRole":
		r, err := a.l.ClusterRoles.Get(ref.Name)
		if err != nil {
			return nil, err
		}
		return r.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind: %q", ref.Kind)
}

// Authorize implements auth.Authorizer with upstream's reasons: on allow,
// the binding that granted it; on no opinion, the errors met, if any.
func (a *Authorizer) Authorize(_ context.Context, attrs auth.Attributes) (auth.Decision, string, error) {
	var reason string
	var errs []error
	allowed := false
	a.visit(attrs.User, attrs.Namespace, func(source func() string, rule *rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
			return true
		}
		if RuleAllows(attrs, rule) {
			allowed, reason = true, "RBAC: allowed by "+source()
			return false
		}
		return true
	})
	if allowed {
		return auth.DecisionAllow, reason, nil
	}
	if len(errs) > 0 {
		return auth.DecisionNoOpinion, fmt.Sprintf("RBAC: %v", aggregate(errs)), nil
	}
	return auth.DecisionNoOpinion, "", nil
}

// aggregate prints errors as apimachinery's aggregate does: one alone,
// several as [a, b].
func aggregate(errs []error) string {
	if len(errs) == 1 {
		return errs[0].Error()
	}
	s := "["
	for i, e := range errs {
		if i > 0 {
			s += ", "
		}
		s += e.Error()
	}
	return s + "]"
}

// PolicyRules returns every rule that applies to u in namespace (the
// cluster-wide ones included). The error joins the bindings that could not
// be resolved; the rules found are returned with it.
func (a *Authorizer) PolicyRules(u *auth.User, namespace string) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	var errs []error
	a.visit(u, namespace, func(_ func() string, rule *rbacv1.PolicyRule, err error) bool {
		if err != nil {
			errs = append(errs, err)
		} else {
			rules = append(rules, *rule.DeepCopy())
		}
		return true
	})
	return rules, errors.Join(errs...)
}

// RulesFor implements auth.RuleResolver for SelfSubjectRulesReview.
func (a *Authorizer) RulesFor(_ context.Context, u *auth.User, namespace string) (auth.Rules, error) {
	rules, err := a.PolicyRules(u, namespace)
	out := ReviewRules(rules)
	out.Incomplete = err != nil
	return out, err
}

// ReviewRules converts policy rules to SelfSubjectRulesReview's form.
func ReviewRules(rules []rbacv1.PolicyRule) auth.Rules {
	var out auth.Rules
	for _, r := range rules {
		if len(r.Resources) > 0 {
			out.ResourceRules = append(out.ResourceRules, authorizationv1.ResourceRule{
				Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames,
			})
		}
		if len(r.NonResourceURLs) > 0 {
			out.NonResourceRules = append(out.NonResourceRules, authorizationv1.NonResourceRule{
				Verbs: r.Verbs, NonResourceURLs: r.NonResourceURLs,
			})
		}
	}
	return out
}
