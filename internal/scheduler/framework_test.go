package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
)

func newTestFramework() *Framework { return NewFramework(WithRand(rand.New(rand.NewPCG(1, 2)))) }

func TestFitErrorMessage(t *testing.T) {
	tests := []struct {
		name   string
		nodes  []*corev1.Node
		pod    *corev1.Pod
		lookup Lookup
		want   string
	}{
		{
			name: "histogram sorted as strings",
			nodes: []*corev1.Node{
				MakeNode().Name("cp").Capacity("8", "16Gi", 110).Taint("node-role.kubernetes.io/control-plane", "", corev1.TaintEffectNoSchedule).Obj(),
				MakeNode().Name("w1").Capacity("2", "4Gi", 110).Obj(),
				MakeNode().Name("w2").Capacity("2", "4Gi", 110).Obj(),
			},
			pod: MakePod().Name("big").Req("3", "1Gi").Obj(),
			want: "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. " +
				"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
		},
		{
			name:  "every reason of a node counts",
			nodes: []*corev1.Node{MakeNode().Name("n1").Obj()},
			pod:   MakePod().Name("big").Req("5", "9Gi").Obj(),
			want: "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. " +
				"preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
		},
		{
			name:   "pre-filter rejection",
			nodes:  []*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()},
			pod:    MakePod().Name("p").Claim("data").Obj(),
			lookup: &fakeLookup{},
			want: `0/2 nodes are available: persistentvolumeclaim "data" not found. ` +
				"preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.",
		},
		{
			name: "no nodes",
			pod:  MakePod().Name("p").Obj(),
			want: "no nodes available to schedule pods",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTestFramework().Schedule(NewSnapshot(tt.nodes, nil), NewPodInfo(tt.pod), tt.lookup)
			var fe *FitError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FitError", err)
			}
			if got := fe.Error(); got != tt.want {
				t.Errorf("message:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestScheduleErrorIsNotFitError(t *testing.T) {
	pod := MakePod().Name("p").Obj()
	pod.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
		{TopologyKey: labelZone, LabelSelector: nil, MatchLabelKeys: []string{"bad key!"}}}}}
	pod.Labels = map[string]string{"bad key!": "x"}
	_, err := newTestFramework().Schedule(NewSnapshot([]*corev1.Node{MakeNode().Name("n1").Obj()}, nil), NewPodInfo(pod), nil)
	if err == nil || IsFitError(err) {
		t.Fatalf("err = %v, want an internal error", err)
	}
}

