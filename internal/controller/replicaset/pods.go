package replicaset

import (
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodDeletionCostAnnotation ranks a ReplicaSet's pods for deletion on
// scale-down: lower cost goes first.
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// isActive reports whether pod counts towards a ReplicaSet's replicas: it
// has not finished and is not being deleted.
func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func activePods(pods []*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if isActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// readyCondition returns pod's Ready condition, or nil.
func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// isPodReady reports whether pod's Ready condition is True.
func isPodReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// availableIn returns whether pod is available at now (ready for at least
// minReadySeconds) and, for a ready pod that is not yet, how long until it
// is.
func availableIn(p *corev1.Pod, minReadySeconds int32, now time.Time) (bool, time.Duration) {
	c := readyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false, 0
	}
	if minReadySeconds <= 0 {
		return true, 0
	}
	at := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second)
	if !c.LastTransitionTime.IsZero() && !at.After(now) {
		return true, 0
	}
	if c.LastTransitionTime.IsZero() {
		return false, time.Duration(minReadySeconds) * time.Second
	}
	return false, at.Sub(now)
}

// newPod builds a pod from rs's template, owned by rs.
func newPod(rs *appsv1.ReplicaSet) *corev1.Pod {
	t := rs.Spec.Template.DeepCopy()
	prefix := rs.Name + "-"
	if len(apimachineryvalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		prefix = rs.Name
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       rs.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, rsKind())},
		},
		Spec: t.Spec,
	}
}

// rankedPod is a deletion candidate with the number of pods of the same
// family (this ReplicaSet and its siblings under the same owner) on its node.
type rankedPod struct {
	pod       *corev1.Pod
	colocated int
}

// podsToDelete picks n of pods to delete, the least valuable first:
// unscheduled before scheduled, pending before unknown before running, not
// ready before ready, lower pod-deletion-cost first, pods on crowded nodes
// first, more restarts first, ready for a shorter time first, newer first.
// related are the active pods of the whole family, used for crowding.
func podsToDelete(pods, related []*corev1.Pod, n int) []*corev1.Pod {
	if n >= len(pods) {
		return pods
	}
	perNode := map[string]int{}
	for _, p := range related {
		if p.Spec.NodeName != "" {
			perNode[p.Spec.NodeName]++
		}
	}
	ranked := make([]rankedPod, len(pods))
	for i, p := range pods {
		ranked[i] = rankedPod{pod: p, colocated: perNode[p.Spec.NodeName]}
	}
	sort.SliceStable(ranked, func(i, j int) bool { return deleteFirst(ranked[i], ranked[j]) })
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = ranked[i].pod
	}
	return out
}

func phaseRank(p corev1.PodPhase) int {
	switch p {
	case corev1.PodPending, "":
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 3
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	c, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return c
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, s := range p.Status.ContainerStatuses {
		m = max(m, s.RestartCount)
	}
	return m
}

// deleteFirst reports whether a should be deleted before b.
func deleteFirst(a, b rankedPod) bool {
	pa, pb := a.pod, b.pod
	if (pa.Spec.NodeName == "") != (pb.Spec.NodeName == "") {
		return pa.Spec.NodeName == ""
	}
	if ra, rb := phaseRank(pa.Status.Phase), phaseRank(pb.Status.Phase); ra != rb {
		return ra < rb
	}
	readyA, readyB := isPodReady(pa), isPodReady(pb)
	if readyA != readyB {
		return !readyA
	}
	if ca, cb := deletionCost(pa), deletionCost(pb); ca != cb {
		return ca < cb
	}
	if a.colocated != b.colocated {
		return a.colocated > b.colocated
	}
	if ra, rb := maxRestarts(pa), maxRestarts(pb); ra != rb {
		return ra > rb
	}
	if readyA && readyB {
		ta, tb := readyCondition(pa).LastTransitionTime, readyCondition(pb).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta)
		}
	}
	if !pa.CreationTimestamp.Equal(&pb.CreationTimestamp) {
		return pb.CreationTimestamp.Before(&pa.CreationTimestamp)
	}
	return pa.Name < pb.Name
}
