// Package replicaset is the ReplicaSet controller: it keeps spec.replicas
// pods matching each ReplicaSet's selector, creating them from the template
// and deleting the least valuable ones, adopts matching orphans, releases
// pods that stop matching, and reports the pods' state in the status.
package replicaset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
)

const (
	// Name is the controller's name in events and logs.
	Name = "replicaset-controller"
	// burstReplicas caps the pods created or deleted in one sync.
	burstReplicas = 500
	// expectationsTTL is how long the controller waits for the watch
	// events of its own creations and deletions before acting again anyway.
	expectationsTTL = 5 * time.Minute
	workers         = 5
)

// rsKind is the ReplicaSet kind, as owner references name it.
func rsKind() schema.GroupVersionKind { return appsv1.SchemeGroupVersion.WithKind("ReplicaSet") }

// Controller is the ReplicaSet controller.
type Controller struct {
	client    kubernetes.Interface
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	queue     controller.Queue
	owners    controller.Owners[*appsv1.ReplicaSet]
	exp       *expectations
	recorder  record.EventRecorder
	log       *slog.Logger
	now       func() time.Time
	burst     int
}

// New builds the controller and registers its informer handlers.
func New(cctx *controller.Context) (*Controller, error) {
	rsInf := cctx.Informers.Apps().V1().ReplicaSets()
	podInf := cctx.Informers.Core().V1().Pods()
	c := &Controller{
		client:    cctx.Client,
		rsLister:  rsInf.Lister(),
		podLister: podInf.Lister(),
		synced:    []cache.InformerSynced{rsInf.Informer().HasSynced, podInf.Informer().HasSynced},
		queue:     controller.NewQueue("replicaset"),
		recorder:  cctx.Recorder(Name),
		log:       cctx.ControllerLogger("replicaset"),
		now:       time.Now,
		burst:     burstReplicas,
	}
	c.owners = Owners(rsInf.Informer().GetIndexer())
	c.exp = newExpectations(expectationsTTL, func() time.Time { return c.now() })
	rsHandler := controller.EnqueueHandler(c.queue)
	rsHandler.DeleteFunc = c.deleteReplicaSet
	if _, err := rsInf.Informer().AddEventHandler(rsHandler); err != nil {
		return nil, fmt.Errorf("replicaset controller: watch replicasets: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("replicaset controller: watch pods: %w", err)
	}
	return c, nil
}

// Owners finds the ReplicaSets that own pods in indexer, the ReplicaSet
// informer's.
func Owners(indexer cache.Indexer) controller.Owners[*appsv1.ReplicaSet] {
	return controller.Owners[*appsv1.ReplicaSet]{
		Kind:     rsKind(),
		Cache:    listers.New[*appsv1.ReplicaSet](indexer, appsv1.Resource("replicasets")),
		Selector: func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector },
	}
}

// Run waits for the caches and runs the workers until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func keyOf(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

// Event handlers: they only record observations and enqueue keys.

func (c *Controller) deleteReplicaSet(obj interface{}) {
	rs, ok := controller.ObjectOf[*appsv1.ReplicaSet](obj)
	if !ok {
		return
	}
	c.exp.forget(keyOf(rs))
	c.queue.Add(keyOf(rs))
}

func (c *Controller) addPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		// Seen first already being deleted (for instance after a restart):
		// that is no creation to count.
		c.deletePod(pod)
		return
	}
	if metav1.GetControllerOfNoCopy(pod) != nil {
		if rs, ok := c.owners.Controller(pod); ok {
			c.exp.creationObserved(keyOf(rs))
			c.queue.Add(keyOf(rs))
		}
		return
	}
	for _, rs := range c.owners.Selecting(pod) {
		c.queue.Add(keyOf(rs))
	}
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	if cur.DeletionTimestamp != nil {
		c.deletePod(cur)
		if !reflect.DeepEqual(old.Labels, cur.Labels) {
			c.deletePod(old)
		}
		return
	}
	for _, rs := range c.owners.Updated(old, cur) {
		c.queue.Add(keyOf(rs))
	}
}

func (c *Controller) deletePod(obj interface{}) {
	pod, ok := controller.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	if rs, ok := c.owners.Controller(pod); ok {
		c.exp.deletionObserved(keyOf(rs), pod.UID)
		c.queue.Add(keyOf(rs))
	}
}

