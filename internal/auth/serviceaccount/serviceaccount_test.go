package serviceaccount

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth"
)

const issuer = "https://kubernetes.default.svc.cluster.local"

// objects is a Getter over maps, keyed "namespace/name".
type objects struct {
	sas     map[string]*corev1.ServiceAccount
	pods    map[string]*corev1.Pod
	secrets map[string]*corev1.Secret
	nodes   map[string]*corev1.Node
}

func notFound(r, name string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: r}, name)
}

func (o objects) ServiceAccount(_ context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	if x, ok := o.sas[ns+"/"+name]; ok {
		return x, nil
	}
	return nil, notFound("serviceaccounts", name)
}
func (o objects) Pod(_ context.Context, ns, name string) (*corev1.Pod, error) {
	if x, ok := o.pods[ns+"/"+name]; ok {
		return x, nil
	}
	return nil, notFound("pods", name)
}
func (o objects) Secret(_ context.Context, ns, name string) (*corev1.Secret, error) {
	if x, ok := o.secrets[ns+"/"+name]; ok {
		return x, nil
	}
	return nil, notFound("secrets", name)
}
func (o objects) Node(_ context.Context, name string) (*corev1.Node, error) {
	if x, ok := o.nodes[name]; ok {
		return x, nil
	}
	return nil, notFound("nodes", name)
}

func meta(ns, name, uid string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}
}

