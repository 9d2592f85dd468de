package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// DefaultSchedulerName is the schedulerName pods get by default; the
// scheduler also answers to "skiff".
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Config is the scheduler's settings; zero values take the defaults.
type Config struct {
	// SchedulerNames are the spec.schedulerName values served
	// (default: default-scheduler and skiff).
	SchedulerNames []string
	// BindWorkers is how many bindings and failure reports run at once
	// (default 16). Decisions are always made one at a time.
	BindWorkers int
	// PercentageOfNodesToScore: see WithPercentageOfNodesToScore.
	PercentageOfNodesToScore int
	// InitialBackoff and MaxBackoff bound the retry delay of a pod that
	// did not fit (default 1 s doubling to 10 s).
	InitialBackoff, MaxBackoff time.Duration
}

// Event reasons and the component named as the events' source.
const (
	Component              = "default-scheduler"
	ReasonScheduled        = "Scheduled"
	ReasonFailedScheduling = "FailedScheduling"
	// ReasonSchedulerError is the PodScheduled reason when scheduling
	// failed for another cause than the pod not fitting.
	ReasonSchedulerError = "SchedulerError"
)

// flushInterval is how often the queue moves pods whose backoff is over.
const flushInterval = 100 * time.Millisecond

// The cluster events that may let an unschedulable pod fit, as the set of
// plugins whose rejection they may lift.
const (
	eventNodeChange   = AllPlugins
	eventPodGone      = PluginNodeResourcesFit | PluginNodePorts | PluginInterPodAffinity | PluginPodTopologySpread
	eventPodPlaced    = PluginInterPodAffinity | PluginPodTopologySpread
	eventVolumeChange = PluginVolumeBinding
	eventNamespace    = PluginInterPodAffinity
)

// Scheduler is the shell around the library: informers keep the cache and
// the queue current, one goroutine decides, a pool binds.
type Scheduler struct {
	names    map[string]bool
	workers  int
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *slog.Logger

	cache  *Cache
	queue  *Queue
	fw     *Framework
	lookup Lookup
	pods   corelisters.PodLister
	synced []cache.InformerSynced

	tasks chan func(context.Context)
	ready chan struct{}
}

