package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Event is one change under a watched prefix, or a Bookmark: no change, but
// every change up to Revision has been sent. For Deleted, Object is the
// last state with the deletion's revision; PrevObject is set for Modified
// and Deleted so a filtering watcher can tell an object leaving its filter.
// Objects are shared among watchers: never modify them.
type Event struct {
	Type       watch.EventType
	Object     runtime.Object
	PrevObject runtime.Object
	Revision   int64
	// Err is set on the last event of a failed watch (ErrCompacted, ...).
	Err error
	// key is the object's etcd key, for the watch cache's prefix filter.
	key string
	// encoded is Object's JSON, made once for all the watchers that get
	// this event.
	encoded *encodedObject
}

type encodedObject struct {
	once sync.Once
	data []byte
	err  error
}

// ObjectJSON is Object as JSON (encoding/json), encoded once and shared by
// every watcher of the event: with many watchers, encoding each event once
// per watcher would cost most of the API server's time. Never modify it.
func (e Event) ObjectJSON() ([]byte, error) {
	if e.encoded == nil {
		return json.Marshal(e.Object)
	}
	e.encoded.once.Do(func() { e.encoded.data, e.encoded.err = json.Marshal(e.Object) })
	return e.encoded.data, e.encoded.err
}

// WatchBuffer bounds the events queued for one watcher. A watcher that falls
// this far behind is closed (it relists) rather than growing memory.
const WatchBuffer = 1024

// slowWatcherGrace is how long a full watcher may take to drain one event.
const slowWatcherGrace = 2 * time.Second

// Watch streams the changes under prefix after revision rev. The channel
// closes when ctx is done, when the watcher falls too far behind, or after an
// event carrying Err (for a compacted revision, ErrCompacted).
func (s *Store) Watch(ctx context.Context, prefix string, rev int64) <-chan Event {
	if ch, err := s.watchCached(ctx, prefix, rev); err == nil {
		return ch
	}
	out := make(chan Event, WatchBuffer)
	ctx, cancel := context.WithCancel(ctx)
	wch := s.client.Watch(s.ownStream(clientv3.WithRequireLeader(ctx)), prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			if resp.CompactRevision != 0 {
				out <- Event{Type: watch.Error, Err: ErrCompacted}
				return
			}
			if err := resp.Err(); err != nil {
				sendErr(out, fmt.Errorf("watch %s: %w", prefix, mapErr(err)))
				return
			}
			if resp.IsProgressNotify() {
				// Every event up to this revision has been delivered.
				select {
				case out <- Event{Type: watch.Bookmark, Revision: resp.Header.Revision}:
				default:
				}
				continue
			}
			for _, ev := range resp.Events {
				e, err := s.storedEvent(ctx, ev)
				if err != nil {
					sendErr(out, err)
					return
				}
				select {
				case out <- e:
					continue
				default:
				}
				// The buffer is full: give the reader a moment, then end the
				// watch so the client relists instead of memory growing.
				t := time.NewTimer(slowWatcherGrace)
				select {
				case out <- e:
					t.Stop()
				case <-t.C:
					return
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
		}
	}()
	return out
}

// ownStream gives the watch started with ctx a gRPC stream of its own.
//
// The client puts watches whose contexts carry the same metadata on one
// shared stream, and cancels one of them by sending a cancel request on that
// stream. Over etcd's in-process client the stream is a pair of unbuffered
// channels, and the client's single loop that sends cancel requests is also
// the one that receives the server's answers: when many watches are
// cancelled at once (a storm of clients going away), the loop blocks sending
// a cancel while the server blocks sending it the answers to the previous
// cancels, and every watch on the stream, with every API watch served from
// it, stops for good. A watch alone on its stream never sends a cancel:
// closing it closes the stream.
func (s *Store) ownStream(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, watchStreamKey, strconv.FormatUint(s.watchIDs.Add(1), 10))
}

// watchStreamKey is the gRPC metadata key that keeps watches apart.
const watchStreamKey = "skiff-watch-stream"

func sendErr(out chan Event, err error) {
	select {
	case out <- Event{Type: watch.Error, Err: err}:
	default:
	}
}

// storedEvent decodes an etcd event whose values are as stored.
func (s *Store) storedEvent(ctx context.Context, ev *clientv3.Event) (Event, error) {
	plain, err := s.plainEvent(ctx, ev)
	if err != nil {
		return Event{}, err
	}
	return s.event(plain)
}

// event decodes an etcd event whose values are objects' JSON.
func (s *Store) event(ev *clientv3.Event) (Event, error) {
	key := string(ev.Kv.Key)
	e := Event{Revision: ev.Kv.ModRevision, key: key, encoded: &encodedObject{}}
	decode := func(value []byte, rev, valueRev int64) (runtime.Object, error) {
		return s.events.get(decodeKey{key: key, rev: rev, value: valueRev}, func() (runtime.Object, error) {
			return s.Decode(value, rev)
		})
	}
	var err error
	if ev.PrevKv != nil {
		if e.PrevObject, err = decode(ev.PrevKv.Value, ev.PrevKv.ModRevision, ev.PrevKv.ModRevision); err != nil {
			return e, err
		}
	}
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		e.Type = watch.Deleted
		if e.PrevObject == nil {
			return e, fmt.Errorf("delete event for %s without previous value", ev.Kv.Key)
		}
		e.Object, err = decode(ev.PrevKv.Value, ev.Kv.ModRevision, ev.PrevKv.ModRevision)
	case ev.IsCreate():
		e.Type = watch.Added
		e.Object, err = decode(ev.Kv.Value, ev.Kv.ModRevision, ev.Kv.ModRevision)
	default:
		e.Type = watch.Modified
		e.Object, err = decode(ev.Kv.Value, ev.Kv.ModRevision, ev.Kv.ModRevision)
	}
	return e, err
}
