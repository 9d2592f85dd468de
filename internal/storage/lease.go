package storage

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leases hands out etcd leases for objects that expire (events). Granting
// one lease per object would cost a write each; instead objects created
// within one window share a lease that lives the TTL plus the window.
type leases struct {
	client *clientv3.Client
	mu     sync.Mutex
	id     clientv3.LeaseID
	ttl    time.Duration
	until  time.Time // reuse the current lease until then
}

func (l *leases) get(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.id != 0 && l.ttl == ttl && now.Before(l.until) {
		return l.id, nil
	}
	window := min(time.Minute, ttl/10)
	resp, err := l.client.Grant(ctx, int64((ttl+window+time.Second-1)/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant a lease for expiring objects: %w", mapErr(err))
	}
	l.id, l.ttl, l.until = resp.ID, ttl, now.Add(window)
	return l.id, nil
}
