package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// canaryPrefix is where each API server's watch cache canary writes; the
// key is per server, so servers of one cluster do not disturb each other.
const canaryPrefix = "/skiff/watch-canary/"

// Canary timings: a round every canaryInterval writes the canary key and
// waits up to canaryTimeout for the canary's cache to see the write; the
// cache is unhealthy when no round succeeded for canaryStale, or when a
// resource's etcd watch said nothing (no event, no progress notification,
// though it is asked for one every round) for watchSilence.
const (
	canaryInterval = 5 * time.Second
	canaryTimeout  = 5 * time.Second
	canaryStale    = 3 * canaryInterval
	watchSilence   = 6 * canaryInterval
	canaryTTL      = time.Minute
)

// canary proves, round after round, that etcd takes writes and that the
// watch cache sees them: a cache of its own key, fed like every resource's.
type canary struct {
	store  *Store
	key    string
	cache  *cacher
	leases *leases // its own: the store's are shared by events of another TTL

	mu     sync.Mutex
	lastOK time.Time
	err    error
}

func newCanary(s *Store) *canary {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := canaryPrefix + hex.EncodeToString(b)
	return &canary{store: s, key: key, cache: newCacher(s, key, 16), leases: &leases{client: s.client}, lastOK: time.Now()}
}

// run writes the canary every canaryInterval until ctx is done, then
// removes the key. caches are asked for a progress notification each round.
func (c *canary) run(ctx context.Context, caches map[string]*cacher) {
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_, _ = c.store.client.Delete(dctx, c.key)
	}()
	t := time.NewTicker(canaryInterval)
	defer t.Stop()
	for {
		err := c.round(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.err = err
		if err == nil {
			c.lastOK = time.Now()
		}
		c.mu.Unlock()
		for _, cc := range caches {
			cc.requestProgress(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round writes the canary key and waits for its cache to see the write.
func (c *canary) round(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, canaryTimeout)
	defer cancel()
	// On a lease, so the key of a server that went away expires.
	lease, err := c.leases.get(ctx, canaryTTL)
	if err != nil {
		return err
	}
	resp, err := c.store.client.Put(ctx, c.key, strconv.FormatInt(time.Now().UnixNano(), 10), clientv3.WithLease(lease))
	if err != nil {
		return fmt.Errorf("etcd write: %w", mapErr(err))
	}
	if err := c.cache.waitRev(ctx, resp.Header.Revision); err != nil {
		return fmt.Errorf("watch did not see its own write at revision %d: %w", resp.Header.Revision, err)
	}
	return nil
}

// health is nil while the last successful round is recent.
func (c *canary) health(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if since := now.Sub(c.lastOK); since > canaryStale {
		if c.err != nil {
			return fmt.Errorf("canary: %w (last success %v ago)", c.err, since.Round(time.Second))
		}
		return fmt.Errorf("canary: no success for %v", since.Round(time.Second))
	}
	return nil
}

// requestProgress asks etcd to tell the cache's watch its revision, so a
// live but idle watch still says something.
func (c *cacher) requestProgress(ctx context.Context) {
	c.mu.RLock()
	streamCtx := c.streamCtx
	c.mu.RUnlock()
	if streamCtx == nil {
		// Between two etcd watches.
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	// The request goes on the watch's own stream (its metadata); ctx only
	// bounds the wait to hand it over.
	_ = c.store.client.RequestProgress(withStream(ctx, streamCtx))
}

// waitRev waits until the cache has applied every change up to rev,
// without asking etcd for anything.
func (c *cacher) waitRev(ctx context.Context, rev int64) error {
	for {
		c.mu.RLock()
		ready, have, changed := c.ready, c.rev, c.changed
		c.mu.RUnlock()
		if ready && have >= rev {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if !ready {
				return errCacheNotReady
			}
			return fmt.Errorf("at revision %d: %w", have, ctx.Err())
		}
	}
}

// health reports a cache that has not listed, or whose etcd watch has
// been silent for longer than watchSilence.
func (c *cacher) health(now time.Time) error {
	c.mu.RLock()
	ready := c.ready
	c.mu.RUnlock()
	if !ready {
		return fmt.Errorf("%s: %w", c.prefix, errCacheNotReady)
	}
	if last := time.Unix(0, c.lastEvent.Load()); now.Sub(last) > watchSilence {
		return fmt.Errorf("%s: the etcd watch has said nothing for %v", c.prefix, now.Sub(last).Round(time.Second))
	}
	return nil
}

// WatchCacheHealth is nil while etcd takes writes and the watch cache
// sees them within seconds, and every resource's cache is listed and its
// etcd watch alive; /readyz reports its error. Without a watch cache it is
// nil.
func (s *Store) WatchCacheHealth() error {
	s.cacheMu.RLock()
	caches, can := s.caches, s.canary
	s.cacheMu.RUnlock()
	if can == nil {
		return nil
	}
	now := time.Now()
	var errs []error
	if err := can.health(now); err != nil {
		errs = append(errs, err)
	}
	for _, c := range caches {
		if err := c.health(now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// withStream is ctx carrying streamCtx's gRPC metadata, which names the
// watch stream a progress request is for.
func withStream(ctx, streamCtx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(streamCtx)
	return metadata.NewOutgoingContext(ctx, md)
}
