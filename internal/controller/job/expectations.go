package job

import (
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// expectations remembers, per Job key, the pods this controller has asked
// the API to create or delete and that its informer has not shown yet.
// While some are outstanding the controller does not create or delete
// more pods for that Job: its cache is behind its own writes. Pod names
// are chosen by the controller, so an expectation is recorded before the
// request and cannot race with the informer. An expectation is also
// settled by looking at the lister, and gives up after ttl, so a lost
// event never blocks a Job for good.
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

// finalizerRemovals remembers, per Job key, the pods whose tracking
// finalizer this controller removed and whose update the informer has not
// shown yet. Such a pod still carries the finalizer in the cache but has
// been counted already: counting it again would count it twice.
type finalizerRemovals struct {
	mu    sync.Mutex
	owner map[string]map[string]types.UID // key → pod name → uid
}

func newFinalizerRemovals() *finalizerRemovals {
	return &finalizerRemovals{owner: map[string]map[string]types.UID{}}
}

func (r *finalizerRemovals) add(key, name string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.owner[key]
	if m == nil {
		m = map[string]types.UID{}
		r.owner[key] = m
	}
	m[name] = uid
}

func (r *finalizerRemovals) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owner, key)
}

// pending returns the uids of the pods of key whose finalizer removal the
// cache does not show yet, settling the others.
func (r *finalizerRemovals) pending(key, ns string, pods corelisters.PodLister) map[types.UID]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.owner[key]
	out := map[types.UID]bool{}
	for name, uid := range m {
		p, err := pods.Pods(ns).Get(name)
		if err != nil || p.UID != uid || !hasTrackingFinalizer(p) {
			delete(m, name)
			continue
		}
		out[uid] = true
	}
	if len(m) == 0 {
		delete(r.owner, key)
	}
	return out
}

// stoppedPods remembers, per Job key, the pods this controller deleted
// itself (beyond parallelism, on suspension, once the Job has succeeded or
// failed). Such a pod did not fail: when it terminates it is not counted
// as a failure and does not feed the backoff. The record is in memory; a
// new leader counts pods deleted by its predecessor as failed.
type stoppedPods struct {
	mu    sync.Mutex
	owner map[string]map[types.UID]bool
}

func newStoppedPods() *stoppedPods { return &stoppedPods{owner: map[string]map[types.UID]bool{}} }

func (s *stoppedPods) add(key string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.owner[key]
	if m == nil {
		m = map[types.UID]bool{}
		s.owner[key] = m
	}
	m[uid] = true
}

func (s *stoppedPods) has(key string, uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owner[key][uid]
}

func (s *stoppedPods) remove(key string, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.owner[key]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(s.owner, key)
		}
	}
}

func (s *stoppedPods) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owner, key)
}

// statusCache keeps the last Job status this controller wrote, so that a
// sync running before the informer shows that write works from it rather
// than from an older copy (which could make it create pods for work that
// is already counted as done).
type statusCache struct {
	mu   sync.Mutex
	jobs map[string]*cachedJob
}

type cachedJob struct {
	rv  uint64
	job *batchv1.Job
}

func newStatusCache() *statusCache { return &statusCache{jobs: map[string]*cachedJob{}} }

func (s *statusCache) put(key string, job *batchv1.Job) {
	n, ok := parseRV(job.ResourceVersion)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[key] = &cachedJob{rv: n, job: job}
}

// freshest returns the cached Job for key if it is newer than job, the
// informer's copy; otherwise it drops the entry and returns job.
func (s *statusCache) freshest(key string, job *batchv1.Job) *batchv1.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.jobs[key]
	if c == nil {
		return job
	}
	n, ok := parseRV(job.ResourceVersion)
	if !ok || c.job.UID != job.UID || n >= c.rv {
		delete(s.jobs, key)
		return job
	}
	return c.job
}

func (s *statusCache) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, key)
}

// parseRV reads a resourceVersion. skiff's are etcd revisions, which grow
// with every write; anything else is treated as incomparable.
func parseRV(rv string) (uint64, bool) {
	var n uint64
	if rv == "" {
		return 0, false
	}
	for _, ch := range rv {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + uint64(ch-'0')
	}
	return n, true
}

// hasTrackingFinalizer reports whether pod carries the Job tracking finalizer.
func hasTrackingFinalizer(pod *corev1.Pod) bool {
	for _, f := range pod.Finalizers {
		if f == trackingFinalizer {
			return true
		}
	}
	return false
}