func rsaKey(t *testing.T) crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestTokens(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	key, otherKey := rsaKey(t), ecKey(t)
	signer, _ := NewSigner(issuer, key)
	ecSigner, _ := NewSigner(issuer, otherKey)
	foreign, _ := NewSigner("https://elsewhere", key)

	sa := &corev1.ServiceAccount{ObjectMeta: meta("ns", "builder", "sa-uid")}
	pod := &corev1.Pod{ObjectMeta: meta("ns", "web", "pod-uid")}
	node := &corev1.Node{ObjectMeta: meta("", "n1", "node-uid")}
	secret := &corev1.Secret{ObjectMeta: meta("ns", "s", "secret-uid")}
	legacySecret := &corev1.Secret{ObjectMeta: meta("ns", "builder-token", "ls-uid"), Type: corev1.SecretTypeServiceAccountToken}
	legacyTok, err := signer.IssueLegacy(sa, legacySecret)
	if err != nil {
		t.Fatal(err)
	}
	legacySecret.Data = map[string][]byte{corev1.ServiceAccountTokenKey: []byte(legacyTok)}

	world := func() objects {
		return objects{
			sas:     map[string]*corev1.ServiceAccount{"ns/builder": sa},
			pods:    map[string]*corev1.Pod{"ns/web": pod},
			secrets: map[string]*corev1.Secret{"ns/s": secret, "ns/builder-token": legacySecret},
			nodes:   map[string]*corev1.Node{"n1": node},
		}
	}
	issue := func(s *Signer, bt BoundToken) string {
		bt.ServiceAccount = sa
		if bt.Audiences == nil {
			bt.Audiences = []string{issuer}
		}
		if bt.Expiration == 0 {
			bt.Expiration = time.Hour
		}
		if bt.Now.IsZero() {
			bt.Now = now
		}
		tok, exp, err := s.Issue(bt)
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Equal(bt.Now.Add(bt.Expiration)) {
			t.Fatalf("expiry %v", exp)
		}
		return tok
	}
	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:ns"}
	deleted := metav1.NewTime(now.Add(-2 * time.Minute))
	justDeleted := metav1.NewTime(now.Add(-10 * time.Second))

	tests := []struct {
		name      string
		token     string
		edit      func(*objects)
		keys      []crypto.PublicKey
		legacyOff bool
		want      *auth.User // nil: not ok
		wantErr   string
	}{
		{name: "pod-bound", token: issue(signer, BoundToken{Pod: pod, PodNode: node}),
			want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups, Extra: map[string][]string{
				ExtraPodName: {"web"}, ExtraPodUID: {"pod-uid"}, ExtraNodeName: {"n1"}, ExtraNodeUID: {"node-uid"}}}},
		{name: "ECDSA key", token: issue(ecSigner, BoundToken{}), keys: []crypto.PublicKey{key.Public(), otherKey.Public()},
			want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups}},
		{name: "pod gone", token: issue(signer, BoundToken{Pod: pod}), edit: func(o *objects) { delete(o.pods, "ns/web") }, wantErr: "pod ns/web not found"},
		{name: "pod replaced", token: issue(signer, BoundToken{Pod: pod}),
			edit:    func(o *objects) { o.pods["ns/web"] = &corev1.Pod{ObjectMeta: meta("ns", "web", "other")} },
			wantErr: "has UID other"},
		{name: "pod terminating long ago", token: issue(signer, BoundToken{Pod: pod}),
			edit: func(o *objects) {
				p := pod.DeepCopy()
				p.DeletionTimestamp = &deleted
				o.pods["ns/web"] = p
			}, wantErr: "has been deleted"},
		{name: "pod just terminating", token: issue(signer, BoundToken{Pod: pod}),
			edit: func(o *objects) {
				p := pod.DeepCopy()
				p.DeletionTimestamp = &justDeleted
				o.pods["ns/web"] = p
			}, want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups, Extra: map[string][]string{ExtraPodName: {"web"}, ExtraPodUID: {"pod-uid"}}}},
		{name: "secret-bound, secret gone", token: issue(signer, BoundToken{Secret: secret}), edit: func(o *objects) { delete(o.secrets, "ns/s") }, wantErr: "secret ns/s not found"},
		{name: "node-bound", token: issue(signer, BoundToken{Node: node}),
			want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups, Extra: map[string][]string{ExtraNodeName: {"n1"}, ExtraNodeUID: {"node-uid"}}}},
		{name: "node-bound, node gone", token: issue(signer, BoundToken{Node: node}), edit: func(o *objects) { delete(o.nodes, "n1") }, wantErr: "node n1 not found"},
		{name: "service account gone", token: issue(signer, BoundToken{}), edit: func(o *objects) { delete(o.sas, "ns/builder") }, wantErr: "service account ns/builder not found"},
		{name: "service account recreated", token: issue(signer, BoundToken{}),
			edit: func(o *objects) {
				o.sas["ns/builder"] = &corev1.ServiceAccount{ObjectMeta: meta("ns", "builder", "new")}
			},
			wantErr: "has UID new"},
		{name: "wrong audience", token: issue(signer, BoundToken{Audiences: []string{"vault"}}), wantErr: "audiences"},
		{name: "expired", token: issue(signer, BoundToken{Now: now.Add(-3 * time.Hour)}), wantErr: "expired"},
		{name: "within clock skew", token: issue(signer, BoundToken{Now: now.Add(-time.Hour - 30*time.Second)}),
			want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups}},
		{name: "not yet valid", token: issue(signer, BoundToken{Now: now.Add(10 * time.Minute)}), wantErr: "not valid yet"},
		{name: "unknown key", token: issue(ecSigner, BoundToken{}), wantErr: "unknown key ID"},
		{name: "tampered", token: tamper(issue(signer, BoundToken{})), wantErr: "signature is invalid"},
		{name: "alg none", token: noneToken(t), wantErr: "signing method"},
		{name: "other issuer is not ours", token: issue(foreign, BoundToken{})},
		{name: "not a JWT", token: "abc.def"},
		{name: "garbage JWT", token: "a.b.c"},
		{name: "legacy", token: legacyTok, want: &auth.User{Name: "system:serviceaccount:ns:builder", UID: "sa-uid", Groups: saGroups}},
		{name: "legacy, secret deleted", token: legacyTok, edit: func(o *objects) { delete(o.secrets, "ns/builder-token") }, wantErr: "invalidated"},
		{name: "legacy, secret holds another token", token: legacyTok,
			edit: func(o *objects) {
				s := legacySecret.DeepCopy()
				s.Data[corev1.ServiceAccountTokenKey] = []byte("x")
				o.secrets["ns/builder-token"] = s
			}, wantErr: "does not match"},
		{name: "legacy, account recreated", token: legacyTok,
			edit: func(o *objects) {
				o.sas["ns/builder"] = &corev1.ServiceAccount{ObjectMeta: meta("ns", "builder", "new")}
			},
			wantErr: "has UID new"},
		{name: "legacy off", token: legacyTok, legacyOff: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := world()
			if tt.edit != nil {
				tt.edit(&o)
			}
			keys := tt.keys
			if keys == nil {
				keys = []crypto.PublicKey{key.Public()}
			}
			a, err := NewAuthenticator(AuthenticatorConfig{Issuers: []string{issuer}, Keys: keys, Legacy: !tt.legacyOff, Getter: o, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			u, ok, err := a.AuthenticateToken(context.Background(), tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.want != nil) {
				t.Fatalf("ok = %v", ok)
			}
			if tt.want == nil {
				return
			}
			if cred := u.Extra[ExtraCredentialID]; tt.token != legacyTok {
				if len(cred) != 1 || !strings.HasPrefix(cred[0], "JTI=") {
					t.Fatalf("credential id %v", cred)
				}
				delete(u.Extra, ExtraCredentialID)
				if len(u.Extra) == 0 {
					u.Extra = nil
				}
			}
			if !reflect.DeepEqual(u, tt.want) {
				t.Fatalf("got %+v\nwant %+v", u, tt.want)
			}
		})
	}
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), "builder", "admin00", -1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func noneToken(t *testing.T) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": issuer, "sub": "system:serviceaccount:ns:builder"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestIssueErrors(t *testing.T) {
	s, _ := NewSigner(issuer, ecKey(t))
	sa := &corev1.ServiceAccount{ObjectMeta: meta("ns", "a", "u")}
	for name, bt := range map[string]BoundToken{
		"no account":    {Expiration: time.Hour},
		"no expiration": {ServiceAccount: sa},
		"two bindings":  {ServiceAccount: sa, Expiration: time.Hour, Pod: &corev1.Pod{}, Secret: &corev1.Secret{}},
	} {
		if _, _, err := s.Issue(bt); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewSigner("", ecKey(t)); err == nil {
		t.Error("empty issuer accepted")
	}
}

