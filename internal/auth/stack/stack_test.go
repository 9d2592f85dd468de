package stack

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/auth"
)

// TestStack issues a token for a pod's service account and follows it
// through authentication and authorization, as the API server would.
func TestStack(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "runner", UID: "sa-uid"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web", UID: "pod-uid"}, Spec: corev1.PodSpec{ServiceAccountName: "runner", NodeName: "n1"}}
	client := fake.NewClientset(sa, pod,
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "pods"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "runner-pods"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pods"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "runner"}}})
	f := informers.NewSharedInformerFactory(client, 0)
	s, err := New(Config{Client: client, Informers: f, SigningKey: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// The informer updates its cache before it tells handlers, so this
	// handler hearing of the deletion means the cache has it too.
	podGone := make(chan struct{})
	if _, err := f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(any) { close(podGone) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); f.Shutdown() }()
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.HasSynced) {
		t.Fatal("caches did not sync")
	}
	tr, err := s.IssueToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", UID: "pod-uid"}}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/v1/namespaces/app/pods", nil)
	r.Header.Set("Authorization", "Bearer "+tr.Status.Token)
	u, ok, err := s.Authenticator.Authenticate(r)
	if err != nil || !ok || u.Name != "system:serviceaccount:app:runner" || !u.InGroup(auth.AllAuthenticated) {
		t.Fatalf("authenticate: %+v %v %v", u, ok, err)
	}
	list := auth.Attributes{User: u, Verb: "list", ResourceRequest: true, Resource: "pods", Namespace: "app"}
	if d, reason, _ := s.Authorizer.Authorize(ctx, list); d != auth.DecisionAllow {
		t.Fatalf("list pods: %v %s", d, reason)
	}
	secrets := list
	secrets.Resource = "secrets"
	if d, _, _ := s.Authorizer.Authorize(ctx, secrets); d == auth.DecisionAllow {
		t.Fatal("secrets allowed")
	}
	// The pod goes: its token stops working.
	if err := client.CoreV1().Pods("app").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	<-podGone
	r = httptest.NewRequest("GET", "/api", nil)
	r.Header.Set("Authorization", "Bearer "+tr.Status.Token)
	if _, ok, err := s.Authenticator.Authenticate(r); ok || err == nil {
		t.Fatalf("token of a deleted pod: ok=%v err=%v", ok, err)
	}
	if s.OpenIDConfiguration == nil || s.JWKS == nil {
		t.Fatal("no discovery documents for an https issuer")
	}
}
