package replicaset

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectations remembers, per ReplicaSet key, the pod creations and
// deletions the controller has asked for but not yet seen in its informer.
// While some are outstanding the controller does not create or delete
// again, so a lagging cache cannot make it act twice. A record older than
// ttl is ignored: a watch event that never came must not stall a
// ReplicaSet for ever.
type expectations struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	records map[string]*expectation
}

type expectation struct {
	adds    int
	deletes map[types.UID]struct{}
	set     time.Time
}

func newExpectations(ttl time.Duration, now func() time.Time) *expectations {
	return &expectations{ttl: ttl, now: now, records: map[string]*expectation{}}
}

// satisfied reports whether key has nothing outstanding (or its record
// expired), that is whether the controller may create or delete pods.
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return true
	}
	if r.adds <= 0 && len(r.deletes) == 0 {
		return true
	}
	return e.now().Sub(r.set) > e.ttl
}

// expectCreations records that n pods are about to be created for key,
// replacing any earlier record.
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[key] = &expectation{adds: n, set: e.now()}
}

// expectDeletions records that the pods with these uids are about to be
// deleted for key, replacing any earlier record.
func (e *expectations) expectDeletions(key string, uids []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &expectation{deletes: make(map[types.UID]struct{}, len(uids)), set: e.now()}
	for _, u := range uids {
		r.deletes[u] = struct{}{}
	}
	e.records[key] = r
}

// creationObserved lowers key's outstanding creations by one: a pod was
// seen, or a create the controller counted on did not happen.
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok && r.adds > 0 {
		r.adds--
	}
}

// deletionObserved marks the deletion of the pod with uid as seen (or as
// not going to happen).
func (e *expectations) deletionObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		delete(r.deletes, uid)
	}
}

// forget drops key's record (its ReplicaSet is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
}
