// Package deployment is the Deployment controller: it rolls a Deployment's
// pod template out through ReplicaSets, one per template revision, with the
// RollingUpdate or Recreate strategy, scales them proportionally, tracks
// progress against progressDeadlineSeconds, honours pause, and cleans up
// old revisions beyond revisionHistoryLimit.
package deployment

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/listers"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
	"skiff/internal/controller/manager"
	"skiff/internal/controller/replicaset"
)

const (
	// Name is the controller's name in events and logs.
	Name    = "deployment-controller"
	workers = 5
)

// deploymentKind is the Deployment kind, as owner references name it.
func deploymentKind() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("Deployment")
}

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     controller.Queue
	// owners finds the Deployments of ReplicaSets; rsOwners the
	// ReplicaSets of pods.
	owners   controller.Owners[*appsv1.Deployment]
	rsOwners controller.Owners[*appsv1.ReplicaSet]
	recorder record.EventRecorder
	log      *slog.Logger
	now      func() time.Time
}

// New builds the controller and registers its informer handlers.
func New(cctx *controller.Context) (*Controller, error) {
	dInf := cctx.Informers.Apps().V1().Deployments()
	rsInf := cctx.Informers.Apps().V1().ReplicaSets()
	podInf := cctx.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cctx.Client,
		dLister:   dInf.Lister(),
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{dInf.Informer().HasSynced, rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:     controller.NewQueue("deployment"),
		recorder:  cctx.Recorder(Name),
		log:       cctx.ControllerLogger("deployment"),
		now:       time.Now,
	}
	c.owners = controller.Owners[*appsv1.Deployment]{
		Kind:     deploymentKind(),
		Cache:    listers.New[*appsv1.Deployment](dInf.Informer().GetIndexer(), appsv1.Resource("deployments")),
		Selector: func(d *appsv1.Deployment) *metav1.LabelSelector { return d.Spec.Selector },
	}
	c.rsOwners = replicaset.Owners(rsInf.Informer().GetIndexer())
	if _, err := dInf.Informer().AddEventHandler(controller.EnqueueHandler(c.queue)); err != nil {
		return nil, fmt.Errorf("deployment controller: watch deployments: %w", err)
	}
	if _, err := rsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addReplicaSet,
		UpdateFunc: c.updateReplicaSet,
		DeleteFunc: c.deleteReplicaSet,
	}); err != nil {
		return nil, fmt.Errorf("deployment controller: watch replicasets: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("deployment controller: watch pods: %w", err)
	}
	return c, nil
}

// Run waits for the caches and runs the workers until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func keyOf(d *appsv1.Deployment) string { return d.Namespace + "/" + d.Name }

// Event handlers: they only enqueue the keys of the Deployments concerned.

func (c *Controller) addReplicaSet(obj interface{}) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if rs.DeletionTimestamp != nil {
		c.deleteReplicaSet(rs)
		return
	}
	if metav1.GetControllerOfNoCopy(rs) != nil {
		if d, ok := c.owners.Controller(rs); ok {
			c.queue.Add(keyOf(d))
		}
		return
	}
	for _, d := range c.owners.Selecting(rs) {
		c.queue.Add(keyOf(d))
	}
}

func (c *Controller) updateReplicaSet(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*appsv1.ReplicaSet)
	cur, ok2 := curObj.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	for _, d := range c.owners.Updated(old, cur) {
		c.queue.Add(keyOf(d))
	}
}

func (c *Controller) deleteReplicaSet(obj interface{}) {
	rs, ok := controller.ObjectOf[*appsv1.ReplicaSet](obj)
	if !ok {
		return
	}
	if d, ok := c.owners.Controller(rs); ok {
		c.queue.Add(keyOf(d))
	}
}

// deletePod wakes a Recreate Deployment waiting for its old pods to go.
func (c *Controller) deletePod(obj interface{}) {
	pod, ok := controller.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	rs, ok := c.rsOwners.Controller(pod)
	if !ok {
		return
	}
	if d, ok := c.owners.Controller(rs); ok && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		c.queue.Add(keyOf(d))
	}
}

