package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// Builders.

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "tier": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img:1"}}},
			},
		},
	}
}

type podOpt func(*corev1.Pod)

func newPodFor(rs *appsv1.ReplicaSet, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: rs.Namespace, UID: types.UID(name + "-uid"),
			Labels:            map[string]string{"app": rs.Spec.Selector.MatchLabels["app"], "tier": "web"},
			CreationTimestamp: metav1.NewTime(time.Unix(1000, 0)),
		},
		Spec: corev1.PodSpec{NodeName: "n1"},
	}
	if rs.UID != "" {
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, rsKind())}
	}
	running(time.Unix(1000, 0))(p)
	for _, o := range opts {
		o(p)
	}
	return p
}

func orphan(p *corev1.Pod) { p.OwnerReferences = nil }

func running(readySince time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(readySince)}}
	}
}

func pending(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = nil
}

func unscheduled(p *corev1.Pod) { pending(p); p.Spec.NodeName = "" }

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }

func created(sec int64) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(time.Unix(sec, 0)) }
}

func restarts(n int32) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: n}}
	}
}

func withLabels(l map[string]string) podOpt { return func(p *corev1.Pod) { p.Labels = l } }

// fixture is a controller over a fake clientset whose listers are loaded
// directly, so sync(key) sees exactly the objects given.
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
	var n atomic.Int32
	// The fake does not implement generateName.
	client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		p := a.(clienttesting.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s%05d", p.GenerateName, n.Add(1))
		}
		return false, nil, nil
	})
	f := &fixture{t: t, client: client, factory: informers.NewSharedInformerFactory(client, 0),
		recorder: record.NewFakeRecorder(1000), now: time.Unix(2000, 0)}
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
		f.add(o)
	}
	client.ClearActions()
	return f
}

func (f *fixture) add(o runtime.Object) {
	f.t.Helper()
	var err error
	switch o := o.(type) {
	case *appsv1.ReplicaSet:
		err = f.factory.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
	case *corev1.Pod:
		err = f.factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
	}
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sync(key string) error {
	f.t.Helper()
	return f.c.sync(context.Background(), key)
}

func (f *fixture) actions(verb, resource string) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range f.client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			out = append(out, a)
		}
	}
	return out
}

func (f *fixture) statusUpdates() []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, a := range f.actions("update", "replicasets") {
		if a.GetSubresource() == "status" {
			out = append(out, a.(clienttesting.UpdateAction).GetObject().(*appsv1.ReplicaSet))
		}
	}
	return out
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

func TestSyncCreatesPodsFromTemplate(t *testing.T) {
	rs := newRS("web", 3)
	f := newFixture(t, rs)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	creates := f.actions("create", "pods")
	if len(creates) != 3 {
		t.Fatalf("created %d pods, want 3", len(creates))
	}
	for _, a := range creates {
		p := a.(clienttesting.CreateAction).GetObject().(*corev1.Pod)
		if p.GenerateName != "web-" || p.Labels["tier"] != "web" || p.Spec.Containers[0].Image != "img:1" {
			t.Errorf("pod %+v not from the template", p.ObjectMeta)
		}
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Errorf("pod owner reference %+v", p.OwnerReferences)
		}
	}
	ev := f.events()
	if len(ev) != 3 || !strings.HasPrefix(ev[0], "Normal SuccessfulCreate Created pod: web-") {
		t.Errorf("events %q", ev)
	}
	st := f.statusUpdates()
	if len(st) != 1 || st[0].Status.ObservedGeneration != 1 || st[0].Status.Replicas != 0 {
		t.Errorf("status updates %+v", st)
	}
}

func TestExpectationsPreventDoubleCreation(t *testing.T) {
	rs := newRS("web", 3)
	f := newFixture(t, rs)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	// The informer has not seen the pods yet: a second sync must wait.
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 3 {
		t.Fatalf("created %d pods over two syncs, want 3", n)
	}
	// Now the pods arrive.
	pods, err := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("stored pods: %v, %d", err, len(pods.Items))
	}
	for i := range pods.Items {
		f.add(&pods.Items[i])
		f.c.addPod(&pods.Items[i])
	}
	if !f.c.exp.satisfied("default/web") {
		t.Fatal("expectations not satisfied after the pods were observed")
	}
	f.client.ClearActions()
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 0 {
		t.Fatalf("created %d more pods", n)
	}
	// An expectation that is never met expires.
	f.c.exp.expectCreations("default/other", 1)
	f.now = f.now.Add(expectationsTTL + time.Second)
	if !f.c.exp.satisfied("default/other") {
		t.Error("expired expectations still block")
	}
}

