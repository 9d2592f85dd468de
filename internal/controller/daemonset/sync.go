package daemonset

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
	"skiff/internal/controller/expectations"
)

// sync brings the DaemonSet named by key one step closer to one pod per
// eligible node, then writes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	cached, err := c.sets.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.expect.Forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get daemonset %s: %w", key, err)
	}
	if cached.DeletionTimestamp != nil {
		return nil // the garbage collector removes its pods
	}
	ds := cached.DeepCopy()
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		c.log.Warn("daemonset has an unusable selector", "daemonset", key, "err", err)
		return nil
	}
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	all, err := c.pods.Pods(ns).List(sel)
	if err != nil {
		return fmt.Errorf("list pods of daemonset %s: %w", key, err)
	}
	byNode := map[string][]*corev1.Pod{}
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == ds.UID {
			n := targetNode(p)
			byNode[n] = append(byNode[n], p)
		}
	}
	for _, pods := range byNode {
		sort.SliceStable(pods, func(i, j int) bool { return keepBefore(pods[i], pods[j]) })
	}
	hash := templateHash(ds)
	now := c.now()

	var errs []error
	var requeue time.Duration
	if c.expect.Satisfied(key, ns, c.pods) {
		var creates []string
		var deletes []*corev1.Pod
		creates, deletes, requeue = c.plan(ds, nodes, byNode, hash, now)
		errs = append(errs, c.deletePods(ctx, key, ds, deletes))
		errs = append(errs, c.createPods(ctx, key, ds, creates, hash))
	}
	st, wait := computeStatus(ds, nodes, byNode, hash, now)
	if wait > 0 && (requeue == 0 || wait < requeue) {
		requeue = wait
	}
	if !equality.Semantic.DeepEqual(&ds.Status, st) {
		ds.Status = *st
		if _, err := c.client.AppsV1().DaemonSets(ns).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("update status of daemonset %s: %w", key, err))
		}
	}
	if requeue > 0 {
		c.queue.AddAfter(key, requeue)
	}
	return errors.Join(errs...)
}

// plan decides which nodes get a new pod and which pods go, and how soon
// to look again (a failed pod in backoff, a pod not yet available long
// enough).
func (c *Controller) plan(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string, now time.Time) ([]string, []*corev1.Pod, time.Duration) {
	var creates []string
	var deletes []*corev1.Pod
	var requeue time.Duration
	later := func(d time.Duration) {
		if d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	known := map[string]bool{}
	live := map[string][]*corev1.Pod{} // the pods that stay, per node that should run one
	var desired []string
	for _, node := range nodes {
		known[node.Name] = true
		run, keep := placement(node, ds)
		if run {
			desired = append(desired, node.Name)
		}
		var running []*corev1.Pod
		occupied := false
		for _, p := range byNode[node.Name] {
			if p.DeletionTimestamp != nil {
				continue
			}
			if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
				if !keep {
					deletes = append(deletes, p)
					continue
				}
				// Replace it, but not in a tight loop: back off per node.
				occupied = true
				id := ds.Namespace + "/" + ds.Name + "/" + node.Name
				if c.backoff.IsInBackOffSinceUpdate(id, now) {
					later(c.backoff.Get(id))
					continue
				}
				c.backoff.Next(id, now)
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Found failed daemon pod %s/%s on node %s, will try to kill it", p.Namespace, p.Name, node.Name)
				deletes = append(deletes, p)
				continue
			}
			running = append(running, p)
		}
		switch {
		case !keep:
			deletes = append(deletes, running...)
		case len(running) == 0:
			if run && !occupied {
				creates = append(creates, node.Name)
			}
		default:
			// One daemon per node: keep the best, delete the rest.
			deletes = append(deletes, running[1:]...)
			if run {
				live[node.Name] = running[:1]
			}
		}
	}
	// Pods whose node is gone, or that name no node.
	for n, pods := range byNode {
		if known[n] {
			continue
		}
		for _, p := range pods {
			if p.DeletionTimestamp == nil {
				deletes = append(deletes, p)
			}
		}
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		old, wait := rollingUpdate(ds, desired, live, hash, now)
		deletes = append(deletes, old...)
		later(wait)
	}
	return creates, deletes, requeue
}

// rollingUpdate picks the pods of an older template to delete now: those
// that are unavailable anyway, then available ones while fewer than
// maxUnavailable daemons are unavailable. Their replacements come from
// the next sync, which finds the node without a pod.
func rollingUpdate(ds *appsv1.DaemonSet, desired []string, live map[string][]*corev1.Pod, hash string, now time.Time) ([]*corev1.Pod, time.Duration) {
	maxUnavailable := 1
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, len(desired), true); err == nil {
			maxUnavailable = n
		}
	}
	if maxUnavailable < 1 {
		maxUnavailable = 1 // maxSurge is not supported: progress needs one
	}
	var wait time.Duration
	unavailable := 0
	var oldReady, out []*corev1.Pod
	for _, n := range desired {
		pods := live[n]
		if len(pods) == 0 {
			unavailable++
			continue
		}
		p := pods[0]
		ok, w := available(p, ds.Spec.MinReadySeconds, now)
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
		if !ok {
			unavailable++
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
			continue
		}
		if ok {
			oldReady = append(oldReady, p)
		} else {
			out = append(out, p)
		}
	}
	for _, p := range oldReady {
		if unavailable >= maxUnavailable {
			break
		}
		out = append(out, p)
		unavailable++
	}
	return out, wait
}

