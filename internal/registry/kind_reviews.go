package registry

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The review kinds are created and answered, never stored. Their answers
// come from the cluster's Authority; without one (tests of the API alone)
// every authenticated user may do everything.

// Authority answers access, rules and token reviews for the review kinds.
type Authority interface {
	ReviewAccess(ctx context.Context, spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewStatus
	ReviewRules(ctx context.Context, user User, namespace string) authorizationv1.SubjectRulesReviewStatus
	ReviewToken(ctx context.Context, spec authenticationv1.TokenReviewSpec) authenticationv1.TokenReviewStatus
}

// accessSpec fills a review's subject from the caller.
func accessSpec(user User, spec authorizationv1.SubjectAccessReviewSpec) authorizationv1.SubjectAccessReviewSpec {
	spec.User, spec.UID, spec.Groups = user.Name, user.UID, user.Groups
	spec.Extra = nil
	if len(user.Extra) > 0 {
		spec.Extra = map[string]authorizationv1.ExtraValue{}
		for k, v := range user.Extra {
			spec.Extra[k] = v
		}
	}
	return spec
}

func allowAll() authorizationv1.SubjectAccessReviewStatus {
	return authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "no authorizer: every authenticated user may do everything"}
}

func validateAccessSpec(spec authorizationv1.SubjectAccessReviewSpec, self bool) field.ErrorList {
	p := field.NewPath("spec")
	var errs field.ErrorList
	if (spec.ResourceAttributes == nil) == (spec.NonResourceAttributes == nil) {
		errs = append(errs, field.Invalid(p.Child("resourceAttributes"), spec.NonResourceAttributes, "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
	}
	if !self && spec.User == "" && len(spec.Groups) == 0 {
		errs = append(errs, field.Invalid(p.Child("user"), spec.User, `at least one of user or group must be specified`))
	}
	return errs
}

// selfSubjectAccessReviewStrategy is authorization.k8s.io/v1
// SelfSubjectAccessReview: may the caller do this?
type selfSubjectAccessReviewStrategy struct {
	basics
	authority Authority
}

func (selfSubjectAccessReviewStrategy) Info() *Info {
	return &Info{
		Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews",
		Kind: "SelfSubjectAccessReview", SingularName: "selfsubjectaccessreview", Review: true,
	}
}

func (selfSubjectAccessReviewStrategy) New() runtime.Object {
	return &authorizationv1.SelfSubjectAccessReview{}
}
func (selfSubjectAccessReviewStrategy) NewList() runtime.Object { return &metav1.List{} }
func (selfSubjectAccessReviewStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*authorizationv1.SelfSubjectAccessReview)
	return validateAccessSpec(authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: o.Spec.ResourceAttributes, NonResourceAttributes: o.Spec.NonResourceAttributes}, true)
}

func (s selfSubjectAccessReviewStrategy) Review(ctx context.Context, user User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authorizationv1.SelfSubjectAccessReview)
	if s.authority == nil {
		o.Status = allowAll()
		return o, nil
	}
	o.Status = s.authority.ReviewAccess(ctx, accessSpec(user, authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: o.Spec.ResourceAttributes, NonResourceAttributes: o.Spec.NonResourceAttributes,
	}))
	return o, nil
}

// subjectAccessReviewStrategy is authorization.k8s.io/v1
// SubjectAccessReview: may that subject do this?
type subjectAccessReviewStrategy struct {
	basics
	authority Authority
}

func (subjectAccessReviewStrategy) Info() *Info {
	return &Info{
		Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews",
		Kind: "SubjectAccessReview", SingularName: "subjectaccessreview", Review: true,
	}
}

func (subjectAccessReviewStrategy) New() runtime.Object {
	return &authorizationv1.SubjectAccessReview{}
}
func (subjectAccessReviewStrategy) NewList() runtime.Object { return &metav1.List{} }
func (subjectAccessReviewStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateAccessSpec(obj.(*authorizationv1.SubjectAccessReview).Spec, false)
}

func (s subjectAccessReviewStrategy) Review(ctx context.Context, _ User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authorizationv1.SubjectAccessReview)
	if s.authority == nil {
		o.Status = allowAll()
		return o, nil
	}
	o.Status = s.authority.ReviewAccess(ctx, o.Spec)
	return o, nil
}

// localSubjectAccessReviewStrategy is authorization.k8s.io/v1
// LocalSubjectAccessReview: a SubjectAccessReview within one namespace.
type localSubjectAccessReviewStrategy struct {
	basics
	authority Authority
}

func (localSubjectAccessReviewStrategy) Info() *Info {
	return &Info{
		Group: "authorization.k8s.io", Version: "v1", Resource: "localsubjectaccessreviews",
		Kind: "LocalSubjectAccessReview", SingularName: "localsubjectaccessreview", Namespaced: true, Review: true,
	}
}

