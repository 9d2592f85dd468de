package scheduler

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Cache is the snapshot shared by the informers' handlers, which keep it
// current, and the scheduling goroutine, which decides on it and assumes
// pods on it. Assumed pods count on their node from the decision on, so
// the next decision sees them; they are confirmed when the informer shows
// them bound, or forgotten when binding fails.
type Cache struct {
	mu      sync.Mutex
	snap    *Snapshot
	assumed map[types.UID]struct{}
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{snap: NewSnapshot(nil, nil), assumed: map[types.UID]struct{}{}}
}

// Decide runs f with the snapshot to itself; nothing changes the snapshot
// while f runs but f itself (through Assume on the snapshot it is given).
func (c *Cache) Decide(f func(s *Snapshot)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.snap)
}

// SetNode adds or updates a node.
func (c *Cache) SetNode(n *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap.SetNode(n)
}

// RemoveNode removes a node.
func (c *Cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.snap.RemoveNode(name)
}

// SetPod adds or updates a pod the API shows bound to a node. An assumed
// pod with the same uid is thereby confirmed (or moved, if the pod ended
// up elsewhere).
func (c *Cache) SetPod(p *corev1.Pod) {
	pi := NewPodInfo(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, p.UID)
	c.snap.AddPod(pi)
}

// RemovePod removes a pod, bound or assumed; false if it was not there.
func (c *Cache) RemovePod(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.assumed, uid)
	return c.snap.RemovePod(uid)
}

// assume places pi on node; the caller holds the lock (it runs in Decide).
func (c *Cache) assume(s *Snapshot, pi *PodInfo, node string) error {
	if s.Pod(pi.Pod.UID) != nil {
		return fmt.Errorf("pod %s/%s is already placed", pi.Pod.Namespace, pi.Pod.Name)
	}
	s.AddPod(pi.withNode(node))
	c.assumed[pi.Pod.UID] = struct{}{}
	return nil
}

// Forget takes an assumed pod back off its node (its binding failed).
// A pod the informer already confirmed stays.
func (c *Cache) Forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.assumed[uid]; ok {
		delete(c.assumed, uid)
		c.snap.RemovePod(uid)
	}
}

// IsPlaced reports whether the pod is assumed or known bound.
func (c *Cache) IsPlaced(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap.Pod(uid) != nil
}

// Counts returns how many nodes and placed pods the cache holds, and how
// many of those pods are assumed.
func (c *Cache) Counts() (nodes, pods, assumed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.snap.list), len(c.snap.pods), len(c.assumed)
}