func TestDiscovery(t *testing.T) {
	rk, ek := rsaKey(t), ecKey(t)
	cfgH, jwksH, err := DiscoveryHandlers(issuer, "", []crypto.PublicKey{rk.Public(), ek.Public()})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	cfgH.ServeHTTP(rec, httptest.NewRequest("GET", OpenIDConfigPath, nil))
	var cfg map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["issuer"] != issuer || cfg["jwks_uri"] != "https://kubernetes.default.svc.cluster.local/openid/v1/jwks" {
		t.Fatalf("config %v", cfg)
	}
	if got := cfg["id_token_signing_alg_values_supported"]; !reflect.DeepEqual(got, []any{"RS256", "ES256"}) {
		t.Fatalf("algs %v", got)
	}
	rec = httptest.NewRecorder()
	jwksH.ServeHTTP(rec, httptest.NewRequest("GET", JWKSPath, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Fatalf("content type %q", ct)
	}
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("jwks %s %v", rec.Body, err)
	}
	// The published keys verify tokens signed with the private keys.
	dec := func(s string) *big.Int {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		return new(big.Int).SetBytes(b)
	}
	pubs := []crypto.PublicKey{
		&rsa.PublicKey{N: dec(set.Keys[0].N), E: int(dec(set.Keys[0].E).Int64())},
		&ecdsa.PublicKey{Curve: elliptic.P256(), X: dec(set.Keys[1].X), Y: dec(set.Keys[1].Y)},
	}
	for i, k := range []crypto.Signer{rk, ek} {
		kid, _ := KeyID(k.Public())
		if set.Keys[i].Kid != kid || set.Keys[i].Use != "sig" {
			t.Fatalf("key %d: %+v", i, set.Keys[i])
		}
		s, _ := NewSigner(issuer, k)
		sa := &corev1.ServiceAccount{ObjectMeta: meta("ns", "a", "u")}
		tok, _, _ := s.Issue(BoundToken{ServiceAccount: sa, Audiences: []string{"x"}, Expiration: time.Hour})
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pubs[i], nil }, jwt.WithAudience("x")); err != nil {
			t.Fatalf("key %d does not verify: %v", i, err)
		}
	}
	rec = httptest.NewRecorder()
	jwksH.ServeHTTP(rec, httptest.NewRequest("POST", JWKSPath, nil))
	if rec.Code != 405 {
		t.Fatalf("POST: %d", rec.Code)
	}
	if _, _, err := DiscoveryHandlers("http://insecure", "", []crypto.PublicKey{rk.Public()}); err == nil {
		t.Fatal("http issuer accepted")
	}
}

