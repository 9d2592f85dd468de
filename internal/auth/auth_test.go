package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCA{c, key}
}

func (ca testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca testCA) client(t *testing.T, cn string, orgs []string, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestX509(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	tests := []struct {
		name      string
		state     *tls.ConnectionState
		roots     *x509.CertPool
		want      *User
		wantError bool
	}{
		{name: "no TLS"},
		{name: "no certificate", state: &tls.ConnectionState{}, roots: ca.pool()},
		{name: "user and groups", roots: ca.pool(),
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.client(t, "alice", []string{"dev", "ops"}, x509.ExtKeyUsageClientAuth)}},
			want:  &User{Name: "alice", Groups: []string{"dev", "ops"}}},
		{name: "other CA", roots: ca.pool(), wantError: true,
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{other.client(t, "mallory", nil, x509.ExtKeyUsageClientAuth)}}},
		{name: "server-only certificate", roots: ca.pool(), wantError: true,
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.client(t, "web", nil, x509.ExtKeyUsageServerAuth)}}},
		{name: "empty CN", roots: ca.pool(),
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.client(t, "", []string{"x"}, x509.ExtKeyUsageClientAuth)}}},
		{name: "trust TLS verification",
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.client(t, "bob", nil, x509.ExtKeyUsageClientAuth)}, VerifiedChains: [][]*x509.Certificate{{}}},
			want:  &User{Name: "bob"}},
		{name: "trust TLS verification, unverified",
			state: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.client(t, "bob", nil, x509.ExtKeyUsageClientAuth)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api", nil)
			r.TLS = tt.state
			u, ok, err := X509(tt.roots).Authenticate(r)
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tt.want != nil)
			}
			if tt.want != nil && !reflect.DeepEqual(u, tt.want) {
				t.Fatalf("user = %+v, want %+v", u, tt.want)
			}
		})
	}
}

func tokens(m map[string]*User) TokenAuthenticator {
	return TokenAuthenticatorFunc(func(_ context.Context, tok string) (*User, bool, error) {
		if tok == "broken" {
			return nil, false, errors.New("signature is invalid")
		}
		u, ok := m[tok]
		return u, ok, nil
	})
}

func TestAuthenticatorChain(t *testing.T) {
	chainWith := func(anon bool) Authenticator {
		return NewAuthenticator(anon, BearerToken(tokens(map[string]*User{"good": {Name: "svc", Groups: []string{"g"}}})))
	}
	tests := []struct {
		name      string
		header    string
		anonymous bool
		want      *User
		wantError bool
	}{
		{name: "good token", header: "Bearer good", want: &User{Name: "svc", Groups: []string{"g", AllAuthenticated}}},
		{name: "lower-case scheme", header: "bearer good", want: &User{Name: "svc", Groups: []string{"g", AllAuthenticated}}},
		{name: "unknown token", header: "Bearer nope", anonymous: true, wantError: true},
		{name: "broken token", header: "Bearer broken", anonymous: true, wantError: true},
		{name: "no credential, anonymous", anonymous: true, want: &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}},
		{name: "no credential, no anonymous"},
		{name: "basic auth is not ours", header: "Basic Zm9vOmJhcg==", anonymous: true, want: &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}},
		{name: "empty bearer", header: "Bearer ", anonymous: true, want: &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/api", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			u, ok, err := chainWith(tt.anonymous).Authenticate(r)
			if (err != nil) != tt.wantError {
				t.Fatalf("err = %v, want error %v", err, tt.wantError)
			}
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tt.want != nil)
			}
			if tt.want != nil && !reflect.DeepEqual(u, tt.want) {
				t.Fatalf("user = %+v, want %+v", u, tt.want)
			}
			if ok && tt.header != "" && tt.want.Name != Anonymous && r.Header.Get("Authorization") != "" {
				t.Fatal("Authorization header kept after authentication")
			}
		})
	}
}

