package scheduler

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestSnapshotIncremental(t *testing.T) {
	s := NewSnapshot([]*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()}, nil)
	a := NewPodInfo(MakePod().Name("a").Req("1", "1Gi").HostPort(80).PodAntiAffinity(corev1.LabelHostname, map[string]string{"x": "y"}).Node("n1").Obj())
	b := NewPodInfo(MakePod().Name("b").Req("500m", "").Owner("ReplicaSet", "rs", "rs-uid").Node("n1").Obj())
	s.AddPod(a)
	s.AddPod(b)
	n1 := s.Node("n1")
	if n1.Requested.MilliCPU != 1500 || n1.Requested.Memory != 1<<30 || n1.Requested.Pods != 2 {
		t.Errorf("requested = %+v", n1.Requested)
	}
	if n1.NonZeroRequested.Memory != 1<<30+defaultMemoryRequest {
		t.Errorf("non-zero memory = %d", n1.NonZeroRequested.Memory)
	}
	if n1.portFree(HostPort{IP: "0.0.0.0", Protocol: corev1.ProtocolTCP, Port: 80}) {
		t.Error("port 80 should be taken")
	}
	if len(n1.PodsWithAffinity) != 1 || len(n1.PodsWithRequiredAntiAffinity) != 1 || n1.OwnerCount("rs-uid") != 1 {
		t.Errorf("affinity lists %d/%d, owner count %d", len(n1.PodsWithAffinity), len(n1.PodsWithRequiredAntiAffinity), n1.OwnerCount("rs-uid"))
	}

	// Updating a pod (same uid) to another node moves it.
	s.AddPod(NewPodInfo(MakePod().Name("a").Req("1", "1Gi").HostPort(80).Node("n2").Obj()))
	if n1.Requested.MilliCPU != 500 || n1.Requested.Pods != 1 || !n1.portFree(HostPort{IP: "0.0.0.0", Protocol: corev1.ProtocolTCP, Port: 80}) ||
		len(n1.PodsWithAffinity) != 0 || len(n1.PodsWithRequiredAntiAffinity) != 0 {
		t.Errorf("after move, n1 = %+v", n1)
	}
	if n2 := s.Node("n2"); n2.Requested.MilliCPU != 1000 || n2.Requested.Pods != 1 {
		t.Errorf("after move, n2 requested = %+v", n2.Requested)
	}
	if !s.RemovePod(b.Pod.UID) || s.RemovePod(b.Pod.UID) {
		t.Error("RemovePod should succeed once")
	}
	if n1.Requested.MilliCPU != 0 || n1.Requested.Pods != 0 || n1.OwnerCount("rs-uid") != 0 {
		t.Errorf("after removal, n1 requested = %+v", n1.Requested)
	}

	// A removed node keeps its pods' accounting until they go, and is not
	// offered; when it comes back, its pods are still there.
	s.RemoveNode("n2")
	if s.Node("n2") != nil || len(s.Nodes()) != 1 {
		t.Fatalf("n2 still listed")
	}
	s.SetNode(MakeNode().Name("n2").Obj())
	if n2 := s.Node("n2"); n2 == nil || n2.Requested.Pods != 1 || len(s.Nodes()) != 2 {
		t.Errorf("n2 back = %+v", n2)
	}

	// Pods on unknown nodes are kept aside.
	s.AddPod(NewPodInfo(MakePod().Name("c").Node("ghost").Obj()))
	if s.Node("ghost") != nil || len(s.Nodes()) != 2 || s.Pod("default-c") == nil {
		t.Error("pod on an unknown node")
	}
	s.RemovePod("default-c")
	if _, ok := s.nodes["ghost"]; ok {
		t.Error("empty placeholder not dropped")
	}
}

