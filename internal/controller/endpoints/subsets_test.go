package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func pods(n int, ready bool) []*corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	var out []*corev1.Pod
	for i := 0; i < n; i++ {
		out = append(out, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns", UID: types.UID(fmt.Sprintf("u%d", i))},
			Spec:       corev1.PodSpec{NodeName: "n"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.42.%d.%d", i/250, i%250+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
		})
	}
	return out
}

func service(mod func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "ns"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.20", Selector: map[string]string{"a": "b"},
			Ports: []corev1.ServicePort{{Name: "p", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	if mod != nil {
		mod(s)
	}
	return s
}

func TestSubsets(t *testing.T) {
	subsets, truncated := subsetsFor(service(nil), append(pods(2, true), pods(3, false)[2]))
	if truncated || len(subsets) != 1 || len(subsets[0].Addresses) != 2 || len(subsets[0].NotReadyAddresses) != 1 {
		t.Fatalf("subsets %+v", subsets)
	}
	if p := subsets[0].Ports[0]; p.Port != 8080 || p.Protocol != corev1.ProtocolTCP || p.Name != "p" {
		t.Fatalf("port %+v", p)
	}

	// publishNotReadyAddresses: all are addresses.
	subsets, _ = subsetsFor(service(func(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }), pods(3, false))
	if len(subsets) != 1 || len(subsets[0].Addresses) != 3 || len(subsets[0].NotReadyAddresses) != 0 {
		t.Fatalf("publishNotReadyAddresses subsets %+v", subsets)
	}

	// A service without ports has no endpoints unless it is headless.
	noPorts := func(s *corev1.Service) { s.Spec.Ports = nil }
	if subsets, _ = subsetsFor(service(noPorts), pods(2, true)); len(subsets) != 0 {
		t.Fatalf("portless service subsets %+v", subsets)
	}
	headless := func(s *corev1.Service) { noPorts(s); s.Spec.ClusterIP = corev1.ClusterIPNone }
	if subsets, _ = subsetsFor(service(headless), pods(2, true)); len(subsets) != 1 || len(subsets[0].Addresses) != 2 || subsets[0].Ports != nil {
		t.Fatalf("headless subsets %+v", subsets)
	}

	// Over capacity: cut at 1000, ready addresses first.
	many := append(pods(900, true), pods(1200, false)[900:]...)
	subsets, truncated = subsetsFor(service(nil), many)
	if !truncated || len(subsets[0].Addresses) != 900 || len(subsets[0].NotReadyAddresses) != 100 {
		t.Fatalf("truncated %v: %d ready, %d not ready", truncated, len(subsets[0].Addresses), len(subsets[0].NotReadyAddresses))
	}

	// Stable order whatever the pod order.
	ps := pods(5, true)
	a, _ := subsetsFor(service(nil), ps)
	b, _ := subsetsFor(service(nil), []*corev1.Pod{ps[4], ps[2], ps[0], ps[3], ps[1]})
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("order depends on the pods' order:\n%v\n%v", a, b)
	}
}
