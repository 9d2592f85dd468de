package deployment

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// Builders.

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

type dOpt func(*appsv1.Deployment)

func newDeployment(replicas int32, image string, opts ...dOpt) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "web-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: template(image),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge: new(intstr.FromString("25%")), MaxUnavailable: new(intstr.FromString("25%")),
				},
			},
			RevisionHistoryLimit:    new(int32(10)),
			ProgressDeadlineSeconds: new(int32(600)),
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func fenceposts(surge, unavailable intstr.IntOrString) dOpt {
	return func(d *appsv1.Deployment) {
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}
	}
}

func recreate(d *appsv1.Deployment) {
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
}

type rsOpt func(*appsv1.ReplicaSet)

// rsFor builds a ReplicaSet of d with image, as the controller would have
// created it, and with status saying all its pods are available.
func rsFor(d *appsv1.Deployment, image string, rev int, replicas int32, created int64, opts ...rsOpt) *appsv1.ReplicaSet {
	t := template(image)
	hash, _ := TemplateHash(&t, nil)
	t.Labels = withLabel(t.Labels, HashLabel, hash)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, UID: types.UID("rs-" + hash),
			Labels:            t.Labels,
			CreationTimestamp: metav1.NewTime(time.Unix(created, 0)),
			OwnerReferences:   []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind())},
			Annotations: map[string]string{
				RevisionAnnotation:        itoa(rev),
				DesiredReplicasAnnotation: itoa(int(replicasOf(d))),
				MaxReplicasAnnotation:     itoa(int(replicasOf(d) + maxSurge(d))),
			},
			Generation: 1,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: withLabel(map[string]string{"app": "web"}, HashLabel, hash)},
			Template: t,
		},
		Status: appsv1.ReplicaSetStatus{Replicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas, ObservedGeneration: 1},
	}
	for _, o := range opts {
		o(rs)
	}
	return rs
}

func available(n int32) rsOpt {
	return func(rs *appsv1.ReplicaSet) { rs.Status.AvailableReplicas, rs.Status.ReadyReplicas = n, n }
}

