package storage

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkWatchCacheFanout: b.N creates, each delivered by the watch
// cache to 1,000 watchers; reports the delivery latency (from the start of
// the create to a watcher receiving it) at p50 and p99 over all watchers.
//
//	go test ./internal/storage -run '^$' -bench WatchCacheFanout -benchtime 200x
func BenchmarkWatchCacheFanout(b *testing.B) {
	const watchers = 1000
	s := testStore(b, CacheEvents)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rev, err := s.CurrentRevision(ctx)
	if err != nil {
		b.Fatal(err)
	}
	starts := make([]time.Time, b.N)
	var startsMu sync.Mutex
	lat := make([][]time.Duration, watchers)
	var wg sync.WaitGroup
	for w := 0; w < watchers; w++ {
		ch := s.Watch(ctx, cmPrefix, rev)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < b.N; {
				e, ok := <-ch
				if !ok {
					b.Errorf("watcher %d closed after %d events", w, n)
					return
				}
				if e.Err != nil || e.Object == nil {
					continue
				}
				now := time.Now()
				i, _ := strconv.Atoi(e.Object.(interface{ GetName() string }).GetName()[2:])
				startsMu.Lock()
				lat[w] = append(lat[w], now.Sub(starts[i]))
				startsMu.Unlock()
				n++
			}
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		startsMu.Lock()
		starts[i] = time.Now()
		startsMu.Unlock()
		name := fmt.Sprintf("cm%d", i)
		if _, err := s.Create(ctx, cmPrefix+"a/"+name, configMap("a", name, "x")); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
