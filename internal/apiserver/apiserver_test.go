package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "test"}}, Data: data}
}

func pod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "main", Image: "busybox:1.36"}},
		},
	}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
}

func TestCRUDAndConflict(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")

	created, err := cms.Create(ctx, configMap("one", map[string]string{"k": "v"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.CreationTimestamp.IsZero() {
		t.Fatalf("server-set metadata missing: %+v", created.ObjectMeta)
	}
	if _, err := cms.Create(ctx, configMap("one", nil), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: want AlreadyExists, got %v", err)
	}
	got, err := cms.Get(ctx, "one", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("get: %v %+v", err, got)
	}

	got.Data["k"] = "v2"
	updated, err := cms.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.ResourceVersion == got.ResourceVersion {
		t.Fatalf("resourceVersion did not change on update")
	}
	// got still has the old resourceVersion: a stale write must conflict.
	got.Data["k"] = "stale"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: want Conflict, got %v", err)
	}
	// Without a resourceVersion the update is unconditional.
	got.ResourceVersion = ""
	got.Data["k"] = "v3"
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("unconditional update: %v", err)
	}

	// Delete preconditions.
	wrong := types.UID("not-the-uid")
	err = cms.Delete(ctx, "one", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}})
	if !apierrors.IsConflict(err) {
		t.Fatalf("delete with wrong uid: want Conflict, got %v", err)
	}
	if err := cms.Delete(ctx, "one", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &created.UID}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := cms.Get(ctx, "one", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: want NotFound, got %v", err)
	}

	// generateName.
	gen, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
	if err != nil || !strings.HasPrefix(gen.Name, "gen-") || len(gen.Name) != len("gen-")+5 {
		t.Fatalf("generateName: %v %q", err, gen.Name)
	}
}

func TestValidationAndNamespaces(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)

	_, err := c.CoreV1().ConfigMaps("default").Create(ctx, configMap("Bad_Name", nil), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("invalid name: want Invalid, got %v", err)
	}
	if st := err.(apierrors.APIStatus).Status(); st.Details == nil || len(st.Details.Causes) == 0 || st.Details.Causes[0].Field != "metadata.name" {
		t.Fatalf("invalid name: want a cause on metadata.name, got %+v", st.Details)
	}
	_, err = c.CoreV1().ConfigMaps("nowhere").Create(ctx, configMap("x", nil), metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `namespaces "nowhere" not found`) {
		t.Fatalf("missing namespace: want NotFound naming the namespace, got %v", err)
	}
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		n, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil || n.Status.Phase != corev1.NamespaceActive {
			t.Fatalf("namespace %s: %v %v", ns, err, n.Status.Phase)
		}
	}
	kube, err := c.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || kube.Spec.ClusterIP != "10.43.0.1" {
		t.Fatalf("default/kubernetes service: %v %+v", err, kube)
	}

	// A terminating namespace refuses new content.
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Namespaces().Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace: want Terminating, got %v %+v", err, ns.Status)
	}
	_, err = c.CoreV1().ConfigMaps("doomed").Create(ctx, configMap("x", nil), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("create in terminating namespace: want Forbidden, got %v", err)
	}
	// Finalizing it (what the namespace controller does once empty) removes it.
	ns.Spec.Finalizers = nil
	if _, err := c.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if _, err := c.CoreV1().Namespaces().Get(ctx, "doomed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("finalized namespace: want NotFound, got %v", err)
	}
}