func (localSubjectAccessReviewStrategy) New() runtime.Object {
	return &authorizationv1.LocalSubjectAccessReview{}
}
func (localSubjectAccessReviewStrategy) NewList() runtime.Object { return &metav1.List{} }
func (localSubjectAccessReviewStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*authorizationv1.LocalSubjectAccessReview)
	errs := validateAccessSpec(o.Spec, false)
	if o.Spec.ResourceAttributes != nil && o.Spec.ResourceAttributes.Namespace != o.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("spec", "resourceAttributes", "namespace"), o.Spec.ResourceAttributes.Namespace,
			"must match metadata.namespace"))
	}
	return errs
}

func (s localSubjectAccessReviewStrategy) Review(ctx context.Context, _ User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authorizationv1.LocalSubjectAccessReview)
	if s.authority == nil {
		o.Status = allowAll()
		return o, nil
	}
	o.Status = s.authority.ReviewAccess(ctx, o.Spec)
	return o, nil
}

// selfSubjectRulesReviewStrategy is authorization.k8s.io/v1
// SelfSubjectRulesReview: what may the caller do in a namespace?
type selfSubjectRulesReviewStrategy struct {
	basics
	authority Authority
}

func (selfSubjectRulesReviewStrategy) Info() *Info {
	return &Info{
		Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectrulesreviews",
		Kind: "SelfSubjectRulesReview", SingularName: "selfsubjectrulesreview", Review: true,
	}
}

func (selfSubjectRulesReviewStrategy) New() runtime.Object {
	return &authorizationv1.SelfSubjectRulesReview{}
}
func (selfSubjectRulesReviewStrategy) NewList() runtime.Object { return &metav1.List{} }
func (selfSubjectRulesReviewStrategy) Validate(obj runtime.Object) field.ErrorList {
	if obj.(*authorizationv1.SelfSubjectRulesReview).Spec.Namespace == "" {
		return field.ErrorList{field.Required(field.NewPath("spec", "namespace"), "")}
	}
	return nil
}

func (s selfSubjectRulesReviewStrategy) Review(ctx context.Context, user User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authorizationv1.SelfSubjectRulesReview)
	if s.authority == nil {
		o.Status = authorizationv1.SubjectRulesReviewStatus{
			ResourceRules:    []authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
			NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}},
		}
		return o, nil
	}
	o.Status = s.authority.ReviewRules(ctx, user, o.Spec.Namespace)
	return o, nil
}

// selfSubjectReviewStrategy is authentication.k8s.io/v1 SelfSubjectReview:
// who the caller is.
type selfSubjectReviewStrategy struct{ basics }

func (selfSubjectReviewStrategy) Info() *Info {
	return &Info{
		Group: "authentication.k8s.io", Version: "v1", Resource: "selfsubjectreviews",
		Kind: "SelfSubjectReview", SingularName: "selfsubjectreview", Review: true,
	}
}

func (selfSubjectReviewStrategy) New() runtime.Object {
	return &authenticationv1.SelfSubjectReview{}
}
func (selfSubjectReviewStrategy) NewList() runtime.Object                 { return &metav1.List{} }
func (selfSubjectReviewStrategy) Validate(runtime.Object) field.ErrorList { return nil }

func (selfSubjectReviewStrategy) Review(_ context.Context, user User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authenticationv1.SelfSubjectReview)
	groups := append([]string(nil), user.Groups...)
	if !containsString(groups, "system:authenticated") && user.Name != "system:anonymous" {
		groups = append(groups, "system:authenticated")
	}
	info := authenticationv1.UserInfo{Username: user.Name, UID: user.UID, Groups: groups}
	if len(user.Extra) > 0 {
		info.Extra = map[string]authenticationv1.ExtraValue{}
		for k, v := range user.Extra {
			info.Extra[k] = v
		}
	}
	o.Status.UserInfo = info
	return o, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tokenReviewStrategy is authentication.k8s.io/v1 TokenReview: whose is
// this token?
type tokenReviewStrategy struct {
	basics
	authority Authority
}

func (tokenReviewStrategy) Info() *Info {
	return &Info{
		Group: "authentication.k8s.io", Version: "v1", Resource: "tokenreviews",
		Kind: "TokenReview", SingularName: "tokenreview", Review: true,
	}
}

func (tokenReviewStrategy) New() runtime.Object     { return &authenticationv1.TokenReview{} }
func (tokenReviewStrategy) NewList() runtime.Object { return &metav1.List{} }
func (tokenReviewStrategy) Validate(obj runtime.Object) field.ErrorList {
	if obj.(*authenticationv1.TokenReview).Spec.Token == "" {
		return field.ErrorList{field.Required(field.NewPath("spec", "token"), "")}
	}
	return nil
}

func (s tokenReviewStrategy) Review(ctx context.Context, _ User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authenticationv1.TokenReview)
	if s.authority == nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("%s are not served without an authenticator", "tokenreviews"))
	}
	o.Status = s.authority.ReviewToken(ctx, o.Spec)
	return o, nil
}
