package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Impersonation headers, as upstream.
const (
	ImpersonateUserHeader        = authenticationv1.ImpersonateUserHeader
	ImpersonateGroupHeader       = authenticationv1.ImpersonateGroupHeader
	ImpersonateUIDHeader         = authenticationv1.ImpersonateUIDHeader
	ImpersonateUserExtraPrefix   = authenticationv1.ImpersonateUserExtraHeaderPrefix
	authenticationGroup          = "authentication.k8s.io"
	authenticationGroupVersionV1 = "authentication.k8s.io/v1"
)

// impersonationRequests lists what the headers ask to act as, in upstream's
// order: the user (or service account), groups, extras, the UID.
func impersonationRequests(h http.Header) ([]corev1.ObjectReference, error) {
	var reqs []corev1.ObjectReference
	requestedUser := h.Get(ImpersonateUserHeader)
	hasUser := requestedUser != ""
	if hasUser {
		if ns, name, ok := SplitServiceAccountUsername(requestedUser); ok {
			reqs = append(reqs, corev1.ObjectReference{Kind: "ServiceAccount", Namespace: ns, Name: name})
		} else {
			reqs = append(reqs, corev1.ObjectReference{Kind: "User", Name: requestedUser})
		}
	}
	hasGroups := false
	for _, g := range h.Values(ImpersonateGroupHeader) {
		hasGroups = true
		reqs = append(reqs, corev1.ObjectReference{Kind: "Group", Name: g})
	}
	hasExtra := false
	// Header order is random; sort for a stable order of checks.
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(k) <= len(ImpersonateUserExtraPrefix) || !strings.EqualFold(k[:len(ImpersonateUserExtraPrefix)], ImpersonateUserExtraPrefix) {
			continue
		}
		hasExtra = true
		extraKey := unescapeExtraKey(strings.ToLower(k[len(ImpersonateUserExtraPrefix):]))
		for _, v := range h[k] {
			reqs = append(reqs, corev1.ObjectReference{Kind: "UserExtra", APIVersion: authenticationGroupVersionV1, Name: v, FieldPath: extraKey})
		}
	}
	requestedUID := h.Get(ImpersonateUIDHeader)
	hasUID := requestedUID != ""
	if hasUID {
		reqs = append(reqs, corev1.ObjectReference{Kind: "UID", Name: requestedUID, APIVersion: authenticationGroupVersionV1})
	}
	if (hasGroups || hasExtra || hasUID) && !hasUser {
		return nil, fmt.Errorf("requested %v without impersonating a user", reqs)
	}
	return reqs, nil
}

func unescapeExtraKey(encoded string) string {
	key, err := url.PathUnescape(encoded)
	if err != nil {
		return encoded
	}
	return key
}

// Impersonate returns the identity requestor acts as when the headers
// carry Impersonate-User, -Group, -Uid or -Extra-*, or nil when they carry
// none. Each requested user, group, extra value and UID is authorized with
// the impersonate verb (on users, groups, serviceaccounts, userextras/<key>
// and uids), as upstream. The error is an API status: 403 naming the first
// refused item, or 500 when groups, extras or a UID come without a user.
// The caller should remove the headers (DeleteImpersonationHeaders) once
// they are honoured.
func Impersonate(ctx context.Context, requestor *User, h http.Header, az Authorizer) (*User, error) {
	reqs, err := impersonationRequests(h)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	var username, uid string
	var groups []string
	var extra map[string][]string
	groupsSpecified := len(h.Values(ImpersonateGroupHeader)) > 0
	for _, r := range reqs {
		a := Attributes{User: requestor, Verb: "impersonate", Namespace: r.Namespace, Name: r.Name, ResourceRequest: true}
		switch r.Kind {
		case "ServiceAccount":
			a.Resource = "serviceaccounts"
			username = ServiceAccountUsername(r.Namespace, r.Name)
			if !groupsSpecified {
				groups = ServiceAccountGroups(r.Namespace)
			}
		case "User":
			a.Resource = "users"
			username = r.Name
		case "Group":
			a.Resource = "groups"
			groups = append(groups, r.Name)
		case "UserExtra":
			a.APIGroup, a.APIVersion = authenticationGroup, "v1"
			a.Resource, a.Subresource = "userextras", r.FieldPath
			if extra == nil {
				extra = map[string][]string{}
			}
			extra[r.FieldPath] = append(extra[r.FieldPath], r.Name)
		case "UID":
			a.APIGroup, a.APIVersion = authenticationGroup, "v1"
			a.Resource = "uids"
			uid = r.Name
		}
		d, reason, _ := az.Authorize(ctx, a)
		if d != DecisionAllow {
			return nil, Forbidden(a, reason)
		}
	}
	if username != Anonymous {
		if !slices.Contains(groups, AllAuthenticated) && !slices.Contains(groups, AllUnauthenticated) {
			groups = append(groups, AllAuthenticated)
		}
	} else if !slices.Contains(groups, AllUnauthenticated) {
		groups = append(groups, AllUnauthenticated)
	}
	return &User{Name: username, UID: uid, Groups: groups, Extra: extra}, nil
}

// DeleteImpersonationHeaders removes the impersonation headers, so they are
// not passed on once honoured.
func DeleteImpersonationHeaders(h http.Header) {
	h.Del(ImpersonateUserHeader)
	h.Del(ImpersonateGroupHeader)
	h.Del(ImpersonateUIDHeader)
	for k := range h {
		if len(k) > len(ImpersonateUserExtraPrefix) && strings.EqualFold(k[:len(ImpersonateUserExtraPrefix)], ImpersonateUserExtraPrefix) {
			delete(h, k)
		}
	}
}
