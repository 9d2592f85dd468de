package nodelifecycle

import (
	"context"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// noExecuteTaints are all the node's NoExecute taints, whoever set them.
func noExecuteTaints(n *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func sameNoExecute(a, b *corev1.Node) bool {
	return reflect.DeepEqual(noExecuteTaints(a), noExecuteTaints(b))
}

// windowStart is when a pod's toleration window began: when the oldest of
// the NoExecute taints was added, or when the pod was created if later.
// Taints without a time count from now.
func windowStart(p *corev1.Pod, taints []corev1.Taint, now time.Time) time.Time {
	start := now
	for _, t := range taints {
		if t.TimeAdded != nil && t.TimeAdded.Time.Before(start) {
			start = t.TimeAdded.Time
		}
	}
	if created := p.CreationTimestamp.Time; created.After(start) && created.Before(now) {
		start = created
	}
	return start
}

// syncPod evicts one pod from a node with NoExecute taints once its
// tolerations run out.
func (c *Controller) syncPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	forget := func() {
		c.mu.Lock()
		delete(c.evictFrom, key)
		c.mu.Unlock()
	}
	p, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		forget()
		return nil
	}
	if err != nil {
		return err
	}
	if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
		forget()
		return nil
	}
	node, err := c.nodes.Get(p.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		forget() // the pod garbage collector deals with pods of gone nodes
		return nil
	}
	if err != nil {
		return err
	}
	taints := noExecuteTaints(node)
	if len(taints) == 0 {
		forget()
		return nil
	}
	tolerated, window := tolerationWindow(p.Spec.Tolerations, taints)
	if tolerated && window < 0 {
		forget()
		return nil
	}
	now := c.now()
	if tolerated {
		c.mu.Lock()
		start, ok := c.evictFrom[key]
		if !ok {
			// Kept while the pod stays under NoExecute taints, so that a
			// taint swapped for another (not-ready for unreachable) does
			// not restart the window.
			start = windowStart(p, taints, now)
			c.evictFrom[key] = start
		}
		c.mu.Unlock()
		if wait := start.Add(window).Sub(now); wait > 0 {
			c.podQueue.AddAfter(key, wait)
			return nil
		}
	}
	return c.evict(ctx, p, node)
}

// evict deletes the pod (gracefully: the kubelet, if it is still there,
// stops it), first noting why in a DisruptionTarget condition.
func (c *Controller) evict(ctx context.Context, p *corev1.Pod, node *corev1.Node) error {
	next := p.DeepCopy()
	now := metav1.NewTime(c.now())
	cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "DeletionByTaintManager", Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: now}
	replaced := false
	for i := range next.Status.Conditions {
		if next.Status.Conditions[i].Type == cond.Type {
			next.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		next.Status.Conditions = append(next.Status.Conditions, cond)
	}
	if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.log.Debug("could not note the eviction on the pod", "pod", p.Namespace+"/"+p.Name, "err", err)
	}
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.log.Info("evicted pod from tainted node", "pod", p.Namespace+"/"+p.Name, "node", node.Name)
	c.evictRecord.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
	c.mu.Lock()
	delete(c.evictFrom, p.Namespace+"/"+p.Name)
	c.mu.Unlock()
	return nil
}