func annotated(desired, maxReplicas int) rsOpt {
	return func(rs *appsv1.ReplicaSet) {
		rs.Annotations[DesiredReplicasAnnotation], rs.Annotations[MaxReplicasAnnotation] = itoa(desired), itoa(maxReplicas)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

type fixture struct {
	t        *testing.T
	client   *fake.Clientset
	factory  informers.SharedInformerFactory
	c        *Controller
	recorder *record.FakeRecorder
	now      time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	f := &fixture{t: t, client: client, factory: informers.NewSharedInformerFactory(client, 0),
		recorder: record.NewFakeRecorder(1000), now: time.Unix(100000, 0)}
	c, err := New(&controller.Context{
		Client: client, Informers: f.factory, Logger: slog.New(slog.DiscardHandler),
		Recorder: func(string) record.EventRecorder { return f.recorder },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return f.now }
	f.c = c
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *appsv1.Deployment:
			err = f.factory.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
		case *appsv1.ReplicaSet:
			err = f.factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			err = f.factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	client.ClearActions()
	return f
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/web"); err != nil {
		f.t.Fatalf("sync: %v", err)
	}
}

// writes returns the objects written with verb to resource (subresource
// "" for the object itself).
func (f *fixture) writes(verb, resource, subresource string) []runtime.Object {
	var out []runtime.Object
	for _, a := range f.client.Actions() {
		if a.GetVerb() != verb || a.GetResource().Resource != resource || a.GetSubresource() != subresource {
			continue
		}
		switch a := a.(type) {
		case clienttesting.CreateAction:
			out = append(out, a.GetObject())
		case clienttesting.UpdateAction:
			out = append(out, a.GetObject())
		default:
			out = append(out, nil)
		}
	}
	return out
}

// scales returns the replicas set by each ReplicaSet update, by name.
func (f *fixture) scales() map[string]int32 {
	out := map[string]int32{}
	for _, o := range f.writes("update", "replicasets", "") {
		rs := o.(*appsv1.ReplicaSet)
		out[rs.Name] = *rs.Spec.Replicas
	}
	return out
}

func (f *fixture) lastStatus() *appsv1.Deployment {
	f.t.Helper()
	w := f.writes("update", "deployments", "status")
	if len(w) == 0 {
		f.t.Fatal("no status update")
	}
	return w[len(w)-1].(*appsv1.Deployment)
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestTemplateHash(t *testing.T) {
	a, b := template("nginx:1"), template("nginx:1")
	ha, _ := TemplateHash(&a, nil)
	hb, _ := TemplateHash(&b, nil)
	if ha != hb || ha == "" {
		t.Fatalf("hashes of equal templates: %q %q", ha, hb)
	}
	b.Labels = withLabel(b.Labels, HashLabel, "whatever")
	if hb, _ = TemplateHash(&b, nil); hb != ha {
		t.Errorf("the hash label changed the hash: %q vs %q", hb, ha)
	}
	c := template("nginx:2")
	if hc, _ := TemplateHash(&c, nil); hc == ha {
		t.Errorf("different templates, same hash %q", hc)
	}
	if hd, _ := TemplateHash(&a, new(int32(1))); hd == ha {
		t.Errorf("collision count ignored")
	}
	for _, r := range ha {
		if !strings.ContainsRune("bcdfghjklmnpqrstvwxz2456789", r) {
			t.Errorf("hash %q has %q", ha, r)
		}
	}
}

func TestResolveFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavailable intstr.IntOrString
		replicas           int32
		wantS, wantU       int32
	}{
		{intstr.FromString("25%"), intstr.FromString("25%"), 10, 3, 2}, // 2.5 up, 2.5 down
		{intstr.FromString("25%"), intstr.FromString("25%"), 4, 1, 1},
		{intstr.FromString("25%"), intstr.FromString("25%"), 1, 1, 0},
		{intstr.FromString("10%"), intstr.FromString("10%"), 5, 1, 0},
		{intstr.FromInt32(0), intstr.FromString("10%"), 5, 0, 1}, // both 0: one may be unavailable
		{intstr.FromInt32(2), intstr.FromInt32(0), 3, 2, 0},
		{intstr.FromString("100%"), intstr.FromString("100%"), 3, 3, 3},
	} {
		s, u, err := resolveFenceposts(&tc.surge, &tc.unavailable, tc.replicas)
		if err != nil || s != tc.wantS || u != tc.wantU {
			t.Errorf("%s/%s of %d = %d, %d, %v; want %d, %d", tc.surge.String(), tc.unavailable.String(), tc.replicas, s, u, err, tc.wantS, tc.wantU)
		}
	}
	d := newDeployment(2, "x", fenceposts(intstr.FromInt32(0), intstr.FromInt32(5)))
	if got := maxUnavailable(d); got != 2 {
		t.Errorf("maxUnavailable capped at replicas: got %d", got)
	}
	if got := maxUnavailable(newDeployment(2, "x", recreate)); got != 0 {
		t.Errorf("Recreate maxUnavailable %d", got)
	}
}

func TestSyncCreatesFirstReplicaSet(t *testing.T) {
	d := newDeployment(3, "nginx:1", func(d *appsv1.Deployment) {
		d.Annotations = map[string]string{"kubernetes.io/change-cause": "first"}
	})
	f := newFixture(t, d)
	f.sync()
	created := f.writes("create", "replicasets", "")
	if len(created) != 1 {
		t.Fatalf("created %d replicasets", len(created))
	}
	rs := created[0].(*appsv1.ReplicaSet)
	hash, _ := TemplateHash(&d.Spec.Template, nil)
	if rs.Name != "web-"+hash || rs.Labels[HashLabel] != hash || rs.Spec.Template.Labels[HashLabel] != hash ||
		rs.Spec.Selector.MatchLabels[HashLabel] != hash || rs.Spec.Selector.MatchLabels["app"] != "web" {
		t.Errorf("replicaset %s labels %v selector %v template labels %v", rs.Name, rs.Labels, rs.Spec.Selector, rs.Spec.Template.Labels)
	}
	if *rs.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *rs.Spec.Replicas)
	}
	want := map[string]string{RevisionAnnotation: "1", DesiredReplicasAnnotation: "3", MaxReplicasAnnotation: "4", "kubernetes.io/change-cause": "first"}
	for k, v := range want {
		if rs.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, rs.Annotations[k], v)
		}
	}
	if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID || ref.Kind != "Deployment" {
		t.Errorf("owner %+v", rs.OwnerReferences)
	}
	upd := f.writes("update", "deployments", "")
	if len(upd) != 1 || upd[0].(*appsv1.Deployment).Annotations[RevisionAnnotation] != "1" {
		t.Errorf("deployment revision updates %v", upd)
	}
	st := f.lastStatus()
	if c := getCondition(&st.Status, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonNewRSCreated {
		t.Errorf("progressing %+v", c)
	}
	ev := f.events()
	if len(ev) == 0 || ev[0] != "Normal ScalingReplicaSet Scaled up replica set web-"+hash+" to 3 from 0" {
		t.Errorf("events %q", ev)
	}
}

