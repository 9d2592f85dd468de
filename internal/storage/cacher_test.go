package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"skiff/internal/etcd"
)

const cmPrefix = "/registry/configmaps/"

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testStore starts a real etcd and a store on it with a watch cache of
// configmaps holding events changes.
func testStore(t testing.TB, events int) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), ListenAddress: "127.0.0.1", ClientPort: freePort(t), PeerPort: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	s := New(db.Client(), clientgoscheme.Scheme)
	s.cacheEvents = events
	cctx, stop := context.WithCancel(context.Background())
	done := s.StartWatchCache(cctx, []string{cmPrefix})
	t.Cleanup(func() { stop(); <-done })
	if err := s.WaitWatchCache(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func configMap(ns, name, value string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string]string{"v": value},
	}
}

// change is what a watcher learns from one event.
type change struct {
	typ watch.EventType
	key string
	rev int64
	val string
}

func (c change) String() string { return fmt.Sprintf("%s %s@%d=%s", c.typ, c.key, c.rev, c.val) }

func changeOf(e Event) change {
	cm := e.Object.(*corev1.ConfigMap)
	return change{typ: e.Type, key: cmPrefix + cm.Namespace + "/" + cm.Name, rev: e.Revision, val: cm.Data["v"]}
}

// randomWrites creates, updates and deletes configmaps at random from
// several goroutines until n writes succeeded.
func randomWrites(t *testing.T, s *Store, seed uint64, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	const writers = 4
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, uint64(w)))
			for done := 0; done < n/writers; {
				ns := []string{"a", "b"}[rnd.IntN(2)]
				name := "cm" + strconv.Itoa(rnd.IntN(8))
				key := cmPrefix + ns + "/" + name
				val := strconv.Itoa(rnd.IntN(1000))
				var err error
				switch rnd.IntN(3) {
				case 0:
					_, err = s.Create(ctx, key, configMap(ns, name, val))
				case 1:
					_, err = s.Update(ctx, key, configMap(ns, name, val), 0)
				case 2:
					_, err = s.Delete(ctx, key, 0)
				}
				switch {
				case err == nil:
					done++
				case errors.Is(err, ErrExists), errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict):
				default:
					t.Errorf("write %s: %v", key, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// etcdChanges reads what etcd itself records under prefix after rev, up
// to rev to.
func etcdChanges(t *testing.T, s *Store, prefix string, from, to int64) []change {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out []change
	for resp := range s.client.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from+1), clientv3.WithPrevKV()) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			e, err := s.storedEvent(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			if e.Revision > to {
				return out
			}
			out = append(out, changeOf(e))
			if e.Revision == to {
				return out
			}
		}
	}
	return out
}