func TestSchedulePicks(t *testing.T) {
	app := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	rs := types.UID("rs-1")
	sibling := func(name, node string) *corev1.Pod {
		return MakePod().Name(name).Label("app", "web").Owner("ReplicaSet", "web", rs).Req("100m", "128Mi").Node(node).Obj()
	}
	tests := []struct {
		name     string
		nodes    []*corev1.Node
		existing []*corev1.Pod
		pod      *corev1.Pod
		want     string
	}{
		{
			name:     "least allocated",
			nodes:    []*corev1.Node{MakeNode().Name("busy").Obj(), MakeNode().Name("idle").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Req("2", "4Gi").Node("busy").Obj()},
			pod:      MakePod().Name("p").Req("500m", "512Mi").Obj(),
			want:     "idle",
		},
		{
			name: "balanced allocation",
			// Least allocated ties; the pod is cpu heavy, so it balances
			// the node whose memory is more used.
			nodes: []*corev1.Node{MakeNode().Name("mem-used").Capacity("4", "8Gi", 110).Obj(), MakeNode().Name("cpu-used").Capacity("4", "8Gi", 110).Obj()},
			existing: []*corev1.Pod{
				MakePod().Name("e1").Req("1", "2Gi").Node("mem-used").Obj(),
				MakePod().Name("e2").Req("1", "2Gi").Node("cpu-used").Obj(),
				MakePod().Name("e3").Req("", "2Gi").Node("mem-used").Obj(),
				MakePod().Name("e4").Req("1", "").Node("cpu-used").Obj(),
			},
			pod:  MakePod().Name("p").Req("2", "256Mi").Obj(),
			want: "mem-used",
		},
		{
			name:  "preferred node affinity",
			nodes: []*corev1.Node{MakeNode().Name("hdd").Label("disk", "hdd").Obj(), MakeNode().Name("ssd").Label("disk", "ssd").Obj()},
			pod:   MakePod().Name("p").PreferNode(10, Expr("disk", corev1.NodeSelectorOpIn, "ssd")).Obj(),
			want:  "ssd",
		},
		{
			name:  "PreferNoSchedule taint avoided",
			nodes: []*corev1.Node{MakeNode().Name("soft").Taint("spot", "", corev1.TaintEffectPreferNoSchedule).Obj(), MakeNode().Name("plain").Obj()},
			pod:   MakePod().Name("p").Obj(),
			want:  "plain",
		},
		{
			name:     "PreferNoSchedule taint tolerated: least allocated decides",
			nodes:    []*corev1.Node{MakeNode().Name("soft").Taint("spot", "", corev1.TaintEffectPreferNoSchedule).Obj(), MakeNode().Name("plain").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Req("2", "4Gi").Node("plain").Obj()},
			pod:      MakePod().Name("p").Toleration("spot", "", corev1.TaintEffectPreferNoSchedule).Obj(),
			want:     "soft",
		},
		{
			name:     "siblings spread across nodes",
			nodes:    []*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj(), MakeNode().Name("n3").Obj()},
			existing: []*corev1.Pod{sibling("a", "n1"), sibling("b", "n2"), MakePod().Name("x").Req("1", "2Gi").Node("n3").Obj()},
			pod:      MakePod().Name("p").Label("app", "web").Owner("ReplicaSet", "web", rs).Req("100m", "128Mi").Obj(),
			want:     "n3",
		},
		{
			name: "siblings spread across zones",
			nodes: []*corev1.Node{MakeNode().Name("a1").Zone("a").Obj(), MakeNode().Name("a2").Zone("a").Obj(),
				MakeNode().Name("b1").Zone("b").Obj()},
			existing: []*corev1.Pod{sibling("a", "a1"), MakePod().Name("x").Req("1", "2Gi").Node("b1").Obj()},
			pod:      MakePod().Name("p").Label("app", "web").Owner("ReplicaSet", "web", rs).Req("100m", "128Mi").Obj(),
			want:     "b1",
		},
		{
			name:     "topology spread, ScheduleAnyway",
			nodes:    []*corev1.Node{MakeNode().Name("a1").Zone("a").Obj(), MakeNode().Name("b1").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e1").Label("app", "web").Node("b1").Obj(), MakePod().Name("x").Req("1", "2Gi").Node("a1").Obj()},
			pod:      MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.ScheduleAnyway, app).Obj(),
			want:     "a1",
		},
		{
			name:     "preferred pod affinity",
			nodes:    []*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()},
			existing: []*corev1.Pod{MakePod().Name("db").Label("app", "db").Req("1", "2Gi").Node("n2").Obj()},
			pod:      MakePod().Name("p").PreferPodAffinity(100, corev1.LabelHostname, db).Obj(),
			want:     "n2",
		},
		{
			name:     "preferred pod anti-affinity",
			nodes:    []*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()},
			existing: []*corev1.Pod{MakePod().Name("w").Label("app", "web").Node("n1").Obj(), MakePod().Name("x").Req("1", "2Gi").Node("n2").Obj()},
			pod:      MakePod().Name("p").PreferPodAntiAffinity(100, corev1.LabelHostname, app).Obj(),
			want:     "n2",
		},
		{
			name:     "existing pod's preferred affinity draws the pod",
			nodes:    []*corev1.Node{MakeNode().Name("n1").Obj(), MakeNode().Name("n2").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").PreferPodAffinity(100, corev1.LabelHostname, app).Req("1", "2Gi").Node("n2").Obj()},
			pod:      MakePod().Name("p").Label("app", "web").Obj(),
			want:     "n2",
		},
		{
			name:     "only feasible nodes are chosen",
			nodes:    []*corev1.Node{MakeNode().Name("tainted").Taint("x", "", corev1.TaintEffectNoSchedule).Obj(), MakeNode().Name("full").Capacity("1", "1Gi", 110).Obj(), MakeNode().Name("ok").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Req("1", "2Gi").Node("ok").Obj()},
			pod:      MakePod().Name("p").Req("2", "1Gi").Obj(),
			want:     "ok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := NewSnapshot(tt.nodes, tt.existing)
			fw := newTestFramework()
			res, err := fw.Schedule(snap, NewPodInfo(tt.pod), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Node != tt.want {
				scores, _ := fw.Scores(snap, NewPodInfo(tt.pod), nil)
				t.Errorf("chose %s, want %s (scores %v)", res.Node, tt.want, scores)
			}
		})
	}
}