// computeStatus counts the DaemonSet's nodes and pods.
func computeStatus(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string, now time.Time) (*appsv1.DaemonSetStatus, time.Duration) {
	st := ds.Status.DeepCopy()
	var desired, current, misscheduled, ready, avail, updated int32
	var wait time.Duration
	for _, node := range nodes {
		run, _ := placement(node, ds)
		var pods []*corev1.Pod
		for _, p := range byNode[node.Name] {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if !run {
			if len(pods) > 0 {
				misscheduled++
			}
			continue
		}
		desired++
		if len(pods) == 0 {
			continue
		}
		current++
		p := pods[0]
		if isReady(p) {
			ready++
			ok, w := available(p, ds.Spec.MinReadySeconds, now)
			if ok {
				avail++
			} else if w > 0 && (wait == 0 || w < wait) {
				wait = w
			}
		}
		if p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash {
			updated++
		}
	}
	st.DesiredNumberScheduled = desired
	st.CurrentNumberScheduled = current
	st.NumberMisscheduled = misscheduled
	st.NumberReady = ready
	st.NumberAvailable = avail
	st.NumberUnavailable = desired - avail
	st.UpdatedNumberScheduled = updated
	st.ObservedGeneration = ds.Generation
	return st, wait
}

// keepBefore orders a node's daemon pods from the most to the least worth
// keeping: running and ready, then older.
func keepBefore(a, b *corev1.Pod) bool {
	if ra, rb := isReady(a), isReady(b); ra != rb {
		return ra
	}
	if ra, rb := a.Status.Phase == corev1.PodRunning, b.Status.Phase == corev1.PodRunning; ra != rb {
		return ra
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func isReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// available: ready for at least minReady seconds; otherwise how long
// until it will be, if it is ready.
func available(p *corev1.Pod, minReady int32, now time.Time) (bool, time.Duration) {
	if !isReady(p) {
		return false, 0
	}
	if minReady <= 0 {
		return true, 0
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			at := c.LastTransitionTime.Add(time.Duration(minReady) * time.Second)
			if !now.Before(at) {
				return true, 0
			}
			return false, at.Sub(now)
		}
	}
	return false, 0
}

// templateHash identifies the pod template (and collision count): pods
// carry it in the controller-revision-hash label, so the controller tells
// old pods from new without ControllerRevisions.
func templateHash(ds *appsv1.DaemonSet) string {
	h := fnv.New32a()
	b, _ := json.Marshal(&ds.Spec.Template)
	_, _ = h.Write(b)
	if cc := ds.Status.CollisionCount; cc != nil {
		_ = binary.Write(h, binary.LittleEndian, *cc)
	}
	return utilrand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// newPod builds the daemon pod of ds for node.
func newPod(ds *appsv1.DaemonSet, node, hash string) *corev1.Pod {
	t := ds.Spec.Template.DeepCopy()
	podLabels := map[string]string{}
	for k, v := range t.Labels {
		podLabels[k] = v
	}
	podLabels[appsv1.DefaultDaemonSetUniqueLabelKey] = hash
	podLabels[templateGenerationLabel] = strconv.FormatInt(ds.Generation, 10)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            expectations.PodName(ds.Name),
			Namespace:       ds.Namespace,
			Labels:          podLabels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		},
		Spec: t.Spec,
	}
	pod.Spec.Affinity = withNodeAffinity(t.Spec.Affinity, node)
	pod.Spec.Tolerations = daemonTolerations(&t.Spec)
	return pod
}

// createPods creates a pod on each node, in batches that double from one
// so a failing template costs one request, not hundreds.
func (c *Controller) createPods(ctx context.Context, key string, ds *appsv1.DaemonSet, nodes []string, hash string) error {
	_, err := controller.SlowStartBatch(ctx, len(nodes), 1, func(ctx context.Context, i int) error {
		return c.createPod(ctx, key, ds, nodes[i], hash)
	})
	return err
}

func (c *Controller) createPod(ctx context.Context, key string, ds *appsv1.DaemonSet, node, hash string) error {
	pod := newPod(ds, node, hash)
	c.expect.ExpectAdd(key, pod.Name)
	if _, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		c.expect.ObserveAdd(key, pod.Name)
		if ctx.Err() == nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return fmt.Errorf("create pod of daemonset %s on node %s: %w", key, node, err)
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", pod.Name)
	return nil
}

func (c *Controller) deletePods(ctx context.Context, key string, ds *appsv1.DaemonSet, pods []*corev1.Pod) error {
	var errs []error
	for _, p := range pods {
		c.expect.ExpectDelete(key, p.Name, p.UID)
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		switch {
		case err == nil:
			c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
		case apierrors.IsNotFound(err):
		default:
			c.expect.ObserveDelete(key, p.Name)
			if ctx.Err() == nil {
				c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
			}
			errs = append(errs, fmt.Errorf("delete pod %s/%s of daemonset %s: %w", p.Namespace, p.Name, key, err))
		}
	}
	return errors.Join(errs...)
}
