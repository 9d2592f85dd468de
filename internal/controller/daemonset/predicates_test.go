package daemonset

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func node(name string, lbls map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Spec: corev1.NodeSpec{Taints: taints}}
}

func daemonSet(mutate func(*corev1.PodSpec)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", UID: "u"},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "i"}},
		}}},
	}
	if mutate != nil {
		mutate(&ds.Spec.Template.Spec)
	}
	return ds
}

func TestPlacement(t *testing.T) {
	edge := map[string]string{"role": "edge", "cores": "8"}
	required := func(terms ...corev1.NodeSelectorTerm) func(*corev1.PodSpec) {
		return func(s *corev1.PodSpec) {
			s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		}
	}
	expr := func(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
		return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	taint := func(key string, effect corev1.TaintEffect) corev1.Taint {
		return corev1.Taint{Key: key, Value: "x", Effect: effect}
	}
	for name, tc := range map[string]struct {
		node      *corev1.Node
		spec      func(*corev1.PodSpec)
		run, keep bool
	}{
		"plain":                     {node("n", nil), nil, true, true},
		"node selector matches":     {node("n", edge), func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"role": "edge"} }, true, true},
		"node selector does not":    {node("n", nil), func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"role": "edge"} }, false, false},
		"affinity In":               {node("n", edge), required(expr("role", corev1.NodeSelectorOpIn, "core", "edge")), true, true},
		"affinity NotIn":            {node("n", edge), required(expr("role", corev1.NodeSelectorOpNotIn, "edge")), false, false},
		"affinity DoesNotExist":     {node("n", nil), required(expr("role", corev1.NodeSelectorOpDoesNotExist)), true, true},
		"affinity Gt":               {node("n", edge), required(expr("cores", corev1.NodeSelectorOpGt, "4")), true, true},
		"affinity Lt":               {node("n", edge), required(expr("cores", corev1.NodeSelectorOpLt, "4")), false, false},
		"affinity terms are ORed":   {node("n", edge), required(expr("role", corev1.NodeSelectorOpIn, "core"), expr("role", corev1.NodeSelectorOpExists)), true, true},
		"affinity empty term":       {node("n", edge), required(corev1.NodeSelectorTerm{}), false, false},
		"affinity on the node name": {node("n", nil), required(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"m"}}}}), false, false},
		"nodeName elsewhere":        {node("n", nil), func(s *corev1.PodSpec) { s.NodeName = "m" }, false, false},
		"NoSchedule taint":          {node("n", nil, taint("dedicated", corev1.TaintEffectNoSchedule)), nil, false, true},
		"NoExecute taint":           {node("n", nil, taint("dedicated", corev1.TaintEffectNoExecute)), nil, false, false},
		"PreferNoSchedule taint":    {node("n", nil, taint("dedicated", corev1.TaintEffectPreferNoSchedule)), nil, true, true},
		"tolerated by value": {node("n", nil, taint("dedicated", corev1.TaintEffectNoSchedule)), func(s *corev1.PodSpec) {
			s.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}
		}, true, true},
		"wrong value": {node("n", nil, taint("dedicated", corev1.TaintEffectNoSchedule)), func(s *corev1.PodSpec) {
			s.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "y"}}
		}, false, true},
		"tolerate everything": {node("n", nil, taint("a", corev1.TaintEffectNoExecute), taint("b", corev1.TaintEffectNoSchedule)), func(s *corev1.PodSpec) {
			s.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		}, true, true},
		// The standard daemon tolerations.
		"not ready":                        {node("n", nil, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), nil, true, true},
		"unreachable":                      {node("n", nil, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}), nil, true, true},
		"cordoned":                         {node("n", nil, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}), nil, true, true},
		"disk pressure":                    {node("n", nil, corev1.Taint{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule}), nil, true, true},
		"network unavailable, pod network": {node("n", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}), nil, false, true},
		"network unavailable, host network": {node("n", nil, corev1.Taint{Key: corev1.TaintNodeNetworkUnavailable, Effect: corev1.TaintEffectNoSchedule}),
			func(s *corev1.PodSpec) { s.HostNetwork = true }, true, true},
	} {
		run, keep := placement(tc.node, daemonSet(tc.spec))
		if run != tc.run || keep != tc.keep {
			t.Errorf("%s: run %v keep %v, want %v %v", name, run, keep, tc.run, tc.keep)
		}
	}
}