func TestScoresAreNormalised(t *testing.T) {
	nodes := []*corev1.Node{MakeNode().Name("n1").Label("disk", "ssd").Obj(), MakeNode().Name("n2").Obj()}
	pod := MakePod().Name("p").PreferNode(7, Expr("disk", corev1.NodeSelectorOpIn, "ssd")).Obj()
	scores, err := newTestFramework().Scores(NewSnapshot(nodes, nil), NewPodInfo(pod), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Node affinity (weight 2) is 100 on n1 and 0 on n2; every other score
	// is equal on two empty identical nodes.
	if d := scores["n1"] - scores["n2"]; d != 2*maxNodeScore {
		t.Errorf("n1 - n2 = %d, want %d (scores %v)", d, 2*maxNodeScore, scores)
	}
}

func TestSequentialDecisionsSpread(t *testing.T) {
	// With each decision assumed at once, identical pods spread evenly on
	// identical nodes.
	var nodes []*corev1.Node
	for i := 0; i < 4; i++ {
		nodes = append(nodes, MakeNode().Name(fmt.Sprintf("n%d", i)).Obj())
	}
	c := NewCache()
	for _, n := range nodes {
		c.SetNode(n)
	}
	fw := newTestFramework()
	count := map[string]int{}
	for i := 0; i < 40; i++ {
		pi := NewPodInfo(MakePod().Name(fmt.Sprintf("p%d", i)).Req("100m", "100Mi").Obj())
		var res Result
		var err error
		c.Decide(func(s *Snapshot) {
			res, err = fw.Schedule(s, pi, nil)
			if err == nil {
				err = c.assume(s, pi, res.Node)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		count[res.Node]++
	}
	for _, n := range nodes {
		if count[n.Name] != 10 {
			t.Errorf("%s got %d pods, want 10 (%v)", n.Name, count[n.Name], count)
		}
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	fw := newTestFramework()
	for _, tt := range []struct{ all, want int }{{10, 10}, {99, 99}, {100, 100}, {200, 100}, {1000, 420}, {5000, 500}, {10000, 500}} {
		if got := fw.numFeasibleNodesToFind(tt.all); got != tt.want {
			t.Errorf("numFeasibleNodesToFind(%d) = %d, want %d", tt.all, got, tt.want)
		}
	}
	if got := NewFramework(WithPercentageOfNodesToScore(100)).numFeasibleNodesToFind(1000); got != 1000 {
		t.Errorf("at 100%%: %d, want 1000", got)
	}
}

func TestSearchRotates(t *testing.T) {
	var nodes []*corev1.Node
	for i := 0; i < 1000; i++ {
		nodes = append(nodes, MakeNode().Name(fmt.Sprintf("n%04d", i)).Obj())
	}
	snap := NewSnapshot(nodes, nil)
	fw := newTestFramework()
	for i := 0; i < 3; i++ {
		res, err := fw.Schedule(snap, NewPodInfo(MakePod().Name("p").Obj()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Evaluated != 420 || res.Feasible != 420 {
			t.Fatalf("evaluated %d, feasible %d; want 420, 420", res.Evaluated, res.Feasible)
		}
		if want := (i + 1) * 420 % 1000; fw.nextStart != want {
			t.Fatalf("next start %d, want %d", fw.nextStart, want)
		}
	}
}

func TestScheduleWaitForFirstConsumer(t *testing.T) {
	lk := &fakeLookup{
		pvcs:    []*corev1.PersistentVolumeClaim{makePVC("data", "", "local")},
		classes: []*storagev1.StorageClass{makeClass("local", storagev1.VolumeBindingWaitForFirstConsumer)},
	}
	snap := NewSnapshot([]*corev1.Node{MakeNode().Name("n1").Obj()}, nil)
	res, err := newTestFramework().Schedule(snap, NewPodInfo(MakePod().Name("p").Claim("data").Obj()), lk)
	if err != nil {
		t.Fatal(err)
	}
	if res.Node != "n1" || len(res.ClaimsToAnnotate) != 1 || res.ClaimsToAnnotate[0].Name != "data" {
		t.Errorf("result %+v, want n1 with claim data to annotate", res)
	}
}

func TestFitErrorPlugins(t *testing.T) {
	snap := NewSnapshot([]*corev1.Node{
		MakeNode().Name("n1").Capacity("1", "1Gi", 110).Obj(),
		MakeNode().Name("n2").Taint("x", "", corev1.TaintEffectNoSchedule).Obj(),
	}, nil)
	_, err := newTestFramework().Schedule(snap, NewPodInfo(MakePod().Name("p").Req("2", "").Obj()), nil)
	var fe *FitError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	if got, want := fe.Plugins(), PluginNodeResourcesFit|PluginTaintToleration; got != want {
		t.Errorf("plugins = %v, want %v", got, want)
	}
}

// BenchmarkDecide times one decision (filters, scores, assume) for plain
// pods on 1000 nodes, with up to 10000 pods already placed.
func BenchmarkDecide(b *testing.B) {
	for _, tc := range []struct {
		name string
		pod  func(i int) *corev1.Pod
	}{
		{"plain", func(i int) *corev1.Pod { return MakePod().Name(fmt.Sprintf("p%d", i)).Req("10m", "16Mi").Obj() }},
		{"owned", func(i int) *corev1.Pod {
			return MakePod().Name(fmt.Sprintf("p%d", i)).Label("app", "web").Owner("ReplicaSet", "web", types.UID(fmt.Sprintf("rs-%d", i%10))).Req("10m", "16Mi").Obj()
		}},
		{"spread", func(i int) *corev1.Pod {
			return MakePod().Name(fmt.Sprintf("p%d", i)).Label("app", "web").Spread(1, labelZone, corev1.ScheduleAnyway, map[string]string{"app": "web"}).Req("10m", "16Mi").Obj()
		}},
		{"anti-affinity", func(i int) *corev1.Pod {
			return MakePod().Name(fmt.Sprintf("p%d", i)).Label("app", fmt.Sprintf("a%d", i%500)).
				PodAntiAffinity(corev1.LabelHostname, map[string]string{"app": fmt.Sprintf("a%d", i%500)}).Req("10m", "16Mi").Obj()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := NewCache()
			for i := 0; i < 1000; i++ {
				c.SetNode(MakeNode().Name(fmt.Sprintf("n%04d", i)).Zone(fmt.Sprintf("z%d", i%10)).Obj())
			}
			fw := newTestFramework()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%10000 == 0 && i > 0 {
					b.StopTimer()
					c = NewCache()
					for j := 0; j < 1000; j++ {
						c.SetNode(MakeNode().Name(fmt.Sprintf("n%04d", j)).Zone(fmt.Sprintf("z%d", j%10)).Obj())
					}
					b.StartTimer()
				}
				pi := NewPodInfo(tc.pod(i))
				var err error
				c.Decide(func(s *Snapshot) {
					var res Result
					res, err = fw.Schedule(s, pi, nil)
					if err == nil {
						err = c.assume(s, pi, res.Node)
					}
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
