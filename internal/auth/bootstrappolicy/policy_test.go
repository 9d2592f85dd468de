package bootstrappolicy

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth"
	"skiff/internal/auth/rbac"
)

var quiet = slog.New(slog.DiscardHandler)

// policyAuthorizer evaluates the default policy, with aggregated roles
// filled as the aggregation controller would.
func policyAuthorizer(t testing.TB) *rbac.Authorizer {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	r := f.Rbac().V1()
	roles := ClusterRoles()
	for i := range roles {
		if err := r.ClusterRoles().Informer().GetIndexer().Add(&roles[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Fill view, then edit (which gathers view), then admin.
	for _, name := range []string{"view", "edit", "admin"} {
		cr, err := r.ClusterRoles().Lister().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		rules, err := rbac.AggregatedRules(cr, r.ClusterRoles().Lister())
		if err != nil {
			t.Fatal(err)
		}
		filled := cr.DeepCopy()
		filled.Rules = rules
		_ = r.ClusterRoles().Informer().GetIndexer().Update(filled)
	}
	crbs := ClusterRoleBindings()
	for i := range crbs {
		_ = r.ClusterRoleBindings().Informer().GetIndexer().Add(&crbs[i])
	}
	for _, rl := range Roles() {
		_ = r.Roles().Informer().GetIndexer().Add(rl.DeepCopy())
	}
	for _, b := range RoleBindings() {
		_ = r.RoleBindings().Informer().GetIndexer().Add(b.DeepCopy())
	}
	// Users bound to the aggregated roles in namespace "team".
	for _, name := range []string{"view", "edit", "admin"} {
		_ = r.RoleBindings().Informer().GetIndexer().Add(&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{user(name + "-user")},
		})
	}
	return rbac.New(rbac.Listers{Roles: r.Roles().Lister(), RoleBindings: r.RoleBindings().Lister(),
		ClusterRoles: r.ClusterRoles().Lister(), ClusterRoleBindings: r.ClusterRoleBindings().Lister()})
}

func TestPolicyDecisions(t *testing.T) {
	az := policyAuthorizer(t)
	authd := func(name string, groups ...string) *auth.User {
		return &auth.User{Name: name, Groups: append(groups, auth.AllAuthenticated)}
	}
	anon := auth.AnonymousUser()
	controllerSA := func(name string) *auth.User {
		return &auth.User{Name: auth.ServiceAccountUsername("kube-system", name), Groups: auth.ServiceAccountGroups("kube-system")}
	}
	path := func(u *auth.User, p string) auth.Attributes { return auth.Attributes{User: u, Verb: "get", Path: p} }
	res := func(u *auth.User, verb, group, resource, sub, ns string) auth.Attributes {
		return auth.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns}
	}
	tests := []struct {
		name string
		a    auth.Attributes
		want bool
	}{
		{"anonymous healthz", path(anon, "/healthz"), true},
		{"anonymous version", path(anon, "/version"), true},
		{"anonymous jwks", path(anon, "/openid/v1/jwks"), true},
		{"anonymous discovery", path(anon, "/apis"), false},
		{"anonymous pods", res(anon, "list", "", "pods", "", "default"), false},
		{"authenticated discovery", path(authd("bob"), "/apis/apps/v1"), true},
		{"authenticated self review", res(authd("bob"), "create", "authorization.k8s.io", "selfsubjectrulesreviews", "", ""), true},
		{"authenticated whoami", res(authd("bob"), "create", "authentication.k8s.io", "selfsubjectreviews", "", ""), true},
		{"authenticated pods", res(authd("bob"), "list", "", "pods", "", "default"), false},
		{"view reads deployments", res(authd("view-user"), "list", "apps", "deployments", "", "team"), true},
		{"view reads no secrets", res(authd("view-user"), "get", "", "secrets", "", "team"), false},
		{"view writes nothing", res(authd("view-user"), "create", "", "pods", "", "team"), false},
		{"view elsewhere", res(authd("view-user"), "list", "apps", "deployments", "", "other"), false},
		{"edit reads secrets", res(authd("edit-user"), "get", "", "secrets", "", "team"), true},
		{"edit execs", res(authd("edit-user"), "create", "", "pods", "exec", "team"), true},
		{"edit creates no roles", res(authd("edit-user"), "create", rbacv1.GroupName, "roles", "", "team"), false},
		{"admin creates roles", res(authd("admin-user"), "create", rbacv1.GroupName, "rolebindings", "", "team"), true},
		{"admin reads pods", res(authd("admin-user"), "watch", "", "pods", "", "team"), true},
		{"admin writes no quota", res(authd("admin-user"), "update", "", "resourcequotas", "", "team"), false},
		{"cluster-admin", res(authd("root", auth.SystemPrivilegedGroup), "delete", "x", "y", "", ""), true},
		{"scheduler binds", res(authd(auth.KubeScheduler), "create", "", "pods", "binding", "team"), true},
		{"scheduler reads no secrets", res(authd(auth.KubeScheduler), "get", "", "secrets", "", "team"), false},
		{"proxy lists slices", res(authd(auth.KubeProxy), "list", "discovery.k8s.io", "endpointslices", "", ""), true},
		{"dns watches services", res(authd(KubeDNS), "watch", "", "services", "", ""), true},
		{"job controller makes pods", res(controllerSA("job-controller"), "create", "", "pods", "", "team"), true},
		{"job controller reads no secrets", res(controllerSA("job-controller"), "get", "", "secrets", "", "team"), false},
		{"aggregation controller escalates", res(controllerSA("clusterrole-aggregation-controller"), "escalate", rbacv1.GroupName, "clusterroles", "", ""), true},
		{"gc deletes anything", res(controllerSA("generic-garbage-collector"), "delete", "apps", "replicasets", "", "team"), true},
		{"nodes get nothing from RBAC", res(&auth.User{Name: "system:node:a", Groups: []string{auth.NodesGroup, auth.AllAuthenticated}}, "get", "", "secrets", "", "team"), false},
		{"kubelet client proxies", res(authd(KubeletAPIClient), "get", "", "nodes", "proxy", ""), true},
		{"controller manager leader lock", auth.Attributes{User: authd(auth.KubeControllerManager), Verb: "update", ResourceRequest: true, APIGroup: coordinationGroup, Resource: "leases", Namespace: "kube-system", Name: "kube-controller-manager"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, err := az.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if got := d == auth.DecisionAllow; got != tt.want {
				t.Fatalf("allowed = %v, want %v (%s)", got, tt.want, reason)
			}
			if d != auth.DecisionAllow && reason != "" {
				t.Fatalf("the default policy has an unresolvable binding: %s", reason)
			}
		})
	}
}

func TestPolicyIsConsistent(t *testing.T) {
	roles := map[string]bool{}
	for _, r := range ClusterRoles() {
		if roles[r.Name] {
			t.Errorf("ClusterRole %s twice", r.Name)
		}
		roles[r.Name] = true
		if r.Labels[BootstrappingLabel] != BootstrappingValue || r.Annotations[AutoUpdateAnnotation] != "true" {
			t.Errorf("ClusterRole %s lacks the default metadata", r.Name)
		}
		for _, rule := range r.Rules {
			if len(rule.Verbs) == 0 || (len(rule.Resources) == 0) == (len(rule.NonResourceURLs) == 0) {
				t.Errorf("ClusterRole %s: bad rule %+v", r.Name, rule)
			}
			if len(rule.Resources) > 0 && len(rule.APIGroups) == 0 {
				t.Errorf("ClusterRole %s: rule without groups %+v", r.Name, rule)
			}
		}
	}
	for _, want := range []string{"cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user", "system:public-info-viewer",
		"system:node", "system:node-proxier", "system:kube-scheduler", "system:kube-controller-manager", "system:kube-dns"} {
		if !roles[want] {
			t.Errorf("no ClusterRole %s", want)
		}
	}
	bindings := map[string]bool{}
	for _, b := range ClusterRoleBindings() {
		if bindings[b.Name] {
			t.Errorf("ClusterRoleBinding %s twice", b.Name)
		}
		bindings[b.Name] = true
		if !roles[b.RoleRef.Name] {
			t.Errorf("ClusterRoleBinding %s names a missing role %s", b.Name, b.RoleRef.Name)
		}
	}
	nsRoles := map[string]bool{}
	for _, r := range Roles() {
		nsRoles[r.Namespace+"/"+r.Name] = true
	}
	for _, b := range RoleBindings() {
		if !nsRoles[b.Namespace+"/"+b.RoleRef.Name] {
			t.Errorf("RoleBinding %s/%s names a missing role", b.Namespace, b.Name)
		}
	}
	for _, sa := range ControllerServiceAccounts() {
		if !bindings[ControllerRolePrefix+sa] {
			t.Errorf("controller %s is not bound", sa)
		}
	}
	for _, name := range []string{"job", "nodelifecycle", "garbagecollector", "persistentvolume-controller"} {
		if sa, ok := ControllerServiceAccount(name); !ok || !slices.Contains(ControllerServiceAccounts(), sa) {
			t.Errorf("controller %s has no account", name)
		}
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	if err := Reconcile(ctx, client, quiet); err != nil {
		t.Fatal(err)
	}
	crs, _ := client.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	crbs, _ := client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	rs, _ := client.RbacV1().Roles("").List(ctx, metav1.ListOptions{})
	rbs, _ := client.RbacV1().RoleBindings("").List(ctx, metav1.ListOptions{})
	if len(crs.Items) != len(ClusterRoles()) || len(crbs.Items) != len(ClusterRoleBindings()) || len(rs.Items) != len(Roles()) || len(rbs.Items) != len(RoleBindings()) {
		t.Fatalf("created %d %d %d %d", len(crs.Items), len(crbs.Items), len(rs.Items), len(rbs.Items))
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, "kube-public", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace of a default role: %v", err)
	}

	// A second run changes nothing.
	client.ClearActions()
	if err := Reconcile(ctx, client, quiet); err != nil {
		t.Fatal(err)
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "get" {
			t.Fatalf("second run wrote: %v", a)
		}
	}

	// A user's edits: basic-user loses a default rule and gains one of the
	// user's; public-info-viewer is protected and loses a rule; the
	// discovery binding gains a subject and loses its default one.
	basic, _ := client.RbacV1().ClusterRoles().Get(ctx, "system:basic-user", metav1.GetOptions{})
	extra := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}
	basic.Rules = []rbacv1.PolicyRule{extra}
	_, _ = client.RbacV1().ClusterRoles().Update(ctx, basic, metav1.UpdateOptions{})
	info, _ := client.RbacV1().ClusterRoles().Get(ctx, "system:public-info-viewer", metav1.GetOptions{})
	info.Annotations[AutoUpdateAnnotation] = "false"
	info.Rules = nil
	_, _ = client.RbacV1().ClusterRoles().Update(ctx, info, metav1.UpdateOptions{})
	disc, _ := client.RbacV1().ClusterRoleBindings().Get(ctx, "system:discovery", metav1.GetOptions{})
	disc.Subjects = []rbacv1.Subject{user("carol")}
	_, _ = client.RbacV1().ClusterRoleBindings().Update(ctx, disc, metav1.UpdateOptions{})
	_ = client.RbacV1().ClusterRoles().Delete(ctx, "edit", metav1.DeleteOptions{})

	if err := Reconcile(ctx, client, quiet); err != nil {
		t.Fatal(err)
	}
	basic, _ = client.RbacV1().ClusterRoles().Get(ctx, "system:basic-user", metav1.GetOptions{})
	// The missing rules come back broken down, one resource each, as upstream.
	if len(basic.Rules) != 4 || !slices.ContainsFunc(basic.Rules, func(r rbacv1.PolicyRule) bool { return r.Resources[0] == "configmaps" }) {
		t.Fatalf("basic-user rules %+v", basic.Rules)
	}
	info, _ = client.RbacV1().ClusterRoles().Get(ctx, "system:public-info-viewer", metav1.GetOptions{})
	if len(info.Rules) != 0 {
		t.Fatalf("protected role rewritten: %+v", info.Rules)
	}
	disc, _ = client.RbacV1().ClusterRoleBindings().Get(ctx, "system:discovery", metav1.GetOptions{})
	if len(disc.Subjects) != 2 || disc.Subjects[0].Name != "carol" {
		t.Fatalf("discovery subjects %+v", disc.Subjects)
	}
	if _, err := client.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{}); err != nil {
		t.Fatalf("deleted default role not recreated: %v", err)
	}
}

// BenchmarkDefaultPolicy measures one RBAC decision with the default
// policy: a user allowed by a RoleBinding (every ClusterRoleBinding is
// looked at first) and a denial (everything is looked at).
func BenchmarkDefaultPolicy(b *testing.B) {
	az := policyAuthorizer(b)
	ctx := context.Background()
	u := &auth.User{Name: "edit-user", Groups: []string{auth.AllAuthenticated}}
	allowed := auth.Attributes{User: u, Verb: "get", ResourceRequest: true, Resource: "secrets", Namespace: "team", Name: "s"}
	denied := allowed
	denied.Namespace = "other"
	b.Run("allowed", func(b *testing.B) {
		for b.Loop() {
			if d, _, _ := az.Authorize(ctx, allowed); d != auth.DecisionAllow {
				b.Fatal("denied")
			}
		}
	})
	b.Run("denied", func(b *testing.B) {
		for b.Loop() {
			if d, _, _ := az.Authorize(ctx, denied); d == auth.DecisionAllow {
				b.Fatal("allowed")
			}
		}
	})
}
