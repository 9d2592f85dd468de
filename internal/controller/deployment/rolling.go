package deployment

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling moves d one step towards its template with the
// RollingUpdate strategy: grow the new ReplicaSet within maxSurge, shrink
// the old ones within maxUnavailable, and record the status.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) error {
	if newRS == nil {
		var err error
		if newRS, err = c.createReplicaSet(ctx, d, old); err != nil {
			return err
		}
	}
	all := allOf(old, newRS)

	scaledUp, err := c.reconcileNewReplicaSet(ctx, d, all, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	scaledDown, err := c.reconcileOldReplicaSets(ctx, d, all, active(old), newRS)
	if err != nil {
		return err
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, all, newRS)
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, old); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, all, newRS)
}

func (c *Controller) reconcileNewReplicaSet(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	want := replicasOf(d)
	switch cur := rsReplicas(newRS); {
	case cur == want:
		return false, nil
	case cur > want:
		scaled, _, err := c.scaleAndRecord(ctx, d, newRS, want)
		return scaled, err
	}
	n, err := newRSReplicas(d, all, newRS)
	if err != nil {
		return false, err
	}
	scaled, _, err := c.scaleAndRecord(ctx, d, newRS, n)
	return scaled, err
}

// availableEstimate is what rs will have available once its controller
// has caught up with its spec: no more than its status says, and no more
// than its spec allows. Taking the smaller keeps the count safe while a
// ReplicaSet's status still reflects pods it is deleting.
func availableEstimate(rs *appsv1.ReplicaSet) int32 {
	return min(rs.Status.AvailableReplicas, rsReplicas(rs))
}

// reconcileOldReplicaSets shrinks the old ReplicaSets as far as
// maxUnavailable allows: first their unavailable pods, then available ones
// while d keeps at least spec.replicas - maxUnavailable available.
func (c *Controller) reconcileOldReplicaSets(ctx context.Context, d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if sumSpec(old) == 0 {
		return false, nil
	}
	minAvailable := replicasOf(d) - maxUnavailable(d)
	newUnavailable := rsReplicas(newRS) - availableEstimate(newRS)
	// Pods that may go: every pod there is, less those that must stay
	// available, less the new pods not yet available (they may never be).
	budget := sumSpec(all) - minAvailable - newUnavailable
	if budget <= 0 {
		return false, nil
	}
	old, cleaned, err := c.cleanupUnhealthyReplicas(ctx, d, old, budget)
	if err != nil {
		return false, err
	}
	budget -= cleaned
	all = allOf(old, newRS)
	scaled, err := c.scaleDownOldForRollingUpdate(ctx, d, all, old, budget)
	if err != nil {
		return false, err
	}
	return cleaned+scaled > 0, nil
}

// cleanupUnhealthyReplicas removes up to budget unavailable pods from the
// old ReplicaSets, oldest first: they serve nothing and would otherwise
// hold the rollout back.
func (c *Controller) cleanupUnhealthyReplicas(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet, budget int32) ([]*appsv1.ReplicaSet, int32, error) {
	old = append([]*appsv1.ReplicaSet(nil), old...)
	sortByCreation(old)
	var total int32
	for i, rs := range old {
		if total >= budget {
			break
		}
		n := rsReplicas(rs)
		unhealthy := n - availableEstimate(rs)
		if n == 0 || unhealthy <= 0 {
			continue
		}
		down := min(budget-total, unhealthy)
		if n-down < 0 {
			return nil, 0, fmt.Errorf("replicaset %s/%s: would scale to %d", rs.Namespace, rs.Name, n-down)
		}
		_, out, err := c.scaleAndRecord(ctx, d, rs, n-down)
		if err != nil {
			return nil, total, err
		}
		old[i] = out
		total += down
	}
	return old, total, nil
}

// scaleDownOldForRollingUpdate removes available old pods, oldest
// ReplicaSet first, while more than spec.replicas - maxUnavailable stay
// available, and no more than budget.
func (c *Controller) scaleDownOldForRollingUpdate(ctx context.Context, d *appsv1.Deployment, all, old []*appsv1.ReplicaSet, budget int32) (int32, error) {
	minAvailable := replicasOf(d) - maxUnavailable(d)
	var available int32
	for _, rs := range nonNil(all) {
		available += availableEstimate(rs)
	}
	if available <= minAvailable || budget <= 0 {
		return 0, nil
	}
	want := min(available-minAvailable, budget)
	old = append([]*appsv1.ReplicaSet(nil), old...)
	sortByCreation(old)
	var total int32
	for _, rs := range old {
		if total >= want {
			break
		}
		n := rsReplicas(rs)
		if n == 0 {
			continue
		}
		down := min(n, want-total)
		if _, _, err := c.scaleAndRecord(ctx, d, rs, n-down); err != nil {
			return total, err
		}
		total += down
	}
	return total, nil
}
