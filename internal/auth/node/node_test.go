package node

import (
	"context"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"skiff/internal/auth"
)

func nodeUser(name string) *auth.User {
	return &auth.User{Name: auth.NodeUserPrefix + name, Groups: []string{auth.NodesGroup, auth.AllAuthenticated}}
}

// podOn builds a pod on node that uses a secret volume, a config map in
// its environment, a claim, an image pull secret and a service account.
func podOn(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(name + "-uid")},
		Spec: corev1.PodSpec{
			NodeName:           node,
			ServiceAccountName: "runner",
			ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "pull"}},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}, Key: "k"}}}}}},
			Volumes: []corev1.Volume{
				{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
				{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}}}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
			},
		},
	}
}

type fixture struct {
	g     *Graph
	az    *Authorizer
	nr    *NodeRestriction
	pods  func(*corev1.Pod)
	unpod func(*corev1.Pod)
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	core := f.Core().V1()
	g, err := NewGraph(core.Pods(), core.PersistentVolumeClaims(), core.PersistentVolumes())
	if err != nil {
		t.Fatal(err)
	}
	add := func(obj any) {
		t.Helper()
		var err error
		switch o := obj.(type) {
		case *corev1.PersistentVolumeClaim:
			err = core.PersistentVolumeClaims().Informer().GetIndexer().Add(o)
		case *corev1.PersistentVolume:
			err = core.PersistentVolumes().Informer().GetIndexer().Add(o)
		case *corev1.Node:
			err = core.Nodes().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			err = core.Pods().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	add(&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-data"}})
	add(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-data"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
		CSI: &corev1.CSIPersistentVolumeSource{Driver: "d", VolumeHandle: "h", NodePublishSecretRef: &corev1.SecretReference{Namespace: "storage", Name: "csi-creds"}}}}})
	add(&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-other"}})
	add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "n1-uid"}})
	fx := fixture{g: g, az: NewAuthorizer(g), nr: NewNodeRestriction(core.Pods().Lister(), core.Nodes().Lister())}
	fx.pods = func(p *corev1.Pod) { add(p); g.setPod(p) }
	fx.unpod = func(p *corev1.Pod) {
		_ = core.Pods().Informer().GetIndexer().Delete(p)
		g.deletePod(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	}
	return fx
}