func TestRollingUpdateSteps(t *testing.T) {
	// 4 replicas, surge 1, unavailable 0: never fewer than 4 available.
	d := newDeployment(4, "v2", fenceposts(intstr.FromInt32(1), intstr.FromInt32(0)))
	old := rsFor(d, "v1", 1, 4, 10)

	// Step 1: a new ReplicaSet of 1 (surge), nothing removed.
	f := newFixture(t, d, old)
	f.sync()
	created := f.writes("create", "replicasets", "")
	if len(created) != 1 || *created[0].(*appsv1.ReplicaSet).Spec.Replicas != 1 {
		t.Fatalf("created %v", created)
	}
	if s := f.scales(); len(s) != 0 {
		t.Fatalf("scaled %v with nothing new available", s)
	}
	if rev := created[0].(*appsv1.ReplicaSet).Annotations[RevisionAnnotation]; rev != "2" {
		t.Errorf("new revision %q", rev)
	}

	// Step 2: the new pod is not available yet: still nothing removed.
	newRS := rsFor(d, "v2", 2, 1, 20, available(0))
	f = newFixture(t, d, old, newRS)
	f.sync()
	if s := f.scales(); len(s) != 0 {
		t.Fatalf("scaled %v before the new pod was available", s)
	}

	// Step 3: it is: one old pod goes.
	newRS = rsFor(d, "v2", 2, 1, 20)
	f = newFixture(t, d, old, newRS)
	f.sync()
	if s := f.scales(); len(s) != 1 || s[old.Name] != 3 {
		t.Fatalf("scaled %v, want old to 3", s)
	}
	ev := strings.Join(f.events(), "\n")
	if !strings.Contains(ev, "Scaled down replica set "+old.Name+" to 3 from 4") {
		t.Errorf("events %q", ev)
	}

	// Step 4: the old ReplicaSet was scaled, but its status still counts
	// the pod being removed: the new one grows, no further scale-down.
	staleOld := rsFor(d, "v1", 1, 3, 10, available(4))
	staleOld.Status.Replicas = 4
	f = newFixture(t, d, staleOld, newRS)
	f.sync()
	if s := f.scales(); len(s) != 1 || s[newRS.Name] != 2 {
		t.Fatalf("scaled %v, want new to 2", s)
	}
}

func TestRollbackReusesOldReplicaSet(t *testing.T) {
	// Template back to v1, as kubectl rollout undo patches it.
	d := newDeployment(3, "v1")
	d.Annotations = map[string]string{RevisionAnnotation: "2"}
	rs1 := rsFor(d, "v1", 1, 0, 10)
	rs2 := rsFor(d, "v2", 2, 3, 20)
	f := newFixture(t, d, rs1, rs2)
	f.sync()
	if c := f.writes("create", "replicasets", ""); len(c) != 0 {
		t.Fatalf("created %d replicasets; want the old one reused", len(c))
	}
	// One write brings the revision up to date, one scales: a second
	// revision write from the stale cached copy would conflict.
	var updates []*appsv1.ReplicaSet
	for _, o := range f.writes("update", "replicasets", "") {
		if rs := o.(*appsv1.ReplicaSet); rs.Name == rs1.Name {
			updates = append(updates, rs)
		}
	}
	if len(updates) != 2 {
		t.Fatalf("%d updates of %s, want 2 (revision, then scale)", len(updates), rs1.Name)
	}
	if revised := updates[0]; revised.Annotations[RevisionAnnotation] != "3" || revised.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("first update of %s: %+v", rs1.Name, revised.Annotations)
	}
	upd := f.writes("update", "deployments", "")
	if len(upd) != 1 || upd[0].(*appsv1.Deployment).Annotations[RevisionAnnotation] != "3" {
		t.Errorf("deployment revision updates %v", upd)
	}
	// And the rollout starts on it: 3 replicas + 25% surge (1) = 4 pods.
	if s := f.scales(); s[rs1.Name] != 1 {
		t.Errorf("scales %v, want %s to 1", s, rs1.Name)
	}
}