// New builds a scheduler on the controller context's client and informers.
// The informers must be started after New (the manager does).
func New(cctx *controller.Context, cfg Config) (*Scheduler, error) {
	if cctx == nil || cctx.Client == nil || cctx.Informers == nil {
		return nil, errors.New("scheduler: a client and an informer factory are required")
	}
	names := cfg.SchedulerNames
	if len(names) == 0 {
		names = []string{DefaultSchedulerName, "skiff"}
	}
	workers := cfg.BindWorkers
	if workers <= 0 {
		workers = 16
	}
	log := cctx.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Scheduler{
		names:   map[string]bool{},
		workers: workers,
		client:  cctx.Client,
		log:     log.With("component", "scheduler"),
		cache:   NewCache(),
		queue:   NewQueue(QueueConfig{InitialBackoff: cfg.InitialBackoff, MaxBackoff: cfg.MaxBackoff}),
		fw:      NewFramework(WithPercentageOfNodesToScore(cfg.PercentageOfNodesToScore)),
		tasks:   make(chan func(context.Context), workers),
		ready:   make(chan struct{}),
	}
	for _, n := range names {
		s.names[n] = true
	}
	if cctx.Recorder != nil {
		s.recorder = cctx.Recorder(Component)
	} else {
		s.recorder = &record.FakeRecorder{}
	}

	core := cctx.Informers.Core().V1()
	podInf, nodeInf := core.Pods(), core.Nodes()
	pvcInf, pvInf, nsInf := core.PersistentVolumeClaims(), core.PersistentVolumes(), core.Namespaces()
	scInf := cctx.Informers.Storage().V1().StorageClasses()
	s.pods = podInf.Lister()
	s.lookup = listerLookup{pvcs: pvcInf.Lister(), pvs: pvInf.Lister(), classes: scInf.Lister(), namespaces: nsInf.Lister()}

	add := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return fmt.Errorf("scheduler: watch: %w", err)
		}
		s.synced = append(s.synced, reg.HasSynced)
		return nil
	}
	volumeChanged := func(any) { s.queue.MoveAll(eventVolumeChange) }
	volumeHandler := cache.ResourceEventHandlerFuncs{
		AddFunc:    volumeChanged,
		UpdateFunc: func(_, n any) { volumeChanged(n) },
	}
	for _, err := range []error{
		add(podInf.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: s.onPodAdd, UpdateFunc: s.onPodUpdate, DeleteFunc: s.onPodDelete}),
		add(nodeInf.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: s.onNodeAdd, UpdateFunc: s.onNodeUpdate, DeleteFunc: s.onNodeDelete}),
		add(pvcInf.Informer(), volumeHandler),
		add(pvInf.Informer(), volumeHandler),
		add(scInf.Informer(), volumeHandler),
		add(nsInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { s.queue.MoveAll(eventNamespace) },
			UpdateFunc: func(o, n any) {
				if !equality.Semantic.DeepEqual(o.(*corev1.Namespace).Labels, n.(*corev1.Namespace).Labels) {
					s.queue.MoveAll(eventNamespace)
				}
			},
		}),
	} {
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Ready is closed once the caches are synced and pods are being scheduled.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Run schedules pods until ctx is done, then waits for the bindings in
// flight to finish.
func (s *Scheduler) Run(ctx context.Context) {
	s.log.Info("starting", "workers", s.workers)
	if !controller.WaitForSync(ctx, s.log, s.synced...) {
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < s.workers; i++ {
		wg.Go(func() {
			for t := range s.tasks {
				t(ctx)
			}
		})
	}
	wg.Go(func() { s.queue.Run(ctx, flushInterval) })
	nodes, pods, _ := s.cache.Counts()
	s.log.Info("ready", "nodes", nodes, "boundPods", pods)
	close(s.ready)
	for s.scheduleOne(ctx) {
	}
	s.log.Info("stopping")
	close(s.tasks)
	wg.Wait()
	s.log.Info("stopped")
}

// dispatch hands a task to the worker pool, waiting for room.
func (s *Scheduler) dispatch(ctx context.Context, t func(context.Context)) {
	select {
	case s.tasks <- t:
	case <-ctx.Done():
	}
}

// scheduleOne decides for the next pod; false when the queue is closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	qp, ok := s.queue.Pop()
	if !ok {
		return false
	}
	pod, ok := s.current(qp.Pod)
	if !ok {
		s.queue.Done(qp)
		return true
	}
	pi := NewPodInfo(pod)
	start := time.Now()
	var res Result
	var err error
	s.cache.Decide(func(snap *Snapshot) {
		res, err = s.fw.Schedule(snap, pi, s.lookup)
		if err == nil {
			err = s.cache.assume(snap, pi, res.Node)
		}
	})
	if err != nil {
		s.failed(ctx, qp, pod, err)
		return true
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("assumed", "pod", qp.Key(), "node", res.Node, "evaluated", res.Evaluated, "feasible", res.Feasible, "took", time.Since(start))
	}
	s.dispatch(ctx, func(ctx context.Context) { s.bind(ctx, qp, pod, res) })
	return true
}

// current returns the latest version of a popped pod, false if it is
// gone, bound, being deleted, or already assumed (its binding is in flight).
func (s *Scheduler) current(p *corev1.Pod) (*corev1.Pod, bool) {
	latest, err := s.pods.Pods(p.Namespace).Get(p.Name)
	if err != nil || latest.UID != p.UID || !s.responsible(latest) {
		return nil, false
	}
	if s.cache.IsPlaced(latest.UID) {
		return nil, false
	}
	return latest, true
}

// responsible says whether the pod waits for this scheduler.
func (s *Scheduler) responsible(p *corev1.Pod) bool {
	return p.Spec.NodeName == "" && s.names[p.Spec.SchedulerName] && p.DeletionTimestamp == nil &&
		len(p.Spec.SchedulingGates) == 0 && !terminal(p)
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// failed handles a pod that could not be placed: back to the queue, and
// (off the deciding goroutine) an event and the PodScheduled condition.
func (s *Scheduler) failed(ctx context.Context, qp *QueuedPod, pod *corev1.Pod, err error) {
	var fe *FitError
	if errors.As(err, &fe) {
		msg := fe.Error()
		s.queue.Requeue(qp, true, fe.Plugins())
		s.log.Debug("unschedulable", "pod", qp.Key(), "attempts", qp.Attempts, "reason", msg)
		s.dispatch(ctx, func(ctx context.Context) { s.report(ctx, pod, corev1.PodReasonUnschedulable, msg) })
		return
	}
	s.queue.Requeue(qp, false, 0)
	s.log.Warn("scheduling failed; will retry", "pod", qp.Key(), "err", err)
	s.dispatch(ctx, func(ctx context.Context) { s.report(ctx, pod, ReasonSchedulerError, err.Error()) })
}

// report emits a FailedScheduling event and sets PodScheduled=False.
func (s *Scheduler) report(ctx context.Context, pod *corev1.Pod, reason, msg string) {
	s.recorder.Event(pod, corev1.EventTypeWarning, ReasonFailedScheduling, msg)
	if err := s.setUnscheduledCondition(ctx, pod, reason, msg); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
		s.log.Warn("could not update the pod's PodScheduled condition", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// setUnscheduledCondition patches PodScheduled=False on the pod's status,
// unless it already says exactly that.
func (s *Scheduler) setUnscheduledCondition(ctx context.Context, pod *corev1.Pod, reason, msg string) error {
	transition := metav1.Now()
	for _, c := range pod.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			continue
		}
		if c.Status == corev1.ConditionFalse {
			if c.Reason == reason && c.Message == msg {
				return nil
			}
			if !c.LastTransitionTime.IsZero() {
				transition = c.LastTransitionTime
			}
		}
	}
	cond := corev1.PodCondition{
		Type:               corev1.PodScheduled,
		Status:             corev1.ConditionFalse,
		Reason:             reason,
		Message:            msg,
		LastTransitionTime: transition,
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{cond}}})
	if err != nil {
		return fmt.Errorf("encode condition patch: %w", err)
	}
	if _, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patch status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// bind records the chosen node on the pod's WaitForFirstConsumer claims,
// then binds the pod through pods/binding. On failure the assumed pod is
// forgotten and the pod retried after a backoff, unless the pod is gone or
// bound already.
func (s *Scheduler) bind(ctx context.Context, qp *QueuedPod, pod *corev1.Pod, res Result) {
	if err := s.annotateClaims(ctx, res); err != nil {
		s.bindFailed(ctx, qp, pod, res, err, true)
		return
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: res.Node},
	}, metav1.CreateOptions{})
	if err != nil {
		s.bindFailed(ctx, qp, pod, res, fmt.Errorf("bind pod %s/%s to %s: %w", pod.Namespace, pod.Name, res.Node, err), false)
		return
	}
	s.recorder.Eventf(pod, corev1.EventTypeNormal, ReasonScheduled, "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, res.Node)
	s.queue.Done(qp)
}

