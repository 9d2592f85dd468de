// Package nodelifecycle watches node health and acts on it, as Kubernetes'
// node lifecycle and taint eviction controllers do.
//
// A kubelet proves it is alive by renewing its Lease in kube-node-lease
// (and by posting node status). A node heard from by neither for the grace
// period gets its Ready condition (and the other kubelet conditions) set to
// Unknown, "Kubelet stopped posting node status.", and its pods are marked
// not ready. Nodes are tainted from their conditions: not-ready or
// unreachable as NoSchedule and NoExecute, memory/disk/pid pressure,
// network-unavailable and unschedulable as NoSchedule; the taints go when
// the conditions clear. If no node at all is ready the fault is most likely
// on the control plane's side, so the NoExecute taints are lifted and
// evictions stop until some node is ready again; a zone where most nodes
// are down (more than two, at least 55%) gets no new NoExecute taints.
//
// Pods on a node with NoExecute taints they do not tolerate are deleted at
// once; pods tolerating them for tolerationSeconds are deleted when that
// time has passed since the taint was added; pods tolerating them without
// a limit stay.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "nodelifecycle"

// DefaultGracePeriod is how long a node may go unheard by default.
const DefaultGracePeriod = 40 * time.Second

const (
	reasonNodeStatusUnknown = "NodeStatusUnknown"
	messageStopped          = "Kubelet stopped posting node status."
	messageNever            = "Kubelet never posted node status."
	labelZone               = "topology.kubernetes.io/zone"
	// podsByNode indexes the pod cache by spec.nodeName.
	podsByNode = "skiff.nodelifecycle/nodeName"
	// unhealthyZoneThreshold and largeClusterThreshold decide when a zone
	// is partially disrupted and whether evictions then stop.
	unhealthyZoneThreshold = 0.55
	largeClusterThreshold  = 50
	nodeWorkers            = 2
	podWorkers             = 4
)

// Config is what the controller needs.
type Config struct {
	// GracePeriod is how long a node may go without renewing its lease or
	// posting status before it is considered unreachable.
	GracePeriod time.Duration
}

// health is what the controller has observed of one node.
type health struct {
	// probe is when (by this controller's clock) the node was last heard
	// from: a lease renewal or a new status heartbeat.
	probe     time.Time
	renew     time.Time
	heartbeat time.Time
}

// Controller is the node lifecycle controller.
type Controller struct {
	cfg         Config
	client      kubernetes.Interface
	nodes       corelisters.NodeLister
	leases      coordlisters.LeaseLister
	pods        corelisters.PodLister
	podIndex    cache.Indexer
	synced      []cache.InformerSynced
	nodeQueue   controller.Queue
	podQueue    controller.Queue
	recorder    record.EventRecorder
	evictRecord record.EventRecorder
	log         *slog.Logger
	now         func() time.Time

	mu     sync.Mutex
	health map[string]*health
	// evictFrom is when each pod's toleration window started.
	evictFrom map[string]time.Time
	// disrupted is whether no node was ready at the last look.
	disrupted bool
}

// New builds the controller from cctx and cfg.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	nodeInf := cctx.Informers.Core().V1().Nodes()
	leaseInf := cctx.Informers.Coordination().V1().Leases()
	podInf := cctx.Informers.Core().V1().Pods()
	if err := podInf.Informer().AddIndexers(cache.Indexers{podsByNode: func(obj interface{}) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: pod index: %w", err)
	}
	c := &Controller{
		cfg:      cfg,
		client:   cctx.Client,
		nodes:    nodeInf.Lister(),
		leases:   leaseInf.Lister(),
		pods:     podInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(),
		synced: []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced,
			podInf.Informer().HasSynced},
		nodeQueue:   controller.NewQueue(Name),
		podQueue:    controller.NewQueue("taint-eviction"),
		recorder:    cctx.Recorder("node-controller"),
		evictRecord: cctx.Recorder("taint-eviction-controller"),
		log:         cctx.ControllerLogger(Name),
		now:         time.Now,
		health:      map[string]*health{},
		evictFrom:   map[string]time.Time{},
	}
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) { controller.Enqueue(c.nodeQueue, obj) },
		UpdateFunc: func(old, cur interface{}) {
			controller.Enqueue(c.nodeQueue, cur)
			o, ok1 := old.(*corev1.Node)
			n, ok2 := cur.(*corev1.Node)
			if ok1 && ok2 && !sameNoExecute(o, n) {
				c.enqueuePodsOn(n.Name)
			}
		},
		DeleteFunc: func(obj interface{}) { controller.Enqueue(c.nodeQueue, obj) },
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: node handler: %w", err)
	}
	onLease := func(obj interface{}) {
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Namespace == corev1.NamespaceNodeLease {
			c.nodeQueue.Add(l.Name)
		}
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onLease,
		UpdateFunc: func(_, cur interface{}) { onLease(cur) },
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: lease handler: %w", err)
	}
	onPod := func(obj interface{}) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			return
		}
		n, err := c.nodes.Get(p.Spec.NodeName)
		if err != nil {
			return
		}
		if len(noExecuteTaints(n)) > 0 {
			controller.Enqueue(c.podQueue, p)
		}
		if readyStatus(n) == corev1.ConditionUnknown && podReady(p) {
			c.nodeQueue.Add(n.Name)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onPod,
		UpdateFunc: func(_, cur interface{}) { onPod(cur) },
	}); err != nil {
		return nil, fmt.Errorf("nodelifecycle: pod handler: %w", err)
	}
	return c, nil
}