func TestPausedDeploymentDoesNotRollOutButScales(t *testing.T) {
	d := newDeployment(5, "v2", func(d *appsv1.Deployment) { d.Spec.Paused = true })
	old := rsFor(d, "v1", 1, 3, 10, annotated(3, 4))
	f := newFixture(t, d, old)
	f.sync()
	if c := f.writes("create", "replicasets", ""); len(c) != 0 {
		t.Fatalf("a paused deployment created %d replicasets", len(c))
	}
	if s := f.scales(); s[old.Name] != 5 {
		t.Errorf("scales %v, want %s to 5", s, old.Name)
	}
	st := f.writes("update", "deployments", "status")
	if len(st) == 0 {
		t.Fatal("no status update")
	}
	c := getCondition(&st[0].(*appsv1.Deployment).Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason != ReasonPaused || c.Status != corev1.ConditionUnknown {
		t.Errorf("progressing %+v", c)
	}
}

func TestProportionalScaling(t *testing.T) {
	// Mid-rollout at 10 replicas (max 13 = 10 + 3); scaled to 15 (max 19).
	d := newDeployment(15, "v2")
	old := rsFor(d, "v1", 1, 8, 10, annotated(10, 13))
	newRS := rsFor(d, "v2", 2, 5, 20, annotated(10, 13))
	f := newFixture(t, d, old, newRS)
	f.sync()
	s := f.scales()
	if s[old.Name] != 12 || s[newRS.Name] != 7 {
		t.Fatalf("scales %v, want old 12, new 7", s)
	}
	for _, o := range f.writes("update", "replicasets", "") {
		rs := o.(*appsv1.ReplicaSet)
		if rs.Annotations[DesiredReplicasAnnotation] != "15" || rs.Annotations[MaxReplicasAnnotation] != "19" {
			t.Errorf("%s annotations %v", rs.Name, rs.Annotations)
		}
	}
}

func TestProgressDeadlineExceeded(t *testing.T) {
	d := newDeployment(3, "v2", func(d *appsv1.Deployment) { d.Spec.ProgressDeadlineSeconds = new(int32(60)) })
	newRS := rsFor(d, "v2", 1, 3, 10, available(0))
	f := newFixture(t, d, newRS)
	since := metav1.NewTime(f.now.Add(-2 * time.Minute))
	d.Status = calculateStatus(d, []*appsv1.ReplicaSet{newRS}, newRS, f.now)
	d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: ReasonRSUpdated, LastUpdateTime: since, LastTransitionTime: since})
	f = newFixture(t, d, newRS)
	f.sync()
	c := getCondition(&f.lastStatus().Status, appsv1.DeploymentProgressing)
	if c == nil || c.Reason != ReasonTimedOut || c.Status != corev1.ConditionFalse {
		t.Fatalf("progressing %+v", c)
	}
	a := getCondition(&f.lastStatus().Status, appsv1.DeploymentAvailable)
	if a == nil || a.Status != corev1.ConditionFalse || a.Reason != ReasonMinimumUnavailable {
		t.Errorf("available %+v", a)
	}
}

func TestCompleteRolloutStatusAndCleanup(t *testing.T) {
	d := newDeployment(2, "v4", func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = new(int32(1)) })
	cur := rsFor(d, "v4", 4, 2, 40)
	old := []*appsv1.ReplicaSet{rsFor(d, "v1", 1, 0, 10), rsFor(d, "v2", 2, 0, 20), rsFor(d, "v3", 3, 0, 30)}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	d.Annotations = map[string]string{RevisionAnnotation: "4"}
	f := newFixture(t, d, cur, old[0], old[1], old[2])
	f.sync()
	var deleted []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "replicasets" {
			deleted = append(deleted, a.(clienttesting.DeleteAction).GetName())
		}
	}
	if len(deleted) != 2 || deleted[0] != old[0].Name || deleted[1] != old[1].Name {
		t.Errorf("deleted %v, want revisions 1 and 2", deleted)
	}
	s := f.lastStatus().Status
	if s.Replicas != 2 || s.UpdatedReplicas != 2 || s.AvailableReplicas != 2 || s.UnavailableReplicas != 0 || s.ObservedGeneration != 1 {
		t.Errorf("status %+v", s)
	}
	if c := getCondition(&s, appsv1.DeploymentProgressing); c == nil || c.Reason != ReasonNewRSAvailable || c.Status != corev1.ConditionTrue {
		t.Errorf("progressing %+v", c)
	}
	if c := getCondition(&s, appsv1.DeploymentAvailable); c == nil || c.Reason != ReasonMinimumAvailable {
		t.Errorf("available %+v", c)
	}
}

