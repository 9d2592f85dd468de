// Package job is skiff's Job controller. It runs a Job's pods until enough
// of them succeed (NonIndexed or Indexed completion), replaces failed pods
// with exponential backoff until backoffLimit, honours parallelism,
// suspend, activeDeadlineSeconds, podFailurePolicy and successPolicy,
// counts every finished pod exactly once through the
// batch.kubernetes.io/job-tracking finalizer and status.uncountedTerminatedPods,
// and deletes finished Jobs after ttlSecondsAfterFinished.
package job

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
	"skiff/internal/controller/expectations"
)

const (
	// Name is the controller's name in events and logs.
	Name = "job-controller"
	// managedBy is the spec.managedBy value of Jobs this controller runs
	// (an unset field means the same).
	managedBy = "kubernetes.io/job-controller"

	trackingFinalizer = batchv1.JobTrackingFinalizer
	indexAnnotation   = batchv1.JobCompletionIndexAnnotation
	indexLabel        = batchv1.JobCompletionIndexAnnotation
	indexEnv          = "JOB_COMPLETION_INDEX"

	// DefaultBackoffBase and DefaultBackoffMax bound the delay before a
	// failed pod is replaced: base, doubled for every further failure in a
	// row, at most max.
	DefaultBackoffBase = 10 * time.Second
	DefaultBackoffMax  = 6 * time.Minute

	defaultWorkers  = 5
	expectationsTTL = 5 * time.Minute
	// maxCreatesPerSync caps the pods one sync creates; the rest follow in
	// the next sync.
	maxCreatesPerSync = 500
)

// Options tune the controller; zero values mean the defaults.
type Options struct {
	Workers     int
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

// Controller is the Job controller.
type Controller struct {
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	synced   []cache.InformerSynced
	queue    controller.Queue
	orphans  controller.Queue // pod keys whose tracking finalizer may have no Job to count it
	recorder record.EventRecorder
	log      *slog.Logger
	opts     Options
	now      func() time.Time

	expect   *expectations.Pods
	removals *finalizerRemovals
	stopped  *stoppedPods
	written  *statusCache
	backoff  *backoffs
}

// New builds the controller on cctx's informers.
func New(cctx *controller.Context, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	jobInformer := cctx.Informers.Batch().V1().Jobs()
	podInformer := cctx.Informers.Core().V1().Pods()
	c := &Controller{
		client:   cctx.Client,
		jobs:     jobInformer.Lister(),
		pods:     podInformer.Lister(),
		synced:   []cache.InformerSynced{jobInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		queue:    controller.NewQueue("job"),
		orphans:  controller.NewQueue("job-orphan-pods"),
		recorder: cctx.Recorder(Name),
		log:      cctx.ControllerLogger("job"),
		opts:     opts,
		now:      time.Now,
		removals: newFinalizerRemovals(),
		stopped:  newStoppedPods(),
		written:  newStatusCache(),
		backoff:  newBackoffs(),
	}
	c.expect = expectations.New(expectationsTTL, c.now)
	jobHandler := controller.EnqueueHandler(c.queue)
	jobHandler.DeleteFunc = c.jobDeleted
	if _, err := jobInformer.Informer().AddEventHandler(jobHandler); err != nil {
		return nil, fmt.Errorf("job controller: watch jobs: %w", err)
	}
	if _, err := podInformer.Informer().AddEventHandler(c.expect.PodHandler(c.queue, jobKeyOf, c.maybeOrphan)); err != nil {
		return nil, fmt.Errorf("job controller: watch pods: %w", err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting")
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		c.queue.ShutDown()
		c.orphans.ShutDown()
		return
	}
	c.log.Info("ready")
	done := make(chan struct{})
	go func() {
		defer close(done)
		controller.RunWorkers(ctx, c.log, c.orphans, 1, c.syncOrphanPod)
	}()
	controller.RunWorkers(ctx, c.log, c.queue, c.opts.Workers, c.sync)
	<-done
	c.log.Info("stopped")
}

// jobKeyOf returns the key of the Job controlling pod.
func jobKeyOf(pod *corev1.Pod) (string, bool) {
	return controller.ControllerKey(pod, batchv1.SchemeGroupVersion.String(), "Job")
}

// maybeOrphan queues a pod that holds the tracking finalizer but has no
// Job controlling it, so the finalizer does not block its deletion.
func (c *Controller) maybeOrphan(pod *corev1.Pod) {
	if hasTrackingFinalizer(pod) {
		controller.Enqueue(c.orphans, pod)
	}
}

// jobDeleted queues the Job's key and the pods still holding its
// finalizer: nobody will count them any more.
func (c *Controller) jobDeleted(obj interface{}) {
	controller.Enqueue(c.queue, obj)
	job, ok := controller.ObjectOf[*batchv1.Job](obj)
	if !ok {
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return
	}
	pods, err := c.pods.Pods(job.Namespace).List(sel)
	if err != nil {
		return
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == job.UID && hasTrackingFinalizer(p) {
			controller.Enqueue(c.orphans, p)
		}
	}
}

// syncOrphanPod removes the tracking finalizer of a pod whose Job is gone
// (or that has no Job at all).
func (c *Controller) syncOrphanPod(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if err != nil {
		return err
	}
	if !hasTrackingFinalizer(pod) {
		return nil
	}
	if ref := metav1.GetControllerOf(pod); ref != nil && ref.Kind == "Job" {
		job, err := c.client.BatchV1().Jobs(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case err == nil && job.UID == ref.UID && job.DeletionTimestamp == nil:
			// Its Job lives: the Job's own sync counts the pod.
			c.queue.Add(ns + "/" + ref.Name)
			return nil
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("get job %s/%s of pod %s: %w", ns, ref.Name, name, err)
		}
	}
	return c.removeFinalizer(ctx, pod)
}

// removeFinalizer drops the tracking finalizer from pod; a pod that is
// gone already counts as done.
func (c *Controller) removeFinalizer(ctx context.Context, pod *corev1.Pod) error {
	patch := []byte(fmt.Sprintf(`{"metadata":{"$deleteFromPrimitiveList/finalizers":[%q]}}`, trackingFinalizer))
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// podsOf returns the pods the Job controls, and queues pods that carry
// its name and the tracking finalizer but belong to an earlier Job of
// that name.
func (c *Controller) podsOf(job *batchv1.Job) ([]*corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(job.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("job %s/%s: selector: %w", job.Namespace, job.Name, err)
	}
	all, err := c.pods.Pods(job.Namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("list pods of job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var out []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == job.UID {
			out = append(out, p)
		}
	}
	c.queueStalePods(job.Namespace, job.Name, job.UID)
	return out, nil
}

// queueStalePods queues, for finalizer removal, the pods that carry the
// name of Job ns/name and the tracking finalizer but belong to a Job of
// that name other than live (the uid of the current Job, "" if there is
// none).
func (c *Controller) queueStalePods(ns, name string, live types.UID) {
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromSet(labels.Set{batchv1.JobNameLabel: name}))
	if err != nil {
		return
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && ref.Kind == "Job" && ref.Name == name && ref.UID != live && hasTrackingFinalizer(p) {
			controller.Enqueue(c.orphans, p)
		}
	}
}
