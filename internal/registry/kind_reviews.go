package registry

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The review kinds are created and answered, never stored.

// selfSubjectAccessReviewStrategy is authorization.k8s.io/v1
// SelfSubjectAccessReview. Every authenticated user is a cluster admin for
// now, so the answer is always yes.
type selfSubjectAccessReviewStrategy struct{ basics }

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
func (selfSubjectAccessReviewStrategy) Validate(runtime.Object) field.ErrorList {
	return nil
}

func (selfSubjectAccessReviewStrategy) Review(_ context.Context, _ User, obj runtime.Object) (runtime.Object, error) {
	o := obj.(*authorizationv1.SelfSubjectAccessReview)
	o.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "skiff authorizes every authenticated user"}
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
	o.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, UID: user.UID, Groups: append(groups, "system:authenticated")}
	return o, nil
}
