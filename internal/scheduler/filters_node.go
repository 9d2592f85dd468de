package scheduler

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// This file has the filters and scores that look at one node alone:
// cordon, taints, node selector and affinity, host ports, resources.

// filterNodeUnschedulable rejects cordoned nodes (spec.unschedulable),
// unless the pod tolerates the node.kubernetes.io/unschedulable taint that
// marks them (as DaemonSet pods do).
func filterNodeUnschedulable(st *CycleState, n *NodeInfo) *Status {
	if !n.Node.Spec.Unschedulable {
		return nil
	}
	t := corev1.Taint{Key: taintUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	if tolerated(st.Pod.Pod.Spec.Tolerations, &t) {
		return nil
	}
	return unresolvable(PluginNodeUnschedulable, reasonUnschedulable)
}

// filterTaintToleration rejects a node with a NoSchedule or NoExecute
// taint the pod does not tolerate; the message names the first one.
// PreferNoSchedule taints only lower the score.
func filterTaintToleration(st *CycleState, n *NodeInfo) *Status {
	tols := st.Pod.Pod.Spec.Tolerations
	for i := range n.taints {
		t := &n.taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(tols, t) {
			return unresolvable(PluginTaintToleration, reasonUntoleratedTaint(t.Key, t.Value))
		}
	}
	return nil
}

// scoreTaintToleration counts the PreferNoSchedule taints the pod does not
// tolerate; normalizeReverse turns fewer into a higher score.
func scoreTaintToleration(st *CycleState, n *NodeInfo) int64 {
	var count int64
	for i := range n.taints {
		t := &n.taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !toleratedForPrefer(st.Pod.Pod.Spec.Tolerations, t) {
			count++
		}
	}
	return count
}

// toleratedForPrefer only counts tolerations that apply to
// PreferNoSchedule (that effect, or any effect).
func toleratedForPrefer(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if (tols[i].Effect == "" || tols[i].Effect == corev1.TaintEffectPreferNoSchedule) && toleratesTaint(&tols[i], t) {
			return true
		}
	}
	return false
}

func tolerated(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if toleratesTaint(&tols[i], t) {
			return true
		}
	}
	return false
}

// toleratesTaint matches one toleration: an empty effect matches every
// effect, an empty key with Exists matches every key, Equal (the default)
// compares values, Lt and Gt compare integer values (the taint's value
// must be less or greater than the toleration's).
func toleratesTaint(tol *corev1.Toleration, t *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case "", corev1.TolerationOpEqual:
		return tol.Value == t.Value
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpLt, corev1.TolerationOpGt:
		want, err1 := strconv.ParseInt(tol.Value, 10, 64)
		have, err2 := strconv.ParseInt(t.Value, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if tol.Operator == corev1.TolerationOpLt {
			return have < want
		}
		return have > want
	}
	return false
}

// filterNodeAffinity checks spec.nodeSelector (every label must match) and
// the required node affinity (any one term must match).
func filterNodeAffinity(st *CycleState, n *NodeInfo) *Status {
	if !podMatchesNodeAffinity(st.Pod.Pod, n.Node) {
		return unresolvable(PluginNodeAffinity, reasonNodeAffinity)
	}
	return nil
}

func podMatchesNodeAffinity(pod *corev1.Pod, node *corev1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if lv, ok := node.Labels[k]; !ok || lv != v {
			return false
		}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	return nodeMatchesTerms(node, a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms)
}

// nodeMatchesTerms is true if any term matches (an empty list matches
// nothing).
func nodeMatchesTerms(node *corev1.Node, terms []corev1.NodeSelectorTerm) bool {
	for i := range terms {
		if nodeMatchesTerm(node, &terms[i]) {
			return true
		}
	}
	return false
}

// nodeMatchesTerm is true if every expression and field requirement of
// the term matches; a term with neither matches nothing.
func nodeMatchesTerm(node *corev1.Node, t *corev1.NodeSelectorTerm) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		r := &t.MatchExpressions[i]
		v, ok := node.Labels[r.Key]
		if !requirementMatches(r, v, ok) {
			return false
		}
	}
	for i := range t.MatchFields {
		r := &t.MatchFields[i]
		if r.Key != "metadata.name" || (r.Operator != corev1.NodeSelectorOpIn && r.Operator != corev1.NodeSelectorOpNotIn) {
			return false
		}
		if !requirementMatches(r, node.Name, true) {
			return false
		}
	}
	return true
}

