package apiserver

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// httpClient is a plain HTTPS client of a haCluster's servers, for answers
// client-go would retry or hide.
func (c *haCluster) httpClient() *http.Client {
	cert, err := tls.X509KeyPair(c.adminCert, c.adminKey)
	if err != nil {
		panic(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ca.CertPool(), Certificates: []tls.Certificate{cert}}}}
}

type answer struct {
	code   int
	header http.Header
	body   string
	took   time.Duration
}

func (h *haServer) do(t *testing.T, c *haCluster, method, path, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: string(data), took: time.Since(start)}
}

// status decodes a Kubernetes Status answer.
func (a answer) status(t *testing.T) metav1.Status {
	t.Helper()
	var s metav1.Status
	if err := json.Unmarshal([]byte(a.body), &s); err != nil || s.Kind != "Status" {
		t.Fatalf("answer is not a Status (%v): %d %s", err, a.code, a.body)
	}
	return s
}

func TestQuorumLostRefusesRequests(t *testing.T) {
	ctx := ctxTimeout(t)
	c := newHACluster(t)
	var quorumErr atomic.Pointer[error]
	lns := listenSamePort(t, "127.0.0.1")
	h := c.start(t, lns[0], func(cfg *Config) {
		cfg.Quorum = func() error {
			if p := quorumErr.Load(); p != nil {
				return *p
			}
			return nil
		}
	})
	cs := h.client(t, c)
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"one"}}`

	// A watch opened before the quorum is lost stays open through it.
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	lost := errors.New("etcd: no leader for 4s")
	quorumErr.Store(&lost)

	// A write: 503, a Status that says what is wrong and what to do, and
	// Retry-After for client-go to retry.
	a := h.do(t, c, http.MethodPost, "/api/v1/namespaces/default/configmaps", cm)
	if a.code != http.StatusServiceUnavailable {
		t.Fatalf("create without quorum: %d %s, want 503", a.code, a.body)
	}
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("create without quorum: Retry-After %q, want 1", got)
	}
	st := a.status(t)
	want := "this server is cut off from the etcd majority (etcd: no leader for 4s): writes are refused; retry against another server"
	if st.Reason != metav1.StatusReasonServiceUnavailable || st.Code != http.StatusServiceUnavailable || st.Message != want {
		t.Errorf("create without quorum: Status %s %d %q, want ServiceUnavailable 503 %q", st.Reason, st.Code, st.Message, want)
	}
	// As client-go reports it once it stops retrying.
	err = cs.CoreV1().RESTClient().Post().AbsPath("/api/v1/namespaces/default/configmaps").
		SetHeader("Content-Type", "application/json").Body([]byte(cm)).MaxRetries(0).Do(ctx).Error()
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "cut off from the etcd majority") {
		t.Errorf("client-go create without quorum: %v, want ServiceUnavailable", err)
	}

	// Updates, patches and deletes too.
	for _, r := range []struct{ method, body string }{
		{http.MethodPut, cm},
		{http.MethodPatch, `{}`},
		{http.MethodDelete, ""},
	} {
		if a := h.do(t, c, r.method, "/api/v1/namespaces/default/configmaps/one", r.body); a.code != http.StatusServiceUnavailable {
			t.Errorf("%s without quorum: %d %s, want 503", r.method, a.code, a.body)
		}
	}
	// Reads, lists and new watches answer 503 quickly rather than wait.
	for _, path := range []string{
		"/api/v1/namespaces/default/configmaps/one",
		"/api/v1/namespaces/default/configmaps",
		"/api/v1/namespaces/default/configmaps?watch=true",
		"/apis/apps/v1/deployments",
	} {
		a := h.do(t, c, http.MethodGet, path, "")
		if a.code != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" || a.took > 2*time.Second {
			t.Errorf("GET %s without quorum: %d in %s, Retry-After %q: %s; want a quick 503", path, a.code, a.took, a.header.Get("Retry-After"), a.body)
		} else if st := a.status(t); !strings.Contains(st.Message, "cut off from the etcd majority (etcd: no leader for 4s): reads are refused") {
			t.Errorf("GET %s without quorum: message %q", path, st.Message)
		}
	}
	// Discovery needs no etcd: kubectl still finds the resources and shows
	// the 503's message.
	if a := h.do(t, c, http.MethodGet, "/api", ""); a.code != http.StatusOK {
		t.Errorf("GET /api without quorum: %d, want 200", a.code)
	}

	// Load balancers move away; the process is alive.
	a = h.do(t, c, http.MethodGet, "/readyz", "")
	if a.code != http.StatusInternalServerError || !strings.Contains(a.body, "[-]etcd-quorum failed: etcd: no leader for 4s") {
		t.Errorf("/readyz without quorum: %d %q, want 500 naming etcd-quorum", a.code, a.body)
	}
	for _, path := range []string{"/livez", "/healthz"} {
		if a := h.do(t, c, http.MethodGet, path, ""); a.code != http.StatusOK {
			t.Errorf("%s without quorum: %d %s, want 200", path, a.code, a.body)
		}
	}

	// Quorum is back: everything works, and the old watch sees the write.
	quorumErr.Store(nil)
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "one"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create with quorum back: %v", err)
	}
	if a := h.do(t, c, http.MethodGet, "/readyz", ""); a.code != http.StatusOK {
		t.Errorf("/readyz with quorum back: %d %s", a.code, a.body)
	}
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch opened before the outage was closed")
		}
		if m, _ := ev.Object.(*corev1.ConfigMap); m == nil || m.Name != "one" {
			t.Fatalf("the watch opened before the outage got %s %T", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch opened before the outage got no event")
	}
}

func TestRequestPastItsDeadlineAnswers504(t *testing.T) {
	c := newHACluster(t)
	lns := listenSamePort(t, "127.0.0.1")
	h := c.start(t, lns[0], nil)
	// ?timeout= (kubectl --request-timeout) shortens the server's deadline;
	// one that has passed before etcd answers fails the request as a
	// request that ran out of the server's 30 s would.
	for _, path := range []string{
		"/api/v1/namespaces/default/configmaps/one?timeout=1ns",
		"/api/v1/namespaces/default/configmaps?timeout=1ns",
	} {
		a := h.do(t, c, http.MethodGet, path, "")
		if a.code != http.StatusGatewayTimeout {
			t.Fatalf("GET %s: %d %s, want 504", path, a.code, a.body)
		}
		if st := a.status(t); st.Reason != metav1.StatusReasonTimeout || st.Code != http.StatusGatewayTimeout || !strings.HasPrefix(st.Message, "Timeout: request did not complete within") {
			t.Fatalf("GET %s: Status %s %d %q, want Timeout 504", path, st.Reason, st.Code, st.Message)
		}
	}
	// Watches have no such deadline: they stream until their timeoutSeconds.
	req, _ := http.NewRequest(http.MethodGet, h.url+"/api/v1/namespaces/default/configmaps?watch=true&timeout=1ns&timeoutSeconds=2", nil)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch with timeout=1ns: %s", resp.Status)
	}
	start := time.Now()
	_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the watch ended after %s, before its timeoutSeconds", took)
	}
}