func TestDefaultsGenerationAndStatusSplit(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	deps := c.AppsV1().Deployments("default")

	d, err := deps.Create(ctx, deployment("web", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if d.Generation != 1 {
		t.Fatalf("generation on create = %d, want 1", d.Generation)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.RevisionHistoryLimit == nil || *d.Spec.RevisionHistoryLimit != 10 {
		t.Fatalf("deployment defaults missing: %+v", d.Spec)
	}
	if pp := d.Spec.Template.Spec.Containers[0].ImagePullPolicy; pp != corev1.PullIfNotPresent {
		t.Fatalf("imagePullPolicy for a tagged image = %q, want IfNotPresent", pp)
	}

	// Status written through the main resource is ignored.
	d.Status.Replicas = 7
	d.Labels = map[string]string{"changed": "label"}
	d, err = deps.Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.Replicas != 0 {
		t.Fatalf("status changed through the main resource: %+v", d.Status)
	}
	if d.Generation != 1 {
		t.Fatalf("a metadata-only change bumped generation to %d", d.Generation)
	}

	// Spec written through /status is ignored; status is kept.
	d.Status.Replicas = 2
	d.Spec.Replicas = ptr.To(int32(9))
	d, err = deps.UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Status.Replicas != 2 || *d.Spec.Replicas != 2 {
		t.Fatalf("status update: want status 2 and spec 2, got status %d spec %d", d.Status.Replicas, *d.Spec.Replicas)
	}

	// Scale subresource reads and writes spec.replicas and bumps generation.
	sc, err := deps.GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 2 || sc.Status.Selector != "app=web" {
		t.Fatalf("get scale: %v %+v", err, sc)
	}
	sc.Spec.Replicas = 5
	if _, err := deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update scale: %v", err)
	}
	if _, err := deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":4}}`), metav1.PatchOptions{}, "scale"); err != nil {
		t.Fatalf("patch scale: %v", err)
	}
	d, _ = deps.Get(ctx, "web", metav1.GetOptions{})
	if *d.Spec.Replicas != 4 || d.Generation != 3 {
		t.Fatalf("after scaling: replicas %d generation %d, want 4 and 3", *d.Spec.Replicas, d.Generation)
	}
	sc.Spec.Replicas = -1
	if _, err := deps.UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("negative scale: want Invalid, got %v", err)
	}
}

func TestPatchTypes(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	deps := c.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, deployment("web", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Strategic merge: containers merge by name, so a sidecar is added.
	d, err := deps.Patch(ctx, "web", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}`), metav1.PatchOptions{})
	if err != nil || len(d.Spec.Template.Spec.Containers) != 2 {
		t.Fatalf("strategic merge patch: %v, containers %d", err, len(d.Spec.Template.Spec.Containers))
	}
	// Merge patch: lists are replaced.
	d, err = deps.Patch(ctx, "web", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"tier":"front"}},"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}`), metav1.PatchOptions{})
	if err != nil || len(d.Spec.Template.Spec.Containers) != 1 || d.Labels["tier"] != "front" {
		t.Fatalf("merge patch: %v %+v", err, d.Spec.Template.Spec.Containers)
	}
	// JSON patch.
	d, err = deps.Patch(ctx, "web", types.JSONPatchType,
		[]byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.29"}]`), metav1.PatchOptions{})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "nginx:1.29" {
		t.Fatalf("json patch: %v", err)
	}
	_, err = deps.Patch(ctx, "web", types.JSONPatchType, []byte(`[{"op":"frobnicate","path":"/spec"}]`), metav1.PatchOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("unknown json patch op: want BadRequest, got %v", err)
	}
	_, err = deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":`), metav1.PatchOptions{})
	if !apierrors.IsBadRequest(err) {
		t.Fatalf("malformed merge patch: want BadRequest, got %v", err)
	}
	_, err = deps.Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":""}]}}}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("patch to an invalid object: want Invalid, got %v", err)
	}
	_, err = deps.Patch(ctx, "missing", types.MergePatchType, []byte(`{}`), metav1.PatchOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("patch of a missing object: want NotFound, got %v", err)
	}
}

func TestSelectors(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	pods := c.CoreV1().Pods("default")
	for _, p := range []*corev1.Pod{pod("a", "node1"), pod("b", "node2"), pod("c", "")} {
		if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node1"})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "a" {
		t.Fatalf("field selector spec.nodeName: %v %v", err, names(l))
	}
	l, err = pods.List(ctx, metav1.ListOptions{LabelSelector: "app in (b,c)"})
	if err != nil || strings.Join(names(l), ",") != "b,c" {
		t.Fatalf("label selector: %v %v", err, names(l))
	}
	l, err = pods.List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Pending,metadata.name!=a"})
	if err != nil || strings.Join(names(l), ",") != "b,c" {
		t.Fatalf("field selector status.phase: %v %v", err, names(l))
	}
	l, err = c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace=default"})
	if err != nil || len(l.Items) != 3 {
		t.Fatalf("all-namespaces list: %v %v", err, names(l))
	}
	if _, err := pods.List(ctx, metav1.ListOptions{FieldSelector: "spec.nope=x"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("unsupported field: want BadRequest, got %v", err)
	}
}

func names(l *corev1.PodList) []string {
	if l == nil {
		return nil
	}
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name)
	}
	return out
}