// bindFailed undoes the assumption and decides whether to retry: a pod
// that is gone, bound elsewhere or replaced (NotFound or Conflict from the
// binding itself) is left to the informer.
func (s *Scheduler) bindFailed(ctx context.Context, qp *QueuedPod, pod *corev1.Pod, res Result, err error, retry bool) {
	s.cache.Forget(pod.UID)
	s.queue.MoveAll(eventPodGone)
	if ctx.Err() != nil {
		return
	}
	if !retry && (apierrors.IsNotFound(err) || apierrors.IsConflict(err)) {
		s.log.Debug("binding not needed any more", "pod", qp.Key(), "err", err)
		s.queue.Done(qp)
		return
	}
	s.log.Warn("binding failed; will retry", "pod", qp.Key(), "node", res.Node, "err", err)
	s.queue.Requeue(qp, false, 0)
	s.report(ctx, pod, ReasonSchedulerError, "Binding rejected: "+err.Error())
}

// annotateClaims sets volume.kubernetes.io/selected-node on unbound
// WaitForFirstConsumer claims so the volume is provisioned on the node. It
// reads the claim fresh and writes it back with its resourceVersion, so a
// claim another pod got provisioned elsewhere meanwhile is not moved: the
// binding fails and the pod is decided again, now following the claim.
func (s *Scheduler) annotateClaims(ctx context.Context, res Result) error {
	for _, c := range res.ClaimsToAnnotate {
		claims := s.client.CoreV1().PersistentVolumeClaims(c.Namespace)
		pvc, err := claims.Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
		}
		if pvc.Spec.VolumeName != "" {
			continue
		}
		switch sel := pvc.Annotations[AnnSelectedNode]; sel {
		case res.Node:
			continue
		case "":
		default:
			return fmt.Errorf("claim %s/%s is being provisioned for node %s, not %s", c.Namespace, c.Name, sel, res.Node)
		}
		pvc = pvc.DeepCopy()
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		pvc.Annotations[AnnSelectedNode] = res.Node
		if _, err := claims.Update(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("select node %s for claim %s/%s: %w", res.Node, c.Namespace, c.Name, err)
		}
	}
	return nil
}

