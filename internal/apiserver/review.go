package apiserver

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// review answers the create-only review resources from the caller's
// identity. Every authenticated user is a cluster admin for now, so an
// access review is always allowed.
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
	user, _ := q.r.Context().Value(userKey{}).(userInfo)
	switch o := obj.(type) {
	case *authorizationv1.SelfSubjectAccessReview:
		o.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "skiff authorizes every authenticated user"}
	case *authenticationv1.SelfSubjectReview:
		o.Status.UserInfo = authenticationv1.UserInfo{Username: user.Name, Groups: append(user.Groups, "system:authenticated")}
	}
	m := obj.(metav1.Object)
	m.SetCreationTimestamp(metav1.Now())
	q.respond(http.StatusCreated, obj)
}
