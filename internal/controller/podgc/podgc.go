// Package podgc deletes the pods nobody else will: finished pods beyond a
// threshold (oldest first), pods bound to nodes that no longer exist,
// terminating pods that were never scheduled, and terminating pods on nodes
// that are out of service.
//
// The work is one sweep over the pod cache. It runs periodically and
// whenever a pod or node changes in a way that may leave garbage; the
// sweep is queued under a single key so bursts of changes coalesce.
package podgc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "podgc"

// Defaults, those of Kubernetes.
const (
	DefaultPeriod           = 20 * time.Second
	DefaultOrphanQuarantine = 40 * time.Second
)

// taintOutOfService marks a node that is shut down for good: its
// terminating pods may be removed without the kubelet.
const taintOutOfService = "node.kubernetes.io/out-of-service"

// sweepKey is the queue's only key.
const sweepKey = "sweep"

// Config is what the controller needs.
type Config struct {
	// TerminatedPodThreshold is how many finished (Succeeded or Failed)
	// pods are kept; the oldest beyond it are deleted. 0 or less keeps
	// them all.
	TerminatedPodThreshold int
	// OrphanQuarantine is how long a pod's node must be missing before
	// the pod is deleted, so a node registering late is not raced.
	// 0 means DefaultOrphanQuarantine.
	OrphanQuarantine time.Duration
	// Period is the time between sweeps; 0 means DefaultPeriod.
	Period time.Duration
}

// Controller is the pod garbage collector.
type Controller struct {
	cfg         Config
	client      kubernetes.Interface
	pods        corelisters.PodLister
	nodes       corelisters.NodeLister
	podsSynced  cache.InformerSynced
	nodesSynced cache.InformerSynced
	queue       controller.Queue
	log         *slog.Logger
	now         func() time.Time

	// mu guards missingSince: when each missing node was first seen missing.
	mu           sync.Mutex
	missingSince map[string]time.Time
}

// New builds the controller from cctx and cfg.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if cfg.OrphanQuarantine <= 0 {
		cfg.OrphanQuarantine = DefaultOrphanQuarantine
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	pods := cctx.Informers.Core().V1().Pods()
	nodes := cctx.Informers.Core().V1().Nodes()
	c := &Controller{
		cfg:          cfg,
		client:       cctx.Client,
		pods:         pods.Lister(),
		nodes:        nodes.Lister(),
		podsSynced:   pods.Informer().HasSynced,
		nodesSynced:  nodes.Informer().HasSynced,
		queue:        controller.NewQueue(Name),
		log:          cctx.ControllerLogger(Name),
		now:          time.Now,
		missingSince: map[string]time.Time{},
	}
	kick := func(interface{}) { c.queue.Add(sweepKey) }
	_, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if p, ok := obj.(*corev1.Pod); ok && c.mayBeGarbage(p) {
				kick(obj)
			}
		},
		UpdateFunc: func(_, cur interface{}) {
			if p, ok := cur.(*corev1.Pod); ok && c.mayBeGarbage(p) {
				kick(cur)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("podgc: pod handler: %w", err)
	}
	_, err = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur interface{}) {
			if n, ok := cur.(*corev1.Node); ok && hasTaint(n, taintOutOfService) {
				kick(cur)
			}
		},
		DeleteFunc: kick,
	})
	if err != nil {
		return nil, fmt.Errorf("podgc: node handler: %w", err)
	}
	return c, nil
}

// mayBeGarbage is a cheap filter for the pod events that may leave
// something to collect; the periodic sweep catches the rest.
func (c *Controller) mayBeGarbage(p *corev1.Pod) bool {
	if (terminated(p) && c.cfg.TerminatedPodThreshold > 0) || p.DeletionTimestamp != nil {
		return true
	}
	if p.Spec.NodeName == "" {
		return false
	}
	_, err := c.nodes.Get(p.Spec.NodeName)
	return apierrors.IsNotFound(err)
}

func terminated(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// Run sweeps until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting", "terminatedPodThreshold", c.cfg.TerminatedPodThreshold, "orphanQuarantine", c.cfg.OrphanQuarantine)
	defer c.log.Info("stopped")
	if !controller.WaitForSync(ctx, c.log, c.podsSynced, c.nodesSynced) {
		c.queue.ShutDown()
		return
	}
	c.log.Info("ready")
	c.queue.Add(sweepKey)
	controller.RunWorkers(ctx, c.log, c.queue, 1, func(ctx context.Context, _ string) error {
		next, err := c.sweep(ctx)
		// The next periodic pass is due whatever this one did; errors are
		// retried sooner by the queue's backoff.
		c.queue.AddAfter(sweepKey, next)
		return err
	})
}

// sweep does one pass and returns when the next one is due.
func (c *Controller) sweep(ctx context.Context) (time.Duration, error) {
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return c.cfg.Period, err
	}
	var errs []error
	errs = append(errs, c.gcTerminated(ctx, pods))
	next, err := c.gcOrphaned(ctx, pods)
	errs = append(errs, err)
	errs = append(errs, c.gcUnscheduledTerminating(ctx, pods))
	errs = append(errs, c.gcOutOfService(ctx, pods))
	return min(next, c.cfg.Period), errors.Join(errs...)
}

