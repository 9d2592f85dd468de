package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Attributes describe a request to authorize, as upstream's
// authorizer.Attributes.
type Attributes struct {
	User *User
	// Verb is get, list, watch, create, update, patch, delete,
	// deletecollection, or a special verb (impersonate, bind, escalate,
	// use, approve); for a non-resource request, the lower-cased HTTP
	// method (get, post, put, ...).
	Verb string
	// ResourceRequest is true for /api and /apis resource paths; then
	// APIGroup through Name are set, else Path.
	ResourceRequest bool
	APIGroup        string
	APIVersion      string
	Resource        string
	Subresource     string
	Namespace       string
	Name            string
	Path            string
}

// Decision is an authorizer's answer.
type Decision int

const (
	// DecisionNoOpinion lets the next authorizer decide; when the last
	// one has none, the request is denied.
	DecisionNoOpinion Decision = iota
	DecisionAllow
	// DecisionDeny denies at once.
	DecisionDeny
)

func (d Decision) String() string {
	switch d {
	case DecisionAllow:
		return "allow"
	case DecisionDeny:
		return "deny"
	}
	return "no opinion"
}

// Authorizer decides whether a request may proceed. The reason explains a
// decision (it is appended to a Forbidden message); err reports a failure
// to decide, which denies unless a later authorizer allows.
type Authorizer interface {
	Authorize(ctx context.Context, a Attributes) (d Decision, reason string, err error)
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, a Attributes) (Decision, string, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	return f(ctx, a)
}

// Rules is what a subject may do in a namespace, as
// SelfSubjectRulesReview reports it.
type Rules struct {
	ResourceRules    []authorizationv1.ResourceRule
	NonResourceRules []authorizationv1.NonResourceRule
	// Incomplete is true when an authorizer cannot list everything it
	// would allow (the node authorizer's object-by-object decisions).
	Incomplete bool
}

// RuleResolver lists the rules that apply to a user in a namespace (for
// SelfSubjectRulesReview). An error comes with whatever rules could be
// resolved.
type RuleResolver interface {
	RulesFor(ctx context.Context, u *User, namespace string) (Rules, error)
}

// AuthorizerResolver is an Authorizer that can also list its rules.
type AuthorizerResolver interface {
	Authorizer
	RuleResolver
}

type union []AuthorizerResolver

// UnionAuthorizer asks each authorizer in turn: the first allow or deny decides; if
// all have no opinion, the request is denied with their reasons and errors
// joined, as upstream's union authorizer.
func UnionAuthorizer(as ...AuthorizerResolver) AuthorizerResolver { return union(as) }

func (u union) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var reasons []string
	var errs []error
	for _, az := range u {
		d, reason, err := az.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		switch d {
		case DecisionAllow, DecisionDeny:
			return d, reason, err
		}
	}
	return DecisionNoOpinion, strings.Join(reasons, "\n"), errors.Join(errs...)
}

func (u union) RulesFor(ctx context.Context, user *User, namespace string) (Rules, error) {
	var out Rules
	var errs []error
	for _, az := range u {
		r, err := az.RulesFor(ctx, user, namespace)
		if err != nil {
			errs = append(errs, err)
		}
		out.ResourceRules = append(out.ResourceRules, r.ResourceRules...)
		out.NonResourceRules = append(out.NonResourceRules, r.NonResourceRules...)
		out.Incomplete = out.Incomplete || r.Incomplete
	}
	return out, errors.Join(errs...)
}

type privileged struct{ groups []string }

// PrivilegedGroups allows every request from a member of one of groups and
// has no opinion on the rest.
func PrivilegedGroups(groups ...string) AuthorizerResolver { return privileged{groups} }

func (p privileged) member(u *User) bool {
	for _, g := range p.groups {
		if u.InGroup(g) {
			return true
		}
	}
	return false
}

func (p privileged) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if p.member(a.User) {
		return DecisionAllow, "", nil
	}
	return DecisionNoOpinion, "", nil
}

func (p privileged) RulesFor(_ context.Context, u *User, _ string) (Rules, error) {
	if !p.member(u) {
		return Rules{}, nil
	}
	return Rules{
		ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
		NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
	}, nil
}

// NewAuthorizer is the API server's authorizer: system:masters may do
// anything, then the node authorizer decides for nodes, then RBAC. Either
// of node and rbac may be nil.
func NewAuthorizer(node, rbac AuthorizerResolver) AuthorizerResolver {
	chain := union{PrivilegedGroups(SystemPrivilegedGroup)}
	if node != nil {
		chain = append(chain, node)
	}
	if rbac != nil {
		chain = append(chain, rbac)
	}
	return chain
}

// Allowed reports whether az allows a, treating an authorizer error as a
// denial.
func Allowed(ctx context.Context, az Authorizer, a Attributes) bool {
	d, _, _ := az.Authorize(ctx, a)
	return d == DecisionAllow
}

var sanitizer = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;")

// ForbiddenMessage is upstream's sentence for a denied request, such as
// `User "alice" cannot list resource "secrets" in API group "" in the
// namespace "default"`.
func ForbiddenMessage(a Attributes) string {
	username := ""
	if a.User != nil {
		username = a.User.Name
	}
	if !a.ResourceRequest {
		return fmt.Sprintf("User %q cannot %s path %q", username, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", username, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", username, a.Verb, resource, a.APIGroup)
}

// Forbidden is the 403 status upstream answers a denied request with; the
// authorizer's reason, when there is one, follows the message.
func Forbidden(a Attributes, reason string) *apierrors.StatusError {
	msg := sanitizer.Replace(ForbiddenMessage(a))
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}, a.Name, errors.New(msg))
}