// requirementMatches applies one requirement to a label value (ok false
// when the label is missing). Gt and Lt compare integers; a value that is
// not one never matches.
func requirementMatches(r *corev1.NodeSelectorRequirement, v string, ok bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// preScoreNodeAffinity is active when the pod has preferred node terms.
func preScoreNodeAffinity(st *CycleState, _ []*NodeInfo) bool {
	a := st.Pod.Pod.Spec.Affinity
	return a != nil && a.NodeAffinity != nil && len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) > 0
}

// scoreNodeAffinity sums the weights of the preferred terms the node
// matches; normalizeByMax scales them to 0-100.
func scoreNodeAffinity(st *CycleState, n *NodeInfo) int64 {
	var sum int64
	for _, p := range st.Pod.Pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if p.Weight != 0 && nodeMatchesTerm(n.Node, &p.Preference) {
			sum += int64(p.Weight)
		}
	}
	return sum
}

// filterNodePorts rejects a node where a host port the pod wants is taken.
func filterNodePorts(st *CycleState, n *NodeInfo) *Status {
	for _, hp := range st.Pod.Ports {
		if !n.portFree(hp) {
			return unschedulable(PluginNodePorts, reasonNodePorts)
		}
	}
	return nil
}

// filterResources checks the pod's requests against what is left of the
// node's allocatable, and the node's pod count; every missing resource is
// a reason ("Insufficient cpu", "Insufficient memory").
func filterResources(st *CycleState, n *NodeInfo) *Status {
	var reasons []string
	if n.Requested.Pods+1 > n.Allocatable.Pods {
		reasons = append(reasons, reasonTooManyPods)
	}
	r := &st.Pod.Requests
	if r.IsZero() {
		if reasons != nil {
			return unschedulable(PluginNodeResourcesFit, reasons...)
		}
		return nil
	}
	if r.MilliCPU > 0 && r.MilliCPU > n.Allocatable.MilliCPU-n.Requested.MilliCPU {
		reasons = append(reasons, reasonInsufficient(string(corev1.ResourceCPU)))
	}
	if r.Memory > 0 && r.Memory > n.Allocatable.Memory-n.Requested.Memory {
		reasons = append(reasons, reasonInsufficient(string(corev1.ResourceMemory)))
	}
	if r.EphemeralStorage > 0 && r.EphemeralStorage > n.Allocatable.EphemeralStorage-n.Requested.EphemeralStorage {
		reasons = append(reasons, reasonInsufficient(string(corev1.ResourceEphemeralStorage)))
	}
	for name, v := range r.Scalar {
		if v > 0 && v > n.Allocatable.Scalar[name]-n.Requested.Scalar[name] {
			reasons = append(reasons, reasonInsufficient(string(name)))
		}
	}
	if reasons != nil {
		return unschedulable(PluginNodeResourcesFit, reasons...)
	}
	return nil
}

// scoreLeastAllocated favours nodes with the most cpu and memory left once
// the pod is on them: the mean over the two of free/allocatable, 0-100.
func scoreLeastAllocated(st *CycleState, n *NodeInfo) int64 {
	free := func(requested, pod, allocatable int64) int64 {
		if allocatable <= 0 {
			return 0
		}
		used := requested + pod
		if used > allocatable {
			return 0
		}
		return (allocatable - used) * maxNodeScore / allocatable
	}
	cpu := free(n.NonZeroRequested.MilliCPU, st.Pod.NonZero.MilliCPU, n.Allocatable.MilliCPU)
	mem := free(n.NonZeroRequested.Memory, st.Pod.NonZero.Memory, n.Allocatable.Memory)
	return (cpu + mem) / 2
}

// scoreBalancedAllocation favours nodes whose cpu and memory would be used
// in the same proportion once the pod is on them: 100 × (1 − the standard
// deviation of the two fractions).
func scoreBalancedAllocation(st *CycleState, n *NodeInfo) int64 {
	frac := func(requested, pod, allocatable int64) float64 {
		if allocatable <= 0 {
			return 1
		}
		f := float64(requested+pod) / float64(allocatable)
		return min(f, 1)
	}
	c := frac(n.NonZeroRequested.MilliCPU, st.Pod.NonZero.MilliCPU, n.Allocatable.MilliCPU)
	m := frac(n.NonZeroRequested.Memory, st.Pod.NonZero.Memory, n.Allocatable.Memory)
	d := c - m
	if d < 0 {
		d = -d
	}
	return int64((1 - d/2) * maxNodeScore)
}
