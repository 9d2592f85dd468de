package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff/internal/server/servertest"
)

// TestAuthorizationNodeRBAC runs a server with --authorization-mode
// Node,RBAC: a service account's token is refused until a RoleBinding
// grants it a role, then it may do exactly what the role says; a subject
// cannot grant what it does not hold; forged tokens get 401; the join
// token is no credential; impersonation is honoured.
func TestAuthorizationNodeRBAC(t *testing.T) {
	s := servertest.Start(t, "", servertest.NodeRBAC)
	admin := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	servertest.Eventually(t, 30*time.Second, "default roles reconciled", func() error {
		_, err := admin.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
		return err
	})
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 30*time.Second, "the default service account and kube-root-ca.crt", func() error {
		if _, err := admin.CoreV1().ServiceAccounts("team").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := admin.CoreV1().ConfigMaps("team").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
	if _, err := admin.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "bot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts("team").CreateToken(ctx, "bot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	asBot := func(token string) kubernetes.Interface {
		rc := rest.AnonymousClientConfig(s.RESTConfig(t))
		rc.BearerToken = token
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bot := asBot(tr.Status.Token)

	_, err = bot.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
	want := `User "system:serviceaccount:team:bot" cannot list resource "pods" in API group "" in the namespace "team"`
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("before any binding: got %v, want 403 %q", err, want)
	}

	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}, Verbs: []string{"create"}},
	}}
	if _, err := admin.RbacV1().Roles("team").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bot-reads-pods"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "bot", Namespace: "team"}}}
	if _, err := admin.RbacV1().RoleBindings("team").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 10*time.Second, "the binding takes effect", func() error {
		_, err := bot.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := bot.CoreV1().Secrets("team").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("secrets in team: got %v, want 403", err)
	}
	if _, err := bot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("pods in default: got %v, want 403", err)
	}
	servertest.Eventually(t, 10*time.Second, "a rules review listing pods", func() error {
		rules, err := bot.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "team"}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !strings.Contains(fmt.Sprint(rules.Status.ResourceRules), "pods") {
			return fmt.Errorf("rules %+v", rules.Status)
		}
		return nil
	})
	// Escalation: bot may create roles, but not one granting secrets.
	grab := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secrets"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
	}}
	if _, err := bot.RbacV1().Roles("team").Create(ctx, grab, metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
		t.Errorf("escalating role: got %v, want 403", err)
	}
	// Forged, and the join token: 401.
	if _, err := asBot(tr.Status.Token+"x").CoreV1().Pods("team").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("forged token: got %v, want 401", err)
	}
	if _, err := asBot(s.JoinToken(t)).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("join token as a bearer: got %v, want 401", err)
	}
	// Impersonation.
	rc := s.RESTConfig(t)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:anonymous"}
	anon, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("impersonating system:anonymous: got %v, want 403", err)
	}
}