func TestCacheAssumeConfirmForget(t *testing.T) {
	c := NewCache()
	c.SetNode(MakeNode().Name("n1").Obj())
	pod := MakePod().Name("p").Req("1", "").Obj()
	pi := NewPodInfo(pod)
	c.Decide(func(s *Snapshot) {
		if err := c.assume(s, pi, "n1"); err != nil {
			t.Fatal(err)
		}
		if err := c.assume(s, pi, "n1"); err == nil {
			t.Error("assuming twice should fail")
		}
	})
	if pod.Spec.NodeName != "" {
		t.Error("assume changed the informer's pod")
	}
	if _, _, assumed := c.Counts(); assumed != 1 || !c.IsPlaced(pod.UID) {
		t.Fatalf("assumed = %d", assumed)
	}
	// Binding failed: forget.
	c.Forget(pod.UID)
	if c.IsPlaced(pod.UID) {
		t.Fatal("forgotten pod still placed")
	}

	// Assume again, then the informer confirms: Forget no longer removes it.
	c.Decide(func(s *Snapshot) { _ = c.assume(s, pi, "n1") })
	bound := pod.DeepCopy()
	bound.Spec.NodeName = "n1"
	c.SetPod(bound)
	c.Forget(pod.UID)
	if !c.IsPlaced(pod.UID) {
		t.Error("confirmed pod was forgotten")
	}
	nodes, pods, assumed := c.Counts()
	if nodes != 1 || pods != 1 || assumed != 0 {
		t.Errorf("counts = %d %d %d", nodes, pods, assumed)
	}
	c.Decide(func(s *Snapshot) {
		if got := s.Node("n1").Requested.MilliCPU; got != 1000 {
			t.Errorf("requested cpu = %d, want 1000 (counted once)", got)
		}
	})
	if !c.RemovePod(pod.UID) || c.IsPlaced(pod.UID) {
		t.Error("RemovePod")
	}
}

func TestSnapshotLabelIndex(t *testing.T) {
	s := NewSnapshot([]*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()}, nil)
	web := map[string]string{"app": "web"}
	s.AddPod(NewPodInfo(MakePod().Name("w1").Label("app", "web").Node("n1").Obj()))
	s.AddPod(NewPodInfo(MakePod().Name("w2").Label("app", "web").Node("n2").Obj()))
	s.AddPod(NewPodInfo(MakePod().Name("db").Label("app", "db").PodAntiAffinity(corev1.LabelHostname, web).Node("n1").Obj()))
	s.AddPod(NewPodInfo(MakePod().Name("all").PodAntiAffinity(corev1.LabelHostname, map[string]string{}).Node("n2").Obj()))
	for i := 0; i < 10; i++ {
		s.AddPod(NewPodInfo(MakePod().Name(fmt.Sprintf("x%d", i)).Label("app", "x").Node("n2").Obj()))
	}
	sel := func(m map[string]string) labels.Selector { return labels.SelectorFromSet(m) }
	names := func(f func(func(string))) []string {
		var out []string
		f(func(n string) { out = append(out, n) })
		sort.Strings(out)
		return out
	}
	cands := func(m map[string]string) []string {
		return names(func(add func(string)) {
			s.candidates(sel(m), func(pi *PodInfo, n *NodeInfo) {
				if sel(m).Matches(labels.Set(pi.Pod.Labels)) {
					add(pi.Pod.Name + "@" + n.Name)
				}
			})
		})
	}
	if got := cands(web); !reflect.DeepEqual(got, []string{"w1@n1", "w2@n2"}) {
		t.Errorf("candidates(app=web) = %v", got)
	}
	anti := func(podLabels map[string]string) []string {
		return names(func(add func(string)) {
			s.antiTermsSelecting(podLabels, func(ref termRef, n *NodeInfo) { add(ref.pod.Pod.Name + "@" + n.Name) })
		})
	}
	if got := anti(web); !reflect.DeepEqual(got, []string{"all@n2", "db@n1"}) {
		t.Errorf("anti terms selecting app=web = %v", got)
	}
	if got := anti(map[string]string{"app": "other"}); !reflect.DeepEqual(got, []string{"all@n2"}) {
		t.Errorf("anti terms selecting app=other = %v", got)
	}
	s.RemovePod("default-w1")
	s.RemovePod("default-db")
	if got := cands(web); !reflect.DeepEqual(got, []string{"w2@n2"}) {
		t.Errorf("after removal, candidates(app=web) = %v", got)
	}
	if got := anti(web); !reflect.DeepEqual(got, []string{"all@n2"}) {
		t.Errorf("after removal, anti terms = %v", got)
	}
	// Pods on a node that left are not candidates.
	s.RemoveNode("n2")
	if got := cands(web); len(got) != 0 {
		t.Errorf("candidates on a removed node: %v", got)
	}
	if len(s.byLabel[labelPair{"app", "db"}]) != 0 || len(s.antiByLabel) != 0 {
		t.Errorf("index not cleaned: %v %v", s.byLabel, s.antiByLabel)
	}
}
