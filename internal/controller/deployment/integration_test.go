package deployment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/controller/deployment"
	"skiff/internal/server/servertest"
)

// Harness.

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

func namespace(t *testing.T, c kubernetes.Interface, name string) string {
	t.Helper()
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

type dOpt func(*appsv1.Deployment)

func createDeployment(t *testing.T, c kubernetes.Interface, ns string, replicas int32, image string, opts ...dOpt) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	out, err := c.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mutate applies f to the current deployment and writes it, retrying on
// conflicts (the controller writes it too).
func mutate(t *testing.T, c kubernetes.Interface, ns string, f func(*appsv1.Deployment)) {
	t.Helper()
	ctx := context.Background()
	for i := 0; ; i++ {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f(d)
		_, err = c.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		if err == nil {
			return
		}
		if i > 20 {
			t.Fatalf("update deployment: %v", err)
		}
	}
}

func setImage(image string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = image }
}

func livePods(t *testing.T, c kubernetes.Interface, ns string) []corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func replicaSets(t *testing.T, c kubernetes.Interface, ns string) []appsv1.ReplicaSet {
	t.Helper()
	l, err := c.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func condition(d *appsv1.Deployment, ct appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == ct {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// waitRolledOut waits until the deployment is done as `kubectl rollout
// status` judges it, the Progressing condition says so, and exactly
// spec.replicas live pods run the template's image.
func waitRolledOut(t *testing.T, c kubernetes.Interface, ns string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	eventually(t, "rollout to finish", func() (bool, string) {
		var err error
		d, err = c.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s := d.Status
		n := *d.Spec.Replicas
		p := condition(d, appsv1.DeploymentProgressing)
		a := condition(d, appsv1.DeploymentAvailable)
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != n || s.Replicas != n || s.AvailableReplicas != n ||
			s.ReadyReplicas != n || s.UnavailableReplicas != 0 || p == nil || p.Reason != deployment.ReasonNewRSAvailable ||
			a == nil || a.Status != corev1.ConditionTrue {
			b, _ := json.Marshal(s)
			return false, string(b)
		}
		pods := livePods(t, c, ns)
		image := d.Spec.Template.Spec.Containers[0].Image
		if len(pods) != int(n) {
			return false, fmt.Sprintf("%d live pods", len(pods))
		}
		for _, p := range pods {
			if p.Spec.Containers[0].Image != image || p.Status.Phase != corev1.PodRunning {
				return false, fmt.Sprintf("pod %s runs %s (%s)", p.Name, p.Spec.Containers[0].Image, p.Status.Phase)
			}
		}
		return true, ""
	})
	return d
}

// watchPods replays the namespace's pods one watch event at a time,
// calling check with the state after each: a state every pod passed
// through, in order, so checks see every intermediate state. stop ends it
// and waits.
func watchPods(t *testing.T, c kubernetes.Interface, ns string, check func(map[string]*corev1.Pod)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]*corev1.Pod{}
	for i := range list.Items {
		state[list.Items[i].Name] = &list.Items[i]
	}
	check(state)
	rv := list.ResourceVersion
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = p.ResourceVersion
				if ev.Type == watch.Deleted {
					delete(state, p.Name)
				} else {
					state[p.Name] = p
				}
				check(state)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func scalingEvents(t *testing.T, c kubernetes.Interface, ns string) []string {
	t.Helper()
	evs, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Reason == "ScalingReplicaSet" && e.InvolvedObject.Kind == "Deployment" {
			out = append(out, e.Message)
		}
	}
	return out
}

// Tests.

func TestDeploymentScaleUpAndDown(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1", "n2", "n3"})
	ns := namespace(t, c, "scale")
	ctx := context.Background()
	createDeployment(t, c, ns, 3, "nginx:1")
	d := waitRolledOut(t, c, ns)
	if d.Annotations[deployment.RevisionAnnotation] != "1" {
		t.Errorf("revision %q", d.Annotations[deployment.RevisionAnnotation])
	}
	rss := replicaSets(t, c, ns)
	if len(rss) != 1 {
		t.Fatalf("%d replicasets", len(rss))
	}
	rs := rss[0]
	hash := rs.Labels[deployment.HashLabel]
	if hash == "" || rs.Name != "web-"+hash || rs.Spec.Selector.MatchLabels[deployment.HashLabel] != hash {
		t.Errorf("replicaset %s labels %v selector %v", rs.Name, rs.Labels, rs.Spec.Selector)
	}
	for _, p := range livePods(t, c, ns) {
		if p.Labels[deployment.HashLabel] != hash || !strings.HasPrefix(p.Name, rs.Name+"-") {
			t.Errorf("pod %s labels %v", p.Name, p.Labels)
		}
	}

	// Through the scale subresource, as kubectl scale does.
	scaleTo := func(n int32) {
		t.Helper()
		for i := 0; ; i++ {
			_, err := c.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: n},
			}, metav1.UpdateOptions{})
			if err == nil {
				return
			}
			if i > 20 {
				t.Fatalf("scale to %d: %v", n, err)
			}
		}
	}
	scaleTo(6)
	waitRolledOut(t, c, ns)
	scaleTo(1)
	waitRolledOut(t, c, ns)
	if n := len(replicaSets(t, c, ns)); n != 1 {
		t.Errorf("scaling made %d replicasets", n)
	}
	rsNow, err := c.AppsV1().ReplicaSets(ns).Get(ctx, rs.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rsNow.Annotations[deployment.DesiredReplicasAnnotation] != "1" || rsNow.Annotations[deployment.MaxReplicasAnnotation] != "2" {
		t.Errorf("replica annotations %v", rsNow.Annotations)
	}
	eventually(t, "scaling events", func() (bool, string) {
		ev := strings.Join(scalingEvents(t, c, ns), "\n")
		want := []string{
			"Scaled up replica set " + rs.Name + " to 3 from 0",
			"Scaled up replica set " + rs.Name + " to 6 from 3",
			"Scaled down replica set " + rs.Name + " to 1 from 6",
		}
		for _, w := range want {
			if !strings.Contains(ev, w) {
				return false, ev
			}
		}
		return true, ""
	})
}

