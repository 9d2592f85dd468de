package scheduler

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

func TestPodRequests(t *testing.T) {
	const mi = 1024 * 1024
	tests := []struct {
		name    string
		pod     *corev1.Pod
		want    Resource
		nonZero Resource
	}{
		{"one container", MakePod().Req("500m", "1Gi").Obj(),
			Resource{MilliCPU: 500, Memory: 1024 * mi}, Resource{MilliCPU: 500, Memory: 1024 * mi}},
		{"containers add up", MakePod().Req("500m", "1Gi").Req("250m", "512Mi").Obj(),
			Resource{MilliCPU: 750, Memory: 1536 * mi}, Resource{MilliCPU: 750, Memory: 1536 * mi}},
		{"no requests: zero, but defaults for scoring", MakePod().Req("", "").Obj(),
			Resource{}, Resource{MilliCPU: defaultMilliCPURequest, Memory: defaultMemoryRequest}},
		{"a bigger init container wins", MakePod().Req("500m", "1Gi").InitReq("2", "256Mi").Obj(),
			Resource{MilliCPU: 2000, Memory: 1024 * mi}, Resource{MilliCPU: 2000, Memory: 1024 * mi}},
		{"init containers do not add up", MakePod().Req("100m", "").InitReq("1", "").InitReq("1", "").Obj(),
			Resource{MilliCPU: 1000}, Resource{MilliCPU: 1000, Memory: defaultMemoryRequest}},
		{"sidecars run with the containers", MakePod().Req("500m", "1Gi").Sidecar("200m", "128Mi").Obj(),
			Resource{MilliCPU: 700, Memory: 1152 * mi}, Resource{MilliCPU: 700, Memory: 1152 * mi}},
		{"an init container after a sidecar runs beside it", MakePod().Req("100m", "").Sidecar("1", "").InitReq("2", "").Obj(),
			Resource{MilliCPU: 3000}, Resource{MilliCPU: 3000, Memory: 2 * defaultMemoryRequest}},
		{"an init container before a sidecar does not", MakePod().Req("100m", "").InitReq("2", "").Sidecar("1", "").Obj(),
			Resource{MilliCPU: 2000}, Resource{MilliCPU: 2000, Memory: 2 * defaultMemoryRequest}},
		{"overhead is added", MakePod().Req("1", "1Gi").Overhead("100m", "64Mi").Obj(),
			Resource{MilliCPU: 1100, Memory: 1088 * mi}, Resource{MilliCPU: 1100, Memory: 1088 * mi}},
		{"a limit stands in for a missing request",
			MakePod().Container(corev1.ResourceRequirements{Limits: resources("2", "1Gi")}).Obj(),
			Resource{MilliCPU: 2000, Memory: 1024 * mi}, Resource{MilliCPU: 2000, Memory: 1024 * mi}},
		{"extended resources",
			MakePod().Container(corev1.ResourceRequirements{Requests: corev1.ResourceList{"example.com/gpu": resources("2", "")[corev1.ResourceCPU]}}).Obj(),
			Resource{Scalar: map[corev1.ResourceName]int64{"example.com/gpu": 2}}, Resource{MilliCPU: defaultMilliCPURequest, Memory: defaultMemoryRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, nz := podRequests(tt.pod)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("requests = %+v, want %+v", got, tt.want)
			}
			if !reflect.DeepEqual(nz, tt.nonZero) {
				t.Errorf("non-zero requests = %+v, want %+v", nz, tt.nonZero)
			}
		})
	}
}

