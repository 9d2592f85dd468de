package apiserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth"
	"skiff/internal/auth/bootstrappolicy"
	"skiff/internal/auth/rbac"
)

func TestRequestAttributes(t *testing.T) {
	u := &auth.User{Name: "u"}
	tests := []struct {
		method, url string
		want        auth.Attributes
	}{
		{"GET", "/api/v1/namespaces/default/pods", auth.Attributes{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "default"}},
		{"GET", "/api/v1/namespaces/default/pods?watch=true&fieldSelector=metadata.name%3Dweb", auth.Attributes{Verb: "watch", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "default", Name: "web"}},
		{"GET", "/api/v1/nodes?fieldSelector=spec.unschedulable%3Dfalse", auth.Attributes{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "nodes"}},
		{"PATCH", "/apis/apps/v1/namespaces/x/deployments/d/scale", auth.Attributes{Verb: "patch", ResourceRequest: true, APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Subresource: "scale", Namespace: "x", Name: "d"}},
		{"GET", "/api/v1/namespaces/x/services/web:80/proxy/some/path", auth.Attributes{Verb: "get", ResourceRequest: true, APIVersion: "v1", Resource: "services", Subresource: "proxy", Namespace: "x", Name: "web:80"}},
		{"GET", "/api/v1/namespaces/team", auth.Attributes{Verb: "get", ResourceRequest: true, APIVersion: "v1", Resource: "namespaces", Namespace: "team", Name: "team"}},
		{"DELETE", "/api/v1/namespaces/x/pods", auth.Attributes{Verb: "deletecollection", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "x"}},
		{"GET", "/apis/apps/v1", auth.Attributes{Verb: "get", Path: "/apis/apps/v1"}},
		{"GET", "/healthz", auth.Attributes{Verb: "get", Path: "/healthz"}},
		{"POST", "/openid/v1/jwks", auth.Attributes{Verb: "post", Path: "/openid/v1/jwks"}},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.url, nil)
		got := requestAttributes(r, u)
		tt.want.User = u
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tt.method, tt.url, got, tt.want)
		}
	}
}