func TestRollingUpdateKeepsAvailability(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1", "n2", "n3"})
	for i, tc := range []struct {
		replicas           int32
		surge, unavailable intstr.IntOrString
		minAvailable       int
	}{
		{4, intstr.FromString("25%"), intstr.FromString("25%"), 3},
		{3, intstr.FromInt32(1), intstr.FromInt32(0), 3},
		{5, intstr.FromInt32(0), intstr.FromString("40%"), 3},
	} {
		t.Run(fmt.Sprintf("%d-%s-%s", tc.replicas, tc.surge.String(), tc.unavailable.String()), func(t *testing.T) {
			ns := namespace(t, c, fmt.Sprintf("rolling-%d", i))
			createDeployment(t, c, ns, tc.replicas, "app:v1", func(d *appsv1.Deployment) {
				d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavailable}
			})
			waitRolledOut(t, c, ns)

			var mu sync.Mutex
			lowest, highest, states := int(tc.replicas), 0, 0
			stop := watchPods(t, c, ns, func(pods map[string]*corev1.Pod) {
				avail, live := 0, 0
				for _, p := range pods {
					if p.DeletionTimestamp == nil {
						live++
						if ready(p) {
							avail++
						}
					}
				}
				mu.Lock()
				defer mu.Unlock()
				states++
				lowest = min(lowest, avail)
				highest = max(highest, live)
			})
			mutate(t, c, ns, setImage("app:v2"))
			d := waitRolledOut(t, c, ns)
			stop()

			mu.Lock()
			t.Logf("%d pod states seen; fewest available %d, most live %d", states, lowest, highest)
			if lowest < tc.minAvailable {
				t.Errorf("available pods fell to %d during the rollout, want at least %d", lowest, tc.minAvailable)
			}
			mu.Unlock()
			if d.Annotations[deployment.RevisionAnnotation] != "2" {
				t.Errorf("revision %q, want 2", d.Annotations[deployment.RevisionAnnotation])
			}
			rss := replicaSets(t, c, ns)
			if len(rss) != 2 {
				t.Fatalf("%d replicasets, want 2", len(rss))
			}
			for _, rs := range rss {
				want := int32(0)
				if rs.Spec.Template.Spec.Containers[0].Image == "app:v2" {
					want = tc.replicas
				}
				if *rs.Spec.Replicas != want {
					t.Errorf("replicaset %s (%s) has %d replicas, want %d", rs.Name, rs.Spec.Template.Spec.Containers[0].Image, *rs.Spec.Replicas, want)
				}
			}
		})
	}
}