func TestFilters(t *testing.T) {
	node := func() *NodeWrapper { return MakeNode().Name("n1") }
	app := map[string]string{"app": "web"}
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	immediate := storagev1.VolumeBindingImmediate
	local := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{Expr(corev1.LabelHostname, corev1.NodeSelectorOpIn, "n1")}}
	elsewhere := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{Expr(corev1.LabelHostname, corev1.NodeSelectorOpIn, "n2")}}

	tests := []struct {
		name     string
		pod      *corev1.Pod
		node     *corev1.Node
		others   []*corev1.Node // more nodes in the snapshot
		existing []*corev1.Pod
		lookup   *fakeLookup
		want     Code
		reasons  []string
	}{
		{name: "fits", pod: MakePod().Name("p").Req("1", "1Gi").Obj(), node: node().Obj(), want: Success},

		// NodeUnschedulable
		{name: "cordoned", pod: MakePod().Name("p").Obj(), node: node().Unschedulable().Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonUnschedulable}},
		{name: "cordoned, tolerated", pod: MakePod().Name("p").Toleration(taintUnschedulable, "", corev1.TaintEffectNoSchedule).Obj(),
			node: node().Unschedulable().Obj(), want: Success},

		// Readiness, as the taints it implies
		{name: "not ready", pod: MakePod().Name("p").Obj(), node: node().Ready(corev1.ConditionFalse).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {node.kubernetes.io/not-ready: }"}},
		{name: "unreachable", pod: MakePod().Name("p").Obj(), node: node().Ready(corev1.ConditionUnknown).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}},
		{name: "not ready, tolerated", pod: MakePod().Name("p").Toleration(taintNotReady, "", corev1.TaintEffectNoSchedule).Obj(),
			node: node().Ready(corev1.ConditionFalse).Obj(), want: Success},

		// TaintToleration
		{name: "NoSchedule taint", pod: MakePod().Name("p").Obj(),
			node: node().Taint("node-role.kubernetes.io/control-plane", "", corev1.TaintEffectNoSchedule).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"}},
		{name: "NoExecute taint", pod: MakePod().Name("p").Obj(), node: node().Taint("dedicated", "db", corev1.TaintEffectNoExecute).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "PreferNoSchedule does not filter", pod: MakePod().Name("p").Obj(), node: node().Taint("soft", "", corev1.TaintEffectPreferNoSchedule).Obj(), want: Success},
		{name: "tolerated by key and value", pod: MakePod().Name("p").Toleration("dedicated", "db", corev1.TaintEffectNoSchedule).Obj(),
			node: node().Taint("dedicated", "db", corev1.TaintEffectNoSchedule).Obj(), want: Success},
		{name: "wrong value", pod: MakePod().Name("p").Toleration("dedicated", "web", corev1.TaintEffectNoSchedule).Obj(),
			node: node().Taint("dedicated", "db", corev1.TaintEffectNoSchedule).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "wrong effect", pod: MakePod().Name("p").Toleration("dedicated", "db", corev1.TaintEffectNoSchedule).Obj(),
			node: node().Taint("dedicated", "db", corev1.TaintEffectNoExecute).Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{"node(s) had untolerated taint {dedicated: db}"}},
		{name: "tolerate everything", pod: MakePod().Name("p").Toleration("", "", "").Obj(),
			node: node().Taint("a", "b", corev1.TaintEffectNoSchedule).Taint("c", "", corev1.TaintEffectNoExecute).Obj(), want: Success},

		// NodeAffinity
		{name: "nodeSelector matches", pod: MakePod().Name("p").NodeSelector("disk", "ssd").Obj(), node: node().Label("disk", "ssd").Obj(), want: Success},
		{name: "nodeSelector does not", pod: MakePod().Name("p").NodeSelector("disk", "ssd").Obj(), node: node().Label("disk", "hdd").Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "In", pod: MakePod().Name("p").RequireNode(Expr("zone", corev1.NodeSelectorOpIn, "a", "b")).Obj(), node: node().Label("zone", "b").Obj(), want: Success},
		{name: "In, missing label", pod: MakePod().Name("p").RequireNode(Expr("zone", corev1.NodeSelectorOpIn, "a")).Obj(), node: node().Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "NotIn, missing label", pod: MakePod().Name("p").RequireNode(Expr("zone", corev1.NodeSelectorOpNotIn, "a")).Obj(), node: node().Obj(), want: Success},
		{name: "NotIn", pod: MakePod().Name("p").RequireNode(Expr("zone", corev1.NodeSelectorOpNotIn, "a")).Obj(), node: node().Label("zone", "a").Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "Exists", pod: MakePod().Name("p").RequireNode(Expr("gpu", corev1.NodeSelectorOpExists)).Obj(), node: node().Label("gpu", "").Obj(), want: Success},
		{name: "DoesNotExist", pod: MakePod().Name("p").RequireNode(Expr("gpu", corev1.NodeSelectorOpDoesNotExist)).Obj(), node: node().Label("gpu", "").Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "Gt", pod: MakePod().Name("p").RequireNode(Expr("cores", corev1.NodeSelectorOpGt, "8")).Obj(), node: node().Label("cores", "16").Obj(), want: Success},
		{name: "Gt, equal", pod: MakePod().Name("p").RequireNode(Expr("cores", corev1.NodeSelectorOpGt, "8")).Obj(), node: node().Label("cores", "8").Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "Lt", pod: MakePod().Name("p").RequireNode(Expr("cores", corev1.NodeSelectorOpLt, "8")).Obj(), node: node().Label("cores", "4").Obj(), want: Success},
		{name: "Lt, not a number", pod: MakePod().Name("p").RequireNode(Expr("cores", corev1.NodeSelectorOpLt, "8")).Obj(), node: node().Label("cores", "four").Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "terms are ORed", pod: MakePod().Name("p").RequireNode(Expr("zone", corev1.NodeSelectorOpIn, "a")).RequireNode(Expr("zone", corev1.NodeSelectorOpIn, "b")).Obj(),
			node: node().Label("zone", "b").Obj(), want: Success},
		{name: "matchFields metadata.name",
			pod:  MakePod().Name("p").RequireNode(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}).Obj(),
			node: node().Obj(), want: Success},
		{name: "matchFields other name",
			pod:  MakePod().Name("p").RequireNode(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n2"}}}}).Obj(),
			node: node().Obj(), want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},
		{name: "empty term matches nothing", pod: MakePod().Name("p").RequireNode(corev1.NodeSelectorTerm{}).Obj(), node: node().Obj(),
			want: UnschedulableAndUnresolvable, reasons: []string{reasonNodeAffinity}},

		// NodePorts
		{name: "free port", pod: MakePod().Name("p").HostPort(80).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").HostPort(81).Node("n1").Obj()}, want: Success},
		{name: "port taken", pod: MakePod().Name("p").HostPort(80).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").HostPort(80).Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonNodePorts}},
		{name: "same port, other protocol", pod: MakePod().Name("p").HostPortOn("", corev1.ProtocolUDP, 53).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").HostPort(53).Node("n1").Obj()}, want: Success},
		{name: "same port, other addresses", pod: MakePod().Name("p").HostPortOn("10.0.0.1", "", 80).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").HostPortOn("10.0.0.2", "", 80).Node("n1").Obj()}, want: Success},
		{name: "0.0.0.0 conflicts with any address", pod: MakePod().Name("p").HostPortOn("10.0.0.1", "", 80).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").HostPort(80).Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonNodePorts}},

		// NodeResourcesFit
		{name: "insufficient cpu", pod: MakePod().Name("p").Req("3", "1Gi").Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").Req("2", "1Gi").Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{"Insufficient cpu"}},
		{name: "insufficient cpu and memory", pod: MakePod().Name("p").Req("5", "9Gi").Obj(), node: node().Obj(),
			want: Unschedulable, reasons: []string{"Insufficient cpu", "Insufficient memory"}},
		{name: "exactly full", pod: MakePod().Name("p").Req("2", "4Gi").Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").Req("2", "4Gi").Node("n1").Obj()}, want: Success},
		{name: "init container too big", pod: MakePod().Name("p").Req("1", "").InitReq("5", "").Obj(), node: node().Obj(),
			want: Unschedulable, reasons: []string{"Insufficient cpu"}},
		{name: "overhead tips it over", pod: MakePod().Name("p").Req("4", "").Overhead("100m", "").Obj(), node: node().Obj(),
			want: Unschedulable, reasons: []string{"Insufficient cpu"}},
		{name: "too many pods", pod: MakePod().Name("p").Obj(), node: node().Capacity("4", "8Gi", 1).Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonTooManyPods}},
		{name: "extended resource missing",
			pod: MakePod().Name("p").Container(corev1.ResourceRequirements{Requests: corev1.ResourceList{
				"example.com/gpu": resources("1", "")[corev1.ResourceCPU]}}).Obj(),
			node: node().Obj(), want: Unschedulable, reasons: []string{"Insufficient example.com/gpu"}},
		{name: "extended resource present",
			pod: MakePod().Name("p").Container(corev1.ResourceRequirements{Requests: corev1.ResourceList{
				"example.com/gpu": resources("1", "")[corev1.ResourceCPU]}}).Obj(),
			node: node().Extended("example.com/gpu", 2).Obj(), want: Success},

		// VolumeBinding
		{name: "missing claim", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(), lookup: &fakeLookup{},
			want: UnschedulableAndUnresolvable, reasons: []string{`persistentvolumeclaim "data" not found`}},
		{name: "bound volume on this node", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "pv1", "")}, pvs: []*corev1.PersistentVolume{makePV("pv1", local)}},
			want:   Success},
		{name: "bound volume elsewhere", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "pv1", "")}, pvs: []*corev1.PersistentVolume{makePV("pv1", elsewhere)}},
			want:   UnschedulableAndUnresolvable, reasons: []string{reasonVolumeNodeConflict}},
		{name: "bound volume without node affinity", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "pv1", "")}, pvs: []*corev1.PersistentVolume{makePV("pv1", nil)}},
			want:   Success},
		{name: "bound to a missing volume", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "pv1", "")}},
			want:   UnschedulableAndUnresolvable, reasons: []string{reasonBoundToMissingPV}},
		{name: "unbound, wait for first consumer", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "", "local")}, classes: []*storagev1.StorageClass{makeClass("local", wffc)}},
			want:   Success},
		{name: "unbound, immediate", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "", "fast")}, classes: []*storagev1.StorageClass{makeClass("fast", immediate)}},
			want:   UnschedulableAndUnresolvable, reasons: []string{reasonUnboundImmediatePVC}},
		{name: "unbound, no class", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{makePVC("data", "", "")}},
			want:   UnschedulableAndUnresolvable, reasons: []string{reasonUnboundImmediatePVC}},
		{name: "being provisioned for another node", pod: MakePod().Name("p").Claim("data").Obj(), node: node().Obj(),
			lookup: &fakeLookup{pvcs: []*corev1.PersistentVolumeClaim{func() *corev1.PersistentVolumeClaim {
				c := makePVC("data", "", "local")
				c.Annotations = map[string]string{AnnSelectedNode: "n2"}
				return c
			}()}, classes: []*storagev1.StorageClass{makeClass("local", wffc)}},
			want: UnschedulableAndUnresolvable, reasons: []string{reasonVolumeSelectedNode}},

		// PodTopologySpread (DoNotSchedule)
		{name: "spread: within skew", pod: MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n2").Obj()}, want: Success},
		{name: "spread: over skew", pod: MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonSpreadConstraints}},
		{name: "spread: other namespace does not count",
			pod:  MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Namespace("other").Name("e").Label("app", "web").Node("n1").Obj()}, want: Success},
		{name: "spread: node without the key", pod: MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Obj(), want: UnschedulableAndUnresolvable, reasons: []string{reasonSpreadMissingLabel}},
		{name: "spread: ScheduleAnyway does not filter", pod: MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.ScheduleAnyway, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n1").Obj()}, want: Success},
		{name: "spread: nodes outside the pod's node affinity are no domain",
			pod:  MakePod().Name("p").Label("app", "web").NodeSelector("pool", "x").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Zone("a").Label("pool", "x").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n1").Obj()}, want: Success},

		{name: "spread: even domains fit",
			pod:  MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e1").Label("app", "web").Node("n1").Obj(), MakePod().Name("e2").Label("app", "web").Node("n2").Obj()},
			want:     Success},
		{name: "spread: fewer domains than minDomains count as a zero minimum",
			pod: func() *corev1.Pod {
				p := MakePod().Name("p").Label("app", "web").Spread(1, labelZone, corev1.DoNotSchedule, app).Obj()
				p.Spec.TopologySpreadConstraints[0].MinDomains = ptr.To(int32(3))
				return p
			}(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e1").Label("app", "web").Node("n1").Obj(), MakePod().Name("e2").Label("app", "web").Node("n2").Obj()},
			want:     Unschedulable, reasons: []string{reasonSpreadConstraints}},

		// InterPodAffinity
		{name: "affinity satisfied", pod: MakePod().Name("p").PodAffinity(labelZone, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("a").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n2").Obj()}, want: Success},
		{name: "affinity: matching pods only in another zone", pod: MakePod().Name("p").PodAffinity(labelZone, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("b").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n2").Obj()},
			want:     UnschedulableAndUnresolvable, reasons: []string{reasonAffinityRules}},
		{name: "affinity: first of its group goes anywhere", pod: MakePod().Name("p").Label("app", "web").PodAffinity(labelZone, app).Obj(),
			node: node().Zone("a").Obj(), want: Success},
		{name: "affinity: no matching pod, not self-matching", pod: MakePod().Name("p").PodAffinity(labelZone, app).Obj(),
			node: node().Zone("a").Obj(), want: UnschedulableAndUnresolvable, reasons: []string{reasonAffinityRules}},
		{name: "affinity: node without the topology key", pod: MakePod().Name("p").Label("app", "web").PodAffinity(labelZone, app).Obj(),
			node: node().Obj(), want: UnschedulableAndUnresolvable, reasons: []string{reasonAffinityRules}},
		{name: "anti-affinity violated", pod: MakePod().Name("p").PodAntiAffinity(corev1.LabelHostname, app).Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonAntiAffinityRules}},
		{name: "anti-affinity by hostname, other node", pod: MakePod().Name("p").PodAntiAffinity(corev1.LabelHostname, app).Obj(),
			node: node().Obj(), others: []*corev1.Node{MakeNode().Name("n2").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n2").Obj()}, want: Success},
		{name: "anti-affinity by zone, other node same zone", pod: MakePod().Name("p").PodAntiAffinity(labelZone, app).Obj(),
			node: node().Zone("a").Obj(), others: []*corev1.Node{MakeNode().Name("n2").Zone("a").Obj()},
			existing: []*corev1.Pod{MakePod().Name("e").Label("app", "web").Node("n2").Obj()},
			want:     Unschedulable, reasons: []string{reasonAntiAffinityRules}},
		{name: "existing pod's anti-affinity refuses the pod", pod: MakePod().Name("p").Label("app", "web").Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").PodAntiAffinity(corev1.LabelHostname, app).Node("n1").Obj()},
			want:     Unschedulable, reasons: []string{reasonExistingAntiAffinity}},
		{name: "existing pod's anti-affinity, other namespace", pod: MakePod().Namespace("other").Name("p").Label("app", "web").Obj(), node: node().Obj(),
			existing: []*corev1.Pod{MakePod().Name("e").PodAntiAffinity(corev1.LabelHostname, app).Node("n1").Obj()}, want: Success},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := append([]*corev1.Node{tt.node}, tt.others...)
			snap := NewSnapshot(nodes, tt.existing)
			var lk Lookup
			if tt.lookup != nil {
				lk = tt.lookup
			}
			s := NewFramework().Filter(snap, NewPodInfo(tt.pod), lk, tt.node.Name)
			code := Success
			if s != nil {
				code = s.Code
			}
			if code != tt.want {
				t.Fatalf("code = %v (%v), want %v", code, s, tt.want)
			}
			if tt.want != Success && !reflect.DeepEqual(s.Reasons, tt.reasons) {
				t.Errorf("reasons = %q, want %q", s.Reasons, tt.reasons)
			}
		})
	}
}

func TestAffinityTermNamespaces(t *testing.T) {
	nsl := func(ns string) labels.Set {
		return map[string]labels.Set{"prod": {"env": "prod"}, "dev": {"env": "dev"}}[ns]
	}
	owner := MakePod().Namespace("prod").Name("o").Obj()
	target := func(ns string) *corev1.Pod { return MakePod().Namespace(ns).Name("t").Label("app", "web").Obj() }
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	tests := []struct {
		name string
		term corev1.PodAffinityTerm
		ns   string
		want bool
	}{
		{"own namespace by default", corev1.PodAffinityTerm{LabelSelector: sel}, "prod", true},
		{"not other namespaces by default", corev1.PodAffinityTerm{LabelSelector: sel}, "dev", false},
		{"listed namespace", corev1.PodAffinityTerm{LabelSelector: sel, Namespaces: []string{"dev"}}, "dev", true},
		{"list excludes own", corev1.PodAffinityTerm{LabelSelector: sel, Namespaces: []string{"dev"}}, "prod", false},
		{"empty namespace selector: all", corev1.PodAffinityTerm{LabelSelector: sel, NamespaceSelector: &metav1.LabelSelector{}}, "dev", true},
		{"namespace selector", corev1.PodAffinityTerm{LabelSelector: sel, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}, "dev", true},
		{"namespace selector excludes", corev1.PodAffinityTerm{LabelSelector: sel, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}, "prod", false},
		{"nil label selector matches nothing", corev1.PodAffinityTerm{}, "prod", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, err := parseTerm(owner, &tt.term)
			if err != nil {
				t.Fatal(err)
			}
			if got := at.Matches(target(tt.ns), nsl); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}
