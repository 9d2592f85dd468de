package deployment

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// calculateStatus is d's status from its ReplicaSets (conditions other
// than Available are carried over).
func calculateStatus(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, now time.Time) appsv1.DeploymentStatus {
	available := sumStatus(all, func(s *appsv1.ReplicaSetStatus) int32 { return s.AvailableReplicas })
	unavailable := max(sumSpec(all)-available, 0)
	s := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            sumStatus(all, func(s *appsv1.ReplicaSetStatus) int32 { return s.Replicas }),
		UpdatedReplicas:     sumStatus([]*appsv1.ReplicaSet{newRS}, func(s *appsv1.ReplicaSetStatus) int32 { return s.Replicas }),
		ReadyReplicas:       sumStatus(all, func(s *appsv1.ReplicaSetStatus) int32 { return s.ReadyReplicas }),
		AvailableReplicas:   available,
		UnavailableReplicas: unavailable,
		CollisionCount:      d.Status.CollisionCount,
	}
	for _, c := range d.Status.Conditions {
		s.Conditions = append(s.Conditions, *c.DeepCopy())
	}
	if available >= replicasOf(d)-maxUnavailable(d) {
		setCondition(&s, newCondition(appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, "Deployment has minimum availability.", now))
	} else {
		setCondition(&s, newCondition(appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailable, "Deployment does not have minimum availability.", now))
	}
	return s
}

// syncStatus records d's status from its ReplicaSets, if it changed.
func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	s := calculateStatus(d, all, newRS, c.now())
	if equality.Semantic.DeepEqual(d.Status, s) {
		return nil
	}
	d.Status = s
	return c.updateStatus(ctx, d)
}

// syncRolloutStatus records d's status during a rollout, with the
// Progressing condition: the new ReplicaSet available, progress made, or
// no progress for progressDeadlineSeconds. A rollout still under way is
// looked at again when its deadline would pass.
func (c *Controller) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) error {
	now := c.now()
	s := calculateStatus(d, all, newRS, now)
	if !hasProgressDeadline(d) {
		removeCondition(&s, appsv1.DeploymentProgressing)
	}
	cur := getCondition(&s, appsv1.DeploymentProgressing)
	done := s.Replicas == s.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewRSAvailable
	if hasProgressDeadline(d) && !done {
		switch {
		case complete(d, &s):
			msg := fmt.Sprintf("Deployment %q has successfully progressed.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)
			}
			setCondition(&s, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, msg, now))
		case progressing(d, &s):
			msg := fmt.Sprintf("Deployment %q is progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
			}
			cond := newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, msg, now)
			// Progress refreshes the update time (the deadline counts from
			// it) but is no transition while the status stays True.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					cond.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&s, appsv1.DeploymentProgressing)
			}
			setCondition(&s, cond)
		case timedOut(d, &s, now):
			msg := fmt.Sprintf("Deployment %q has timed out progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)
			}
			setCondition(&s, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, msg, now))
		}
	}
	// A ReplicaSet that cannot create or delete pods makes d fail too.
	if f := replicaFailure(all); f != nil {
		setCondition(&s, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentReplicaFailure, Status: f.Status, Reason: f.Reason, Message: f.Message,
			LastUpdateTime: f.LastTransitionTime, LastTransitionTime: f.LastTransitionTime,
		})
	} else {
		removeCondition(&s, appsv1.DeploymentReplicaFailure)
	}

	if equality.Semantic.DeepEqual(d.Status, s) {
		c.requeueStuck(d, &s, now)
		return nil
	}
	d.Status = s
	if err := c.updateStatus(ctx, d); err != nil {
		return err
	}
	c.requeueStuck(d, &d.Status, now)
	return nil
}

func replicaFailure(all []*appsv1.ReplicaSet) *appsv1.ReplicaSetCondition {
	for _, rs := range nonNil(all) {
		for i := range rs.Status.Conditions {
			if rs.Status.Conditions[i].Type == appsv1.ReplicaSetReplicaFailure {
				return &rs.Status.Conditions[i]
			}
		}
	}
	return nil
}

// requeueStuck has d looked at again when its progress deadline passes,
// so that a rollout nothing else happens to is still marked as timed out.
func (c *Controller) requeueStuck(d *appsv1.Deployment, s *appsv1.DeploymentStatus, now time.Time) {
	cur := getCondition(s, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil || complete(d, s) || cur.Reason == ReasonTimedOut || d.Spec.Paused {
		return
	}
	after := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(now)
	if after < time.Second {
		// Round up: the condition's time has second precision.
		after = time.Second
	}
	c.queue.AddAfter(keyOf(d), after)
}
