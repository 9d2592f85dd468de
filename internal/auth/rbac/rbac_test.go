package rbac

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/auth"
)

// world loads RBAC objects into listers.
func world(t *testing.T, objs ...runtime.Object) (Listers, informers.SharedInformerFactory) {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	r := f.Rbac().V1()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *rbacv1.Role:
			err = r.Roles().Informer().GetIndexer().Add(o)
		case *rbacv1.ClusterRole:
			err = r.ClusterRoles().Informer().GetIndexer().Add(o)
		case *rbacv1.RoleBinding:
			err = r.RoleBindings().Informer().GetIndexer().Add(o)
		case *rbacv1.ClusterRoleBinding:
			err = r.ClusterRoleBindings().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return Listers{
		Roles: r.Roles().Lister(), RoleBindings: r.RoleBindings().Lister(),
		ClusterRoles: r.ClusterRoles().Lister(), ClusterRoleBindings: r.ClusterRoleBindings().Lister(),
	}, f
}

func rule(verbs, groups, resources []string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

func role(ns, name string, rules ...rbacv1.PolicyRule) *rbacv1.Role {
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func clusterRole(name string, lbls map[string]string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Rules: rules}
}

func roleBinding(ns, name, kind, roleName string, subjects ...rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: roleName}}
}

func clusterRoleBinding(name, roleName string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}}
}

func userSubject(n string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: n}
}
func groupSubject(n string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: n}
}
func saSubject(ns, n string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: n}
}

