package deployment

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// newAndOld finds d's new ReplicaSet (the one with d's template; nil if
// there is none yet) and the old ones, and brings the new one's revision up
// to date: it gets the revision after the highest old one, so a template
// that returns to an earlier ReplicaSet's (a rollback) reuses that
// ReplicaSet as the next revision. It writes, so a sync calls it once and
// passes its results on.
func (c *Controller) newAndOld(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	existing, old := findNewAndOld(d, rsList)
	if existing == nil {
		return nil, old, nil
	}
	rs := existing.DeepCopy()
	annotationsChanged := setNewRSAnnotations(d, rs, maxRevision(old)+1, true)
	if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
		rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
		out, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("update revision of replicaset %s/%s: %w", rs.Namespace, rs.Name, err)
		}
		rs = out
	}
	if err := c.setRevision(ctx, d, rs.Annotations[RevisionAnnotation]); err != nil {
		return nil, nil, err
	}
	if hasProgressDeadline(d) && getCondition(&d.Status, appsv1.DeploymentProgressing) == nil {
		msg := fmt.Sprintf("Found new replica set %q", rs.Name)
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS, msg, c.now()))
		if err := c.updateStatus(ctx, d); err != nil {
			return nil, nil, err
		}
	}
	return rs, old, nil
}

// createReplicaSet creates d's new ReplicaSet (newAndOld found none), as
// the revision after the highest of old.
func (c *Controller) createReplicaSet(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, error) {
	newRevision := maxRevision(old) + 1
	hash, err := TemplateHash(&d.Spec.Template, d.Status.CollisionCount)
	if err != nil {
		return nil, err
	}
	template := d.Spec.Template.DeepCopy()
	template.Labels = withLabel(template.Labels, HashLabel, hash)
	selector := d.Spec.Selector.DeepCopy()
	selector.MatchLabels = withLabel(selector.MatchLabels, HashLabel, hash)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			Labels:          withLabel(d.Spec.Template.Labels, HashLabel, hash),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind())},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32(0)),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	replicas, err := newRSReplicas(d, allOf(old, rs), rs)
	if err != nil {
		return nil, err
	}
	rs.Spec.Replicas = &replicas
	setNewRSAnnotations(d, rs, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	alreadyExisted := false
	switch {
	case apierrors.IsAlreadyExists(err):
		cur, getErr := c.rsLister.ReplicaSets(d.Namespace).Get(rs.Name)
		if getErr != nil {
			return nil, fmt.Errorf("replicaset %s/%s exists but is not in the cache yet: %w", d.Namespace, rs.Name, getErr)
		}
		if ref := metav1.GetControllerOf(cur); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &cur.Spec.Template) {
			// Ours, and the cache lagged when we looked for it.
			created, alreadyExisted = cur, true
			break
		}
		// A hash collision with someone else's ReplicaSet: bump the
		// collision count, which changes the hash, and try again.
		var n int32
		if d.Status.CollisionCount != nil {
			n = *d.Status.CollisionCount
		}
		d.Status.CollisionCount = new(n + 1)
		if uerr := c.updateStatus(ctx, d); uerr != nil {
			return nil, uerr
		}
		c.log.Info("pod template hash collision; retrying with a new collision count", "deployment", keyOf(d), "replicaset", rs.Name, "collisionCount", n+1)
		return nil, fmt.Errorf("replicaset name %s/%s is taken: %w", d.Namespace, rs.Name, err)
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		c.recorder.Event(d, corev1.EventTypeWarning, ReasonFailedRSCreate, msg)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedRSCreate, msg, c.now()))
			_ = c.updateStatus(ctx, d) // best effort; the create error is what matters
		}
		return nil, fmt.Errorf("create replicaset for deployment %s: %w", keyOf(d), err)
	}
	if !alreadyExisted {
		c.log.Debug("created replicaset", "deployment", keyOf(d), "replicaset", created.Name, "replicas", replicas)
		if replicas > 0 {
			c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled up replica set %s to %d from 0", created.Name, replicas)
		}
	}
	if err := c.setRevision(ctx, d, strconv.FormatInt(newRevision, 10)); err != nil {
		return nil, err
	}
	if !alreadyExisted && hasProgressDeadline(d) {
		msg := fmt.Sprintf("Created new replica set %q", created.Name)
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated, msg, c.now()))
		if err := c.updateStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