func TestListerGetter(t *testing.T) {
	ctx := context.Background()
	cached := &corev1.Pod{ObjectMeta: meta("ns", "cached", "1")}
	fresh := &corev1.Pod{ObjectMeta: meta("ns", "fresh", "2")}
	client := fake.NewClientset(cached, fresh)
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	_ = f.Core().V1().Pods().Informer().GetIndexer().Add(cached)
	g := ListerGetter{
		ServiceAccounts: f.Core().V1().ServiceAccounts().Lister(),
		Pods:            f.Core().V1().Pods().Lister(),
		Secrets:         f.Core().V1().Secrets().Lister(),
		Nodes:           f.Core().V1().Nodes().Lister(),
	}
	if p, err := g.Pod(ctx, "ns", "cached"); err != nil || p.UID != "1" {
		t.Fatalf("cached: %v %v", p, err)
	}
	if _, err := g.Pod(ctx, "ns", "fresh"); !apierrors.IsNotFound(err) {
		t.Fatalf("without client: %v", err)
	}
	g.Client = client
	if p, err := g.Pod(ctx, "ns", "fresh"); err != nil || p.UID != "2" {
		t.Fatalf("fallback: %v %v", p, err)
	}
	if _, err := g.Node(ctx, "none"); !apierrors.IsNotFound(err) {
		t.Fatalf("node: %v", err)
	}
}

func TestIssueRequest(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := ecKey(t)
	s, _ := NewSigner(issuer, key)
	sa := &corev1.ServiceAccount{ObjectMeta: meta("ns", "runner", "sa-uid")}
	pod := &corev1.Pod{ObjectMeta: meta("ns", "web", "pod-uid"), Spec: corev1.PodSpec{ServiceAccountName: "runner", NodeName: "n1"}}
	otherPod := &corev1.Pod{ObjectMeta: meta("ns", "db", "db-uid"), Spec: corev1.PodSpec{ServiceAccountName: "default"}}
	o := objects{
		sas:     map[string]*corev1.ServiceAccount{"ns/runner": sa},
		pods:    map[string]*corev1.Pod{"ns/web": pod, "ns/db": otherPod},
		secrets: map[string]*corev1.Secret{},
		nodes:   map[string]*corev1.Node{"n1": {ObjectMeta: meta("", "n1", "n1-uid")}},
	}
	opts := TokenRequestOptions{Audiences: []string{issuer}, Now: func() time.Time { return now }}
	secs := func(n int64) *int64 { return &n }
	bound := func(kind, apiVersion, name, uid string) *authenticationv1.BoundObjectReference {
		return &authenticationv1.BoundObjectReference{Kind: kind, APIVersion: apiVersion, Name: name, UID: types.UID(uid)}
	}
	tests := []struct {
		name    string
		spec    authenticationv1.TokenRequestSpec
		opts    *TokenRequestOptions
		wantExp time.Duration
		wantErr string
	}{
		{name: "defaults", wantExp: time.Hour},
		{name: "pod-bound", spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(7200), BoundObjectRef: bound("Pod", "v1", "web", "pod-uid")}, wantExp: 2 * time.Hour},
		{name: "too short", spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(60)}, wantErr: "may not specify a duration less than 10 minutes"},
		{name: "capped", spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: secs(86400)}, opts: &TokenRequestOptions{Audiences: []string{issuer}, MaxExpiration: 2 * time.Hour}, wantExp: 2 * time.Hour},
		{name: "stale UID", spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound("Pod", "v1", "web", "old")}, wantErr: "does not match the UID in record"},
		{name: "pod of another account", spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound("Pod", "v1", "db", "")}, wantErr: `cannot bind token for serviceaccount "runner" to pod running with different serviceaccount name.`},
		{name: "missing pod", spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound("Pod", "v1", "gone", "")}, wantErr: "not found"},
		{name: "bad kind", spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound("Deployment", "apps/v1", "d", "")}, wantErr: `cannot bind token for serviceaccount "runner" to object of type apps/v1, Kind=Deployment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := opts
			if tt.opts != nil {
				op = *tt.opts
				op.Now = opts.Now
			}
			out, err := s.IssueRequest(ctx, o, sa, &authenticationv1.TokenRequest{Spec: tt.spec}, op)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Status.ExpirationTimestamp.Time; !got.Equal(now.Add(tt.wantExp)) {
				t.Fatalf("expires %v", got)
			}
			a, _ := NewAuthenticator(AuthenticatorConfig{Issuers: []string{issuer}, Keys: []crypto.PublicKey{key.Public()}, Getter: o, Now: func() time.Time { return now }})
			u, ok, err := a.AuthenticateToken(ctx, out.Status.Token)
			if err != nil || !ok || u.Name != "system:serviceaccount:ns:runner" {
				t.Fatalf("issued token: %+v %v %v", u, ok, err)
			}
			if tt.spec.BoundObjectRef != nil && u.Extra[ExtraNodeName][0] != "n1" {
				t.Fatalf("node claim missing: %+v", u.Extra)
			}
		})
	}
}
