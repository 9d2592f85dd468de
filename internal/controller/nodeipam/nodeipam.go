// Package nodeipam gives every node a pod CIDR (spec.podCIDR and
// spec.podCIDRs): a block of the cluster CIDR (a /24 of 10.42.0.0/16 by
// default), unique among nodes. A node that already has one keeps it, so a
// re-registering node and a restarted controller see the same blocks; the
// set of used blocks is rebuilt from the nodes on start. When the cluster
// CIDR is used up the node gets a Warning Event (CIDRNotAvailable) and is
// served when a block is freed.
package nodeipam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// Name is the controller's name in logs, events and the manager.
const Name = "nodeipam"

// Default node block sizes, those of k3s.
const (
	DefaultNodeMaskIPv4 = 24
	DefaultNodeMaskIPv6 = 64
)

// Reason of the Event when no block is left.
const reasonCIDRNotAvailable = "CIDRNotAvailable"

// Config is what the controller needs.
type Config struct {
	// ClusterCIDR is split into node blocks.
	ClusterCIDR *net.IPNet
	// NodeMaskSize is the prefix length of a node's block; 0 means /24
	// for IPv4 and /64 for IPv6 (or the cluster CIDR itself if smaller).
	NodeMaskSize int
}

// Controller allocates node pod CIDRs.
type Controller struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	synced   cache.InformerSynced
	queue    controller.Queue
	recorder record.EventRecorder
	log      *slog.Logger

	// mu guards set and byNode. One worker runs, but the lock keeps the
	// invariant obvious and Run's rebuild safe.
	mu  sync.Mutex
	set *cidrSet
	// byNode is the block each node holds, as far as the set knows.
	byNode map[string]netip.Prefix
}

// New builds the controller from cctx and cfg.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if cfg.ClusterCIDR == nil {
		return nil, errors.New("nodeipam: a cluster CIDR is required")
	}
	ones, bits := cfg.ClusterCIDR.Mask.Size()
	addr, ok := netip.AddrFromSlice(cfg.ClusterCIDR.IP)
	if !ok || bits == 0 {
		return nil, fmt.Errorf("nodeipam: cluster CIDR %v is not valid", cfg.ClusterCIDR)
	}
	addr = addr.Unmap()
	cluster := netip.PrefixFrom(addr, ones)
	mask := cfg.NodeMaskSize
	if mask == 0 {
		mask = DefaultNodeMaskIPv4
		if addr.Is6() {
			mask = DefaultNodeMaskIPv6
		}
		mask = max(mask, ones)
	}
	set, err := newCIDRSet(cluster, mask)
	if err != nil {
		return nil, fmt.Errorf("nodeipam: %w", err)
	}
	inf := cctx.Informers.Core().V1().Nodes()
	c := &Controller{
		client:   cctx.Client,
		nodes:    inf.Lister(),
		synced:   inf.Informer().HasSynced,
		queue:    controller.NewQueue(Name),
		recorder: cctx.Recorder("node-ipam-controller"),
		log:      cctx.ControllerLogger(Name),
		set:      set,
		byNode:   map[string]netip.Prefix{},
	}
	_, err = inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) { controller.Enqueue(c.queue, obj) },
		UpdateFunc: func(old, cur interface{}) {
			o, n := old.(*corev1.Node), cur.(*corev1.Node)
			if len(n.Spec.PodCIDRs) == 0 || !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) {
				controller.Enqueue(c.queue, cur)
			}
		},
		DeleteFunc: func(obj interface{}) { controller.Enqueue(c.queue, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("nodeipam: node handler: %w", err)
	}
	return c, nil
}

// Run rebuilds the used blocks from the nodes, then allocates until ctx is
// done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting", "clusterCIDR", c.set.cluster, "nodeMask", c.set.nodeBits)
	defer c.log.Info("stopped")
	if !controller.WaitForSync(ctx, c.log, c.synced) {
		c.queue.ShutDown()
		return
	}
	if err := c.rebuild(); err != nil {
		c.log.Warn("could not list nodes to rebuild the used pod CIDRs", "err", err)
	}
	c.log.Info("ready", "free", c.set.free())
	// One worker: allocations are serial, which keeps them simple.
	controller.RunWorkers(ctx, c.log, c.queue, 1, c.sync)
}

// rebuild marks the blocks every node already holds before anything is
// handed out.
func (c *Controller) rebuild() error {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		c.occupyLocked(n)
	}
	return nil
}

// occupyLocked records the blocks node holds; it reports whether the node
// has a pod CIDR at all.
func (c *Controller) occupyLocked(n *corev1.Node) bool {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	if len(cidrs) == 0 {
		return false
	}
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			c.log.Warn("node has a pod CIDR that does not parse; leaving it alone", "node", n.Name, "podCIDR", s)
			continue
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()).Masked()
		if p.Addr().Is4() != c.set.cluster.Addr().Is4() {
			continue // another family: not ours to track
		}
		if err := c.set.occupy(p); err != nil {
			c.log.Debug("node pod CIDR outside the cluster CIDR", "node", n.Name, "podCIDR", s)
			continue
		}
		if old, ok := c.byNode[n.Name]; ok && old != p {
			c.set.release(old)
			if err := c.set.occupy(p); err != nil {
				c.log.Debug("re-occupy pod CIDR", "node", n.Name, "err", err)
			}
		}
		c.byNode[n.Name] = p
	}
	return true
}

// sync gives node name a block if it has none, and frees the block of a
// node that is gone.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		p, held := c.byNode[name]
		if held {
			c.set.release(p)
			delete(c.byNode, name)
		}
		c.mu.Unlock()
		if held {
			c.log.Info("released pod CIDR of deleted node", "node", name, "podCIDR", p)
			c.enqueueWaiting()
		}
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.occupyLocked(node) {
		c.mu.Unlock()
		return nil
	}
	p, held := c.byNode[name]
	if !held {
		p, err = c.set.allocate()
		if err == nil {
			c.byNode[name] = p
		}
	}
	c.mu.Unlock()
	if errors.Is(err, errFull) {
		c.recorder.Eventf(node, corev1.EventTypeWarning, reasonCIDRNotAvailable,
			"Node %s status is now: %s (no free /%d left in cluster CIDR %s)", name, reasonCIDRNotAvailable, c.set.nodeBits, c.set.cluster)
		c.log.Warn("no pod CIDR left for node; it waits until one is freed", "node", name, "clusterCIDR", c.set.cluster)
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.patchNode(ctx, node, p); err != nil {
		// The block stays reserved for this node: the retry reuses it, and
		// a deleted node frees it through the delete event.
		return fmt.Errorf("set pod CIDR %s on node %s: %w", p, name, err)
	}
	c.log.Info("allocated pod CIDR", "node", name, "podCIDR", p)
	return nil
}

// patchNode writes p as the node's pod CIDR. The API server refuses to
// change a pod CIDR once set, so a concurrent writer cannot be overwritten.
func (c *Controller) patchNode(ctx context.Context, node *corev1.Node, p netip.Prefix) error {
	patch, err := json.Marshal(map[string]interface{}{
		"metadata": map[string]interface{}{"uid": node.UID},
		"spec":     map[string]interface{}{"podCIDR": p.String(), "podCIDRs": []string{p.String()}},
	})
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Nodes().Patch(ctx, node.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// enqueueWaiting queues every node still without a pod CIDR, after a block
// was freed.
func (c *Controller) enqueueWaiting() {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, n := range nodes {
		if len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR == "" {
			controller.Enqueue(c.queue, n)
		}
	}
}