func res(u *auth.User, verb, group, resource, sub, ns, name string) auth.Attributes {
	return auth.Attributes{User: u, Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

func TestAuthorize(t *testing.T) {
	alice := &auth.User{Name: "alice", Groups: []string{"dev", auth.AllAuthenticated}}
	bob := &auth.User{Name: "bob", Groups: []string{auth.AllAuthenticated}}
	sa := &auth.User{Name: "system:serviceaccount:ns:builder", Groups: auth.ServiceAccountGroups("ns")}
	l, _ := world(t,
		clusterRole("pod-reader", nil, rule([]string{"get", "list", "watch"}, []string{""}, []string{"pods", "pods/log"})),
		clusterRole("status-writer", nil, rule([]string{"update"}, []string{"*"}, []string{"*/status"})),
		clusterRole("discovery", nil, rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/api", "/api/*", "/version"}}),
		clusterRole("one-secret", nil, rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"public"}}),
		role("ns", "deployer", rule([]string{"*"}, []string{"apps"}, []string{"deployments"})),
		clusterRoleBinding("devs-read-pods", "pod-reader", groupSubject("dev")),
		clusterRoleBinding("all-discovery", "discovery", groupSubject(auth.AllAuthenticated)),
		clusterRoleBinding("alice-status", "status-writer", userSubject("alice")),
		clusterRoleBinding("dangling", "missing-role", userSubject("bob")),
		roleBinding("ns", "builder-deploys", "Role", "deployer", saSubject("", "builder")),
		roleBinding("ns", "bob-secret", "ClusterRole", "one-secret", userSubject("bob")),
		roleBinding("other", "sa-elsewhere", "ClusterRole", "pod-reader", saSubject("", "builder")),
	)
	az := New(l)
	tests := []struct {
		name       string
		a          auth.Attributes
		want       auth.Decision
		wantReason string
	}{
		{"group grant, any namespace", res(alice, "list", "", "pods", "", "default", ""), auth.DecisionAllow,
			`RBAC: allowed by ClusterRoleBinding "devs-read-pods" of ClusterRole "pod-reader" to Group "dev"`},
		{"cluster scope", res(alice, "watch", "", "pods", "", "", ""), auth.DecisionAllow, ""},
		{"subresource named", res(alice, "get", "", "pods", "log", "x", "p"), auth.DecisionAllow, ""},
		{"other subresource", res(alice, "get", "", "pods", "exec", "x", "p"), auth.DecisionNoOpinion, ""},
		{"verb not held", res(alice, "delete", "", "pods", "", "x", "p"), auth.DecisionNoOpinion, ""},
		{"*/status", res(alice, "update", "apps", "deployments", "status", "x", "d"), auth.DecisionAllow, ""},
		{"*/status is not the resource", res(alice, "update", "apps", "deployments", "", "x", "d"), auth.DecisionNoOpinion, ""},
		{"non-resource exact", auth.Attributes{User: bob, Verb: "get", Path: "/version"}, auth.DecisionAllow, ""},
		{"non-resource prefix", auth.Attributes{User: bob, Verb: "get", Path: "/api/v1"}, auth.DecisionAllow, ""},
		{"non-resource other", auth.Attributes{User: bob, Verb: "get", Path: "/metrics"}, auth.DecisionNoOpinion, ""},
		{"service account in its namespace", res(sa, "create", "apps", "deployments", "", "ns", ""), auth.DecisionAllow,
			`RBAC: allowed by RoleBinding "builder-deploys/ns" of Role "deployer" to ServiceAccount "builder/ns"`},
		{"service account elsewhere", res(sa, "create", "apps", "deployments", "", "default", ""), auth.DecisionNoOpinion, ""},
		{"service account subject defaults to the binding's namespace", res(sa, "get", "", "pods", "", "other", "p"), auth.DecisionNoOpinion, ""},
		{"resource name", res(bob, "get", "", "secrets", "", "ns", "public"), auth.DecisionAllow, ""},
		{"other resource name", res(bob, "get", "", "secrets", "", "ns", "private"), auth.DecisionNoOpinion,
			`RBAC: clusterrole.rbac.authorization.k8s.io "missing-role" not found`},
		{"list is not a named get", res(bob, "list", "", "secrets", "", "ns", ""), auth.DecisionNoOpinion,
			`RBAC: clusterrole.rbac.authorization.k8s.io "missing-role" not found`},
		{"nobody", res(&auth.User{Name: "eve"}, "get", "", "pods", "", "ns", "p"), auth.DecisionNoOpinion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, err := az.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want || (tt.wantReason != "" && reason != tt.wantReason) {
				t.Fatalf("got %v %q, want %v %q", d, reason, tt.want, tt.wantReason)
			}
		})
	}
	// The service account's RoleBinding in "other" names builder in "other",
	// not ns/builder.
	otherSA := &auth.User{Name: "system:serviceaccount:other:builder"}
	if d, _, _ := az.Authorize(context.Background(), res(otherSA, "get", "", "pods", "", "other", "p")); d != auth.DecisionAllow {
		t.Fatal("other/builder should read pods in other")
	}

	rules, err := az.RulesFor(context.Background(), sa, "ns")
	if err != nil || len(rules.ResourceRules) != 1 || rules.ResourceRules[0].APIGroups[0] != "apps" || rules.Incomplete {
		t.Fatalf("rules for sa: %+v %v", rules, err)
	}
	rules, err = az.RulesFor(context.Background(), bob, "ns")
	if err == nil || !rules.Incomplete || len(rules.NonResourceRules) != 1 || len(rules.ResourceRules) != 1 {
		t.Fatalf("rules for bob: %+v %v", rules, err)
	}
}

// allow allows the listed "verb resource" pairs.
type allow map[string]bool

func (a allow) Authorize(_ context.Context, at auth.Attributes) (auth.Decision, string, error) {
	if a[at.Verb+" "+at.Resource] {
		return auth.DecisionAllow, "", nil
	}
	return auth.DecisionNoOpinion, "", nil
}

func TestEscalation(t *testing.T) {
	alice := &auth.User{Name: "alice", Groups: []string{auth.AllAuthenticated}}
	admin := &auth.User{Name: "root", Groups: []string{auth.SystemPrivilegedGroup}}
	podRules := []rbacv1.PolicyRule{rule([]string{"get", "list"}, []string{""}, []string{"pods"})}
	l, _ := world(t,
		clusterRole("pod-reader", nil, podRules...),
		clusterRole("secret-admin", nil, rule([]string{"*"}, []string{""}, []string{"secrets"})),
		role("ns", "rbac-editor", rule([]string{"create", "update"}, []string{rbacv1.GroupName}, []string{"roles", "rolebindings"})),
		roleBinding("ns", "alice-pods", "ClusterRole", "pod-reader", userSubject("alice")),
		roleBinding("ns", "alice-rbac", "Role", "rbac-editor", userSubject("alice")),
	)
	tests := []struct {
		name    string
		user    *auth.User
		az      allow
		check   func(c *EscalationChecker, u *auth.User) error
		wantErr string
	}{
		{name: "role within held rules", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckRole(context.Background(), u, role("ns", "r", rule([]string{"get"}, []string{""}, []string{"pods"})), nil)
			}},
		{name: "role beyond held rules", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckRole(context.Background(), u, role("ns", "r", rule([]string{"get", "list", "delete"}, []string{""}, []string{"pods", "secrets"})), nil)
			},
			wantErr: `roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}
{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete"]}`},
		{name: "held in another namespace only", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckRole(context.Background(), u, role("other", "r", podRules...), nil)
			}, wantErr: "not currently held"},
		{name: "escalate verb", user: alice, az: allow{"escalate roles": true},
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckRole(context.Background(), u, role("ns", "r", rule([]string{"*"}, []string{"*"}, []string{"*"})), nil)
			}},
		{name: "system:masters", user: admin,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckRole(context.Background(), u, clusterRole("x", nil, rule([]string{"*"}, []string{"*"}, []string{"*"})), nil)
			}},
		{name: "aggregation needs full authority", user: alice, az: allow{},
			check: func(c *EscalationChecker, u *auth.User) error {
				cr := clusterRole("agg", nil)
				cr.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "y"}}}}
				return c.CheckRole(context.Background(), u, cr, nil)
			}, wantErr: `clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule`},
		{name: "only owner references changed", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				old := role("ns", "r", rule([]string{"*"}, []string{"*"}, []string{"*"}))
				updated := old.DeepCopy()
				updated.OwnerReferences = []metav1.OwnerReference{{Name: "o"}}
				return c.CheckRole(context.Background(), u, updated, old)
			}},
		{name: "label change still needs the rules", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				old := role("ns", "r", rule([]string{"*"}, []string{"*"}, []string{"*"}))
				updated := old.DeepCopy()
				updated.Labels = map[string]string{"a": "b"}
				return c.CheckRole(context.Background(), u, updated, old)
			}, wantErr: "not currently held"},
		{name: "bind a role whose rules are held", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckBinding(context.Background(), u, roleBinding("ns", "b", "ClusterRole", "pod-reader", userSubject("bob")), nil)
			}},
		{name: "bind a role whose rules are not held", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckBinding(context.Background(), u, roleBinding("ns", "b", "ClusterRole", "secret-admin", userSubject("bob")), nil)
			}, wantErr: `rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:
{APIGroups:[""], Resources:["secrets"], Verbs:["*"]}`},
		{name: "bind verb", user: alice, az: allow{"bind clusterroles": true},
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckBinding(context.Background(), u, clusterRoleBinding("b", "secret-admin", userSubject("bob")), nil)
			}},
		{name: "cluster binding needs cluster-wide rules", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckBinding(context.Background(), u, clusterRoleBinding("b", "pod-reader", userSubject("bob")), nil)
			}, wantErr: "not currently held"},
		{name: "bind a missing role", user: alice,
			check: func(c *EscalationChecker, u *auth.User) error {
				return c.CheckBinding(context.Background(), u, roleBinding("ns", "b", "Role", "nope", userSubject("bob")), nil)
			}, wantErr: `rolebindings.rbac.authorization.k8s.io "b" is forbidden: role.rbac.authorization.k8s.io "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewEscalationChecker(tt.az, New(l))
			err := tt.check(c, tt.user)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
			}
			if !apierrors.IsForbidden(err) {
				t.Fatalf("not a 403: %v", err)
			}
		})
	}
}

func TestAggregation(t *testing.T) {
	sel := func(k string) *rbacv1.AggregationRule {
		return &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{k: "true"}}}}
	}
	view := clusterRole("view", map[string]string{"agg-to-edit": "true"})
	view.AggregationRule = sel("agg-to-view")
	edit := clusterRole("edit", nil)
	edit.AggregationRule = sel("agg-to-edit")
	crdView := clusterRole("crd-view", map[string]string{"agg-to-view": "true"}, rule([]string{"get"}, []string{"example.com"}, []string{"widgets"}))
	crdView2 := clusterRole("b-crd-view", map[string]string{"agg-to-view": "true"}, rule([]string{"get"}, []string{"example.com"}, []string{"widgets"}), rule([]string{"list"}, []string{"x"}, []string{"y"}))
	bad := clusterRole("bad", nil)
	bad.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Bogus"}}}}}
	objs := []runtime.Object{view, edit, crdView, crdView2, bad}

	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	for _, o := range objs {
		_ = f.Rbac().V1().ClusterRoles().Informer().GetIndexer().Add(o)
	}
	c, err := NewAggregationController(client, f.Rbac().V1().ClusterRoles(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client.ClearActions()
	if err := c.sync(ctx, "view"); err != nil {
		t.Fatal(err)
	}
	if n := len(client.Actions()); n != 1 || client.Actions()[0].GetVerb() != "update" {
		t.Fatalf("actions %v", client.Actions())
	}
	got, _ := client.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	// b-crd-view first (by name), its duplicate rule in crd-view once.
	want := []rbacv1.PolicyRule{rule([]string{"get"}, []string{"example.com"}, []string{"widgets"}), rule([]string{"list"}, []string{"x"}, []string{"y"})}
	if len(got.Rules) != 2 || got.Rules[0].APIGroups[0] != want[0].APIGroups[0] || got.Rules[1].Verbs[0] != "list" {
		t.Fatalf("view rules %+v", got.Rules)
	}
	// Up to date: no write.
	_ = f.Rbac().V1().ClusterRoles().Informer().GetIndexer().Update(got)
	client.ClearActions()
	if err := c.sync(ctx, "view"); err != nil || len(client.Actions()) != 0 {
		t.Fatalf("second sync: %v %v", err, client.Actions())
	}
	// edit gathers view's (now filled) rules.
	if err := c.sync(ctx, "edit"); err != nil {
		t.Fatal(err)
	}
	gotEdit, _ := client.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
	if len(gotEdit.Rules) != 2 {
		t.Fatalf("edit rules %+v", gotEdit.Rules)
	}
	// Not aggregated, missing, and a bad selector: no writes; the bad
	// selector is a permanent error.
	client.ClearActions()
	for _, name := range []string{"crd-view", "gone"} {
		if err := c.sync(ctx, name); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := c.sync(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "permanent") {
		t.Fatalf("bad selector: %v", err)
	}
	if len(client.Actions()) != 0 {
		t.Fatalf("actions %v", client.Actions())
	}
}

func TestAggregationRun(t *testing.T) {
	view := clusterRole("view", nil)
	view.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"v": "1"}}}}
	client := fake.NewClientset(view, clusterRole("extra", map[string]string{"v": "1"}, rule([]string{"get"}, []string{""}, []string{"pods"})))
	f := informers.NewSharedInformerFactory(client, 0)
	c, err := NewAggregationController(client, f.Rbac().V1().ClusterRoles(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Start(ctx.Done())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	w, err := client.RbacV1().ClusterRoles().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := client.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	for len(got.Rules) == 0 {
		<-w.ResultChan()
		got, _ = client.RbacV1().ClusterRoles().Get(ctx, "view", metav1.GetOptions{})
	}
	w.Stop()
	cancel()
	<-done
	f.Shutdown()
}

func TestCompactString(t *testing.T) {
	r := rbacv1.PolicyRule{Verbs: []string{"get"}, NonResourceURLs: []string{"/x"}}
	if got := CompactString(r); got != `{NonResourceURLs:["/x"], Verbs:["get"]}` {
		t.Fatal(got)
	}
}