func TestNodeAuthorizer(t *testing.T) {
	fx := newFixture(t)
	fx.pods(podOn("app", "web", "n1"))
	fx.pods(podOn("other", "db", "n2"))
	fx.pods(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "pending"}, Spec: corev1.PodSpec{
		Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "pending-secret"}}}}}})

	n1 := nodeUser("n1")
	r := func(verb, group, resource, sub, ns, name string) auth.Attributes {
		return auth.Attributes{User: n1, Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	tests := []struct {
		name       string
		a          auth.Attributes
		want       auth.Decision
		wantReason string
	}{
		{"volume secret", r("get", "", "secrets", "", "app", "tls"), auth.DecisionAllow, ""},
		{"pull secret", r("get", "", "secrets", "", "app", "pull"), auth.DecisionAllow, ""},
		{"watch one secret", r("watch", "", "secrets", "", "app", "tls"), auth.DecisionAllow, ""},
		{"list all secrets", r("list", "", "secrets", "", "app", ""), auth.DecisionNoOpinion, "No Object name found"},
		{"unrelated secret", r("get", "", "secrets", "", "app", "admin-creds"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"another node's secret", r("get", "", "secrets", "", "other", "tls"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"unscheduled pod's secret", r("get", "", "secrets", "", "app", "pending-secret"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"write a secret", r("update", "", "secrets", "", "app", "tls"), auth.DecisionNoOpinion, "can only read resources of this type"},
		{"volume's CSI secret", r("get", "", "secrets", "", "storage", "csi-creds"), auth.DecisionAllow, ""},
		{"env config map", r("get", "", "configmaps", "", "app", "settings"), auth.DecisionAllow, ""},
		{"projected config map", r("get", "", "configmaps", "", "app", "kube-root-ca.crt"), auth.DecisionAllow, ""},
		{"unrelated config map", r("get", "", "configmaps", "", "app", "x"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"claim", r("get", "", "persistentvolumeclaims", "", "app", "data"), auth.DecisionAllow, ""},
		{"claim status", r("patch", "", "persistentvolumeclaims", "status", "app", "data"), auth.DecisionAllow, ""},
		{"list claims", r("list", "", "persistentvolumeclaims", "", "app", ""), auth.DecisionNoOpinion, "can only get individual resources of this type"},
		{"volume", r("get", "", "persistentvolumes", "", "", "pv-data"), auth.DecisionAllow, ""},
		{"other volume", r("get", "", "persistentvolumes", "", "", "pv-other"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"token for its pod's account", r("create", "", "serviceaccounts", "token", "app", "runner"), auth.DecisionAllow, ""},
		{"token for another account", r("create", "", "serviceaccounts", "token", "app", "default"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"read a service account", r("get", "", "serviceaccounts", "", "app", "runner"), auth.DecisionNoOpinion, "can only create tokens for individual service accounts"},
		{"own node status", r("patch", "", "nodes", "status", "", "n1"), auth.DecisionAllow, ""},
		{"own node", r("update", "", "nodes", "", "", "n1"), auth.DecisionAllow, ""},
		{"label another node", r("patch", "", "nodes", "", "", "n2"), auth.DecisionNoOpinion, "node 'n1' can only modify its own Node object"},
		{"delete another node", r("delete", "", "nodes", "", "", "n2"), auth.DecisionNoOpinion, "node 'n1' can only modify its own Node object"},
		{"list nodes", r("list", "", "nodes", "", "", ""), auth.DecisionAllow, ""},
		{"create a node", r("create", "", "nodes", "", "", ""), auth.DecisionAllow, ""},
		{"own lease", r("update", "coordination.k8s.io", "leases", "", LeaseNamespace, "n1"), auth.DecisionAllow, ""},
		{"create a lease", r("create", "coordination.k8s.io", "leases", "", LeaseNamespace, ""), auth.DecisionAllow, ""},
		{"another lease", r("update", "coordination.k8s.io", "leases", "", LeaseNamespace, "n2"), auth.DecisionNoOpinion, "can only access node lease with the same name as the requesting node"},
		{"lease elsewhere", r("get", "coordination.k8s.io", "leases", "", "kube-system", "n1"), auth.DecisionNoOpinion, `can only access leases in the "kube-node-lease" system namespace`},
		{"own pod status", r("update", "", "pods", "status", "app", "web"), auth.DecisionAllow, ""},
		{"other pod status", r("patch", "", "pods", "status", "other", "db"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"delete own pod", r("delete", "", "pods", "", "app", "web"), auth.DecisionAllow, ""},
		{"delete other pod", r("delete", "", "pods", "", "other", "db"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"evict other pod", r("create", "", "pods", "eviction", "other", "db"), auth.DecisionNoOpinion, "no relationship found between node 'n1' and this object"},
		{"exec into a pod", r("create", "", "pods", "exec", "other", "db"), auth.DecisionNoOpinion, ""},
		{"list pods", r("list", "", "pods", "", "", ""), auth.DecisionAllow, ""},
		{"create mirror pod", r("create", "", "pods", "", "app", ""), auth.DecisionAllow, ""},
		{"services", r("watch", "", "services", "", "", ""), auth.DecisionAllow, ""},
		{"events", r("create", "", "events", "", "app", ""), auth.DecisionAllow, ""},
		{"deployments", r("list", "apps", "deployments", "", "", ""), auth.DecisionNoOpinion, ""},
		{"not a node", auth.Attributes{User: &auth.User{Name: "system:node:n1"}, Verb: "get", ResourceRequest: true, Resource: "secrets", Namespace: "app", Name: "tls"}, auth.DecisionNoOpinion, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reason, err := fx.az.Authorize(context.Background(), tt.a)
			if err != nil {
				t.Fatal(err)
			}
			if d != tt.want || reason != tt.wantReason {
				t.Fatalf("got %v %q, want %v %q", d, reason, tt.want, tt.wantReason)
			}
		})
	}

	// Once the pod is gone (or moves), its objects are out of reach.
	fx.unpod(podOn("app", "web", "n1"))
	for _, a := range []auth.Attributes{r("get", "", "secrets", "", "app", "tls"), r("get", "", "persistentvolumes", "", "", "pv-data"), r("update", "", "pods", "status", "app", "web")} {
		if d, _, _ := fx.az.Authorize(context.Background(), a); d != auth.DecisionNoOpinion {
			t.Errorf("after the pod's deletion: %+v allowed", a)
		}
	}
	// Two pods share a secret: it stays reachable until both are gone.
	a, b := podOn("app", "a", "n1"), podOn("app", "b", "n1")
	fx.pods(a)
	fx.pods(b)
	fx.unpod(a)
	if d, _, _ := fx.az.Authorize(context.Background(), r("get", "", "secrets", "", "app", "tls")); d != auth.DecisionAllow {
		t.Error("shared secret lost with one pod")
	}
	moved := b.DeepCopy()
	moved.Spec.NodeName = "n2"
	fx.pods(moved)
	if d, _, _ := fx.az.Authorize(context.Background(), r("get", "", "secrets", "", "app", "tls")); d != auth.DecisionNoOpinion {
		t.Error("secret reachable after the pod moved")
	}

	rules, _ := fx.az.RulesFor(context.Background(), n1, "app")
	if !rules.Incomplete || len(rules.ResourceRules) == 0 {
		t.Fatalf("node rules %+v", rules)
	}
	if rules, _ := fx.az.RulesFor(context.Background(), &auth.User{Name: "bob"}, "app"); len(rules.ResourceRules) != 0 {
		t.Fatal("rules for a non-node")
	}
}

func TestNodeRestriction(t *testing.T) {
	fx := newFixture(t)
	fx.pods(podOn("app", "web", "n1"))
	fx.pods(podOn("other", "db", "n2"))
	n1 := nodeUser("n1")
	mirror := func(edit func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "static-n1", Annotations: map[string]string{MirrorPodAnnotation: "x"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n1", UID: "n1-uid", Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c"}}},
		}
		if edit != nil {
			edit(p)
		}
		return p
	}
	node := func(name string, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	tokenFor := func(name, uid string) *authenticationv1.TokenRequest {
		return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: name, UID: types.UID(uid)}}}
	}
	tests := []struct {
		name    string
		r       Request
		wantErr string
	}{
		{"mirror pod", Request{Operation: Create, Resource: "pods", Namespace: "kube-system", Name: "static-n1", Object: mirror(nil)}, ""},
		{"not a mirror pod", Request{Operation: Create, Resource: "pods", Name: "p", Object: mirror(func(p *corev1.Pod) { p.Annotations = nil })},
			`pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods`},
		{"mirror pod for another node", Request{Operation: Create, Resource: "pods", Object: mirror(func(p *corev1.Pod) { p.Spec.NodeName = "n2" })},
			`node "n1" can only create pods with spec.nodeName set to itself`},
		{"mirror pod without owner", Request{Operation: Create, Resource: "pods", Object: mirror(func(p *corev1.Pod) { p.OwnerReferences = nil })},
			`node "n1" can only create pods with an owner reference set to itself`},
		{"mirror pod owned by a stale node", Request{Operation: Create, Resource: "pods", Object: mirror(func(p *corev1.Pod) { p.OwnerReferences[0].UID = "old" })},
			`node n1 UID mismatch: expected old got n1-uid`},
		{"mirror pod with a secret", Request{Operation: Create, Resource: "pods", Object: mirror(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}}}
		})}, `node "n1" can not create pods that reference secrets`},
		{"mirror pod with a service account", Request{Operation: Create, Resource: "pods", Object: mirror(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" })},
			`node "n1" can not create pods that reference a service account`},
		{"delete own pod", Request{Operation: Delete, Resource: "pods", Namespace: "app", Name: "web", OldObject: podOn("app", "web", "n1")}, ""},
		{"delete other pod", Request{Operation: Delete, Resource: "pods", Namespace: "other", Name: "db", OldObject: podOn("other", "db", "n2")},
			`node "n1" can only delete pods with spec.nodeName set to itself`},
		{"own pod status", Request{Operation: Update, Resource: "pods", Subresource: "status", Object: podOn("app", "web", "n1"), OldObject: podOn("app", "web", "n1")}, ""},
		{"labels through status", Request{Operation: Update, Resource: "pods", Subresource: "status", Object: func() *corev1.Pod {
			p := podOn("app", "web", "n1")
			p.Labels = map[string]string{"a": "b"}
			return p
		}(), OldObject: podOn("app", "web", "n1")}, `node "n1" cannot update labels through pod status`},
		{"evict other pod", Request{Operation: Create, Resource: "pods", Subresource: "eviction", Namespace: "other", Name: "db", Object: &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "db"}}},
			"node n1 can only evict pods with spec.nodeName set to itself"},
		{"register", Request{Operation: Create, Resource: "nodes", Name: "n1", Object: node("n1", map[string]string{"kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "pi", "example.com/rack": "3"})}, ""},
		{"register as another", Request{Operation: Create, Resource: "nodes", Name: "n2", Object: node("n2", nil)}, `node "n1" is not allowed to modify node "n2"`},
		{"register as control plane", Request{Operation: Create, Resource: "nodes", Name: "n1", Object: node("n1", map[string]string{"node-role.kubernetes.io/control-plane": "true"})},
			`node "n1" is not allowed to set the following labels: node-role.kubernetes.io/control-plane`},
		{"restricted label", Request{Operation: Update, Resource: "nodes", Name: "n1", Object: node("n1", map[string]string{"node-restriction.kubernetes.io/secure": "yes"}), OldObject: node("n1", nil)},
			`is not allowed to modify labels: node-restriction.kubernetes.io/secure`},
		{"remove a restricted label", Request{Operation: Update, Resource: "nodes", Name: "n1", Object: node("n1", nil), OldObject: node("n1", map[string]string{"x.node-restriction.kubernetes.io/a": "b"})},
			`is not allowed to modify labels: x.node-restriction.kubernetes.io/a`},
		{"keep a restricted label", Request{Operation: Update, Resource: "nodes", Subresource: "status", Name: "n1",
			Object: node("n1", map[string]string{"node-restriction.kubernetes.io/a": "b"}), OldObject: node("n1", map[string]string{"node-restriction.kubernetes.io/a": "b"})}, ""},
		{"untaint", Request{Operation: Update, Resource: "nodes", Name: "n1", Object: node("n1", nil), OldObject: node("n1", nil, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule})},
			`node "n1" is not allowed to modify taints`},
		{"another lease", Request{Operation: Create, APIGroup: "coordination.k8s.io", Resource: "leases", Namespace: LeaseNamespace, Object: &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}},
			"can only access node lease with the same name as the requesting node"},
		{"own lease", Request{Operation: Create, APIGroup: "coordination.k8s.io", Resource: "leases", Namespace: LeaseNamespace, Object: &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}}, ""},
		{"token for own pod", Request{Operation: Create, Resource: "serviceaccounts", Subresource: "token", Namespace: "app", Name: "runner", Object: tokenFor("web", "web-uid")}, ""},
		{"unbound token", Request{Operation: Create, Resource: "serviceaccounts", Subresource: "token", Namespace: "app", Name: "runner", Object: &authenticationv1.TokenRequest{}},
			"node requested token not bound to a pod"},
		{"token for other node's pod", Request{Operation: Create, Resource: "serviceaccounts", Subresource: "token", Namespace: "other", Name: "runner", Object: tokenFor("db", "db-uid")},
			"node requested token bound to a pod scheduled on a different node"},
		{"token for a recreated pod", Request{Operation: Create, Resource: "serviceaccounts", Subresource: "token", Namespace: "app", Name: "runner", Object: tokenFor("web", "old")},
			"does not match the UID in record"},
		{"other resources pass", Request{Operation: Create, Resource: "configmaps", Object: &corev1.ConfigMap{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.User = n1
			err := fx.nr.Admit(tt.r)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !apierrors.IsForbidden(err) {
				t.Fatalf("not a 403: %v", err)
			}
		})
	}
	// Other users are not restricted; a node group member with a bad name is.
	if err := fx.nr.Admit(Request{User: &auth.User{Name: "alice"}, Operation: Create, Resource: "pods", Object: &corev1.Pod{}}); err != nil {
		t.Fatal(err)
	}
	if err := fx.nr.Admit(Request{User: &auth.User{Name: "mallory", Groups: []string{auth.NodesGroup}}, Operation: Create, Resource: "pods", Object: &corev1.Pod{}}); err == nil {
		t.Fatal("a nameless node passed")
	}
}

func TestGraphFollowsInformers(t *testing.T) {
	client := fake.NewClientset(podOn("app", "web", "n1"))
	f := informers.NewSharedInformerFactory(client, 0)
	core := f.Core().V1()
	g, err := NewGraph(core.Pods(), core.PersistentVolumeClaims(), core.PersistentVolumes())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); f.Shutdown() }()
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), g.HasSynced) || !g.podOnNode("n1", "app", "web") {
		t.Fatal("graph missed the listed pod")
	}
	// Deletions, also as tombstones, and unscheduling remove the pod.
	h := g.handlers()
	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "app/web", Obj: podOn("app", "web", "n1")})
	if g.podOnNode("n1", "app", "web") {
		t.Fatal("tombstone ignored")
	}
	h.OnAdd(podOn("app", "x", "n1"), false)
	unscheduled := podOn("app", "x", "")
	h.OnUpdate(podOn("app", "x", "n1"), unscheduled)
	if g.podOnNode("n1", "app", "x") || len(g.nodes) != 0 {
		t.Fatalf("unscheduled pod kept: %+v", g.nodes)
	}
}
