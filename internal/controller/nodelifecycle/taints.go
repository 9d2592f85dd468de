package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Taint keys this controller manages.
const (
	TaintNotReady           = corev1.TaintNodeNotReady           // node.kubernetes.io/not-ready
	TaintUnreachable        = corev1.TaintNodeUnreachable        // node.kubernetes.io/unreachable
	TaintMemoryPressure     = corev1.TaintNodeMemoryPressure     // node.kubernetes.io/memory-pressure
	TaintDiskPressure       = corev1.TaintNodeDiskPressure       // node.kubernetes.io/disk-pressure
	TaintPIDPressure        = corev1.TaintNodePIDPressure        // node.kubernetes.io/pid-pressure
	TaintNetworkUnavailable = corev1.TaintNodeNetworkUnavailable // node.kubernetes.io/network-unavailable
	TaintUnschedulable      = corev1.TaintNodeUnschedulable      // node.kubernetes.io/unschedulable
)

// managed reports whether this controller owns taint t: it may add and
// remove it. Other taints are never touched.
func managed(t corev1.Taint) bool {
	switch t.Effect {
	case corev1.TaintEffectNoExecute:
		return t.Key == TaintNotReady || t.Key == TaintUnreachable
	case corev1.TaintEffectNoSchedule:
		switch t.Key {
		case TaintNotReady, TaintUnreachable, TaintMemoryPressure, TaintDiskPressure,
			TaintPIDPressure, TaintNetworkUnavailable, TaintUnschedulable:
			return true
		}
	}
	return false
}

// condition returns the node's condition of type t, or nil.
func condition(n *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// readyStatus is the node's Ready condition status; Unknown when it has
// none.
func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	if c := condition(n, corev1.NodeReady); c != nil {
		return c.Status
	}
	return corev1.ConditionUnknown
}

// noScheduleTaints are the NoSchedule taints the node's conditions call
// for (Kubernetes' "taint nodes by condition").
func noScheduleTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	add := func(key string) {
		out = append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
	}
	switch readyStatus(n) {
	case corev1.ConditionFalse:
		add(TaintNotReady)
	case corev1.ConditionUnknown:
		add(TaintUnreachable)
	}
	for _, c := range []struct {
		cond corev1.NodeConditionType
		key  string
	}{
		{corev1.NodeMemoryPressure, TaintMemoryPressure},
		{corev1.NodeDiskPressure, TaintDiskPressure},
		{corev1.NodePIDPressure, TaintPIDPressure},
		{corev1.NodeNetworkUnavailable, TaintNetworkUnavailable},
	} {
		if nc := condition(n, c.cond); nc != nil && nc.Status == corev1.ConditionTrue {
			add(c.key)
		}
	}
	if n.Spec.Unschedulable {
		add(TaintUnschedulable)
	}
	return out
}

// noExecuteTaint is the NoExecute taint the node's Ready condition calls
// for, or "" for none.
func noExecuteTaint(n *corev1.Node) string {
	switch readyStatus(n) {
	case corev1.ConditionFalse:
		return TaintNotReady
	case corev1.ConditionUnknown:
		return TaintUnreachable
	}
	return ""
}

// hasNoExecute reports whether the node carries a managed NoExecute taint.
func hasNoExecute(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute && managed(t) {
			return true
		}
	}
	return false
}

// mergeTaints returns the node's taints with the managed ones replaced by
// want (keeping the time a taint was added when it stays), and whether
// anything changed. NoExecute taints carry the time they were added.
func mergeTaints(have, want []corev1.Taint, now time.Time) ([]corev1.Taint, bool) {
	type id struct {
		key    string
		effect corev1.TaintEffect
	}
	wanted := map[id]bool{}
	for _, t := range want {
		wanted[id{t.Key, t.Effect}] = true
	}
	var out []corev1.Taint
	changed := false
	present := map[id]bool{}
	for _, t := range have {
		k := id{t.Key, t.Effect}
		if managed(t) && !wanted[k] {
			changed = true
			continue
		}
		present[k] = true
		out = append(out, t)
	}
	for _, t := range want {
		k := id{t.Key, t.Effect}
		if present[k] {
			continue
		}
		if t.Effect == corev1.TaintEffectNoExecute {
			ts := metav1.NewTime(now)
			t.TimeAdded = &ts
		}
		out = append(out, t)
		present[k] = true
		changed = true
	}
	return out, changed
}

// tolerates reports whether toleration tol tolerates taint t.
func tolerates(tol corev1.Toleration, t corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != t.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return tol.Value == t.Value
	}
	return false
}

// tolerationWindow decides how long a pod may stay on a node with the
// NoExecute taints: evict now (false, 0), stay for good (true, -1), or
// stay for the shortest tolerationSeconds of the matching tolerations.
func tolerationWindow(tolerations []corev1.Toleration, taints []corev1.Taint) (tolerated bool, window time.Duration) {
	window = -1
	for _, t := range taints {
		matched := false
		for _, tol := range tolerations {
			if !tolerates(tol, t) {
				continue
			}
			matched = true
			if tol.TolerationSeconds == nil {
				continue
			}
			s := max(*tol.TolerationSeconds, 0)
			if d := time.Duration(s) * time.Second; window < 0 || d < window {
				window = d
			}
		}
		if !matched {
			return false, 0
		}
	}
	return true, window
}
