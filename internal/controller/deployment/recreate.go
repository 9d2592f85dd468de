package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutRecreate moves d to its template with the Recreate strategy:
// scale every old ReplicaSet to zero, wait until none of their pods is
// left, and only then create (or grow) the new ReplicaSet.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) error {
	all := allOf(old, newRS)

	scaledDown := false
	for _, rs := range active(old) {
		scaled, _, err := c.scaleAndRecord(ctx, d, rs, 0)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown || oldPodsRunning(newRS, old, pods) {
		// Wait for the old pods to go; their deletion requeues d.
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if newRS == nil {
		var err error
		if newRS, err = c.createReplicaSet(ctx, d, old); err != nil {
			return err
		}
		all = allOf(old, newRS)
	}
	if _, _, err := c.scaleAndRecord(ctx, d, newRS, replicasOf(d)); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

// oldPodsRunning reports whether any pod of the old ReplicaSets may still
// run: their status counts some, or a pod of theirs has not finished (one
// being deleted still runs until it is gone).
func oldPodsRunning(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) bool {
	if sumStatus(old, func(s *appsv1.ReplicaSetStatus) int32 { return s.Replicas }) > 0 {
		return true
	}
	for uid, ps := range pods {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, p := range ps {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return true
			}
		}
	}
	return false
}