// sync reconciles the ReplicaSet key from the listers' current state.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get replicaset %s: %w", key, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		// Validation should have refused it; retrying will not help.
		c.log.Warn("replicaset has an invalid selector", "key", key, "err", err)
		return nil
	}
	// Read the expectations before listing pods, so that an event
	// arriving in between is not lost.
	needsSync := c.exp.satisfied(key)
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list pods of %s: %w", key, err)
	}
	pods, err := c.claimPods(ctx, rs, selector, activePods(all))
	if err != nil {
		return err
	}
	var manageErr error
	if needsSync && rs.DeletionTimestamp == nil {
		manageErr = c.manageReplicas(ctx, rs, pods, all)
	}
	status, wait := calculateStatus(rs, pods, manageErr, c.now())
	if err := c.updateStatus(ctx, rs, status); err != nil {
		return err
	}
	if manageErr == nil && wait > 0 {
		// Some ready pods become available after minReadySeconds: look
		// again then.
		c.queue.AddAfter(key, wait)
	}
	return manageErr
}

// manageReplicas creates or deletes pods so that rs has spec.replicas.
func (c *Controller) manageReplicas(ctx context.Context, rs *appsv1.ReplicaSet, pods, all []*corev1.Pod) error {
	key := keyOf(rs)
	diff := len(pods) - int(replicasOf(rs))
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.exp.expectCreations(key, n)
		c.log.Debug("creating pods", "replicaset", key, "want", replicasOf(rs), "have", len(pods), "creating", n)
		created, err := controller.SlowStartBatch(ctx, n, 1, func(ctx context.Context, _ int) error { return c.createPod(ctx, rs) })
		// The creations that did not happen will never be observed.
		for range n - created {
			c.exp.creationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, c.burst)
		victims := podsToDelete(pods, c.relatedPods(rs, pods, all), n)
		uids := make([]types.UID, len(victims))
		for i, p := range victims {
			uids[i] = p.UID
		}
		c.exp.expectDeletions(key, uids)
		c.log.Debug("deleting pods", "replicaset", key, "want", replicasOf(rs), "have", len(pods), "deleting", n)
		errs := make([]error, len(victims))
		done := make(chan struct{}, len(victims))
		for i, p := range victims {
			go func() {
				defer func() { done <- struct{}{} }()
				if err := c.deletePodOf(ctx, rs, p); err != nil {
					// No deletion event will come for this pod from us.
					c.exp.deletionObserved(key, p.UID)
					if !gone(err) {
						errs[i] = err
					}
				}
			}()
		}
		for range victims {
			<-done
		}
		return errors.Join(errs...)
	}
	return nil
}

func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, newPod(rs), metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			// The namespace is going away; nothing to report.
			c.exp.creationObserved(keyOf(rs))
			return nil
		}
		if apierrors.IsTimeout(err) {
			// The pod may well have been created; its watch event will
			// tell (or the expectation expires).
			return nil
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return fmt.Errorf("create pod for replicaset %s: %w", keyOf(rs), err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", pod.Name)
	return nil
}

func (c *Controller) deletePodOf(ctx context.Context, rs *appsv1.ReplicaSet, p *corev1.Pod) error {
	uid := p.UID
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil {
		if gone(err) {
			return err
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
		return fmt.Errorf("delete pod %s/%s of replicaset %s: %w", p.Namespace, p.Name, keyOf(rs), err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
	return nil
}

// relatedPods returns the active pods of rs's family: rs's own and those
// of the ReplicaSets with the same controller (a Deployment's others).
func (c *Controller) relatedPods(rs *appsv1.ReplicaSet, own, all []*corev1.Pod) []*corev1.Pod {
	owner := metav1.GetControllerOf(rs)
	if owner == nil {
		return own
	}
	siblings, err := c.rsLister.ReplicaSets(rs.Namespace).List(labels.Everything())
	if err != nil {
		return own
	}
	family := map[types.UID]bool{rs.UID: true}
	for _, s := range siblings {
		if ref := metav1.GetControllerOf(s); ref != nil && ref.UID == owner.UID {
			family[s.UID] = true
		}
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && family[ref.UID] && isActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// gone reports whether a delete failed because the pod no longer exists
// (NotFound, or a uid precondition failing on a newer pod of that name).
func gone(err error) bool { return apierrors.IsNotFound(err) || apierrors.IsConflict(err) }

func replicasOf(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// updateStatus writes status if it differs from rs's.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, status appsv1.ReplicaSetStatus) error {
	if equality.Semantic.DeepEqual(rs.Status, status) {
		return nil
	}
	rs = rs.DeepCopy()
	rs.Status = status
	if _, err := c.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of replicaset %s: %w", keyOf(rs), err)
	}
	return nil
}

// NewRunner is New in the shape of a controller manager entry.
func NewRunner(cctx *controller.Context) (manager.Runner, error) {
	c, err := New(cctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}