// Run watches nodes and evicts pods until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting", "gracePeriod", c.cfg.GracePeriod)
	defer c.log.Info("stopped")
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		c.nodeQueue.ShutDown()
		c.podQueue.ShutDown()
		return
	}
	c.log.Info("ready")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		controller.RunWorkers(ctx, c.log, c.nodeQueue, nodeWorkers, c.syncNode)
	}()
	go func() {
		defer wg.Done()
		controller.RunWorkers(ctx, c.log, c.podQueue, podWorkers, c.syncPod)
	}()
	wg.Wait()
}

func (c *Controller) enqueuePodsOn(node string) {
	objs, err := c.podIndex.ByIndex(podsByNode, node)
	if err != nil {
		return
	}
	for _, o := range objs {
		controller.Enqueue(c.podQueue, o)
	}
}

// observe records what the node and its lease say and returns when the
// node was last heard from. A node seen for the first time counts as
// heard from now: the controller gives every node the grace period after
// it starts.
func (c *Controller) observe(n *corev1.Node, lease *coordinationv1.Lease) time.Time {
	now := c.now()
	var renew, heartbeat time.Time
	if lease != nil && lease.Spec.RenewTime != nil {
		renew = lease.Spec.RenewTime.Time
	}
	if rc := condition(n, corev1.NodeReady); rc != nil {
		heartbeat = rc.LastHeartbeatTime.Time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[n.Name]
	if !ok {
		h = &health{probe: now, renew: renew, heartbeat: heartbeat}
		c.health[n.Name] = h
		return h.probe
	}
	if renew.After(h.renew) {
		h.renew, h.probe = renew, now
	}
	if heartbeat.After(h.heartbeat) {
		h.heartbeat, h.probe = heartbeat, now
	}
	return h.probe
}

// syncNode checks one node's health, sets its conditions and taints, and
// marks its pods not ready when it is unreachable.
func (c *Controller) syncNode(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.health, name)
		c.mu.Unlock()
		c.checkDisruption(nil)
		return nil
	}
	if err != nil {
		return err
	}
	lease, err := c.leases.Leases(corev1.NamespaceNodeLease).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	probe := c.observe(node, lease)
	now := c.now()
	if wait := probe.Add(c.cfg.GracePeriod).Sub(now); wait > 0 {
		c.nodeQueue.AddAfter(name, wait+10*time.Millisecond)
	} else if node, err = c.markUnknown(ctx, node, now); err != nil {
		return err
	}

	fullDisruption, zoneDisrupted := c.checkDisruption(node)
	if err := c.setTaints(ctx, node, fullDisruption, zoneDisrupted); err != nil {
		return err
	}
	if readyStatus(node) == corev1.ConditionUnknown {
		return c.markPodsNotReady(ctx, node)
	}
	return nil
}

