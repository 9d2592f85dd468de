package job

import (
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
)

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