func TestForbidden(t *testing.T) {
	alice := &User{Name: "alice"}
	tests := []struct {
		a    Attributes
		want string
	}{
		{Attributes{User: alice, Verb: "list", ResourceRequest: true, Resource: "secrets", Namespace: "default"},
			`secrets is forbidden: User "alice" cannot list resource "secrets" in API group "" in the namespace "default"`},
		{Attributes{User: alice, Verb: "get", ResourceRequest: true, APIGroup: "apps", Resource: "deployments", Subresource: "scale", Namespace: "ns", Name: "web"},
			`deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" in API group "apps" in the namespace "ns"`},
		{Attributes{User: alice, Verb: "create", ResourceRequest: true, APIGroup: "rbac.authorization.k8s.io", Resource: "clusterroles"},
			`clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope`},
		{Attributes{User: &User{Name: "<b>"}, Verb: "get", Path: "/metrics"},
			`forbidden: User "&lt;b&gt;" cannot get path "/metrics"`},
	}
	for _, tt := range tests {
		err := Forbidden(tt.a, "")
		if got := err.Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		if err.Status().Code != http.StatusForbidden {
			t.Errorf("code %d", err.Status().Code)
		}
	}
	withReason := Forbidden(Attributes{User: alice, Verb: "get", ResourceRequest: true, Resource: "secrets", Namespace: "d", Name: "s"}, "no relationship found")
	if want := `secrets "s" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "d": no relationship found`; withReason.Error() != want {
		t.Errorf("got %s", withReason.Error())
	}
}

// allowList allows the listed impersonations, "resource/name".
type allowList map[string]bool

func (l allowList) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	key := a.Resource
	if a.Subresource != "" {
		key += "/" + a.Subresource
	}
	if a.Verb == "impersonate" && (l[key+"/"+a.Name] || l[key+"/*"]) {
		return DecisionAllow, "", nil
	}
	return DecisionNoOpinion, "", nil
}

