package endpointslice

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	}
}

func testPods(n, port int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := 0; i < n; i++ {
		out = append(out, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%03d", i), Namespace: "ns", UID: types.UID(fmt.Sprintf("uid-%03d-%d", i, port))},
			Spec: corev1.PodSpec{NodeName: "n", Containers: []corev1.Container{{Name: "c",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.42.%d.%d", i/250, i%250+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	return out
}

// apply stores a plan's results as the new "existing" slices.
func apply(existing []*discoveryv1.EndpointSlice, p plan) []*discoveryv1.EndpointSlice {
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		byName[s.Name] = s
	}
	for _, s := range p.deletes {
		delete(byName, s.Name)
	}
	for _, s := range p.updates {
		byName[s.Name] = s
	}
	for i, s := range p.creates {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%s%d-%d", s.GenerateName, len(byName), i)
		byName[s.Name] = s
	}
	var out []*discoveryv1.EndpointSlice
	for _, s := range byName {
		out = append(out, s)
	}
	return out
}

func count(slices []*discoveryv1.EndpointSlice) (endpoints int) {
	for _, s := range slices {
		endpoints += len(s.Endpoints)
	}
	return endpoints
}

func TestReconcile(t *testing.T) {
	svc := testService()
	noZone := func(string) string { return "" }

	// No pods: one placeholder.
	p := reconcile(svc, nil, desiredEndpoints(svc, nil, noZone))
	if len(p.creates) != 1 || len(p.creates[0].Endpoints) != 0 || len(p.creates[0].Ports) != 0 {
		t.Fatalf("placeholder plan %+v", p)
	}
	state := apply(nil, p)

	// 250 pods: the placeholder is reused, then 100 per slice.
	p = reconcile(svc, state, desiredEndpoints(svc, testPods(250, 8080), noZone))
	if len(p.updates) != 1 || len(p.creates) != 2 || len(p.deletes) != 0 {
		t.Fatalf("250 endpoints: %d updates, %d creates, %d deletes", len(p.updates), len(p.creates), len(p.deletes))
	}
	state = apply(state, p)
	for _, s := range state {
		if len(s.Endpoints) > MaxEndpointsPerSlice {
			t.Fatalf("slice with %d endpoints", len(s.Endpoints))
		}
		if s.Labels[discoveryv1.LabelServiceName] != "web" || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
			t.Fatalf("labels %v", s.Labels)
		}
	}
	if count(state) != 250 {
		t.Fatalf("%d endpoints", count(state))
	}

	// Nothing changed: nothing to write.
	if p = reconcile(svc, state, desiredEndpoints(svc, testPods(250, 8080), noZone)); len(p.creates)+len(p.updates)+len(p.deletes) != 0 {
		t.Fatalf("steady state plan %+v", p)
	}

	// One pod less touches one slice only.
	p = reconcile(svc, state, desiredEndpoints(svc, testPods(249, 8080), noZone))
	if len(p.updates) != 1 || len(p.creates)+len(p.deletes) != 0 {
		t.Fatalf("one pod less: %d updates, %d creates, %d deletes", len(p.updates), len(p.creates), len(p.deletes))
	}
	state = apply(state, p)

	// The named port resolves to another number: slices are rewritten.
	p = reconcile(svc, state, desiredEndpoints(svc, testPods(10, 9090), noZone))
	state = apply(state, p)
	if len(state) != 1 || count(state) != 10 || *state[0].Ports[0].Port != 9090 {
		t.Fatalf("after port change: %d slices, %d endpoints", len(state), count(state))
	}

	// A slice of an older service of the same name is deleted.
	stale := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-old", Namespace: "ns",
		OwnerReferences: []metav1.OwnerReference{{UID: "old-uid"}}}}
	p = reconcile(svc, append(state, stale), desiredEndpoints(svc, testPods(10, 9090), noZone))
	if len(p.deletes) != 1 || p.deletes[0].Name != "web-old" || len(p.updates)+len(p.creates) != 0 {
		t.Fatalf("stale slice plan %+v", p)
	}
}

func TestEndpointConditions(t *testing.T) {
	svc := testService()
	pods := testPods(3, 8080)
	pods[1].Status.Conditions[0].Status = corev1.ConditionFalse
	now := metav1.Now()
	pods[2].DeletionTimestamp = &now
	finished := testPods(4, 8080)[3]
	finished.Status.Phase = corev1.PodSucceeded
	noIP := testPods(5, 8080)[4]
	noIP.Status.PodIP = ""
	got := desiredEndpoints(svc, append(pods, finished, noIP), func(string) string { return "zone-a" })
	var eps []endpoint
	for _, e := range got {
		eps = append(eps, e...)
	}
	if len(eps) != 3 {
		t.Fatalf("%d endpoints, want 3 (finished and address-less pods left out)", len(eps))
	}
	want := map[string][3]bool{"p000": {true, true, false}, "p001": {false, false, false}, "p002": {false, true, true}}
	for _, e := range eps {
		c := e.ep.Conditions
		if w := want[e.ep.TargetRef.Name]; *c.Ready != w[0] || *c.Serving != w[1] || *c.Terminating != w[2] {
			t.Errorf("%s: ready %v serving %v terminating %v, want %v", e.ep.TargetRef.Name, *c.Ready, *c.Serving, *c.Terminating, w)
		}
		if e.ep.Zone == nil || *e.ep.Zone != "zone-a" {
			t.Errorf("%s: zone %v", e.ep.TargetRef.Name, e.ep.Zone)
		}
	}
}