func TestPodGracefulDeletionAndFinalizers(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	pods := c.CoreV1().Pods("default")

	if _, err := pods.Create(ctx, pod("unbound", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "unbound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "unbound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unbound pod: want deleted at once, got %v", err)
	}

	if _, err := pods.Create(ctx, pod("bound", "node1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "bound", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "bound", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("bound pod: want pending deletion with 30s grace, got %v %+v", err, p.ObjectMeta)
	}
	// The kubelet finishes the deletion with a zero grace period.
	if err := pods.Delete(ctx, "bound", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "bound", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("bound pod after grace 0: want NotFound, got %v", err)
	}

	cm := configMap("held", nil)
	cm.Finalizers = []string{"example.com/hold"}
	cms := c.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cms.Get(ctx, "held", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("object with a finalizer: want it kept with a deletionTimestamp, got %v", err)
	}
	got.Finalizers = nil
	if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after removing the last finalizer: want NotFound, got %v", err)
	}
}

func TestWatchResumeAndCompaction(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")

	first, err := cms.Create(ctx, configMap("w0", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := cms.Create(ctx, configMap(fmt.Sprintf("w%d", i), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		ev := next(t, w)
		if ev.Type != watch.Added || ev.Object.(*corev1.ConfigMap).Name != fmt.Sprintf("w%d", i) {
			t.Fatalf("event %d: %v %v", i, ev.Type, ev.Object)
		}
	}
	if err := cms.Delete(ctx, "w1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, w); ev.Type != watch.Deleted || ev.Object.(*corev1.ConfigMap).Name != "w1" {
		t.Fatalf("delete event: %v %v", ev.Type, ev.Object)
	}
	w.Stop()

	// Compact past the first revision: watching from it must answer 410.
	etcd := s.EtcdClient(t)
	latest, err := cms.Create(ctx, configMap("w9", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	fmt.Sscan(latest.ResourceVersion, &rev)
	if _, err := etcd.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	_, err = cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err == nil {
		t.Fatalf("watch from a compacted revision: want 410 Expired, got a watch")
	}
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("watch from a compacted revision: want 410, got %v", err)
	}
}

func next(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatalf("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no watch event within 10s")
	}
	return watch.Event{}
}

func TestSendInitialEventsAndInformer(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")
	for i := 0; i < 5; i++ {
		if _, err := cms.Create(ctx, configMap(fmt.Sprintf("i%d", i), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{
		SendInitialEvents:    ptr.To(true),
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan,
		AllowWatchBookmarks:  true,
		LabelSelector:        "app=test",
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for {
		ev := next(t, w)
		if ev.Type == watch.Bookmark {
			m := ev.Object.(*corev1.ConfigMap)
			if m.Annotations["k8s.io/initial-events-end"] != "true" || m.ResourceVersion == "" {
				t.Fatalf("bookmark without the initial-events-end annotation: %+v", m.ObjectMeta)
			}
			break
		}
		if ev.Type != watch.Added {
			t.Fatalf("initial event: %v", ev.Type)
		}
		seen++
	}
	w.Stop()
	if seen != 5 {
		t.Fatalf("initial events: %d, want 5", seen)
	}

	// A client-go informer (WatchList by default) syncs and follows changes.
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().ConfigMaps().Informer()
	added := make(chan string, 100)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj interface{}) { added <- obj.(*corev1.ConfigMap).Name }})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	if n := len(inf.GetStore().List()); n != 5 {
		t.Fatalf("informer cache holds %d objects, want 5", n)
	}
	if _, err := cms.Create(ctx, configMap("late", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-added:
			if n == "late" {
				return
			}
		case <-deadline:
			t.Fatal("informer did not see a new object within 10s")
		}
	}
}

func TestClusterIPsUniqueUnderConcurrentCreates(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	const n = 50
	var wg sync.WaitGroup
	ips := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			svc := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "x"},
					Ports: []corev1.ServicePort{{Port: 80}}},
			}
			out, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
			if err == nil {
				ips[i] = out.Spec.ClusterIP + fmt.Sprintf("/%d", out.Spec.Ports[0].NodePort)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	seenIP, seenPort := map[string]bool{}, map[string]bool{}
	_, cidr, _ := net.ParseCIDR("10.43.0.0/16")
	for i := range ips {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		ip, port, _ := strings.Cut(ips[i], "/")
		if seenIP[ip] || seenPort[port] {
			t.Fatalf("duplicate allocation %s", ips[i])
		}
		seenIP[ip], seenPort[port] = true, true
		if !cidr.Contains(net.ParseIP(ip)) {
			t.Fatalf("cluster IP %s outside 10.43.0.0/16", ip)
		}
	}
	// A requested IP that is taken is refused; freed on delete, it can be had.
	taken := strings.Split(ips[0], "/")[0]
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "want-ip"}, Spec: corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("taken cluster IP: want Invalid, got %v", err)
	}
	if err := c.CoreV1().Services("default").Delete(ctx, "svc-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("freed cluster IP: %v", err)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, dir, servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, configMap("keep", map[string]string{"a": "b"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config
	s.Stop(t)
	s2 := servertest.StartConfig(t, cfg)
	got, err := s2.Client(t).CoreV1().ConfigMaps("default").Get(ctx, "keep", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "b" {
		t.Fatalf("after restart: %v %+v", err, got)
	}
}

func TestAuthentication(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	rc := s.RESTConfig(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rc.CAData)
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	for path, want := range map[string]int{"/api/v1/namespaces": 401, "/apis": 401, "/healthz": 200, "/readyz": 200, "/livez": 200, "/version": 200} {
		resp, err := anon.Get(rc.Host + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("anonymous GET %s: %d, want %d (%s)", path, resp.StatusCode, want, body)
		}
		if want == 401 {
			var st metav1.Status
			if err := json.Unmarshal(body, &st); err != nil || st.Reason != metav1.StatusReasonUnauthorized {
				t.Fatalf("401 body is not a Status: %s", body)
			}
		}
	}
	token, err := os.ReadFile(s.DataDir + "/server/token")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", rc.Host+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The join token joins nodes; it is never an API credential.
	if resp.StatusCode != 401 {
		t.Fatalf("the join token as a bearer token: %d, want 401", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err = anon.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong bearer token: %d, want 401", resp.StatusCode)
	}
}

func TestBadRequests(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t).(*kubernetes.Clientset)
	rc := c.CoreV1().RESTClient()
	ctx := ctxT(t)
	cases := []struct {
		name, contentType string
		body              []byte
		code              int
	}{
		{"malformed json", "application/json", []byte(`{"metadata":`), 400},
		{"wrong kind", "application/json", []byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}`), 400},
		{"cbor", "application/cbor", []byte{1, 2, 3}, 415},
		{"bad protobuf", "application/vnd.kubernetes.protobuf", []byte{1, 2, 3}, 400},
		{"too large", "application/json", append([]byte(`{"metadata":{"name":"big"},"data":{"k":"`), make([]byte, 4<<20)...), 413},
		{"missing name", "application/json", []byte(`{"metadata":{}}`), 422},
	}
	for _, tc := range cases {
		res := rc.Post().Namespace("default").Resource("configmaps").SetHeader("Content-Type", tc.contentType).Body(tc.body).Do(ctx)
		var code int
		res.StatusCode(&code)
		if code != tc.code {
			t.Errorf("%s: status %d, want %d (%v)", tc.name, code, tc.code, res.Error())
		}
	}
	// kubectl auth can-i and whoami.
	ssar, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods"}}}, metav1.CreateOptions{})
	if err != nil || !ssar.Status.Allowed {
		t.Fatalf("self subject access review: %v %+v", err, ssar)
	}
	ssr, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || ssr.Status.UserInfo.Username != "system:admin" {
		t.Fatalf("self subject review: %v %+v", err, ssr)
	}
	// Table output as kubectl asks for it.
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod("tbl", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := rc.Get().Namespace("default").Resource("pods").SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tbl metav1.Table
	if err := json.Unmarshal(raw, &tbl); err != nil || tbl.Kind != "Table" || len(tbl.Rows) != 1 {
		t.Fatalf("table: %v %s", err, raw)
	}
	var cols []string
	for _, col := range tbl.ColumnDefinitions {
		if col.Priority == 0 {
			cols = append(cols, col.Name)
		}
	}
	if strings.Join(cols, " ") != "Name Ready Status Restarts Age" || tbl.Rows[0].Cells[0] != "tbl" || tbl.Rows[0].Cells[2] != "Pending" {
		t.Fatalf("pod table: columns %v row %v", cols, tbl.Rows[0].Cells)
	}
}

func TestWatchTimeoutAndTableEvents(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t).(*kubernetes.Clientset)
	ctx := ctxT(t)
	w, err := c.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To(int64(1)), ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	closed := time.After(15 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-w.ResultChan():
		case <-closed:
			t.Fatal("watch with timeoutSeconds=1 still open after 15s")
		}
	}

	// kubectl get -w asks for tables: each event carries a one-row Table.
	stream, err := c.CoreV1().RESTClient().Get().Namespace("default").Resource("pods").
		Param("watch", "true").SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod("watched", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Type   string
		Object metav1.Table
	}
	if err := json.NewDecoder(stream).Decode(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "ADDED" || ev.Object.Kind != "Table" || len(ev.Object.Rows) != 1 || ev.Object.Rows[0].Cells[0] != "watched" {
		t.Fatalf("table watch event: %+v", ev)
	}
}

func TestPropagationPolicyFinalizers(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")
	for policy, finalizer := range map[metav1.DeletionPropagation]string{
		metav1.DeletePropagationForeground: metav1.FinalizerDeleteDependents,
		metav1.DeletePropagationOrphan:     metav1.FinalizerOrphanDependents,
	} {
		name := strings.ToLower(string(policy))
		if _, err := cms.Create(ctx, configMap(name, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
			t.Fatal(err)
		}
		got, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil || got.DeletionTimestamp == nil || len(got.Finalizers) != 1 || got.Finalizers[0] != finalizer {
			t.Fatalf("%s delete: want deletionTimestamp and finalizer %s, got %v %+v", policy, finalizer, err, got.ObjectMeta)
		}
	}
	bad := metav1.DeletionPropagation("Sideways")
	if _, err := cms.Create(ctx, configMap("bad", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "bad", metav1.DeleteOptions{PropagationPolicy: &bad}); !apierrors.IsInvalid(err) {
		t.Fatalf("unknown propagationPolicy: want Invalid, got %v", err)
	}
}

func TestDefaultStorageClass(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}}, Provisioner: "example.com/fast"}
	if _, err := c.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	got, err := c.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.StorageClassName == nil || *got.Spec.StorageClassName != "fast" || got.Status.Phase != corev1.ClaimPending {
		t.Fatalf("claim without a class: want class fast and phase Pending, got %v %v", got.Spec.StorageClassName, got.Status.Phase)
	}
}

func TestEventsExpire(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.EventTTL = 2 * time.Second })
	c := s.Client(t)
	ctx := ctxT(t)
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
		Reason:         "Test", Message: "expires", Type: corev1.EventTypeNormal,
	}
	created, err := c.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// An update keeps the expiry.
	created.Count = 2
	if _, err := c.CoreV1().Events("default").Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, configMap("stays", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.CoreV1().Events("default").Get(ctx, "web.1", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event still there 30s after a 2s TTL: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, err := c.CoreV1().ConfigMaps("default").Get(ctx, "stays", metav1.GetOptions{}); err != nil {
		t.Fatalf("a configmap must not expire: %v", err)
	}
}
