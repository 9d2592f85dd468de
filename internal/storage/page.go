package storage

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Page is one chunk of a list: objects in key order.
type Page struct {
	Items []RawObject
	// Revision is the revision the page was read at; later pages of the
	// same list read at it too.
	Revision int64
	// Remaining counts the objects after this page; 0 on the last page.
	Remaining int64
}

// ListPage reads at most limit objects under prefix whose keys are start
// or after ("" for the first), at revision rev. rev 0 reads the newest
// state (from the watch cache when it runs, as List does); a later page
// passes the first page's Revision, and then ErrCompacted means that
// revision is gone.
func (s *Store) ListPage(ctx context.Context, prefix, start string, rev, limit int64) (Page, error) {
	if start < prefix {
		start = prefix
	}
	if rev == 0 {
		if c := s.cacheFor(prefix); c != nil {
			entries, read, err := s.cachedEntries(ctx, prefix, start, 0)
			if err == nil {
				return pageOf(entries, read, limit), nil
			}
			if !errors.Is(err, errCacheNotReady) {
				return Page{}, err
			}
		}
	}
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	resp, err := s.client.Get(ctx, start, opts...)
	if err != nil {
		return Page{}, fmt.Errorf("list %s: %w", prefix, mapErr(err))
	}
	kvs, err := s.plainKVs(ctx, resp.Kvs)
	if err != nil {
		return Page{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	p := Page{Revision: resp.Header.Revision, Items: make([]RawObject, len(kvs))}
	if rev > 0 {
		p.Revision = rev
	}
	for i, kv := range kvs {
		p.Items[i] = RawObject{Data: kv.Value, Revision: kv.ModRevision, Key: string(kv.Key)}
	}
	if resp.More {
		p.Remaining = resp.Count - int64(len(resp.Kvs))
	}
	return p, nil
}

// pageOf cuts the first page out of the rest of a list.
func pageOf(entries []*entry, rev, limit int64) Page {
	p := Page{Revision: rev}
	if limit > 0 && int64(len(entries)) > limit {
		p.Remaining = int64(len(entries)) - limit
		entries = entries[:limit]
	}
	p.Items = rawObjects(entries)
	return p
}
