package endpoints_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/server/servertest"
)

func newPod(ns, name, node string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: ports}}},
	}
}

// start makes a pod Running with ip and the given readiness, as a kubelet
// would.
func start(t *testing.T, c kubernetes.Interface, p *corev1.Pod, ip string, ready bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	cur, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	return servertest.SetPodRunning(t, c, cur.Namespace, cur.Name, ip, ready)
}

// describe renders an Endpoints compactly: "ports|ready ips|notready ips"
// per subset, subsets sorted.
func describe(ep *corev1.Endpoints) string {
	var parts []string
	for _, s := range ep.Subsets {
		var ports, ready, notReady []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", p.Name, p.Port))
		}
		for _, a := range s.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range s.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
		sort.Strings(ports)
		sort.Strings(ready)
		sort.Strings(notReady)
		parts = append(parts, strings.Join(ports, ",")+"|"+strings.Join(ready, ",")+"|"+strings.Join(notReady, ","))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func expectEndpoints(t *testing.T, c kubernetes.Interface, ns, name, want string) *corev1.Endpoints {
	t.Helper()
	var ep *corev1.Endpoints
	servertest.Eventually(t, 15*time.Second, "endpoints "+name, func() error {
		var err error
		ep, err = c.CoreV1().Endpoints(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := describe(ep); got != want {
			pods, _ := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
			var ps []string
			for _, p := range pods.Items {
				ps = append(ps, fmt.Sprintf("%s(%s,%v,%s,%v)", p.Name, p.Status.Phase, p.DeletionTimestamp, p.Status.PodIP, p.Labels))
			}
			return fmt.Errorf("got %q, want %q; pods %v", got, want, ps)
		}
		return nil
	})
	return ep
}

func TestEndpointsFollowPods(t *testing.T) {
	s := servertest.Start(t, "", servertest.SlowNodeMonitor)
	c := s.Client(t)
	ctx := context.Background()
	const ns = "default"
	servertest.AddNode(t, c, "node-a")

	apiBefore, err := c.CoreV1().Endpoints(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	web := map[string]string{"app": "web"}
	svc, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: web, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "metrics", Port: 9090, TargetPort: intstr.FromInt32(9090)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := expectEndpoints(t, c, ns, "web", "")
	if ep.Labels["tier"] != "front" {
		t.Errorf("endpoints labels %v: want the service's", ep.Labels)
	}

	// Named target ports resolve per pod.
	a := start(t, c, newPod(ns, "a", "node-a", web, corev1.ContainerPort{Name: "http", ContainerPort: 8080}), "10.42.0.10", true)
	b := start(t, c, newPod(ns, "b", "node-a", web, corev1.ContainerPort{Name: "http", ContainerPort: 8081}), "10.42.0.11", true)
	// No port named http: only the numeric port.
	start(t, c, newPod(ns, "c", "node-a", web), "10.42.0.12", true)
	// Not selected; no address yet; finished.
	start(t, c, newPod(ns, "other", "node-a", map[string]string{"app": "db"}), "10.42.0.13", true)
	if _, err := c.CoreV1().Pods(ns).Create(ctx, newPod(ns, "pending", "", web), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := start(t, c, newPod(ns, "done", "node-a", web), "10.42.0.14", false)
	done.Status.Phase = corev1.PodSucceeded
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(ctx, done, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep = expectEndpoints(t, c, ns, "web",
		"http:8080,metrics:9090|10.42.0.10| http:8081,metrics:9090|10.42.0.11| metrics:9090|10.42.0.12|")
	for _, s := range ep.Subsets {
		for _, addr := range s.Addresses {
			if addr.TargetRef == nil || addr.TargetRef.Kind != "Pod" || addr.NodeName == nil || *addr.NodeName != "node-a" {
				t.Errorf("address %+v: want a pod reference and node name", addr)
			}
		}
	}

	// Readiness flips move the address between lists.
	servertest.SetPodRunning(t, c, a.Namespace, a.Name, "", false)
	expectEndpoints(t, c, ns, "web",
		"http:8080,metrics:9090||10.42.0.10 http:8081,metrics:9090|10.42.0.11| metrics:9090|10.42.0.12|")
	servertest.SetPodRunning(t, c, a.Namespace, a.Name, "", true)
	expectEndpoints(t, c, ns, "web",
		"http:8080,metrics:9090|10.42.0.10| http:8081,metrics:9090|10.42.0.11| metrics:9090|10.42.0.12|")

	// A label change takes a pod out.
	cur, _ := c.CoreV1().Pods(ns).Get(ctx, b.Name, metav1.GetOptions{})
	cur.Labels = map[string]string{"app": "gone"}
	if _, err := c.CoreV1().Pods(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectEndpoints(t, c, ns, "web", "http:8080,metrics:9090|10.42.0.10| metrics:9090|10.42.0.12|")

	// Deleting a pod takes it out (a terminating pod no longer counts).
	if err := c.CoreV1().Pods(ns).Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectEndpoints(t, c, ns, "web", "http:8080,metrics:9090|10.42.0.10|")

	// publishNotReadyAddresses lists not-ready pods as addresses, and
	// terminating ones too (c has no kubelet to finish it).
	svc, _ = c.CoreV1().Services(ns).Get(ctx, svc.Name, metav1.GetOptions{})
	svc.Spec.PublishNotReadyAddresses = true
	if _, err := c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.SetPodRunning(t, c, a.Namespace, a.Name, "", false)
	expectEndpoints(t, c, ns, "web", "http:8080,metrics:9090|10.42.0.10| metrics:9090|10.42.0.12|")

	// Someone else's edit is put back.
	ep, _ = c.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
	ep.Subsets = nil
	if _, err := c.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectEndpoints(t, c, ns, "web", "http:8080,metrics:9090|10.42.0.10| metrics:9090|10.42.0.12|")

	// The service gone, its endpoints go.
	if err := c.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 15*time.Second, "endpoints deleted with the service", func() error {
		_, err := c.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("endpoints still there (%v)", err)
	})

	apiAfter, err := c.CoreV1().Endpoints(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(apiBefore.Subsets, apiAfter.Subsets) {
		t.Errorf("default/kubernetes endpoints changed: %v → %v", apiBefore.Subsets, apiAfter.Subsets)
	}
}

func TestEndpointsHeadlessAndSelectorless(t *testing.T) {
	s := servertest.Start(t, "", servertest.SlowNodeMonitor)
	c := s.Client(t)
	ctx := context.Background()
	const ns = "default"
	servertest.AddNode(t, c, "node-a")

	db := map[string]string{"app": "db"}
	p := newPod(ns, "db-0", "node-a", db)
	p.Spec.Hostname, p.Spec.Subdomain = "db-0", "db"
	start(t, c, p, "10.42.0.20", false)

	// Headless without ports: addresses with no ports.
	if _, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: db},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ep := expectEndpoints(t, c, ns, "db", "||10.42.0.20")
	if _, ok := ep.Labels["service.kubernetes.io/headless"]; !ok {
		t.Errorf("headless endpoints labels %v: want service.kubernetes.io/headless", ep.Labels)
	}
	if h := ep.Subsets[0].NotReadyAddresses[0].Hostname; h != "db-0" {
		t.Errorf("hostname %q, want db-0 (pod subdomain names the service)", h)
	}

	// Without a selector the endpoints are the user's.
	if _, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "external"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mine := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "external", Namespace: ns},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}},
			Ports: []corev1.EndpointPort{{Port: 5432, Protocol: corev1.ProtocolTCP}}}},
	}
	if _, err := c.CoreV1().Endpoints(ns).Create(ctx, mine, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Change the service so that it is synced with the user's endpoints in
	// place, then wait for a service created after it: by then the
	// controller has had its say about "external".
	ext, err := c.CoreV1().Services(ns).Get(ctx, "external", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ext.Labels = map[string]string{"touched": "yes"}
	if _, err := c.CoreV1().Services(ns).Update(ctx, ext, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "barrier"},
		Spec:       corev1.ServiceSpec{Selector: db, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectEndpoints(t, c, ns, "barrier", ":80||10.42.0.20")
	got, err := c.CoreV1().Endpoints(ns).Get(ctx, "external", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if describe(got) != ":5432|192.0.2.10|" {
		t.Errorf("user endpoints changed: %s", describe(got))
	}
}