func TestRecreateWaitsForOldPods(t *testing.T) {
	d := newDeployment(2, "v2", recreate)
	old := rsFor(d, "v1", 1, 0, 10, available(0))
	old.Status.Replicas = 0
	now := metav1.Now()
	lingering := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "old-pod", Namespace: "default", DeletionTimestamp: &now,
		Labels:          old.Spec.Template.Labels,
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(old, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	f := newFixture(t, d, old, lingering)
	f.sync()
	if c := f.writes("create", "replicasets", ""); len(c) != 0 {
		t.Fatalf("created a new replicaset while an old pod runs")
	}
	f = newFixture(t, d, old)
	f.sync()
	c := f.writes("create", "replicasets", "")
	if len(c) != 1 || *c[0].(*appsv1.ReplicaSet).Spec.Replicas != 2 {
		t.Fatalf("created %v, want one of 2 replicas", c)
	}
}

func TestRecreateScalesOldDownFirst(t *testing.T) {
	d := newDeployment(2, "v2", recreate)
	old := rsFor(d, "v1", 1, 2, 10)
	f := newFixture(t, d, old)
	f.sync()
	if s := f.scales(); len(s) != 1 || s[old.Name] != 0 {
		t.Fatalf("scales %v, want old to 0", s)
	}
	if c := f.writes("create", "replicasets", ""); len(c) != 0 {
		t.Fatalf("created a new replicaset before the old pods went")
	}
}

func TestAdoptsOrphanReplicaSet(t *testing.T) {
	d := newDeployment(1, "v1")
	rs := rsFor(d, "v1", 1, 1, 10)
	rs.OwnerReferences = nil
	f := newFixture(t, d, rs)
	f.sync()
	var patched []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "replicasets" {
			patched = append(patched, string(a.(clienttesting.PatchAction).GetPatch()))
		}
	}
	if len(patched) != 1 || !strings.Contains(patched[0], `"controller":true`) || !strings.Contains(patched[0], `"uid":"web-uid"`) ||
		!strings.Contains(patched[0], `"uid":"`+string(rs.UID)+`"`) {
		t.Fatalf("patches %v", patched)
	}
	if c := f.writes("create", "replicasets", ""); len(c) != 0 {
		t.Errorf("created a replicaset despite the adopted one")
	}
}

func TestHashCollisionBumpsCollisionCount(t *testing.T) {
	d := newDeployment(1, "v1")
	hash, _ := TemplateHash(&d.Spec.Template, nil)
	// Someone else's ReplicaSet has the name the new one would get.
	squatter := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: "default", UID: "squatter", Labels: map[string]string{"app": "other"}},
		Spec: appsv1.ReplicaSetSpec{Replicas: new(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			Template: template("something-else")},
	}
	f := newFixture(t, d, squatter)
	if err := f.c.sync(context.Background(), "default/web"); err == nil {
		t.Fatal("sync succeeded despite the name being taken")
	}
	st := f.lastStatus()
	if st.Status.CollisionCount == nil || *st.Status.CollisionCount != 1 {
		t.Fatalf("collision count %v, want 1", st.Status.CollisionCount)
	}
	// The next attempt uses another name.
	next, _ := TemplateHash(&d.Spec.Template, st.Status.CollisionCount)
	if next == hash {
		t.Fatalf("same hash %q after a collision", next)
	}
	f = newFixture(t, st, squatter)
	f.sync()
	c := f.writes("create", "replicasets", "")
	if len(c) != 1 || c[0].(*appsv1.ReplicaSet).Name != "web-"+next {
		t.Fatalf("created %v, want web-%s", c, next)
	}
}

func TestScalingEventDetected(t *testing.T) {
	d := newDeployment(5, "v1")
	rs := rsFor(d, "v1", 1, 3, 10, annotated(3, 4))
	f := newFixture(t, d, rs)
	f.sync()
	if s := f.scales(); s[rs.Name] != 5 {
		t.Fatalf("scales %v, want %s to 5", s, rs.Name)
	}
	ev := strings.Join(f.events(), "\n")
	if !strings.Contains(ev, "Normal ScalingReplicaSet Scaled up replica set "+rs.Name+" to 5 from 3") {
		t.Errorf("events %q", ev)
	}
}
