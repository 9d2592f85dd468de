package apiserver

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/auth"
)

// review answers the create-only review resources from the caller's
// identity. With Config.Auth the answers come from the authorizer and the
// token authenticators; without it every authenticated user is a cluster
// admin, so an access review is always allowed.
func (q *request) review() {
	if q.ri.verb != "create" || q.ri.name != "" {
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		return
	}
	obj, err := q.decodeBody()
	if err != nil {
		q.fail(err)
		return
	}
	if a := q.s.cfg.Auth; a != nil {
		if err := q.reviewWithAuth(a, obj); err != nil {
			q.fail(err)
			return
		}
	} else {
		user, _ := q.r.Context().Value(userKey{}).(userInfo)
		switch o := obj.(type) {
		case *authorizationv1.SelfSubjectAccessReview:
			o.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "skiff authorizes every authenticated user"}
		case *authenticationv1.SelfSubjectReview:
			o.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, Groups: append(user.Groups, "system:authenticated")}
		}
	}
	m := obj.(metav1.Object)
	m.SetCreationTimestamp(metav1.Now())
	q.respond(http.StatusCreated, obj)
}

// reviewWithAuth fills a review's status truthfully, as upstream.
func (q *request) reviewWithAuth(a *AuthConfig, obj any) error {
	ctx := q.r.Context()
	u, _ := auth.UserFrom(ctx)
	if u == nil {
		u = auth.AnonymousUser()
	}
	self := func() authorizationv1.SubjectAccessReviewSpec {
		spec := authorizationv1.SubjectAccessReviewSpec{User: u.Name, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			spec.Extra = map[string]authorizationv1.ExtraValue{}
			for k, v := range u.Extra {
				spec.Extra[k] = v
			}
		}
		return spec
	}
	switch o := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		spec := self()
		spec.ResourceAttributes, spec.NonResourceAttributes = o.Spec.ResourceAttributes, o.Spec.NonResourceAttributes
		o.Status = auth.ReviewAccess(ctx, a.Authorizer, spec)
	case *authorizationv1.SubjectAccessReview:
		o.Status = auth.ReviewAccess(ctx, a.Authorizer, o.Spec)
	case *authorizationv1.LocalSubjectAccessReview:
		if ra := o.Spec.ResourceAttributes; ra == nil || ra.Namespace != q.ri.namespace {
			return apierrors.NewInvalid(schema.GroupKind{Group: authorizationv1.GroupName, Kind: "LocalSubjectAccessReview"}, o.Name, field.ErrorList{field.Invalid(
				field.NewPath("spec", "resourceAttributes", "namespace"), o.Spec.ResourceAttributes, "must match namespace: "+q.ri.namespace)})
		}
		o.Status = auth.ReviewAccess(ctx, a.Authorizer, o.Spec)
	case *authorizationv1.SelfSubjectRulesReview:
		o.Status = auth.ReviewRules(ctx, a.Authorizer, u, o.Spec.Namespace)
	case *authenticationv1.SelfSubjectReview:
		info := authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
		if len(u.Extra) > 0 {
			info.Extra = map[string]authenticationv1.ExtraValue{}
			for k, v := range u.Extra {
				info.Extra[k] = v
			}
		}
		o.Status.UserInfo = info
	case *authenticationv1.TokenReview:
		o.Status = auth.ReviewToken(ctx, a.Tokens, o.Spec)
	}
	return nil
}
