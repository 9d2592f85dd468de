package cronjob

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// wakeups queues each key again when its next schedule time comes, by the
// controller's clock (which a test may drive by hand). One goroutine owns
// a single timer set for the earliest time due.
type wakeups struct {
	clock   clock.WithTicker
	mu      sync.Mutex
	due     map[string]time.Time
	changed chan struct{}
}

func newWakeups(c clock.WithTicker) *wakeups {
	return &wakeups{clock: c, due: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

// set makes key due at t, replacing an earlier setting.
func (w *wakeups) set(key string, t time.Time) {
	w.mu.Lock()
	old, ok := w.due[key]
	w.due[key] = t
	w.mu.Unlock()
	if !ok || !old.Equal(t) {
		w.poke()
	}
}

// forget drops key.
func (w *wakeups) forget(key string) {
	w.mu.Lock()
	delete(w.due, key)
	w.mu.Unlock()
	w.poke()
}

func (w *wakeups) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// run calls fire for every key whose time has come, until ctx is done.
func (w *wakeups) run(ctx context.Context, fire func(key string)) {
	for {
		w.mu.Lock()
		now := w.clock.Now()
		var ready []string
		var earliest time.Time
		for k, t := range w.due {
			if !t.After(now) {
				ready = append(ready, k)
				delete(w.due, k)
			} else if earliest.IsZero() || t.Before(earliest) {
				earliest = t
			}
		}
		w.mu.Unlock()
		for _, k := range ready {
			fire(k)
		}
		var timer clock.Timer
		var fired <-chan time.Time
		if !earliest.IsZero() {
			d := earliest.Sub(w.clock.Now())
			if d <= 0 {
				continue
			}
			timer = w.clock.NewTimer(d)
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-w.changed:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}
