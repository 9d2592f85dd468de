package storage

import (
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
)

// decodeCache shares decoded watch events among watchers. Every API watch
// on a resource is its own etcd watch and sees the same events at about the
// same time; decoding each event once instead of once per watcher saves
// most of the JSON work when many informers watch one resource.
//
// Objects handed out are shared: callers must not modify them.
type decodeCache struct {
	mu      sync.Mutex
	entries map[decodeKey]runtime.Object
	order   []decodeKey // ring buffer: the oldest entry is evicted first
	next    int
}

// decodeKey names one decoded value: the etcd key, the revision its
// resourceVersion carries, and the revision of the value's own write (a
// deleted object carries the deletion's revision but the last write's value).
type decodeKey struct {
	key        string
	rev, value int64
}

func newDecodeCache(size int) *decodeCache {
	return &decodeCache{entries: make(map[decodeKey]runtime.Object, size), order: make([]decodeKey, size)}
}

// get returns the cached object for k, or decodes it with decode and
// keeps it.
func (c *decodeCache) get(k decodeKey, decode func() (runtime.Object, error)) (runtime.Object, error) {
	c.mu.Lock()
	obj, ok := c.entries[k]
	c.mu.Unlock()
	if ok {
		return obj, nil
	}
	obj, err := decode()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok {
		if old := c.order[c.next]; old != (decodeKey{}) {
			delete(c.entries, old)
		}
		c.order[c.next] = k
		c.next = (c.next + 1) % len(c.order)
		c.entries[k] = obj
	}
	return c.entries[k], nil
}
