package storage

// The watch cache
//
//	etcd ──(one watch per resource, own stream)──► cacher ─┬─ objects (B-tree by key, latest state)
//	                                                       └─ ring of the last CacheEvents changes
//	List/ListRaw/ListPage (no revision) ◄── objects, once the cache has caught up with
//	                                        etcd's current revision (a consistent read)
//	Watch(prefix, rev) ◄── ring, read by each watcher at its own position
//
// Each API watch is a reader of the ring, so the number of etcd watches is
// one per resource however many clients watch, and a watcher that does not
// keep up cannot hold anyone back: once the changes it has not read leave
// the ring it is closed and its client lists again. A watch from a revision
// the ring no longer covers fails with ErrCompacted (410 Gone).
//
// Every etcd watch has a gRPC stream of its own (Store.ownStream): over the
// in-process client, watches sharing a stream deadlock when many are
// cancelled at once.
//
// A canary (canary.go) writes a key of its own every few seconds and waits
// for its own cache to see the write; WatchCacheHealth, behind /readyz,
// fails when that stops working or a resource's etcd watch goes silent.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// StartWatchCache serves lists and watches of the objects under each of
// prefixes (one resource each, such as "/registry/pods/") from memory until
// ctx is done: one etcd watch per prefix keeps a cache of the objects and
// of their recent changes (see cacher). Until a prefix's cache has listed,
// and for reads at an exact older revision, the store reads etcd as before.
// The returned channel is closed when every cache has stopped.
func (s *Store) StartWatchCache(ctx context.Context, prefixes []string) <-chan struct{} {
	caches := make(map[string]*cacher, len(prefixes))
	for _, p := range prefixes {
		if _, ok := caches[p]; !ok {
			caches[p] = newCacher(s, p, s.cacheEvents)
		}
	}
	can := newCanary(s)
	s.cacheMu.Lock()
	s.caches, s.canary = caches, can
	s.cacheMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range caches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		can.cache.run(ctx)
	}()
	go func() {
		defer wg.Done()
		can.run(ctx, caches)
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
		s.cacheMu.Lock()
		s.caches, s.canary = nil, nil
		s.cacheMu.Unlock()
	}()
	return done
}

// WaitWatchCache waits until every cache started by StartWatchCache has
// listed once, or ctx is done.
func (s *Store) WaitWatchCache(ctx context.Context) error {
	for {
		s.cacheMu.RLock()
		caches := s.caches
		s.cacheMu.RUnlock()
		var waitOn chan struct{}
		for _, c := range caches {
			c.mu.RLock()
			if !c.ready {
				waitOn = c.changed
			}
			c.mu.RUnlock()
			if waitOn != nil {
				break
			}
		}
		if waitOn == nil {
			return nil
		}
		select {
		case <-waitOn:
		case <-ctx.Done():
			return fmt.Errorf("wait for the watch cache: %w", ctx.Err())
		}
	}
}

// cacheFor returns the cache holding the objects under prefix, or nil.
func (s *Store) cacheFor(prefix string) *cacher {
	s.cacheMu.RLock()
	defer s.cacheMu.RUnlock()
	var best *cacher
	for p, c := range s.caches {
		if strings.HasPrefix(prefix, p) && (best == nil || len(p) > len(best.prefix)) {
			best = c
		}
	}
	return best
}

// cachedEntries answers a consistent list from the cache: it waits until
// the cache has caught up with etcd's current revision, as a read from
// etcd would see it. errCacheNotReady means "read etcd instead".
func (s *Store) cachedEntries(ctx context.Context, prefix, start string, limit int) ([]*entry, int64, error) {
	c := s.cacheFor(prefix)
	if c == nil {
		return nil, 0, errCacheNotReady
	}
	cur, err := s.CurrentRevision(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	if err := c.waitFresh(ctx, cur); err != nil {
		return nil, 0, err
	}
	return c.list(prefix, start, limit)
}

func (s *Store) listCached(ctx context.Context, prefix string) ([]runtime.Object, int64, error) {
	entries, rev, err := s.cachedEntries(ctx, prefix, "", 0)
	if err != nil {
		return nil, 0, err
	}
	out := make([]runtime.Object, len(entries))
	for i, e := range entries {
		if out[i], err = e.object(s); err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
	}
	return out, rev, nil
}

func (s *Store) listRawCached(ctx context.Context, prefix string) ([]RawObject, int64, error) {
	entries, rev, err := s.cachedEntries(ctx, prefix, "", 0)
	if err != nil {
		return nil, 0, err
	}
	return rawObjects(entries), rev, nil
}

func rawObjects(entries []*entry) []RawObject {
	out := make([]RawObject, len(entries))
	for i, e := range entries {
		out[i] = RawObject{Data: e.data, Revision: e.rev, Key: e.key}
	}
	return out
}

// watchCached serves a watch from the cache; errCacheNotReady means "watch
// etcd instead".
func (s *Store) watchCached(ctx context.Context, prefix string, rev int64) (<-chan Event, error) {
	c := s.cacheFor(prefix)
	if c == nil {
		return nil, errCacheNotReady
	}
	ch, err := c.watch(ctx, prefix, rev)
	if errors.Is(err, ErrCompacted) {
		out := make(chan Event, 1)
		out <- Event{Type: watch.Error, Err: err}
		close(out)
		return out, nil
	}
	return ch, err
}

// GetRecent reads the object at key from the watch cache without waiting
// for the cache to catch up with etcd, as an informer's lister would: for
// admission checks, which upstream answers from informers, so that they
// add no etcd read to every write. A key the cache does not hold (yet: a
// namespace created a moment ago) is read from etcd, as upstream's
// admission plugins look up live what their informer misses.
func (s *Store) GetRecent(ctx context.Context, key string) (runtime.Object, error) {
	if c := s.cacheFor(key); c != nil {
		if entries, _, err := c.list(key, "", 1); err == nil && len(entries) > 0 && entries[0].key == key {
			return entries[0].object(s)
		}
	}
	return s.Get(ctx, key)
}