// sync reconciles the Deployment key from the listers' current state.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get deployment %s: %w", key, err)
	}
	d := cached.DeepCopy()
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		c.log.Warn("deployment has an invalid selector", "key", key, "err", err)
		return nil
	}
	if selector.Empty() {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			if err := c.updateStatus(ctx, d); err != nil {
				return err
			}
		}
		return nil
	}
	rsList, err := c.claimReplicaSets(ctx, d, selector)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp == nil {
		if err := c.checkPausedConditions(ctx, d); err != nil {
			return err
		}
	}
	newRS, old, err := c.newAndOld(ctx, d, rsList)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		return c.syncStatus(ctx, d, allOf(old, newRS), newRS)
	}
	if d.Spec.Paused || isScalingEvent(d, newRS, old) {
		return c.syncScale(ctx, d, newRS, old)
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		pods, err := c.podsByReplicaSet(d, selector, rsList)
		if err != nil {
			return err
		}
		return c.rolloutRecreate(ctx, d, newRS, old, pods)
	case appsv1.RollingUpdateDeploymentStrategyType:
		return c.rolloutRolling(ctx, d, newRS, old)
	}
	c.log.Warn("deployment has an unknown strategy", "key", key, "strategy", d.Spec.Strategy.Type)
	return nil
}

// claimReplicaSets returns the ReplicaSets d controls and selects,
// adopting matching orphans and releasing those that stopped matching (see
// controller.Claim).
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, selector labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list replicasets of %s: %w", keyOf(d), err)
	}
	return controller.Claim(ctx, controller.RefManager{
		Owner:    d,
		Kind:     deploymentKind(),
		Selector: selector,
		Recheck: func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
		},
		Patch: func(ctx context.Context, ns, name string, patch []byte) error {
			_, err := c.client.AppsV1().ReplicaSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
		Log: c.log,
	}, all)
}

// podsByReplicaSet groups the pods d selects by the ReplicaSet (of rsList)
// controlling them.
func (c *Controller) podsByReplicaSet(d *appsv1.Deployment, selector labels.Selector, rsList []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	pods, err := c.podLister.Pods(d.Namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", keyOf(d), err)
	}
	out := make(map[types.UID][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		out[rs.UID] = nil
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			continue
		}
		if _, ok := out[ref.UID]; ok {
			out[ref.UID] = append(out[ref.UID], p)
		}
	}
	return out, nil
}

// Writes of the Deployment. d is updated in place with what the server
// returns, so that later writes in the same sync do not conflict.

// updateStatus writes d's status.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	out, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("update status of deployment %s: %w", keyOf(d), err)
	}
	*d = *out
	return nil
}

// setRevision records rev as d's revision annotation if it is not already.
// Annotations are metadata, so they go through an update of the object
// (the status subresource writes the status only); the status is kept.
func (c *Controller) setRevision(ctx context.Context, d *appsv1.Deployment, rev string) error {
	if rev == "" || d.Annotations[RevisionAnnotation] == rev {
		return nil
	}
	cp := d.DeepCopy()
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[RevisionAnnotation] = rev
	out, err := c.client.AppsV1().Deployments(d.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("set revision of deployment %s: %w", keyOf(d), err)
	}
	status := d.Status
	*d = *out
	d.Status = status
	return nil
}

// checkPausedConditions notes a pause or resume in the Progressing
// condition (resuming restarts the progress deadline).
func (c *Controller) checkPausedConditions(ctx context.Context, d *appsv1.Deployment) error {
	if !hasProgressDeadline(d) {
		return nil
	}
	cond := getCondition(&d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonTimedOut {
		return nil // a reported lack of progress stays
	}
	pausedNoted := cond != nil && cond.Reason == ReasonPaused
	switch {
	case d.Spec.Paused && !pausedNoted:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", c.now()))
	case !d.Spec.Paused && pausedNoted:
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", c.now()))
	default:
		return nil
	}
	return c.updateStatus(ctx, d)
}

// NewRunner is New in the shape of a controller manager entry.
func NewRunner(cctx *controller.Context) (manager.Runner, error) {
	c, err := New(cctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}