func TestRollbackToRevision1ReusesItsReplicaSet(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1", "n2"})
	ns := namespace(t, c, "rollback")
	ctx := context.Background()
	createDeployment(t, c, ns, 2, "app:v1")
	waitRolledOut(t, c, ns)
	mutate(t, c, ns, setImage("app:v2"))
	waitRolledOut(t, c, ns)

	// What kubectl rollout undo --to-revision=1 does: find the
	// ReplicaSet of revision 1 and patch its template (without the hash
	// label) into the deployment.
	var rev1 *appsv1.ReplicaSet
	for _, rs := range replicaSets(t, c, ns) {
		if rs.Annotations[deployment.RevisionAnnotation] == "1" {
			rev1 = rs.DeepCopy()
		}
	}
	if rev1 == nil {
		t.Fatal("no replicaset of revision 1")
	}
	tmpl := rev1.Spec.Template.DeepCopy()
	delete(tmpl.Labels, deployment.HashLabel)
	patch, err := json.Marshal([]map[string]interface{}{{"op": "replace", "path": "/spec/template", "value": tmpl}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "web", types.JSONPatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	d := waitRolledOut(t, c, ns)
	if d.Spec.Template.Spec.Containers[0].Image != "app:v1" {
		t.Fatalf("image %s", d.Spec.Template.Spec.Containers[0].Image)
	}
	rss := replicaSets(t, c, ns)
	if len(rss) != 2 {
		t.Fatalf("%d replicasets after the rollback, want the 2 there were", len(rss))
	}
	rs1, err := c.AppsV1().ReplicaSets(ns).Get(ctx, rev1.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs1.UID != rev1.UID || *rs1.Spec.Replicas != 2 {
		t.Errorf("replicaset of revision 1 not reused: uid %s->%s replicas %d", rev1.UID, rs1.UID, *rs1.Spec.Replicas)
	}
	eventually(t, "revision 3", func() (bool, string) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		rs1, err := c.AppsV1().ReplicaSets(ns).Get(ctx, rev1.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ok := d.Annotations[deployment.RevisionAnnotation] == "3" && rs1.Annotations[deployment.RevisionAnnotation] == "3" &&
			rs1.Annotations[deployment.RevisionHistoryAnnotation] == "1"
		return ok, fmt.Sprintf("deployment %v, replicaset %v", d.Annotations, rs1.Annotations)
	})
	for _, p := range livePods(t, c, ns) {
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != rs1.UID {
			t.Errorf("pod %s not from the reused replicaset", p.Name)
		}
	}
}

func TestRecreateDeletesOldPodsFirst(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1", "n2"})
	ns := namespace(t, c, "recreate")
	createDeployment(t, c, ns, 3, "app:v1", func(d *appsv1.Deployment) {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	})
	waitRolledOut(t, c, ns)

	var mu sync.Mutex
	var overlap []string
	stop := watchPods(t, c, ns, func(pods map[string]*corev1.Pod) {
		var old, updated []string
		for _, p := range pods { // terminating pods count: they still run
			if p.Spec.Containers[0].Image == "app:v1" {
				old = append(old, p.Name)
			} else {
				updated = append(updated, p.Name)
			}
		}
		if len(old) > 0 && len(updated) > 0 {
			mu.Lock()
			overlap = append(overlap, fmt.Sprintf("old %v with new %v", old, updated))
			mu.Unlock()
		}
	})
	mutate(t, c, ns, setImage("app:v2"))
	waitRolledOut(t, c, ns)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("new pods existed alongside old ones: %v", overlap[0])
	}
	ev := strings.Join(scalingEvents(t, c, ns), "\n")
	if !strings.Contains(ev, "to 0 from 3") {
		t.Errorf("events %q", ev)
	}
}

func TestPausedDeploymentDoesNotRollOut(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1", "n2"})
	ns := namespace(t, c, "paused")
	ctx := context.Background()
	createDeployment(t, c, ns, 2, "app:v1")
	waitRolledOut(t, c, ns)

	mutate(t, c, ns, func(d *appsv1.Deployment) { d.Spec.Paused = true })
	mutate(t, c, ns, setImage("app:v2"))
	mutate(t, c, ns, func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(4)) })
	eventually(t, "the paused deployment to scale", func() (bool, string) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		p := condition(d, appsv1.DeploymentProgressing)
		pods := livePods(t, c, ns)
		ok := d.Status.ObservedGeneration >= d.Generation && d.Status.AvailableReplicas == 4 && len(pods) == 4 &&
			p != nil && p.Reason == deployment.ReasonPaused && p.Status == corev1.ConditionUnknown
		return ok, fmt.Sprintf("%d pods, status %+v", len(pods), d.Status)
	})
	time.Sleep(time.Second) // give a wrong rollout time to show
	if n := len(replicaSets(t, c, ns)); n != 1 {
		t.Fatalf("a paused deployment has %d replicasets", n)
	}
	for _, p := range livePods(t, c, ns) {
		if p.Spec.Containers[0].Image != "app:v1" {
			t.Errorf("pod %s runs %s while paused", p.Name, p.Spec.Containers[0].Image)
		}
	}

	mutate(t, c, ns, func(d *appsv1.Deployment) { d.Spec.Paused = false })
	d := waitRolledOut(t, c, ns)
	if d.Spec.Template.Spec.Containers[0].Image != "app:v2" || *d.Spec.Replicas != 4 {
		t.Errorf("after resume: %s x%d", d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas)
	}
}

func TestStuckRolloutExceedsProgressDeadline(t *testing.T) {
	c := servertest.StartCluster(t, []string{"n1"}, "dead")
	ns := namespace(t, c, "stuck")
	ctx := context.Background()
	createDeployment(t, c, ns, 2, "app:v1", func(d *appsv1.Deployment) {
		d.Spec.ProgressDeadlineSeconds = new(int32(2))
		d.Spec.Template.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "dead"}
	})
	eventually(t, "ProgressDeadlineExceeded", func() (bool, string) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		p := condition(d, appsv1.DeploymentProgressing)
		a := condition(d, appsv1.DeploymentAvailable)
		ok := p != nil && p.Reason == deployment.ReasonTimedOut && p.Status == corev1.ConditionFalse &&
			a != nil && a.Status == corev1.ConditionFalse && a.Reason == deployment.ReasonMinimumUnavailable &&
			d.Status.UnavailableReplicas == 2 && d.Status.UpdatedReplicas == 2
		return ok, fmt.Sprintf("%+v", d.Status)
	})
}
