package storage

import (
	"context"
	"strconv"
	"testing"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"skiff/internal/etcd"
)

// TestWatchCancelStorm: many etcd watches (no watch cache) cancelled all
// at once leave the in-process client working: a new watch sees a change.
// Watches sharing one stream used to deadlock the client here.
func TestWatchCancelStorm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), ListenAddress: "127.0.0.1", ClientPort: freePort(t), PeerPort: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db.Client(), clientgoscheme.Scheme)
	for round := 0; round < 3; round++ {
		rev, err := s.CurrentRevision(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wctx, closeAll := context.WithCancel(ctx)
		chans := make([]<-chan Event, 300)
		for i := range chans {
			chans[i] = s.Watch(wctx, cmPrefix, rev)
		}
		name := "storm-" + strconv.Itoa(round)
		if _, err := s.Create(ctx, cmPrefix+"a/"+name, configMap("a", name, "x")); err != nil {
			t.Fatal(err)
		}
		// Half of them have read the change, half have not.
		for _, ch := range chans[:len(chans)/2] {
			<-ch
		}
		closeAll()
		for _, ch := range chans {
			for range ch {
			}
		}
	}
	rev, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	ch := s.Watch(wctx, cmPrefix, rev)
	if _, err := s.Create(ctx, cmPrefix+"a/after", configMap("a", "after", "x")); err != nil {
		t.Fatal(err)
	}
	if e, ok := <-ch; !ok || e.Err != nil {
		t.Fatalf("a watch after the storm: %+v (open %v)", e, ok)
	}
}
