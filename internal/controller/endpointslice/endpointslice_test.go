package endpointslice_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/controller/endpointslice"
	"skiff/internal/server/servertest"
)

func newPod(ns, name, node string, labels map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: ports}}},
	}
}

// start creates p and makes it Running with ip and the given readiness.
func start(t *testing.T, c kubernetes.Interface, p *corev1.Pod, ip string, ready bool) {
	t.Helper()
	if _, err := c.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", p.Name, err)
	}
	servertest.SetPodRunning(t, c, p.Namespace, p.Name, ip, ready)
}

func slicesOf(c kubernetes.Interface, ns, svc string) ([]discoveryv1.EndpointSlice, error) {
	l, err := c.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// describe renders a service's endpoints across its slices: one
// "ip:ports:r/s/t" per endpoint (ready, serving, terminating as 1/0),
// sorted.
func describe(items []discoveryv1.EndpointSlice) string {
	var out []string
	for _, s := range items {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s=%d", *p.Name, *p.Port))
		}
		sort.Strings(ports)
		for _, e := range s.Endpoints {
			b := func(p *bool) string {
				if p != nil && *p {
					return "1"
				}
				return "0"
			}
			c := e.Conditions
			out = append(out, fmt.Sprintf("%s:%s:%s%s%s", e.Addresses[0], strings.Join(ports, ","), b(c.Ready), b(c.Serving), b(c.Terminating)))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func expectSlices(t *testing.T, c kubernetes.Interface, ns, svc, want string) []discoveryv1.EndpointSlice {
	t.Helper()
	var items []discoveryv1.EndpointSlice
	servertest.Eventually(t, 15*time.Second, "slices of "+svc, func() error {
		var err error
		if items, err = slicesOf(c, ns, svc); err != nil {
			return err
		}
		if got := describe(items); got != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
		return nil
	})
	return items
}

func TestEndpointSlicesFollowPods(t *testing.T) {
	s := servertest.Start(t, "", servertest.SlowNodeMonitor)
	c := s.Client(t)
	ctx := context.Background()
	const ns = "default"
	servertest.AddNode(t, c, "node-a")

	web := map[string]string{"app": "web"}
	svc, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: web, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No pods: one empty placeholder slice.
	var items []discoveryv1.EndpointSlice
	servertest.Eventually(t, 15*time.Second, "placeholder slice", func() error {
		items, err = slicesOf(c, ns, "web")
		if err == nil && (len(items) != 1 || len(items[0].Endpoints) != 0) {
			err = fmt.Errorf("%d slices (%s), want 1 empty placeholder", len(items), describe(items))
		}
		return err
	})
	sl := items[0]
	if sl.Labels[discoveryv1.LabelManagedBy] != endpointslice.ManagedBy || sl.Labels["tier"] != "front" {
		t.Errorf("slice labels %v", sl.Labels)
	}
	if len(sl.OwnerReferences) != 1 || sl.OwnerReferences[0].UID != svc.UID || sl.OwnerReferences[0].Controller == nil || !*sl.OwnerReferences[0].Controller {
		t.Errorf("slice owner references %v: want the service as controller", sl.OwnerReferences)
	}

	start(t, c, newPod(ns, "a", "node-a", web, corev1.ContainerPort{Name: "http", ContainerPort: 8080}), "10.42.0.10", true)
	start(t, c, newPod(ns, "b", "node-a", web, corev1.ContainerPort{Name: "http", ContainerPort: 8081}), "10.42.0.11", false)
	items = expectSlices(t, c, ns, "web", "10.42.0.10:http=8080:110 10.42.0.11:http=8081:000")
	if len(items) != 2 {
		t.Errorf("%d slices, want 2 (one per port set)", len(items))
	}
	for _, sl := range items {
		for _, e := range sl.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || e.NodeName == nil || *e.NodeName != "node-a" {
				t.Errorf("endpoint %+v: want a pod reference and node name", e)
			}
		}
	}

	// Readiness follows the pods.
	servertest.SetPodRunning(t, c, ns, "b", "", true)
	expectSlices(t, c, ns, "web", "10.42.0.10:http=8080:110 10.42.0.11:http=8081:110")

	// A terminating pod stays, serving but not ready.
	if err := c.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectSlices(t, c, ns, "web", "10.42.0.10:http=8080:011 10.42.0.11:http=8081:110")

	// publishNotReadyAddresses makes every endpoint ready.
	svc, _ = c.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	svc.Spec.PublishNotReadyAddresses = true
	if _, err := c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.SetPodRunning(t, c, ns, "b", "", false)
	expectSlices(t, c, ns, "web", "10.42.0.10:http=8080:111 10.42.0.11:http=8081:100")

	// A slice deleted by someone else comes back.
	items, _ = slicesOf(c, ns, "web")
	if err := c.DiscoveryV1().EndpointSlices(ns).Delete(ctx, items[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectSlices(t, c, ns, "web", "10.42.0.10:http=8080:111 10.42.0.11:http=8081:100")

	// The service gone, its slices go.
	if err := c.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 15*time.Second, "slices deleted with the service", func() error {
		items, err := slicesOf(c, ns, "web")
		if err != nil {
			return err
		}
		if len(items) > 0 {
			return fmt.Errorf("%d slices left", len(items))
		}
		return nil
	})

	// The API server's own slice is left alone.
	k, err := slicesOf(c, ns, "kubernetes")
	if err != nil || len(k) != 1 || k[0].Labels[discoveryv1.LabelManagedBy] == endpointslice.ManagedBy {
		t.Errorf("default/kubernetes slices: %v %v", k, err)
	}
}

func TestEndpointSlicesSplitAt100(t *testing.T) {
	s := servertest.Start(t, "", servertest.SlowNodeMonitor)
	c := s.Client(t)
	ctx := context.Background()
	const ns = "default"
	servertest.AddNode(t, c, "node-a")
	big := map[string]string{"app": "big"}
	if _, err := c.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "big"},
		Spec:       corev1.ServiceSpec{Selector: big, Ports: []corev1.ServicePort{{Name: "p", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 110
	for i := 0; i < n; i++ {
		start(t, c, newPod(ns, fmt.Sprintf("big-%d", i), "node-a", big), fmt.Sprintf("10.42.%d.%d", 1+i/200, 1+i%200), true)
	}
	servertest.Eventually(t, 20*time.Second, "110 endpoints in two slices", func() error {
		items, err := slicesOf(c, ns, "big")
		if err != nil {
			return err
		}
		total := 0
		for _, sl := range items {
			if len(sl.Endpoints) > endpointslice.MaxEndpointsPerSlice {
				return fmt.Errorf("slice %s has %d endpoints", sl.Name, len(sl.Endpoints))
			}
			total += len(sl.Endpoints)
		}
		if total != n || len(items) != 2 {
			return fmt.Errorf("%d endpoints in %d slices", total, len(items))
		}
		return nil
	})
}