// markUnknown sets the conditions the kubelet reports to Unknown, as the
// kubelet is no longer heard from. It returns the node as written.
func (c *Controller) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	next := node.DeepCopy()
	ts := metav1.NewTime(now)
	changed := false
	if rc := condition(next, corev1.NodeReady); rc == nil {
		next.Status.Conditions = append(next.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady,
			Status: corev1.ConditionUnknown, Reason: reasonNodeStatusUnknown, Message: messageNever,
			LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: ts})
		changed = true
	}
	for i := range next.Status.Conditions {
		nc := &next.Status.Conditions[i]
		switch nc.Type {
		case corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure:
		default:
			continue
		}
		if nc.Status == corev1.ConditionUnknown {
			continue
		}
		nc.Status, nc.Reason, nc.Message, nc.LastTransitionTime = corev1.ConditionUnknown, reasonNodeStatusUnknown, messageStopped, ts
		changed = true
	}
	if !changed {
		return node, nil
	}
	out, err := c.client.CoreV1().Nodes().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("mark node %s unknown: %w", node.Name, err)
	}
	c.log.Info("node stopped posting status; marked unknown", "node", node.Name, "gracePeriod", c.cfg.GracePeriod)
	c.recorder.Eventf(out, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", node.Name)
	return out, nil
}

// checkDisruption looks at every node's readiness (with cur, just
// written, in place of its cached copy) and reports whether no node is
// ready at all, and whether cur's zone has most of its nodes down. When
// the cluster-wide state changes every node is looked at again; leaving
// full disruption gives every node a fresh grace period.
func (c *Controller) checkDisruption(cur *corev1.Node) (full, zone bool) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return false, false
	}
	type count struct{ ready, notReady int }
	zones := map[string]*count{}
	for _, n := range nodes {
		if cur != nil && n.Name == cur.Name {
			n = cur
		}
		z := zones[n.Labels[labelZone]]
		if z == nil {
			z = &count{}
			zones[n.Labels[labelZone]] = z
		}
		if readyStatus(n) == corev1.ConditionTrue {
			z.ready++
		} else {
			z.notReady++
		}
	}
	full = len(zones) > 0
	for _, z := range zones {
		if z.ready > 0 || z.notReady == 0 {
			full = false
		}
	}
	if cur != nil {
		if z := zones[cur.Labels[labelZone]]; z != nil {
			total := z.ready + z.notReady
			zone = z.notReady > 2 && float64(z.notReady)/float64(total) >= unhealthyZoneThreshold && total <= largeClusterThreshold
		}
	}
	c.mu.Lock()
	changed := full != c.disrupted
	c.disrupted = full
	if changed && !full {
		now := c.now()
		for _, h := range c.health {
			h.probe = now
		}
	}
	c.mu.Unlock()
	if changed {
		if full {
			c.log.Warn("no node is ready; lifting NoExecute taints and stopping evictions until one is (the fault is likely on the control plane's side)")
		} else {
			c.log.Info("some nodes are ready again; evictions resume")
		}
		for _, n := range nodes {
			c.nodeQueue.Add(n.Name)
		}
	}
	return full, zone
}

// setTaints brings the node's managed taints in line with its conditions.
func (c *Controller) setTaints(ctx context.Context, node *corev1.Node, fullDisruption, zoneDisrupted bool) error {
	want := noScheduleTaints(node)
	if key := noExecuteTaint(node); key != "" && !fullDisruption {
		// In a disrupted zone no node gets a new NoExecute taint, but a
		// tainted one may swap not-ready for unreachable and back.
		if !zoneDisrupted || hasNoExecute(node) {
			want = append(want, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoExecute})
		}
	}
	taints, changed := mergeTaints(node.Spec.Taints, want, c.now())
	if !changed {
		return nil
	}
	next := node.DeepCopy()
	next.Spec.Taints = taints
	if _, err := c.client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update taints of node %s: %w", node.Name, err)
	}
	c.log.Info("node taints updated", "node", node.Name, "taints", taintStrings(taints))
	return nil
}

func taintStrings(ts []corev1.Taint) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ToString()
	}
	return out
}

// markPodsNotReady sets Ready=False on the pods of an unreachable node:
// nobody can vouch for them.
func (c *Controller) markPodsNotReady(ctx context.Context, node *corev1.Node) error {
	objs, err := c.podIndex.ByIndex(podsByNode, node.Name)
	if err != nil {
		return err
	}
	var firstErr error
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || !podReady(p) || terminal(p) {
			continue
		}
		next := p.DeepCopy()
		now := metav1.NewTime(c.now())
		for i := range next.Status.Conditions {
			if cond := &next.Status.Conditions[i]; cond.Type == corev1.PodReady {
				cond.Status, cond.LastTransitionTime = corev1.ConditionFalse, now
			}
		}
		_, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			if firstErr == nil {
				firstErr = fmt.Errorf("mark pod %s/%s not ready: %w", p.Namespace, p.Name, err)
			}
			continue
		}
		c.recorder.Event(p, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return firstErr
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}
