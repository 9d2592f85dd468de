package daemonset

import (
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// expectations remembers, per DaemonSet key, the pods this controller has asked
// the API to create or delete and that its informer has not shown yet.
// While some are outstanding the controller does not create or delete
// more pods for that DaemonSet: its cache is behind its own writes. Pod names
// are chosen by the controller, so an expectation is recorded before the
// request and cannot race with the informer. An expectation is also
// settled by looking at the lister, and gives up after ttl, so a lost
// event never blocks a DaemonSet for good.
type expectations struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	owner map[string]*pending
}

type pending struct {
	adds map[string]struct{}
	dels map[string]types.UID
	at   time.Time
}

func newExpectations(ttl time.Duration, now func() time.Time) *expectations {
	return &expectations{ttl: ttl, now: now, owner: map[string]*pending{}}
}

func (e *expectations) entry(key string) *pending {
	p := e.owner[key]
	if p == nil {
		p = &pending{adds: map[string]struct{}{}, dels: map[string]types.UID{}}
		e.owner[key] = p
	}
	p.at = e.now()
	return p
}

// expectAdd records that pod name is about to be created for key.
func (e *expectations) expectAdd(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.entry(key).adds[name] = struct{}{}
}

// expectDelete records that pod name (uid) is about to be deleted for key.
func (e *expectations) expectDelete(key, name string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.entry(key).dels[name] = uid
}

// observeAdd settles the creation of pod name, seen by the informer or
// failed at the API.
func (e *expectations) observeAdd(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.owner[key]; p != nil {
		delete(p.adds, name)
	}
}

// observeDelete settles the deletion of pod name.
func (e *expectations) observeDelete(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.owner[key]; p != nil {
		delete(p.dels, name)
	}
}

// forget drops everything recorded for key.
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.owner, key)
}

// satisfied reports whether the informer has caught up with every create
// and delete recorded for key; the lister of namespace ns settles those
// whose events were missed.
func (e *expectations) satisfied(key, ns string, pods corelisters.PodLister) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.owner[key]
	if p == nil {
		return true
	}
	for name := range p.adds {
		if _, err := pods.Pods(ns).Get(name); err == nil {
			delete(p.adds, name)
		}
	}
	for name, uid := range p.dels {
		pod, err := pods.Pods(ns).Get(name)
		if apierrors.IsNotFound(err) || (err == nil && (pod.UID != uid || pod.DeletionTimestamp != nil)) {
			delete(p.dels, name)
		}
	}
	if len(p.adds) == 0 && len(p.dels) == 0 {
		delete(e.owner, key)
		return true
	}
	if e.now().Sub(p.at) > e.ttl {
		delete(e.owner, key)
		return true
	}
	return false
}