// TestWatchCacheAgainstEtcd is a property test: for random concurrent
// writes, every watch served by the cache (all namespaces, one namespace,
// from several revisions) delivers exactly the changes etcd records, in
// order, none skipped; and a list from the cache is etcd's list.
func TestWatchCacheAgainstEtcd(t *testing.T) {
	s := testStore(t, 1<<16)
	ctx := context.Background()
	for seed := uint64(1); seed <= 3; seed++ {
		start, err := s.CurrentRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		all := s.Watch(wctx, cmPrefix, start)
		inA := s.Watch(wctx, cmPrefix+"a/", start)
		randomWrites(t, s, seed, 200)
		end, err := s.CurrentRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := etcdChanges(t, s, cmPrefix, start, end)
		var wantA []change
		for _, c := range want {
			if c.key[len(cmPrefix)] == 'a' {
				wantA = append(wantA, c)
			}
		}
		// A watch started after the writes, from the middle.
		mid := want[len(want)/2].rev
		late := s.Watch(wctx, cmPrefix, mid)
		checkWatch(t, "all namespaces", all, want)
		checkWatch(t, "namespace a", inA, wantA)
		checkWatch(t, "from the middle", late, want[len(want)/2+1:])
		cancel()

		cached, rev, err := s.List(ctx, cmPrefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		direct, _, err := s.List(ctx, cmPrefix, rev)
		if err != nil {
			t.Fatal(err)
		}
		if len(cached) != len(direct) {
			t.Fatalf("seed %d: cache lists %d objects at %d, etcd %d", seed, len(cached), rev, len(direct))
		}
		for i := range cached {
			a, b := cached[i].(*corev1.ConfigMap), direct[i].(*corev1.ConfigMap)
			if a.Namespace != b.Namespace || a.Name != b.Name || a.ResourceVersion != b.ResourceVersion || a.Data["v"] != b.Data["v"] {
				t.Fatalf("seed %d: item %d: cache has %s/%s@%s, etcd %s/%s@%s", seed, i, a.Namespace, a.Name, a.ResourceVersion, b.Namespace, b.Name, b.ResourceVersion)
			}
		}
	}
}

func checkWatch(t *testing.T, what string, ch <-chan Event, want []change) {
	t.Helper()
	for i, w := range want {
		e, ok := <-ch
		if !ok {
			t.Fatalf("%s: watch closed after %d of %d changes", what, i, len(want))
		}
		if e.Type == watch.Bookmark {
			continue
		}
		if e.Err != nil {
			t.Fatalf("%s: %v", what, e.Err)
		}
		if got := changeOf(e); got != w {
			t.Fatalf("%s: change %d: got %v, want %v", what, i, got, w)
		}
	}
}

// TestWatchCacheTooOld: a watch from a revision the ring no longer covers
// fails with ErrCompacted (the API's 410), and a consistent list sees a
// write made just before it.
func TestWatchCacheTooOld(t *testing.T) {
	s := testStore(t, 8)
	ctx := context.Background()
	start, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := s.Create(ctx, cmPrefix+"a/cm"+strconv.Itoa(i), configMap("a", "cm"+strconv.Itoa(i), "x")); err != nil {
			t.Fatal(err)
		}
		items, _, err := s.List(ctx, cmPrefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != i+1 {
			t.Fatalf("list right after create %d sees %d objects", i, len(items))
		}
	}
	ev, ok := <-s.Watch(ctx, cmPrefix, start)
	if !ok || !errors.Is(ev.Err, ErrCompacted) {
		t.Fatalf("watch from a revision older than the cache: %+v (open %v), want ErrCompacted", ev, ok)
	}
}

// TestWatchCacheDropsSlowWatcher: a watcher that does not read is closed
// once the changes it missed leave the ring, and a reading watcher on the
// same resource is not held up by it.
func TestWatchCacheDropsSlowWatcher(t *testing.T) {
	s := testStore(t, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slow := s.Watch(ctx, cmPrefix, start)
	fast := s.Watch(ctx, cmPrefix, start)
	got := make(chan int, 1)
	go func() {
		n := 0
		for range fast {
			n++
			if n == 200 {
				break
			}
		}
		got <- n
	}()
	for i := 0; i < 200; i++ {
		if _, err := s.Create(ctx, cmPrefix+"a/cm"+strconv.Itoa(i), configMap("a", "cm"+strconv.Itoa(i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := <-got; n != 200 {
		t.Fatalf("the reading watcher saw %d of 200 changes", n)
	}
	// The slow watcher gets what its channel held, then is closed.
	n := 0
	for e := range slow {
		if e.Err != nil {
			t.Fatalf("slow watcher: %v", e.Err)
		}
		n++
	}
	if n >= 200 {
		t.Fatalf("the slow watcher was not dropped: it saw all %d changes", n)
	}
}

// TestListPage: pages come from the cache first, then from etcd at the
// first page's revision; a compacted revision is ErrCompacted.
func TestListPage(t *testing.T) {
	s := testStore(t, 1024)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		name := "cm" + strconv.Itoa(i)
		if _, err := s.Create(ctx, cmPrefix+"a/"+name, configMap("a", name, "x")); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.ListPage(ctx, cmPrefix, "", 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 4 || first.Remaining != 6 {
		t.Fatalf("first page: %d items, %d remaining", len(first.Items), first.Remaining)
	}
	// A change after the first page is not in the second.
	if _, err := s.Delete(ctx, cmPrefix+"a/cm5", 0); err != nil {
		t.Fatal(err)
	}
	second, err := s.ListPage(ctx, cmPrefix, first.Items[3].Key+"\x00", first.Revision, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Items) != 4 || second.Remaining != 2 || second.Items[0].Key != cmPrefix+"a/cm4" || second.Items[1].Key != cmPrefix+"a/cm5" {
		t.Fatalf("second page: %d items from %s, %d remaining", len(second.Items), second.Items[0].Key, second.Remaining)
	}
	cur, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListPage(ctx, cmPrefix, first.Items[3].Key+"\x00", first.Revision, 4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("page at a compacted revision: %v, want ErrCompacted", err)
	}
}

// TestWatchCacheCatchesUpWhenIdle: a consistent read of a resource nobody
// writes is served from the cache: the cache asks etcd for its revision
// instead of waiting for a change of its own.
func TestWatchCacheCatchesUpWhenIdle(t *testing.T) {
	s := testStore(t, 16)
	ctx := context.Background()
	if _, err := s.client.Put(ctx, "/registry/other/x", "y"); err != nil {
		t.Fatal(err)
	}
	cur, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cacheFor(cmPrefix).waitFresh(ctx, cur); err != nil {
		t.Fatalf("idle cache did not catch up with etcd: %v", err)
	}
}

// TestWatchCacheHealth: healthy once started; a canary without a recent
// success, or a resource watch silent for long, is reported.
func TestWatchCacheHealth(t *testing.T) {
	s := testStore(t, 16)
	if err := s.WatchCacheHealth(); err != nil {
		t.Fatalf("fresh cache: %v", err)
	}
	s.cacheMu.RLock()
	can, c := s.canary, s.caches[cmPrefix]
	s.cacheMu.RUnlock()
	later := time.Now().Add(time.Hour)
	if err := can.health(later); err == nil {
		t.Error("a canary without success for an hour is healthy")
	}
	if err := c.health(later); err == nil {
		t.Error("a watch silent for an hour is healthy")
	}
	// The canary's own round trip works.
	if err := can.round(context.Background()); err != nil {
		t.Fatalf("canary round: %v", err)
	}
}

// TestNoWatchCacheHealth: a store without a cache is healthy.
func TestNoWatchCacheHealth(t *testing.T) {
	if err := (&Store{}).WatchCacheHealth(); err != nil {
		t.Fatal(err)
	}
}

// TestGetRecent: a key is found at once, from etcd while the cache has not
// seen it and from the cache after; a key that only shares a prefix is not
// found, and neither is a key outside every cache.
func TestGetRecent(t *testing.T) {
	s := testStore(t, 16)
	ctx := context.Background()
	if _, err := s.Create(ctx, cmPrefix+"ns/app-x", configMap("ns", "app-x", "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRecent(ctx, cmPrefix+"ns/app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key that only prefixes another: err %v, want ErrNotFound", err)
	}
	if _, err := s.Create(ctx, cmPrefix+"ns/app", configMap("ns", "app", "2")); err != nil {
		t.Fatal(err)
	}
	obj, err := s.GetRecent(ctx, cmPrefix+"ns/app")
	if err != nil {
		t.Fatalf("a key created a moment ago: %v", err)
	}
	if got := obj.(*corev1.ConfigMap); got.Data["v"] != "2" {
		t.Fatalf("read of ns/app: %+v", got)
	}
	if _, err := s.GetRecent(ctx, "/registry/other/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an uncached missing key: err %v, want ErrNotFound", err)
	}
}
