package deployment

import (
	"context"
	"math"

	appsv1 "k8s.io/api/apps/v1"
)

// isScalingEvent reports whether spec.replicas changed since d's active
// ReplicaSets were last sized (their desired-replicas annotation differs).
func isScalingEvent(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) bool {
	for _, rs := range active(allOf(old, newRS)) {
		desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
		if ok && desired != replicasOf(d) {
			return true
		}
	}
	return false
}

// syncScale handles a scaling event or a paused Deployment: resize the
// ReplicaSets without rolling anything out, then record the status.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if err := c.scaleReplicaSets(ctx, d, newRS, old); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncStatus(ctx, d, allOf(old, newRS), newRS)
}

// activeOrLatest returns the only active ReplicaSet, or the latest one
// when none is active; nil when several are active.
func activeOrLatest(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(old) == 0 {
		return nil
	}
	all := active(allOf(old, newRS))
	switch len(all) {
	case 0:
		if newRS != nil {
			return newRS
		}
		latest := append([]*appsv1.ReplicaSet(nil), old...)
		sortByCreation(latest)
		return latest[len(latest)-1]
	case 1:
		return all[0]
	}
	return nil
}

// saturated reports whether rs is d's new ReplicaSet at full size and
// fully available.
func saturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	n := replicasOf(d)
	return ok && desired == n && rsReplicas(rs) == n && rs.Status.AvailableReplicas == n
}

// scaleReplicaSets brings the ReplicaSets' total to what d allows. With a
// single active ReplicaSet it simply takes spec.replicas; in the middle of
// a rolling update the change is shared out in proportion to the
// ReplicaSets' sizes, so the rollout's shape is kept.
func (c *Controller) scaleReplicaSets(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if rs := activeOrLatest(newRS, old); rs != nil {
		// Also refreshes the replica annotations when the size is right.
		_, _, err := c.scale(ctx, d, rs, replicasOf(d))
		return err
	}
	if saturated(d, newRS) {
		for _, rs := range active(old) {
			if _, _, err := c.scaleAndRecord(ctx, d, rs, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if !isRollingUpdate(d) {
		return nil
	}
	all := active(allOf(old, newRS))
	var allowed int32
	if replicasOf(d) > 0 {
		allowed = replicasOf(d) + maxSurge(d)
	}
	toAdd := allowed - sumSpec(all)
	sortBySize(all, toAdd > 0)
	sizes := make([]int32, len(all))
	var added int32
	for i, rs := range all {
		sizes[i] = rsReplicas(rs)
		if toAdd != 0 {
			p := proportion(d, rs, toAdd, added)
			sizes[i] += p
			added += p
		}
	}
	if len(all) > 0 && added != toAdd {
		// Rounding leftovers go to the largest ReplicaSet.
		sizes[0] = max(sizes[0]+toAdd-added, 0)
	}
	for i, rs := range all {
		if _, _, err := c.scale(ctx, d, rs, sizes[i]); err != nil {
			return err
		}
	}
	return nil
}

// proportion is rs's share of toAdd (negative: of the removal), given
// that added has been handed out already.
func proportion(d *appsv1.Deployment, rs *appsv1.ReplicaSet, toAdd, added int32) int32 {
	if rsReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	share := fraction(d, rs)
	left := toAdd - added
	if toAdd > 0 {
		return min(share, left)
	}
	return max(share, left)
}

// fraction is how much rs should grow (or shrink) to keep its share of the
// Deployment's maximum size, judged by the max-replicas it was last sized
// for.
func fraction(d *appsv1.Deployment, rs *appsv1.ReplicaSet) int32 {
	if replicasOf(d) == 0 {
		return -rsReplicas(rs)
	}
	target := int64(replicasOf(d)) + int64(maxSurge(d))
	annotated, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || annotated == 0 {
		annotated = d.Status.Replicas
	}
	if annotated == 0 {
		return 0
	}
	size := float64(int64(rsReplicas(rs))*target) / float64(annotated)
	return int32(math.Round(size)) - rsReplicas(rs)
}