func TestImpersonate(t *testing.T) {
	alice := &User{Name: "alice", Groups: []string{AllAuthenticated}}
	tests := []struct {
		name    string
		headers map[string][]string
		allow   allowList
		want    *User
		wantErr string
	}{
		{name: "no headers"},
		{name: "user", headers: map[string][]string{"Impersonate-User": {"bob"}}, allow: allowList{"users/bob": true},
			want: &User{Name: "bob", Groups: []string{AllAuthenticated}}},
		{name: "user refused", headers: map[string][]string{"Impersonate-User": {"bob"}},
			wantErr: `users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope`},
		{name: "user and groups", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Group": {"dev", "ops"}},
			allow: allowList{"users/bob": true, "groups/*": true},
			want:  &User{Name: "bob", Groups: []string{"dev", "ops", AllAuthenticated}}},
		{name: "group refused", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Group": {"system:masters"}},
			allow:   allowList{"users/bob": true},
			wantErr: `groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in API group "" at the cluster scope`},
		{name: "service account", headers: map[string][]string{"Impersonate-User": {"system:serviceaccount:ns:sa"}},
			allow: allowList{"serviceaccounts/sa": true},
			want:  &User{Name: "system:serviceaccount:ns:sa", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", AllAuthenticated}}},
		{name: "service account refused", headers: map[string][]string{"Impersonate-User": {"system:serviceaccount:ns:sa"}},
			wantErr: `serviceaccounts "sa" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "ns"`},
		{name: "anonymous", headers: map[string][]string{"Impersonate-User": {Anonymous}}, allow: allowList{"users/system:anonymous": true},
			want: &User{Name: Anonymous, Groups: []string{AllUnauthenticated}}},
		{name: "unauthenticated group keeps authenticated out", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Group": {AllUnauthenticated}},
			allow: allowList{"users/bob": true, "groups/*": true},
			want:  &User{Name: "bob", Groups: []string{AllUnauthenticated}}},
		{name: "extra and uid", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Extra-Scopes": {"view", "edit"}, "Impersonate-Extra-Example.com%2fteam": {"a"}, "Impersonate-Uid": {"1234"}},
			allow: allowList{"users/bob": true, "userextras/scopes/*": true, "userextras/example.com/team/*": true, "uids/1234": true},
			want:  &User{Name: "bob", UID: "1234", Groups: []string{AllAuthenticated}, Extra: map[string][]string{"scopes": {"view", "edit"}, "example.com/team": {"a"}}}},
		{name: "extra refused", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Extra-Scopes": {"view"}},
			allow:   allowList{"users/bob": true},
			wantErr: `userextras.authentication.k8s.io "view" is forbidden: User "alice" cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope`},
		{name: "uid refused", headers: map[string][]string{"Impersonate-User": {"bob"}, "Impersonate-Uid": {"1"}},
			allow:   allowList{"users/bob": true},
			wantErr: `uids.authentication.k8s.io "1" is forbidden: User "alice" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope`},
		{name: "group without user", headers: map[string][]string{"Impersonate-Group": {"dev"}}, allow: allowList{"groups/*": true},
			wantErr: `Internal error occurred: requested [{Group  dev    }] without impersonating a user`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tt.headers {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			got, err := Impersonate(context.Background(), alice, h, tt.allow)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant  %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			DeleteImpersonationHeaders(h)
			if len(h) != 0 {
				t.Fatalf("headers left: %v", h)
			}
		})
	}
}

type fixed struct {
	d      Decision
	reason string
	err    error
}

func (f fixed) Authorize(context.Context, Attributes) (Decision, string, error) {
	return f.d, f.reason, f.err
}
func (f fixed) RulesFor(context.Context, *User, string) (Rules, error) { return Rules{}, nil }

func TestAuthorizerChain(t *testing.T) {
	masters := &User{Name: "admin", Groups: []string{SystemPrivilegedGroup}}
	bob := &User{Name: "bob"}
	tests := []struct {
		name       string
		node, rbac AuthorizerResolver
		user       *User
		want       Decision
		wantReason string
	}{
		{name: "masters always", node: fixed{d: DecisionDeny}, user: masters, want: DecisionAllow},
		{name: "rbac allows", node: fixed{}, rbac: fixed{d: DecisionAllow}, user: bob, want: DecisionAllow},
		{name: "node denies first", node: fixed{d: DecisionDeny, reason: "no"}, rbac: fixed{d: DecisionAllow}, user: bob, want: DecisionDeny, wantReason: "no"},
		{name: "nobody", node: fixed{reason: "not a node"}, rbac: fixed{reason: "no binding"}, user: bob, want: DecisionNoOpinion, wantReason: "not a node\nno binding"},
		{name: "nil parts", user: bob, want: DecisionNoOpinion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, _ := NewAuthorizer(tt.node, tt.rbac).Authorize(context.Background(), Attributes{User: tt.user, Verb: "get"})
			if d != tt.want || reason != tt.wantReason {
				t.Fatalf("got %v %q, want %v %q", d, reason, tt.want, tt.wantReason)
			}
		})
	}
	rules, err := NewAuthorizer(nil, nil).RulesFor(context.Background(), masters, "x")
	if err != nil || len(rules.ResourceRules) != 1 || rules.ResourceRules[0].Verbs[0] != "*" {
		t.Fatalf("masters rules %+v %v", rules, err)
	}
}

func TestUserHelpers(t *testing.T) {
	if n, ok := (&User{Name: "system:node:a", Groups: []string{NodesGroup}}).NodeName(); !ok || n != "a" {
		t.Fatal("node identity")
	}
	if _, ok := (&User{Name: "system:node:a"}).NodeName(); ok {
		t.Fatal("node name without the group")
	}
	for _, bad := range []string{"system:serviceaccount:ns", "system:serviceaccount::n", "system:serviceaccount:a:b:c", "bob"} {
		if _, _, ok := SplitServiceAccountUsername(bad); ok {
			t.Errorf("%q split", bad)
		}
	}
	ctx := WithUser(context.Background(), &User{Name: "x"})
	if u, ok := UserFrom(ctx); !ok || u.Name != "x" {
		t.Fatal("context")
	}
}