// gcTerminated deletes the oldest finished pods beyond the threshold.
// Evicted pods go first, as their records matter least.
func (c *Controller) gcTerminated(ctx context.Context, pods []*corev1.Pod) error {
	if c.cfg.TerminatedPodThreshold <= 0 {
		return nil
	}
	var done []*corev1.Pod
	for _, p := range pods {
		if terminated(p) && p.DeletionTimestamp == nil {
			done = append(done, p)
		}
	}
	excess := len(done) - c.cfg.TerminatedPodThreshold
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(done, func(i, j int) bool { return olderOrEvicted(done[i], done[j]) })
	c.log.Info("deleting finished pods beyond the threshold", "count", excess, "threshold", c.cfg.TerminatedPodThreshold)
	var errs []error
	for _, p := range done[:excess] {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, c.forceDelete(ctx, p, ""))
	}
	return errors.Join(errs...)
}

// olderOrEvicted orders pods for deletion: evicted ones first, then by age.
func olderOrEvicted(a, b *corev1.Pod) bool {
	ea, eb := a.Status.Reason == "Evicted", b.Status.Reason == "Evicted"
	if ea != eb {
		return ea
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// gcOrphaned deletes pods bound to nodes that have been missing for the
// quarantine, confirmed with the API server. It returns when a node still
// in quarantine is due.
func (c *Controller) gcOrphaned(ctx context.Context, pods []*corev1.Pod) (time.Duration, error) {
	next := c.cfg.Period
	now := c.now()
	missing := map[string]bool{}
	for _, p := range pods {
		if n := p.Spec.NodeName; n != "" && !missing[n] {
			if _, err := c.nodes.Get(n); apierrors.IsNotFound(err) {
				missing[n] = true
			}
		}
	}
	c.mu.Lock()
	for n := range c.missingSince {
		if !missing[n] {
			delete(c.missingSince, n)
		}
	}
	var gone []string
	for n := range missing {
		since, ok := c.missingSince[n]
		if !ok {
			since = now
			c.missingSince[n] = now
		}
		if wait := since.Add(c.cfg.OrphanQuarantine).Sub(now); wait > 0 {
			next = min(next, wait)
			continue
		}
		gone = append(gone, n)
	}
	c.mu.Unlock()

	var errs []error
	for _, n := range gone {
		// The cache may lag behind a node that registered just now.
		_, err := c.client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("check node %s: %w", n, err))
			continue
		}
		for _, p := range pods {
			if p.Spec.NodeName != n || forced(p) {
				continue
			}
			if ctx.Err() != nil {
				return next, ctx.Err()
			}
			c.log.Info("deleting pod bound to a node that no longer exists", "pod", p.Namespace+"/"+p.Name, "node", n)
			errs = append(errs, c.forceDelete(ctx, p, "PodGC: node no longer exists"))
		}
	}
	return next, errors.Join(errs...)
}

// gcUnscheduledTerminating deletes terminating pods no kubelet will finish.
func (c *Controller) gcUnscheduledTerminating(ctx context.Context, pods []*corev1.Pod) error {
	var errs []error
	for _, p := range pods {
		if p.DeletionTimestamp == nil || p.Spec.NodeName != "" || forced(p) {
			continue
		}
		c.log.Info("deleting unscheduled terminating pod", "pod", p.Namespace+"/"+p.Name)
		errs = append(errs, c.forceDelete(ctx, p, ""))
	}
	return errors.Join(errs...)
}

// gcOutOfService deletes terminating pods on nodes that are not ready and
// carry the out-of-service taint: their kubelet is gone for good.
func (c *Controller) gcOutOfService(ctx context.Context, pods []*corev1.Pod) error {
	var errs []error
	for _, p := range pods {
		if p.DeletionTimestamp == nil || p.Spec.NodeName == "" || forced(p) {
			continue
		}
		n, err := c.nodes.Get(p.Spec.NodeName)
		if err != nil || nodeReady(n) || !hasTaint(n, taintOutOfService) {
			continue
		}
		c.log.Info("deleting terminating pod on an out-of-service node", "pod", p.Namespace+"/"+p.Name, "node", n.Name)
		errs = append(errs, c.forceDelete(ctx, p, "PodGC: node is out of service"))
	}
	return errors.Join(errs...)
}

// forceDelete deletes pod at once. With a message, a pod that has not
// finished is first marked Failed with a DisruptionTarget condition, so its
// owner sees why it went.
func (c *Controller) forceDelete(ctx context.Context, p *corev1.Pod, message string) error {
	if message != "" && !terminated(p) {
		next := p.DeepCopy()
		next.Status.Phase = corev1.PodFailed
		setCondition(next, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			Reason: "DeletionByPodGC", Message: message, LastTransitionTime: metav1.NewTime(c.now())})
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			c.log.Debug("could not mark pod failed before deleting it", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
	zero := int64(0)
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// forced: the pod was already deleted without a grace period; only its
// finalizers hold it, and deleting it again would change nothing.
func forced(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds == 0
}

func setCondition(p *corev1.Pod, cond corev1.PodCondition) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == cond.Type {
			p.Status.Conditions[i] = cond
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, cond)
}

func hasTaint(n *corev1.Node, key string) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
