package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth"
	"skiff/internal/auth/node"
	"skiff/internal/auth/rbac"
)

// objects is a Getter over a map keyed "resource/namespace/name".
type objects map[string]runtime.Object

func (o objects) Get(_ context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	if obj, ok := o[gvr.Resource+"/"+ns+"/"+name]; ok {
		return obj, nil
	}
	return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
}

func (o objects) List(context.Context, schema.GroupVersionResource, string) ([]runtime.Object, error) {
	return nil, nil
}

func TestServiceAccountPlugin(t *testing.T) {
	g := objects{"serviceaccounts/app/default": &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "default"}}}
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if err := (ServiceAccount{Getter: g}).Admit(context.Background(), &Attributes{Operation: Create, Resource: pods, Namespace: "app", Name: "p", Object: pod}); err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "default" || len(pod.Spec.Volumes) != 1 || len(pod.Spec.Containers[0].VolumeMounts) != 1 {
		t.Fatalf("pod not admitted: %+v", pod.Spec)
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "empty", Name: "p"}}
	err := (ServiceAccount{Getter: g}).Admit(context.Background(), &Attributes{Operation: Create, Resource: pods, Namespace: "empty", Name: "p", Object: other})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `pods "p" is forbidden: error looking up service account empty/default`) {
		t.Fatalf("no account: %v", err)
	}
}

func TestAuthPluginsNeedACaller(t *testing.T) {
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	core := f.Core().V1()
	nr := NodeRestriction{Restriction: node.NewNodeRestriction(core.Pods().Lister(), core.Nodes().Lister())}
	nodes := corev1.SchemeGroupVersion.WithResource("nodes")
	a := &Attributes{Operation: Create, Resource: nodes, Name: "n2", Object: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}}
	if err := nr.Admit(context.Background(), a); err != nil {
		t.Fatalf("without a caller: %v", err)
	}
	ctx := auth.WithUser(context.Background(), &auth.User{Name: "system:node:n1", Groups: []string{auth.NodesGroup}})
	if err := nr.Admit(ctx, a); !apierrors.IsForbidden(err) {
		t.Fatalf("node n1 creating n2: %v", err)
	}

	r := f.Rbac().V1()
	checker := rbac.NewEscalationChecker(auth.NewAuthorizer(nil, nil), rbac.New(rbac.Listers{Roles: r.Roles().Lister(), RoleBindings: r.RoleBindings().Lister(),
		ClusterRoles: r.ClusterRoles().Lister(), ClusterRoleBindings: r.ClusterRoleBindings().Lister()}))
	esc := RBACEscalation{Checker: checker}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "all"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}}
	ra := &Attributes{Operation: Create, Resource: rbacv1.SchemeGroupVersion.WithResource("roles"), Namespace: "app", Name: "all", Object: role}
	if err := esc.Admit(context.Background(), ra); err != nil {
		t.Fatalf("without a caller: %v", err)
	}
	bob := auth.WithUser(context.Background(), &auth.User{Name: "bob"})
	if err := esc.Admit(bob, ra); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
		t.Fatalf("bob escalating: %v", err)
	}
	admin := auth.WithUser(context.Background(), &auth.User{Name: "root", Groups: []string{auth.SystemPrivilegedGroup}})
	if err := esc.Admit(admin, ra); err != nil {
		t.Fatalf("admin: %v", err)
	}
}