func TestSlowStartStopsOnErrors(t *testing.T) {
	rs := newRS("web", 10)
	f := newFixture(t, rs)
	var calls atomic.Int32
	f.client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) > 3 {
			return true, nil, errors.New("quota exceeded")
		}
		return false, nil, nil
	})
	err := f.sync("default/web")
	if err == nil || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("sync error %v, want the create error", err)
	}
	// Batches of 1, 2 and 4: the third fails entirely, and no more are tried.
	if got := calls.Load(); got != 7 {
		t.Errorf("%d create calls, want 7 (batches 1, 2, 4)", got)
	}
	// 3 pods were created and are still expected; the 7 others are not.
	f.c.exp.mu.Lock()
	adds := f.c.exp.records["default/web"].adds
	f.c.exp.mu.Unlock()
	if adds != 3 {
		t.Errorf("outstanding creations %d, want 3", adds)
	}
	st := f.statusUpdates()
	if len(st) != 1 {
		t.Fatalf("%d status updates", len(st))
	}
	c := findCondition(st[0].Status.Conditions, appsv1.ReplicaSetReplicaFailure)
	if c == nil || c.Reason != "FailedCreate" || c.Status != corev1.ConditionTrue || !strings.Contains(c.Message, "quota exceeded") {
		t.Errorf("ReplicaFailure condition %+v", c)
	}
	var failed int
	for _, e := range f.events() {
		if strings.HasPrefix(e, "Warning FailedCreate Error creating:") {
			failed++
		}
	}
	if failed != 4 {
		t.Errorf("%d FailedCreate events, want 4", failed)
	}
}

func TestReplicaFailureClearedAfterSuccess(t *testing.T) {
	rs := newRS("web", 1)
	rs.Status.Conditions = []appsv1.ReplicaSetCondition{{Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate"}}
	f := newFixture(t, rs, newPodFor(rs, "web-a"))
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	st := f.statusUpdates()
	if len(st) != 1 || len(st[0].Status.Conditions) != 0 {
		t.Fatalf("status updates %+v, want the condition removed", st)
	}
	if s := st[0].Status; s.Replicas != 1 || s.ReadyReplicas != 1 || s.AvailableReplicas != 1 || s.FullyLabeledReplicas != 1 {
		t.Errorf("status %+v", s)
	}
}

func TestScaleDownDeletesLeastValuablePods(t *testing.T) {
	rs := newRS("web", 1)
	f := newFixture(t, rs,
		newPodFor(rs, "ready-old", created(100)),
		newPodFor(rs, "pending", pending),
		newPodFor(rs, "unscheduled", unscheduled),
	)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, a := range f.actions("delete", "pods") {
		deleted = append(deleted, a.(clienttesting.DeleteAction).GetName())
	}
	if len(deleted) != 2 || !slices.Contains(deleted, "pending") || !slices.Contains(deleted, "unscheduled") {
		t.Fatalf("deleted %v, want pending and unscheduled", deleted)
	}
	ev := strings.Join(f.events(), "\n")
	if !strings.Contains(ev, "Normal SuccessfulDelete Deleted pod: pending") {
		t.Errorf("events %q", ev)
	}
}

func TestDeletionOrder(t *testing.T) {
	rs := newRS("web", 0)
	t0 := time.Unix(1000, 0)
	notReady := func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	}
	// Each pod should go before the next one.
	ordered := []*corev1.Pod{
		newPodFor(rs, "unscheduled", unscheduled),
		newPodFor(rs, "pending", pending),
		newPodFor(rs, "unknown", func(p *corev1.Pod) { p.Status.Phase = corev1.PodUnknown }),
		newPodFor(rs, "running-not-ready", notReady),
		newPodFor(rs, "cheap", func(p *corev1.Pod) { p.Annotations = map[string]string{PodDeletionCostAnnotation: "-5"} }),
		newPodFor(rs, "crowded", onNode("busy")),
		newPodFor(rs, "restarting", restarts(4), onNode("n2")),
		newPodFor(rs, "ready-recently", running(t0.Add(time.Minute)), onNode("n3")),
		newPodFor(rs, "newer", created(2000), onNode("n4")),
		newPodFor(rs, "oldest", onNode("n5")),
	}
	related := append([]*corev1.Pod{newPodFor(rs, "neighbour", onNode("busy"))}, ordered...)
	for i := range ordered {
		for j := i + 1; j < len(ordered); j++ {
			pods := []*corev1.Pod{ordered[j], ordered[i]}
			got := podsToDelete(pods, related, 1)
			if got[0] != ordered[i] {
				t.Errorf("%s should be deleted before %s", ordered[i].Name, ordered[j].Name)
			}
		}
	}
}

func TestPodsBeingDeletedDoNotCount(t *testing.T) {
	rs := newRS("web", 2)
	now := metav1.Now()
	f := newFixture(t, rs,
		newPodFor(rs, "a"),
		newPodFor(rs, "going", func(p *corev1.Pod) { p.DeletionTimestamp = &now }),
		newPodFor(rs, "done", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
	)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("create", "pods")); n != 1 {
		t.Errorf("created %d pods, want 1", n)
	}
	if n := len(f.actions("delete", "pods")); n != 0 {
		t.Errorf("deleted %d pods, want 0", n)
	}
}

func TestAdoptsOrphansAndReleasesNonMatching(t *testing.T) {
	rs := newRS("web", 2)
	f := newFixture(t, rs,
		newPodFor(rs, "orphan", orphan),
		newPodFor(rs, "relabelled", withLabels(map[string]string{"app": "other"})),
		newPodFor(rs, "mine"),
		newPodFor(&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default", UID: "someone-else"},
			Spec: appsv1.ReplicaSetSpec{Selector: rs.Spec.Selector}}, "foreign"),
	)
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	patches := map[string]string{}
	for _, a := range f.actions("patch", "pods") {
		pa := a.(clienttesting.PatchAction)
		if pa.GetPatchType() != types.StrategicMergePatchType {
			t.Errorf("patch type %s", pa.GetPatchType())
		}
		patches[pa.GetName()] = string(pa.GetPatch())
	}
	if len(patches) != 2 {
		t.Fatalf("patched %v, want orphan and relabelled", patches)
	}
	if p := patches["orphan"]; !strings.Contains(p, `"controller":true`) || !strings.Contains(p, `"uid":"web-uid"`) || !strings.Contains(p, `"uid":"orphan-uid"`) {
		t.Errorf("adoption patch %s", p)
	}
	if p := patches["relabelled"]; !strings.Contains(p, `"$patch":"delete"`) || !strings.Contains(p, `"uid":"web-uid"`) {
		t.Errorf("release patch %s", p)
	}
	// The stored pods reflect it.
	got, err := f.client.CoreV1().Pods("default").Get(context.Background(), "orphan", metav1.GetOptions{})
	if err != nil || metav1.GetControllerOf(got) == nil || metav1.GetControllerOf(got).UID != rs.UID {
		t.Errorf("orphan after sync: %v %+v", err, got.OwnerReferences)
	}
	got, err = f.client.CoreV1().Pods("default").Get(context.Background(), "relabelled", metav1.GetOptions{})
	if err != nil || len(got.OwnerReferences) != 0 {
		t.Errorf("relabelled after sync: %v %+v", err, got.OwnerReferences)
	}
	// mine + adopted orphan = 2 = replicas: nothing to create or delete.
	if n := len(f.actions("create", "pods")) + len(f.actions("delete", "pods")); n != 0 {
		t.Errorf("%d creates/deletes, want 0", n)
	}
}

