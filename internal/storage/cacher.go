package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// CacheEvents is how many recent changes of one resource the watch cache
// keeps. A watch may start from any revision they cover; an older one
// answers ErrCompacted (410 Gone), and a watcher that falls this far behind
// is closed, so its client lists again.
const CacheEvents = 4096

// consistentReadWait bounds how long a list waits for the cache to catch
// up with etcd before it reads etcd instead.
const consistentReadWait = 3 * time.Second

// progressRetry is how often a consistent read asks etcd again for the
// revision of a cache that has not caught up.
const progressRetry = 100 * time.Millisecond

// bookmarkInterval is how often the cache tells its watchers its revision
// (a bookmark), so an idle watcher's resourceVersion stays recent.
const bookmarkInterval = time.Minute

// relistBackoff bounds the wait before the cache lists and watches again
// after its etcd watch failed.
const relistBackoff = 5 * time.Second

// errCacheNotReady: the cache has not listed yet (or lists again); the
// caller reads etcd instead.
var errCacheNotReady = errors.New("watch cache not ready")

// cacher keeps one resource's objects and its recent changes in memory,
// fed by one etcd watch on the resource's prefix. Lists are answered from
// its objects and watches from its changes, so the number of etcd watches
// does not grow with the number of API watches.
type cacher struct {
	store  *Store
	prefix string
	events int // ring capacity

	mu      sync.RWMutex
	ready   bool
	objects *btree.BTreeG[*entry]
	// rev: every change up to rev is applied to objects.
	rev int64
	// ring holds the recent changes; the change with sequence number n is
	// at ring[n%len(ring)]; first..next-1 are held.
	ring        []Event
	first, next uint64
	// since: every change after since is in the ring.
	since int64
	// epoch counts lists; a watcher from an older epoch is closed.
	epoch uint64
	// changed is closed (and replaced) whenever rev, ready or epoch change.
	changed chan struct{}
	// streamCtx is the current etcd watch's context, for progress requests.
	streamCtx context.Context
	// lastEvent is when the etcd watch last said anything (an event or a
	// progress notification), for health checks.
	lastEvent atomic.Int64
}

// entry is one object as the cache holds it: its stored JSON and
// revision. The decoded object is not kept: most lists pass the JSON
// through (ListRaw), and a decoded object takes several times the memory.
type entry struct {
	key  string
	rev  int64
	data []byte
}

func lessEntry(a, b *entry) bool { return a.key < b.key }

func newCacher(s *Store, prefix string, events int) *cacher {
	return &cacher{
		store:   s,
		prefix:  prefix,
		events:  events,
		objects: btree.NewG(32, lessEntry),
		ring:    make([]Event, events),
		changed: make(chan struct{}),
	}
}

// object decodes e.
func (e *entry) object(s *Store) (runtime.Object, error) {
	o, err := s.Decode(e.data, e.rev)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", e.key, err)
	}
	return o, nil
}

// broadcast wakes everyone waiting on the cache. Call with mu held.
func (c *cacher) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// run lists and watches until ctx is done. When the etcd watch ends (a
// leader change, a restarted stream) the cache watches again from the
// revision it has, keeping its objects and its watchers; only when that
// revision is compacted, or a change cannot be decoded, does it list again,
// which closes its watchers (their clients list again too).
func (c *cacher) run(ctx context.Context) {
	defer c.reset()
	backoff := 100 * time.Millisecond
	listed := false
	for ctx.Err() == nil {
		started := time.Now()
		var err error
		if !listed {
			err = c.fill(ctx)
			listed = err == nil
		}
		if listed {
			err = c.watchEtcd(ctx)
			if errors.Is(err, ErrCompacted) || errors.Is(err, errUndecodable) {
				c.reset()
				listed = false
			}
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, relistBackoff)
	}
}

// errUndecodable: a change the cache could not apply; it lists again.
var errUndecodable = errors.New("undecodable change")

// reset empties the cache and closes its watchers.
func (c *cacher) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	c.epoch++
	c.broadcast()
}

// fill fills the cache from a list of etcd.
func (c *cacher) fill(ctx context.Context) error {
	kvs, rev, err := c.store.rangeAt(ctx, c.prefix, 0)
	if err != nil {
		return err
	}
	objects := btree.NewG(32, lessEntry)
	for _, kv := range kvs {
		objects.ReplaceOrInsert(&entry{key: string(kv.Key), rev: kv.ModRevision, data: kv.Value})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.objects = objects
	c.rev, c.since = rev, rev
	c.first = c.next
	clear(c.ring)
	c.epoch++
	c.ready = true
	c.broadcast()
	c.lastEvent.Store(time.Now().UnixNano())
	return nil
}

// watchEtcd keeps the cache current from an etcd watch that starts after
// the cache's revision, until the watch ends.
func (c *cacher) watchEtcd(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streamCtx := c.store.ownStream(clientv3.WithRequireLeader(wctx))
	c.mu.Lock()
	rev := c.rev
	c.streamCtx = streamCtx
	c.mu.Unlock()
	defer func() {
		// A progress request for a stream that is gone would open a new,
		// empty one.
		c.mu.Lock()
		c.streamCtx = nil
		c.mu.Unlock()
	}()
	wch := c.store.client.Watch(streamCtx, c.prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	c.lastEvent.Store(time.Now().UnixNano())

	bookmarks := time.NewTicker(bookmarkInterval)
	defer bookmarks.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-bookmarks.C:
			c.mu.Lock()
			c.append(Event{Type: watch.Bookmark, Revision: c.rev})
			c.broadcast()
			c.mu.Unlock()
		case resp, ok := <-wch:
			if !ok {
				return errors.New("etcd watch closed")
			}
			c.lastEvent.Store(time.Now().UnixNano())
			if resp.CompactRevision != 0 {
				return ErrCompacted
			}
			if err := resp.Err(); err != nil {
				return mapErr(err)
			}
			if resp.IsProgressNotify() {
				c.mu.Lock()
				if resp.Header.Revision > c.rev {
					c.rev = resp.Header.Revision
					c.broadcast()
				}
				c.mu.Unlock()
				continue
			}
			if err := c.apply(ctx, resp.Events); err != nil {
				return fmt.Errorf("%w: %w", errUndecodable, err)
			}
		}
	}
}

