// Package node is upstream's Node authorizer and NodeRestriction admission
// for skiff: a node identity (system:node:<name> in system:nodes) reads only
// what the pods bound to it need, and writes only its own Node, Lease and
// pods.
package node

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1informers "k8s.io/client-go/informers/core/v1"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

type podEntry struct {
	node string
	uid  types.UID
	refs []objRef
}

type nodeEntry struct {
	pods map[types.NamespacedName]struct{}
	refs map[objRef]int
}

// Graph knows which pods are bound to which node and what each needs,
// from the pod informer; claims and volumes are looked up in their
// listers when a request needs them.
type Graph struct {
	mu     sync.RWMutex
	pods   map[types.NamespacedName]podEntry
	nodes  map[string]*nodeEntry
	pvcs   corev1listers.PersistentVolumeClaimLister
	pvs    corev1listers.PersistentVolumeLister
	synced []cache.InformerSynced
}

// NewGraph builds the graph from the informers; HasSynced says when it is
// complete (start the informers' factory first).
func NewGraph(pods corev1informers.PodInformer, pvcs corev1informers.PersistentVolumeClaimInformer, pvs corev1informers.PersistentVolumeInformer) (*Graph, error) {
	g := newGraph(pvcs.Lister(), pvs.Lister())
	reg, err := pods.Informer().AddEventHandler(g.handlers())
	if err != nil {
		return nil, fmt.Errorf("node graph: %w", err)
	}
	// The pod handler's own sync point: the graph holds every listed pod.
	g.synced = []cache.InformerSynced{reg.HasSynced, pvcs.Informer().HasSynced, pvs.Informer().HasSynced}
	return g, nil
}

func (g *Graph) handlers() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.setPod(obj) },
		UpdateFunc: func(_, obj any) { g.setPod(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				g.deletePod(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
			}
		},
	}
}

func newGraph(pvcs corev1listers.PersistentVolumeClaimLister, pvs corev1listers.PersistentVolumeLister) *Graph {
	return &Graph{pods: map[types.NamespacedName]podEntry{}, nodes: map[string]*nodeEntry{}, pvcs: pvcs, pvs: pvs}
}

// HasSynced reports whether the informers have delivered their first list.
func (g *Graph) HasSynced() bool {
	for _, s := range g.synced {
		if !s() {
			return false
		}
	}
	return true
}

func (g *Graph) setPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	if pod.Spec.NodeName == "" {
		g.deletePod(key)
		return
	}
	refs := podRefs(pod)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(key)
	g.pods[key] = podEntry{node: pod.Spec.NodeName, uid: pod.UID, refs: refs}
	n := g.nodes[pod.Spec.NodeName]
	if n == nil {
		n = &nodeEntry{pods: map[types.NamespacedName]struct{}{}, refs: map[objRef]int{}}
		g.nodes[pod.Spec.NodeName] = n
	}
	n.pods[key] = struct{}{}
	for _, r := range refs {
		n.refs[r]++
	}
}

func (g *Graph) deletePod(key types.NamespacedName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.removeLocked(key)
}

func (g *Graph) removeLocked(key types.NamespacedName) {
	old, ok := g.pods[key]
	if !ok {
		return
	}
	delete(g.pods, key)
	n := g.nodes[old.node]
	delete(n.pods, key)
	for _, r := range old.refs {
		if n.refs[r]--; n.refs[r] <= 0 {
			delete(n.refs, r)
		}
	}
	if len(n.pods) == 0 {
		delete(g.nodes, old.node)
	}
}

// podOnNode reports whether the pod namespace/name is bound to node.
func (g *Graph) podOnNode(node, namespace, name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	p, ok := g.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	return ok && p.node == node
}

// podUID returns the UID and node of a pod in the graph.
func (g *Graph) pod(namespace, name string) (node string, uid types.UID, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	p, ok := g.pods[types.NamespacedName{Namespace: namespace, Name: name}]
	return p.node, p.uid, ok
}

func (g *Graph) hasRef(node string, r objRef) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := g.nodes[node]
	return n != nil && n.refs[r] > 0
}

// claims returns the claims the node's pods use.
func (g *Graph) claims(node string) []objRef {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []objRef
	if n := g.nodes[node]; n != nil {
		for r := range n.refs {
			if r.kind == kindPVC {
				out = append(out, r)
			}
		}
	}
	return out
}

// volumeOnNode reports whether the persistent volume is bound to a claim a
// pod on node uses.
func (g *Graph) volumeOnNode(node, pvName string) bool {
	for _, c := range g.claims(node) {
		pvc, err := g.pvcs.PersistentVolumeClaims(c.namespace).Get(c.name)
		if err == nil && pvc.Spec.VolumeName == pvName {
			return true
		}
	}
	return false
}

// secretOnNode reports whether a pod on node, or a volume one of its
// claims is bound to, needs the secret.
func (g *Graph) secretOnNode(node, namespace, name string) bool {
	if g.hasRef(node, objRef{kindSecret, namespace, name}) {
		return true
	}
	for _, c := range g.claims(node) {
		pvc, err := g.pvcs.PersistentVolumeClaims(c.namespace).Get(c.name)
		if err != nil || pvc.Spec.VolumeName == "" {
			continue
		}
		pv, err := g.pvs.Get(pvc.Spec.VolumeName)
		if err != nil {
			continue
		}
		for _, s := range pvSecrets(pv, c.namespace) {
			if s == [2]string{namespace, name} {
				return true
			}
		}
	}
	return false
}