func podFrom(obj any) *corev1.Pod {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o
	case cache.DeletedFinalStateUnknown:
		p, _ := o.Obj.(*corev1.Pod)
		return p
	}
	return nil
}

func (s *Scheduler) onPodAdd(obj any) {
	p := podFrom(obj)
	if p == nil {
		return
	}
	switch {
	case p.Spec.NodeName != "":
		if terminal(p) {
			return
		}
		s.cache.SetPod(p)
		s.queue.MoveAll(eventPodPlaced)
	case s.responsible(p):
		s.queue.Add(p)
	}
}

func (s *Scheduler) onPodUpdate(oldObj, newObj any) {
	o, n := podFrom(oldObj), podFrom(newObj)
	if o == nil || n == nil {
		return
	}
	if n.Spec.NodeName == "" {
		if s.responsible(n) {
			s.queue.Add(n)
		} else {
			s.queue.Delete(n)
		}
		return
	}
	if o.Spec.NodeName == "" {
		s.queue.Delete(n)
	}
	if terminal(n) {
		if s.cache.RemovePod(n.UID) {
			s.queue.MoveAll(eventPodGone)
		}
		return
	}
	s.cache.SetPod(n)
	if o.Spec.NodeName == "" || !equality.Semantic.DeepEqual(o.Labels, n.Labels) {
		s.queue.MoveAll(eventPodPlaced)
	}
}

func (s *Scheduler) onPodDelete(obj any) {
	p := podFrom(obj)
	if p == nil {
		return
	}
	s.queue.Delete(p)
	if s.cache.RemovePod(p.UID) {
		s.queue.MoveAll(eventPodGone)
	}
}

func nodeFrom(obj any) *corev1.Node {
	switch o := obj.(type) {
	case *corev1.Node:
		return o
	case cache.DeletedFinalStateUnknown:
		n, _ := o.Obj.(*corev1.Node)
		return n
	}
	return nil
}

func (s *Scheduler) onNodeAdd(obj any) {
	if n := nodeFrom(obj); n != nil {
		s.cache.SetNode(n)
		s.queue.MoveAll(eventNodeChange)
	}
}

func (s *Scheduler) onNodeUpdate(oldObj, newObj any) {
	o, n := nodeFrom(oldObj), nodeFrom(newObj)
	if o == nil || n == nil {
		return
	}
	s.cache.SetNode(n)
	if nodeChangeMatters(o, n) {
		s.queue.MoveAll(eventNodeChange)
	}
}

func (s *Scheduler) onNodeDelete(obj any) {
	if n := nodeFrom(obj); n != nil {
		s.cache.RemoveNode(n.Name)
	}
}

// nodeChangeMatters ignores heartbeats: only allocatable, labels, taints,
// cordon and readiness can change a decision.
func nodeChangeMatters(o, n *corev1.Node) bool {
	return o.Spec.Unschedulable != n.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(o.Labels, n.Labels) ||
		!equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) ||
		!equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) ||
		readyStatus(o) != readyStatus(n)
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// listerLookup answers Lookup from the informers' caches.
type listerLookup struct {
	pvcs       corelisters.PersistentVolumeClaimLister
	pvs        corelisters.PersistentVolumeLister
	classes    storagelisters.StorageClassLister
	namespaces corelisters.NamespaceLister
}

func (l listerLookup) PVC(ns, name string) (*corev1.PersistentVolumeClaim, error) {
	return l.pvcs.PersistentVolumeClaims(ns).Get(name)
}

func (l listerLookup) PV(name string) (*corev1.PersistentVolume, error) { return l.pvs.Get(name) }

func (l listerLookup) StorageClass(name string) (*storagev1.StorageClass, error) {
	return l.classes.Get(name)
}

func (l listerLookup) NamespaceLabels(name string) labels.Set {
	ns, err := l.namespaces.Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}