func withLabel(in map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for a, b := range in {
		out[a] = b
	}
	out[k] = v
	return out
}

// newRSReplicas is the size the new ReplicaSet should grow to now.
func newRSReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (int32, error) {
	want := replicasOf(d)
	switch d.Spec.Strategy.Type {
	case appsv1.RollingUpdateDeploymentStrategyType:
		cur := rsReplicas(newRS)
		if cur >= want {
			return want, nil
		}
		s, u := rollingParams(d)
		surge, _, err := resolveFenceposts(s, u, want)
		if err != nil {
			return 0, fmt.Errorf("deployment %s: %w", keyOf(d), err)
		}
		total := sumSpec(all)
		limit := want + surge
		if total >= limit {
			return cur, nil // at the surge limit: wait for old pods to go
		}
		return cur + min(limit-total, want-cur), nil
	case appsv1.RecreateDeploymentStrategyType:
		return want, nil
	}
	return 0, fmt.Errorf("deployment %s: unknown strategy %q", keyOf(d), d.Spec.Strategy.Type)
}

// scaleAndRecord scales rs to n (if it is not there), with an event.
func (c *Controller) scaleAndRecord(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int32) (bool, *appsv1.ReplicaSet, error) {
	if rsReplicas(rs) == n {
		return false, rs, nil
	}
	return c.scale(ctx, d, rs, n)
}

// scale sets rs's replicas to n and its replica annotations to d's
// current ones; it reports whether the size changed.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int32) (bool, *appsv1.ReplicaSet, error) {
	from := rsReplicas(rs)
	sizeChanged := from != n
	desired, maxReplicas := replicasOf(d), replicasOf(d)+maxSurge(d)
	if !sizeChanged && !replicasAnnotationsNeedUpdate(rs, desired, maxReplicas) {
		return false, rs, nil
	}
	cp := rs.DeepCopy()
	cp.Spec.Replicas = new(n)
	setReplicasAnnotations(cp, desired, maxReplicas)
	out, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, fmt.Errorf("scale replicaset %s/%s to %d: %w", rs.Namespace, rs.Name, n, err)
	}
	if sizeChanged {
		dir := "up"
		if n < from {
			dir = "down"
		}
		c.log.Debug("scaled replicaset", "deployment", keyOf(d), "replicaset", rs.Name, "from", from, "to", n)
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s to %d from %d", dir, rs.Name, n, from)
	}
	return sizeChanged, out, nil
}

// cleanup deletes the oldest of d's old ReplicaSets that run nothing, so
// that at most revisionHistoryLimit old ones remain.
func (c *Controller) cleanup(ctx context.Context, d *appsv1.Deployment, old []*appsv1.ReplicaSet) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var candidates []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs != nil && rs.DeletionTimestamp == nil {
			candidates = append(candidates, rs)
		}
	}
	excess := len(candidates) - int(*d.Spec.RevisionHistoryLimit)
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		ri, rj := revision(candidates[i]), revision(candidates[j])
		if ri != rj {
			return ri < rj
		}
		return candidates[i].CreationTimestamp.Before(&candidates[j].CreationTimestamp)
	})
	for _, rs := range candidates[:excess] {
		if rs.Status.Replicas != 0 || rsReplicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue // still has (or may still have) pods
		}
		uid := rs.UID
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete old replicaset %s/%s of deployment %s: %w", rs.Namespace, rs.Name, keyOf(d), err)
		}
		c.log.Debug("deleted old replicaset", "deployment", keyOf(d), "replicaset", rs.Name, "revision", revision(rs))
	}
	return nil
}
