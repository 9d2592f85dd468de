package replicaset

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Reasons of the ReplicaFailure condition.
const (
	reasonFailedCreate = "FailedCreate"
	reasonFailedDelete = "FailedDelete"
)

// calculateStatus returns rs's status for its active pods, and when a
// ready pod will next become available (0: none waiting). manageErr is the
// error of this sync's creations or deletions: it sets the ReplicaFailure
// condition, and a sync without one clears it.
func calculateStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod, manageErr error, now time.Time) (appsv1.ReplicaSetStatus, time.Duration) {
	s := *rs.Status.DeepCopy()
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	var fully, ready, available int32
	var wait time.Duration
	for _, p := range pods {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fully++
		}
		if !isPodReady(p) {
			continue
		}
		ready++
		ok, in := availableIn(p, rs.Spec.MinReadySeconds, now)
		if ok {
			available++
		} else if wait == 0 || in < wait {
			wait = in
		}
	}
	s.Replicas = int32(len(pods))
	s.FullyLabeledReplicas = fully
	s.ReadyReplicas = ready
	s.AvailableReplicas = available
	s.ObservedGeneration = rs.Generation

	cond := findCondition(s.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && cond == nil:
		reason := reasonFailedCreate
		if len(pods) > int(replicasOf(rs)) {
			reason = reasonFailedDelete
		}
		s.Conditions = append(s.Conditions, appsv1.ReplicaSetCondition{
			Type:               appsv1.ReplicaSetReplicaFailure,
			Status:             corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now),
			Reason:             reason,
			Message:            manageErr.Error(),
		})
	case manageErr == nil && cond != nil:
		s.Conditions = removeCondition(s.Conditions, appsv1.ReplicaSetReplicaFailure)
	}
	if wait > 0 {
		// A second of slack: the condition's time has second precision.
		wait += time.Second
	}
	return s, wait
}

func findCondition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

func removeCondition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) []appsv1.ReplicaSetCondition {
	var out []appsv1.ReplicaSetCondition
	for _, c := range conds {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}
