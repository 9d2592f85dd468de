package kubelet

import (
	"strings"
	"sync"
	"time"
)

// backoff is the kubelet's restart and pull back-off: the first retry is
// immediate, then 10 s, doubling up to 5 minutes.
type backoff struct {
	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	delay time.Duration
	last  time.Time
}

const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
)

func newBackoff() *backoff { return &backoff{entries: map[string]*backoffEntry{}} }

// wait returns how long to wait before the next retry of key, counting
// from since (typically the container's exit), and the current delay.
func (b *backoff) wait(key string, since time.Time) (time.Duration, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return 0, 0
	}
	from := since
	if e.last.After(from) {
		from = e.last
	}
	return time.Until(from.Add(e.delay)), e.delay
}

// next records a retry of key now and lengthens its delay.
func (b *backoff) next(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		b.entries[key] = &backoffEntry{delay: backoffInitial, last: time.Now()}
		return
	}
	e.delay = min(e.delay*2, backoffMax)
	e.last = time.Now()
}

func (b *backoff) reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

func (b *backoff) forgetPrefix(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if strings.HasPrefix(k, prefix) {
			delete(b.entries, k)
		}
	}
}