func testAuthorizer(t *testing.T) auth.AuthorizerResolver {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	r := f.Rbac().V1()
	crs := bootstrappolicy.ClusterRoles()
	for i := range crs {
		_ = r.ClusterRoles().Informer().GetIndexer().Add(&crs[i])
	}
	crbs := bootstrappolicy.ClusterRoleBindings()
	for i := range crbs {
		_ = r.ClusterRoleBindings().Informer().GetIndexer().Add(&crbs[i])
	}
	_ = r.ClusterRoles().Informer().GetIndexer().Add(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/exec"}}}})
	_ = r.RoleBindings().Informer().GetIndexer().Add(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "alice"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pod-reader"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}}})
	rb := rbac.New(rbac.Listers{Roles: r.Roles().Lister(), RoleBindings: r.RoleBindings().Lister(), ClusterRoles: r.ClusterRoles().Lister(), ClusterRoleBindings: r.ClusterRoleBindings().Lister()})
	return auth.NewAuthorizer(nil, rb)
}

func TestGuard(t *testing.T) {
	tokens := auth.TokenAuthenticatorFunc(func(_ context.Context, tok string) (*auth.User, bool, error) {
		switch tok {
		case "alice":
			return &auth.User{Name: "alice"}, true, nil
		case "admin":
			return &auth.User{Name: "admin", Groups: []string{auth.SystemPrivilegedGroup}}, true, nil
		}
		return nil, false, nil
	})
	s := &Server{log: slog.New(slog.DiscardHandler), cfg: Config{Auth: &AuthConfig{
		Authenticator: auth.NewAuthenticator(true, auth.BearerToken(tokens)),
		Authorizer:    testAuthorizer(t),
	}}}
	var seen *auth.User
	h := s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = auth.UserFrom(r.Context())
		w.WriteHeader(http.StatusOK)
	}))
	tests := []struct {
		name     string
		method   string
		url      string
		headers  map[string]string
		wantCode int
		wantMsg  string
		wantUser string
	}{
		{name: "anonymous health", method: "GET", url: "/healthz", wantCode: 200, wantUser: auth.Anonymous},
		{name: "anonymous pods", method: "GET", url: "/api/v1/namespaces/default/pods", wantCode: 403,
			wantMsg: `pods is forbidden: User "system:anonymous" cannot list resource "pods" in API group "" in the namespace "default"`},
		{name: "bad token", method: "GET", url: "/healthz", headers: map[string]string{"Authorization": "Bearer nope"}, wantCode: 401, wantMsg: "Unauthorized"},
		{name: "alice lists pods", method: "GET", url: "/api/v1/namespaces/default/pods", headers: map[string]string{"Authorization": "Bearer alice"}, wantCode: 200, wantUser: "alice"},
		{name: "alice lists secrets", method: "GET", url: "/api/v1/namespaces/default/secrets", headers: map[string]string{"Authorization": "Bearer alice"}, wantCode: 403,
			wantMsg: `secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default"`},
		{name: "alice discovery", method: "GET", url: "/apis", headers: map[string]string{"Authorization": "Bearer alice"}, wantCode: 200},
		{name: "alice exec needs create", method: "GET", url: "/api/v1/namespaces/default/pods/p/exec?command=sh", headers: map[string]string{"Authorization": "Bearer alice"}, wantCode: 403,
			wantMsg: `pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "default"`},
		{name: "admin as alice", method: "GET", url: "/api/v1/namespaces/default/secrets", headers: map[string]string{"Authorization": "Bearer admin", "Impersonate-User": "alice"}, wantCode: 403,
			wantMsg: `secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default"`},
		{name: "admin as anonymous", method: "GET", url: "/version", headers: map[string]string{"Authorization": "Bearer admin", "Impersonate-User": "system:anonymous"}, wantCode: 200, wantUser: auth.Anonymous},
		{name: "alice as admin", method: "GET", url: "/api/v1/namespaces/default/pods", headers: map[string]string{"Authorization": "Bearer alice", "Impersonate-User": "admin"}, wantCode: 403,
			wantMsg: `users "admin" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(tt.method, tt.url, nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", w.Code, tt.wantCode, w.Body)
			}
			if tt.wantMsg != "" {
				var st metav1.Status
				if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Message != tt.wantMsg {
					t.Fatalf("message %q, want %q", st.Message, tt.wantMsg)
				}
			}
			if tt.wantUser != "" && (seen == nil || seen.Name != tt.wantUser) {
				t.Fatalf("handler saw %+v, want %s", seen, tt.wantUser)
			}
		})
	}
}

func TestGuardBeforeSync(t *testing.T) {
	synced := false
	s := &Server{log: slog.New(slog.DiscardHandler), cfg: Config{Auth: &AuthConfig{
		Authenticator: auth.NewAuthenticator(true, auth.BearerToken(auth.TokenAuthenticatorFunc(func(_ context.Context, tok string) (*auth.User, bool, error) {
			if tok == "admin" {
				return &auth.User{Name: "admin", Groups: []string{auth.SystemPrivilegedGroup}}, true, nil
			}
			return &auth.User{Name: tok}, true, nil
		}))),
		// Nothing but system:masters is allowed while the caches are empty.
		Authorizer: auth.NewAuthorizer(nil, nil),
		Synced:     func() bool { return synced },
	}}}
	h := s.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	do := func(path, token string) int {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/readyz", "", 200},
		{"/version", "", 200},
		{"/api/v1/pods", "admin", 200},
		{"/api/v1/pods", "bob", 503},
		{"/apis", "", 503},
	} {
		if got := do(tt.path, tt.token); got != tt.want {
			t.Errorf("before sync, %s as %q: %d, want %d", tt.path, tt.token, got, tt.want)
		}
	}
	synced = true
	if got := do("/api/v1/pods", "bob"); got != 403 {
		t.Errorf("after sync: %d, want 403", got)
	}
}
