// Package daemonset is skiff's DaemonSet controller: one pod per eligible
// node (nodeSelector, required node affinity, taints against the pod's
// tolerations plus the standard daemon tolerations), following nodes as
// they come, change and go; RollingUpdate (maxUnavailable) and OnDelete
// updates keyed by a hash of the pod template; and the DaemonSet status.
//
// Like Kubernetes since 1.12, the controller does not bind daemon pods
// itself: each pod requires its node through node affinity
// (matchFields metadata.name In [<node>]) and the scheduler binds it.
package daemonset

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"skiff/internal/controller"
	"skiff/internal/controller/expectations"
)

const (
	// Name is the controller's name in events and logs.
	Name = "daemonset-controller"

	// templateGenerationLabel is the older label naming the DaemonSet
	// generation a pod was made from; tools still read it.
	templateGenerationLabel = "pod-template-generation"

	defaultWorkers  = 2
	expectationsTTL = 5 * time.Minute
	// A failed daemon pod is replaced after 1 s, doubling per failure on
	// the same node up to 15 min.
	failedPodBackoff    = time.Second
	failedPodBackoffMax = 15 * time.Minute
)

// Options tune the controller; zero values mean the defaults.
type Options struct {
	Workers int
}

// Controller is the DaemonSet controller.
type Controller struct {
	client   kubernetes.Interface
	sets     appslisters.DaemonSetLister
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	synced   []cache.InformerSynced
	queue    controller.Queue
	recorder record.EventRecorder
	log      *slog.Logger
	opts     Options
	now      func() time.Time

	expect  *expectations.Pods
	backoff *flowcontrol.Backoff // per DaemonSet and node, for failed pods
}

// New builds the controller on cctx's informers.
func New(cctx *controller.Context, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	dsInformer := cctx.Informers.Apps().V1().DaemonSets()
	podInformer := cctx.Informers.Core().V1().Pods()
	nodeInformer := cctx.Informers.Core().V1().Nodes()
	c := &Controller{
		client: cctx.Client,
		sets:   dsInformer.Lister(),
		pods:   podInformer.Lister(),
		nodes:  nodeInformer.Lister(),
		synced: []cache.InformerSynced{
			dsInformer.Informer().HasSynced, podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced,
		},
		queue:    controller.NewQueue("daemonset"),
		recorder: cctx.Recorder(Name),
		log:      cctx.ControllerLogger("daemonset"),
		opts:     opts,
		now:      time.Now,
		backoff:  flowcontrol.NewBackOff(failedPodBackoff, failedPodBackoffMax),
	}
	c.expect = expectations.New(expectationsTTL, c.now)
	if _, err := dsInformer.Informer().AddEventHandler(controller.EnqueueHandler(c.queue)); err != nil {
		return nil, fmt.Errorf("daemonset controller: watch daemonsets: %w", err)
	}
	if _, err := podInformer.Informer().AddEventHandler(c.expect.PodHandler(c.queue, setKeyOf, nil)); err != nil {
		return nil, fmt.Errorf("daemonset controller: watch pods: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(interface{}) { c.enqueueAll() },
		UpdateFunc: func(oldObj, obj interface{}) {
			old, ok1 := oldObj.(*corev1.Node)
			cur, ok2 := obj.(*corev1.Node)
			if !ok1 || !ok2 || nodeChanged(old, cur) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(interface{}) { c.enqueueAll() },
	}); err != nil {
		return nil, fmt.Errorf("daemonset controller: watch nodes: %w", err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting")
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		c.queue.ShutDown()
		return
	}
	c.log.Info("ready")
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				c.backoff.GC()
			}
		}
	}()
	controller.RunWorkers(ctx, c.log, c.queue, c.opts.Workers, c.sync)
	<-done
	c.log.Info("stopped")
}

// nodeChanged: a change that can alter where daemons run.
func nodeChanged(old, cur *corev1.Node) bool {
	return !equality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		old.Spec.Unschedulable != cur.Spec.Unschedulable
}

func (c *Controller) enqueueAll() {
	sets, err := c.sets.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range sets {
		controller.Enqueue(c.queue, ds)
	}
}

// setKeyOf returns the key of the DaemonSet controlling pod.
func setKeyOf(pod *corev1.Pod) (string, bool) {
	return controller.ControllerKey(pod, appsv1.SchemeGroupVersion.String(), "DaemonSet")
}
