package server

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// reviewAPI answers TokenReviews and SubjectAccessReviews as an API server
// with a fixed policy: tokens name users, and allowed lists the users that
// may use node n1's kubelet API.
type reviewAPI struct {
	tokens  map[string]string
	allowed []string
	down    bool

	mu          sync.Mutex
	tokenCalls  int
	accessCalls int
	lastSpec    authorizationv1.SubjectAccessReviewSpec
}

func (a *reviewAPI) install(c *fake.Clientset) {
	c.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.tokenCalls++
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		if name, ok := a.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: name, Groups: []string{"system:serviceaccounts"}}}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.down {
			return true, nil, apierrors.NewServiceUnavailable("no server")
		}
		a.accessCalls++
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		a.lastSpec = sar.Spec
		ra := sar.Spec.ResourceAttributes
		sar.Status.Allowed = slices.Contains(a.allowed, sar.Spec.User) && ra != nil &&
			ra.Resource == "nodes" && ra.Name == "n1" && ra.Group == ""
		return true, sar, nil
	})
}

func (a *reviewAPI) calls() (tokens, access int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokenCalls, a.accessCalls
}

type authzEnv struct {
	*testEnv
	api   *reviewAPI
	clock *clocktesting.FakeClock
}

func newAuthzEnv(t *testing.T) *authzEnv {
	t.Helper()
	pki := newTestPKI(t)
	api := &reviewAPI{
		tokens:  map[string]string{"viewer-token": "system:serviceaccount:default:viewer", "other-token": "system:serviceaccount:default:other"},
		allowed: []string{DefaultClientCN, "system:serviceaccount:default:viewer"},
	}
	client := fake.NewClientset()
	api.install(client)
	clk := clocktesting.NewFakeClock(time.Now())
	prov := &fakeProvider{echoAddr: startEcho(t)}
	srv, err := New(Config{
		CertFile: pki.certFile, KeyFile: pki.keyFile, ClientCA: pki.pool,
		Client: client, NodeName: "n1", Clock: clk,
		Provider: prov,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv.Handler())
	ts.TLS = srv.TLSConfig()
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &authzEnv{testEnv: &testEnv{pki: pki, prov: prov, srv: srv, ts: ts}, api: api, clock: clk}
}

// get sends a GET with the client certificate cn and/or bearer token and
// returns the status and body.
func (e *authzEnv) get(t *testing.T, cn, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client(t, cn).Do(req)
	if err != nil {
		t.Fatalf("GET %s as %q/%q: %v", path, cn, token, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestDelegatedAuthorization(t *testing.T) {
	e := newAuthzEnv(t)
	const logs = "/containerLogs/default/web/app"
	for _, tt := range []struct {
		name, cn, token string
		want            int
		body            string
	}{
		{"no credential", "", "", http.StatusUnauthorized, "Unauthorized"},
		{"unknown token", "", "forged", http.StatusUnauthorized, "Unauthorized"},
		// Authorized; the log file does not exist.
		{"API server's client certificate", DefaultClientCN, "", http.StatusNotFound, ""},
		{"service account allowed by the API", "", "viewer-token", http.StatusNotFound, ""},
		{"another node's certificate", "system:node:n2", "", http.StatusForbidden,
			"Forbidden (user=system:node:n2, verb=get, resource=nodes, subresource=proxy)"},
		{"service account without access", "", "other-token", http.StatusForbidden,
			"Forbidden (user=system:serviceaccount:default:other, verb=get, resource=nodes, subresource=proxy)"},
	} {
		code, body := e.get(t, tt.cn, tt.token, logs)
		if code != tt.want || (tt.body != "" && body != tt.body) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, body, tt.want, tt.body)
		}
	}
	spec := e.api.lastSpec
	ra := spec.ResourceAttributes
	if spec.User != "system:serviceaccount:default:other" || !slices.Contains(spec.Groups, "system:authenticated") ||
		ra == nil || ra.Verb != "get" || ra.Resource != "nodes" || ra.Subresource != "proxy" || ra.Name != "n1" || ra.Version != "v1" {
		t.Errorf("last review = %+v %+v", spec, ra)
	}

	// The health check needs no credential.
	if code, body := e.get(t, "", "", "/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}

	// Exec is nodes/proxy too, with the verb of its method.
	code, body := e.get(t, "system:node:n2", "", "/exec/default/web/app?command=true&output=1")
	if code != http.StatusForbidden || !strings.Contains(body, "verb=get, resource=nodes, subresource=proxy") {
		t.Errorf("exec as another node: %d %q", code, body)
	}
}

func TestDelegatedAuthorizationCache(t *testing.T) {
	e := newAuthzEnv(t)
	const logs = "/containerLogs/default/web/app"
	want := func(cn, token string, code, tokenCalls, accessCalls int) {
		t.Helper()
		if got, _ := e.get(t, cn, token, logs); got != code {
			t.Errorf("status %d, want %d", got, code)
		}
		if tc, ac := e.api.calls(); tc != tokenCalls || ac != accessCalls {
			t.Errorf("reviews: %d token, %d access; want %d, %d", tc, ac, tokenCalls, accessCalls)
		}
	}

	// An allowed answer lasts 5 minutes, a token's 2.
	want("", "viewer-token", http.StatusNotFound, 1, 1)
	e.clock.Step(time.Minute)
	want("", "viewer-token", http.StatusNotFound, 1, 1)
	e.clock.Step(90 * time.Second)
	want("", "viewer-token", http.StatusNotFound, 2, 1)
	e.clock.Step(3 * time.Minute)
	want("", "viewer-token", http.StatusNotFound, 3, 2)

	// A denied one 30 s.
	want("system:node:n2", "", http.StatusForbidden, 3, 3)
	e.clock.Step(20 * time.Second)
	want("system:node:n2", "", http.StatusForbidden, 3, 3)
	e.clock.Step(11 * time.Second)
	want("system:node:n2", "", http.StatusForbidden, 3, 4)

	// No answer from the API: nothing is allowed, nothing is cached.
	e.api.mu.Lock()
	e.api.down = true
	e.api.mu.Unlock()
	code, body := e.get(t, "system:node:n3", "", logs)
	if code != http.StatusInternalServerError || !strings.HasPrefix(body, "Authorization error (user=system:node:n3") {
		t.Errorf("API down: %d %q", code, body)
	}
	e.api.mu.Lock()
	e.api.down = false
	e.api.mu.Unlock()
	want("system:node:n3", "", http.StatusForbidden, 3, 5)
}