func TestNoAdoptionByReplicaSetBeingDeleted(t *testing.T) {
	rs := newRS("web", 1)
	now := metav1.Now()
	rs.DeletionTimestamp = &now
	f := newFixture(t, rs, newPodFor(rs, "orphan", orphan))
	if err := f.sync("default/web"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.actions("patch", "pods")) + len(f.actions("create", "pods")); n != 0 {
		t.Errorf("%d patches/creates by a ReplicaSet being deleted", n)
	}
}

func TestStatusWithMinReadySeconds(t *testing.T) {
	rs := newRS("web", 3)
	rs.Spec.MinReadySeconds = 10
	now := time.Unix(2000, 0)
	pods := []*corev1.Pod{
		newPodFor(rs, "long-ready", running(now.Add(-time.Minute))),
		newPodFor(rs, "just-ready", running(now.Add(-4*time.Second))),
		newPodFor(rs, "not-ready", pending),
		newPodFor(rs, "partial-labels", withLabels(map[string]string{"app": "web"})),
	}
	s, wait := calculateStatus(rs, pods, nil, now)
	if s.Replicas != 4 || s.ReadyReplicas != 3 || s.AvailableReplicas != 2 || s.FullyLabeledReplicas != 3 || s.ObservedGeneration != 1 {
		t.Errorf("status %+v", s)
	}
	if wait != 7*time.Second {
		t.Errorf("wait %v, want 6s + 1s slack", wait)
	}
}

func TestNoAdoptionByReplacedReplicaSet(t *testing.T) {
	rs := newRS("web", 1)
	f := newFixture(t, rs, newPodFor(rs, "orphan", orphan))
	// The API server has another ReplicaSet of that name: the cached one
	// was deleted and recreated.
	f.client.PrependReactor("get", "replicasets", func(clienttesting.Action) (bool, runtime.Object, error) {
		fresh := rs.DeepCopy()
		fresh.UID = "new-uid"
		return true, fresh, nil
	})
	err := f.sync("default/web")
	if err == nil || !strings.Contains(err.Error(), "was replaced") {
		t.Fatalf("sync error %v, want the replacement reported", err)
	}
	if n := len(f.actions("patch", "pods")); n != 0 {
		t.Errorf("%d pod patches by a replaced ReplicaSet", n)
	}
	if n := len(f.actions("get", "replicasets")); n != 1 {
		t.Errorf("%d rechecks of the ReplicaSet, want 1", n)
	}
}