func TestNewPod(t *testing.T) {
	ds := daemonSet(func(s *corev1.PodSpec) {
		s.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "role", Operator: corev1.NodeSelectorOpExists}}},
				{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"old"}}}},
			}}}}
	})
	ds.Spec.Template.Labels = map[string]string{"app": "d"}
	ds.Generation = 4
	p := newPod(ds, "n1", "h")
	if targetNode(p) != "n1" {
		t.Errorf("target node %q", targetNode(p))
	}
	for i, term := range p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if len(term.MatchFields) != 1 || term.MatchFields[0].Values[0] != "n1" {
			t.Errorf("term %d: fields %+v", i, term.MatchFields)
		}
	}
	if len(p.Spec.Tolerations) != 6 {
		t.Errorf("tolerations %+v, want the 6 standard ones without duplicates", p.Spec.Tolerations)
	}
	if p.Labels["app"] != "d" || p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "h" || p.Labels["pod-template-generation"] != "4" {
		t.Errorf("labels %v", p.Labels)
	}
	if ds.Spec.Template.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != "" ||
		ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[1].MatchFields[0].Values[0] != "old" {
		t.Errorf("the template was changed")
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "DaemonSet" || ref.UID != "u" {
		t.Errorf("owner %+v", p.OwnerReferences)
	}
	if templateHash(ds) == "" || templateHash(ds) != templateHash(ds.DeepCopy()) {
		t.Errorf("hash not stable")
	}
	changed := ds.DeepCopy()
	changed.Spec.Template.Spec.Containers[0].Image = "j"
	if templateHash(changed) == templateHash(ds) {
		t.Errorf("hash ignores the image")
	}
}

func readyPod(name, hash string, since time.Time) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since)}}},
	}
}

func TestRollingUpdate(t *testing.T) {
	now := time.Now()
	ds := daemonSet(nil)
	ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromInt32(2))}}
	notReady := readyPod("n3-old", "old", now)
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	live := map[string][]*corev1.Pod{
		"n1": {readyPod("n1-old", "old", now.Add(-time.Hour))},
		"n2": {readyPod("n2-new", "new", now.Add(-time.Hour))},
		"n3": {notReady},
		"n4": {readyPod("n4-old", "old", now.Add(-time.Hour))},
		"n5": {readyPod("n5-old", "old", now.Add(-time.Hour))},
	}
	desired := []string{"n1", "n2", "n3", "n4", "n5"}
	got, _ := rollingUpdate(ds, desired, live, "new", now)
	names := map[string]bool{}
	for _, p := range got {
		names[p.Name] = true
	}
	// n3 is unavailable anyway; one more fits into maxUnavailable 2.
	if len(got) != 2 || !names["n3-old"] || !names["n1-old"] {
		t.Errorf("deleting %v, want n3-old and n1-old", names)
	}
	// A node without its pod already uses up the budget.
	delete(live, "n2")
	got, _ = rollingUpdate(ds, desired, live, "new", now)
	if len(got) != 1 || got[0].Name != "n3-old" {
		t.Errorf("with a node down: deleting %d pods, want only n3-old", len(got))
	}
	// minReadySeconds: a pod ready for too short a time is not available.
	ds.Spec.MinReadySeconds = 60
	live = map[string][]*corev1.Pod{"n1": {readyPod("n1-new", "new", now.Add(-10*time.Second))}}
	_, wait := rollingUpdate(ds, []string{"n1"}, live, "new", now)
	if wait < 49*time.Second || wait > 50*time.Second {
		t.Errorf("wait %v, want 50s", wait)
	}
}
