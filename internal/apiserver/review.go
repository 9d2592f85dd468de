package apiserver

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/auth"
	"skiff/internal/registry"
)

// review answers a create-only review resource from the caller's identity.
func (q *request) review() {
	if q.ri.verb != "create" || q.ri.name != "" {
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		return
	}
	reviewer, ok := q.res.Strategy.(registry.Reviewer)
	if !ok {
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		return
	}
	obj, err := q.decodeBody()
	if err != nil {
		q.fail(err)
		return
	}
	if errs := q.res.Validate(obj); len(errs) > 0 {
		q.fail(invalid(q.res, "", errs))
		return
	}
	user, _ := q.r.Context().Value(userKey{}).(userInfo)
	caller := registry.User{Name: user.Name, Groups: user.Groups}
	// With Config.Auth the caller is known in full (authz.go).
	if u, ok := auth.UserFrom(q.r.Context()); ok {
		caller = registry.User{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
	}
	out, err := reviewer.Review(q.r.Context(), caller, obj)
	if err != nil {
		q.fail(err)
		return
	}
	if m, ok := out.(metav1.Object); ok {
		m.SetCreationTimestamp(metav1.Now())
	}
	q.respond(http.StatusCreated, out)
}
