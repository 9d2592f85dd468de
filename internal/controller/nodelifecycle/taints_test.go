package nodelifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func taint(key string, effect corev1.TaintEffect) corev1.Taint {
	return corev1.Taint{Key: key, Effect: effect}
}

func TestTolerationWindow(t *testing.T) {
	unreachable := []corev1.Taint{taint(TaintUnreachable, corev1.TaintEffectNoExecute)}
	both := append([]corev1.Taint{taint("example.com/maintenance", corev1.TaintEffectNoExecute)}, unreachable...)
	exists := func(key string, secs *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
	}
	for _, tc := range []struct {
		name        string
		tolerations []corev1.Toleration
		taints      []corev1.Taint
		tolerated   bool
		window      time.Duration
	}{
		{"none", nil, unreachable, false, 0},
		{"value differs", []corev1.Toleration{{Key: TaintUnreachable, Operator: corev1.TolerationOpEqual, Value: "x", Effect: corev1.TaintEffectNoExecute}}, unreachable, false, 0},
		{"other effect", []corev1.Toleration{{Key: TaintUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}, unreachable, false, 0},
		{"forever", []corev1.Toleration{exists(TaintUnreachable, nil)}, unreachable, true, -1},
		{"seconds", []corev1.Toleration{exists(TaintUnreachable, ptr.To(int64(300)))}, unreachable, true, 300 * time.Second},
		{"zero means now", []corev1.Toleration{exists(TaintUnreachable, ptr.To(int64(0)))}, unreachable, true, 0},
		{"negative means now", []corev1.Toleration{exists(TaintUnreachable, ptr.To(int64(-5)))}, unreachable, true, 0},
		{"shortest wins", []corev1.Toleration{exists(TaintUnreachable, ptr.To(int64(300))), exists("", ptr.To(int64(30)))}, unreachable, true, 30 * time.Second},
		{"wildcard key", []corev1.Toleration{{Operator: corev1.TolerationOpExists}}, both, true, -1},
		{"one of two taints not tolerated", []corev1.Toleration{exists(TaintUnreachable, nil)}, both, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, w := tolerationWindow(tc.tolerations, tc.taints)
			if ok != tc.tolerated || (ok && w != tc.window) {
				t.Fatalf("got (%v, %v), want (%v, %v)", ok, w, tc.tolerated, tc.window)
			}
		})
	}
}

func node(ready corev1.ConditionStatus, mods ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	for _, m := range mods {
		m(n)
	}
	return n
}

func TestTaintsFromConditions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		node      *corev1.Node
		noSched   []string
		noExecute string
	}{
		{"ready", node(corev1.ConditionTrue), nil, ""},
		{"not ready", node(corev1.ConditionFalse), []string{TaintNotReady}, TaintNotReady},
		{"unknown", node(corev1.ConditionUnknown), []string{TaintUnreachable}, TaintUnreachable},
		{"no ready condition", &corev1.Node{}, []string{TaintUnreachable}, TaintUnreachable},
		{"pressure and cordon", node(corev1.ConditionTrue, func(n *corev1.Node) {
			n.Spec.Unschedulable = true
			n.Status.Conditions = append(n.Status.Conditions,
				corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
				corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse},
				corev1.NodeCondition{Type: corev1.NodePIDPressure, Status: corev1.ConditionTrue},
				corev1.NodeCondition{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue})
		}), []string{TaintMemoryPressure, TaintPIDPressure, TaintNetworkUnavailable, TaintUnschedulable}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := noScheduleTaints(tc.node)
			if len(got) != len(tc.noSched) {
				t.Fatalf("NoSchedule taints %v, want %v", got, tc.noSched)
			}
			for i, k := range tc.noSched {
				if got[i].Key != k || got[i].Effect != corev1.TaintEffectNoSchedule {
					t.Fatalf("NoSchedule taints %v, want %v", got, tc.noSched)
				}
			}
			if ne := noExecuteTaint(tc.node); ne != tc.noExecute {
				t.Fatalf("NoExecute taint %q, want %q", ne, tc.noExecute)
			}
		})
	}
}

func TestMergeTaints(t *testing.T) {
	added := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	have := []corev1.Taint{
		{Key: "example.com/dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
		{Key: TaintNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: &added},
		{Key: TaintNotReady, Effect: corev1.TaintEffectNoSchedule},
		// Someone else's NoExecute taint with a managed key but another
		// effect is not ours either.
		{Key: TaintNotReady, Effect: corev1.TaintEffectPreferNoSchedule},
	}
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	got, changed := mergeTaints(have, []corev1.Taint{taint(TaintUnreachable, corev1.TaintEffectNoExecute), taint(TaintUnreachable, corev1.TaintEffectNoSchedule)}, now)
	if !changed {
		t.Fatal("no change reported")
	}
	want := map[string]bool{"example.com/dedicated:NoSchedule": true, TaintNotReady + ":PreferNoSchedule": true,
		TaintUnreachable + ":NoExecute": true, TaintUnreachable + ":NoSchedule": true}
	if len(got) != len(want) {
		t.Fatalf("taints %v", got)
	}
	for _, tt := range got {
		if !want[tt.Key+":"+string(tt.Effect)] {
			t.Fatalf("unexpected taint %v in %v", tt, got)
		}
		if tt.Key == TaintUnreachable && tt.Effect == corev1.TaintEffectNoExecute && (tt.TimeAdded == nil || !tt.TimeAdded.Time.Equal(now)) {
			t.Fatalf("new NoExecute taint timeAdded %v, want %v", tt.TimeAdded, now)
		}
	}
	// Applying the same again changes nothing and keeps timeAdded.
	again, changed := mergeTaints(got, []corev1.Taint{taint(TaintUnreachable, corev1.TaintEffectNoExecute), taint(TaintUnreachable, corev1.TaintEffectNoSchedule)}, now.Add(time.Hour))
	if changed || len(again) != len(got) {
		t.Fatalf("second merge changed: %v", again)
	}
}

func TestWindowStart(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *at(-time.Hour)}}
	taints := []corev1.Taint{{Key: TaintUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: at(-time.Minute)}}
	if got := windowStart(pod, taints, now); !got.Equal(now.Add(-time.Minute)) {
		t.Fatalf("start %v, want when the taint was added", got)
	}
	young := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *at(-10 * time.Second)}}
	if got := windowStart(young, taints, now); !got.Equal(now.Add(-10 * time.Second)) {
		t.Fatalf("start %v, want the pod's creation", got)
	}
	if got := windowStart(pod, []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoExecute}}, now); !got.Equal(now) {
		t.Fatalf("start %v, want now for a taint without time", got)
	}
}
