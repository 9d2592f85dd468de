package volumes

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// tokenAPI answers TokenRequests as the API does (the token's life starts
// now), numbering the tokens; down makes it fail as an unreachable server.
type tokenAPI struct {
	clock    *clocktesting.FakeClock
	requests atomic.Int32
	down     atomic.Bool
	last     *authenticationv1.TokenRequest
}

func (a *tokenAPI) install(c *fake.Clientset) {
	c.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "token" {
			return false, nil, nil
		}
		if a.down.Load() {
			return true, nil, apierrors.NewServiceUnavailable("no server")
		}
		n := a.requests.Add(1)
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		a.last = tr.DeepCopy()
		if len(tr.Spec.Audiences) == 0 {
			tr.Spec.Audiences = []string{"https://kubernetes.default.svc.cluster.local"}
		}
		exp := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
		tr.Status = authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("token-%d", n),
			ExpirationTimestamp: metav1.NewTime(a.clock.Now().Add(exp)),
		}
		return true, tr, nil
	})
}

func tokenPod(uid string, exp *int64, audience string) *corev1.Pod {
	pod := newPod(uid, corev1.Volume{Name: "kube-api-access-x", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o600)),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: exp, Audience: audience}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		},
	}}})
	pod.Spec.ServiceAccountName = "runner"
	return pod
}

func TestServiceAccountToken(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	api := &tokenAPI{clock: clk}
	client := fake.NewClientset()
	api.install(client)
	offline := atomic.Bool{}
	root := t.TempDir()
	m := New(Config{Root: root, Client: client, Clock: clk, Offline: offline.Load})

	pod := tokenPod("uid-1", nil, "")
	tokenFile := filepath.Join(root, "uid-1", "volumes", kindProjected, "kube-api-access-x", "token")
	setUp := func(want string, wantRequests int32) {
		t.Helper()
		if _, err := m.SetUp(ctx, pod); err != nil {
			t.Fatalf("SetUp: %v", err)
		}
		if got := readFile(t, tokenFile); got != want {
			t.Errorf("token file = %q, want %q", got, want)
		}
		if got := api.requests.Load(); got != wantRequests {
			t.Errorf("%d token requests, want %d", got, wantRequests)
		}
	}

	setUp("token-1", 1)
	wantMode(t, tokenFile, 0o600)
	if got := readFile(t, filepath.Join(filepath.Dir(tokenFile), "namespace")); got != ns {
		t.Errorf("namespace file = %q", got)
	}
	spec := api.last.Spec
	if spec.ExpirationSeconds == nil || *spec.ExpirationSeconds != 3600 || len(spec.Audiences) != 0 {
		t.Errorf("request spec = %+v, want 3600 s and the API's audiences", spec)
	}
	if ref := spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.APIVersion != "v1" || ref.Name != "web" || ref.UID != "uid-1" {
		t.Errorf("bound object = %+v, want the pod", spec.BoundObjectRef)
	}

	// The cached token is reused until 80 % of its hour has passed.
	clk.Step(47 * time.Minute)
	setUp("token-1", 1)
	clk.Step(time.Minute)
	setUp("token-2", 2)

	// Renewal due but no server answers: the token already there stays
	// (the cached one still lives), and so it does offline.
	clk.Step(50 * time.Minute)
	api.down.Store(true)
	setUp("token-2", 2)
	offline.Store(true)
	clk.Step(2 * time.Hour) // expired in memory; the disk copy is all there is
	setUp("token-2", 2)
	offline.Store(false)
	setUp("token-2", 2)

	api.down.Store(false)
	setUp("token-3", 3)

	// Torn down, the pod's tokens are forgotten.
	if err := m.TearDown(ctx, "uid-1"); err != nil {
		t.Fatal(err)
	}
	setUp("token-4", 4)
}

func TestServiceAccountTokenRenewsDaily(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	api := &tokenAPI{clock: clk}
	client := fake.NewClientset()
	api.install(client)
	m := New(Config{Root: t.TempDir(), Client: client, Clock: clk})
	pod := tokenPod("uid-2", ptr(int64(7*24*3600)), "vault")

	for _, step := range []time.Duration{0, 23 * time.Hour} {
		clk.Step(step)
		if _, err := m.SetUp(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	if got := api.requests.Load(); got != 1 {
		t.Fatalf("%d requests within a day, want 1", got)
	}
	if aud := api.last.Spec.Audiences; len(aud) != 1 || aud[0] != "vault" {
		t.Errorf("audiences %v, want [vault]", aud)
	}
	clk.Step(time.Hour)
	if _, err := m.SetUp(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := api.requests.Load(); got != 2 {
		t.Errorf("%d requests after a day, want 2", got)
	}
}

func TestServiceAccountTokenErrors(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Now())
	client := fake.NewClientset()
	client.PrependReactor("create", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("serviceaccounts"), "runner", fmt.Errorf("node requested token bound to a pod scheduled on a different node"))
	})
	m := New(Config{Root: t.TempDir(), Client: client, Clock: clk})

	if _, err := m.SetUp(ctx, tokenPod("uid-3", nil, "")); err == nil || !apierrors.IsForbidden(err) {
		t.Errorf("SetUp with a refused token request: %v, want Forbidden", err)
	}
	if _, err := m.SetUp(ctx, tokenPod("uid-4", ptr(int64(60)), "")); err == nil {
		t.Error("SetUp with a 60 s token: no error")
	}
}