// apply decodes a batch of etcd events and applies it. The cache keeps
// objects' JSON, never stored values: lists pass it through.
func (c *cacher) apply(ctx context.Context, stored []*clientv3.Event) error {
	decoded := make([]Event, len(stored))
	evs := make([]*clientv3.Event, len(stored))
	for i, ev := range stored {
		plain, err := c.store.plainEvent(ctx, ev)
		if err != nil {
			return err
		}
		e, err := c.store.event(plain)
		if err != nil {
			return err
		}
		decoded[i], evs[i] = e, plain
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, ev := range evs {
		e := decoded[i]
		key := string(ev.Kv.Key)
		if e.Type == watch.Deleted {
			c.objects.Delete(&entry{key: key})
		} else {
			c.objects.ReplaceOrInsert(&entry{key: key, rev: ev.Kv.ModRevision, data: ev.Kv.Value})
		}
		c.append(e)
		c.rev = e.Revision
	}
	c.broadcast()
	return nil
}

// append adds e to the ring, evicting the oldest change when it is full.
// Call with mu held.
func (c *cacher) append(e Event) {
	if c.next-c.first == uint64(len(c.ring)) {
		old := c.ring[c.first%uint64(len(c.ring))]
		if old.Type != watch.Bookmark {
			c.since = old.Revision
		}
		c.first++
	}
	c.ring[c.next%uint64(len(c.ring))] = e
	c.next++
}

// waitFresh waits until the cache has applied every change up to rev.
func (c *cacher) waitFresh(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, consistentReadWait)
	defer cancel()
	var ask <-chan time.Time
	for {
		c.mu.RLock()
		ready, have, changed := c.ready, c.rev, c.changed
		c.mu.RUnlock()
		if !ready {
			return errCacheNotReady
		}
		if have >= rev {
			return nil
		}
		if ask == nil {
			// Nothing may change under this prefix for a long time: ask
			// etcd to tell the watch its current revision, and again
			// while etcd does not answer (it answers only a watch that
			// has caught up).
			t := time.NewTicker(progressRetry)
			defer t.Stop()
			ask = t.C
			c.requestProgress(ctx)
		}
		select {
		case <-changed:
		case <-ask:
			c.requestProgress(ctx)
		case <-ctx.Done():
			return fmt.Errorf("%w: at revision %d, want %d", errCacheNotReady, have, rev)
		}
	}
}

// list returns the entries under prefix in key order, starting at key
// start (inclusive; "" for the first), at most limit of them (0: all), and
// the revision they are at.
func (c *cacher) list(prefix, start string, limit int) ([]*entry, int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.ready {
		return nil, 0, errCacheNotReady
	}
	from := prefix
	if start > from {
		from = start
	}
	var out []*entry
	c.objects.AscendGreaterOrEqual(&entry{key: from}, func(e *entry) bool {
		if !strings.HasPrefix(e.key, prefix) {
			return false
		}
		out = append(out, e)
		return limit <= 0 || len(out) < limit
	})
	return out, c.rev, nil
}

// watch streams the changes under prefix after revision rev. It fails
// with ErrCompacted when the ring no longer covers rev. The channel closes
// when ctx is done, when the cache lists again, or when the watcher falls
// so far behind that the changes it has not read left the ring.
func (c *cacher) watch(ctx context.Context, prefix string, rev int64) (<-chan Event, error) {
	c.mu.RLock()
	if !c.ready {
		c.mu.RUnlock()
		return nil, errCacheNotReady
	}
	if rev < c.since {
		c.mu.RUnlock()
		return nil, fmt.Errorf("watch %s from revision %d: the cache holds changes after %d: %w", prefix, rev, c.since, ErrCompacted)
	}
	epoch := c.epoch
	// The first change after rev.
	n := int(c.next - c.first)
	pos := c.first + uint64(sort.Search(n, func(i int) bool {
		return c.ring[(c.first+uint64(i))%uint64(len(c.ring))].Revision > rev
	}))
	c.mu.RUnlock()

	out := make(chan Event, 16)
	go func() {
		defer close(out)
		var batch []Event
		for {
			c.mu.RLock()
			if c.epoch != epoch || pos < c.first {
				// Listed again, or this watcher fell behind: its client
				// lists again.
				c.mu.RUnlock()
				return
			}
			batch = batch[:0]
			for ; pos < c.next && len(batch) < 256; pos++ {
				batch = append(batch, c.ring[pos%uint64(len(c.ring))])
			}
			changed := c.changed
			c.mu.RUnlock()
			for _, e := range batch {
				if e.Revision <= rev || !inPrefix(e, prefix) {
					continue
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// inPrefix reports whether the watcher of prefix sees e (a bookmark goes
// to every watcher).
func inPrefix(e Event, prefix string) bool {
	if e.Type == watch.Bookmark {
		return true
	}
	return e.key != "" && strings.HasPrefix(e.key, prefix)
}
