package job

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// backoffs remembers, per Job key, the failures counted since the Job's
// last success; the controller waits base·2^(n-1) (at most max) after the
// last of n such failures before it creates a replacement pod. The record
// lives in memory: a new leader starts again from the base delay. Times
// are when the controller counted the pod: a pod's own finish times are
// stored to the second, too coarse for short delays.
type backoffs struct {
	mu  sync.Mutex
	job map[string]*backoffRecord
}

type backoffRecord struct {
	lastSuccess time.Time
	failures    map[types.UID]time.Time
}

// maxRemembered bounds the failures kept per Job; more only matter once
// the delay is capped anyway.
const maxRemembered = 32

func newBackoffs() *backoffs { return &backoffs{job: map[string]*backoffRecord{}} }

func (b *backoffs) record(key string) *backoffRecord {
	r := b.job[key]
	if r == nil {
		r = &backoffRecord{failures: map[types.UID]time.Time{}}
		b.job[key] = r
	}
	return r
}

// failed notes a failed pod of key that finished at t.
func (b *backoffs) failed(key string, uid types.UID, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.record(key)
	if _, ok := r.failures[uid]; ok || !t.After(r.lastSuccess) {
		return
	}
	r.failures[uid] = t
	if len(r.failures) > maxRemembered {
		var oldest types.UID
		var at time.Time
		for u, ft := range r.failures {
			if oldest == "" || ft.Before(at) {
				oldest, at = u, ft
			}
		}
		delete(r.failures, oldest)
	}
}

// succeeded notes a pod of key that succeeded at t: earlier failures no
// longer delay replacements.
func (b *backoffs) succeeded(key string, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.record(key)
	if t.After(r.lastSuccess) {
		r.lastSuccess = t
	}
	for u, ft := range r.failures {
		if !ft.After(r.lastSuccess) {
			delete(r.failures, u)
		}
	}
}

// remaining is how long key must still wait before creating a pod.
func (b *backoffs) remaining(key string, now time.Time, base, max time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.job[key]
	if r == nil || len(r.failures) == 0 {
		return 0
	}
	var last time.Time
	for _, ft := range r.failures {
		if ft.After(last) {
			last = ft
		}
	}
	wait := backoffDelay(len(r.failures), base, max) - now.Sub(last)
	if wait < 0 {
		return 0
	}
	return wait
}

func (b *backoffs) forget(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.job, key)
}

// backoffDelay is the delay after n failures in a row: base·2^(n-1), at
// most max.
func backoffDelay(n int, base, max time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	d := base
	for i := 1; i < n; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}
