// Package storage is skiff's typed object store over etcd. An object lives at
// one key; its metadata.resourceVersion is the key's etcd mod revision, and
// every write is a compare-and-swap on it, so no update is ever lost.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// Errors a caller maps to API statuses.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("resourceVersion conflict")
	ErrCompacted = errors.New("resource version compacted")
	// ErrFutureRevision: a read at a revision the store has not reached.
	ErrFutureRevision = errors.New("resource version is newer than the store's")
)

// Store reads and writes objects in etcd.
type Store struct {
	client *clientv3.Client
	codec  runtime.Codec
	scheme *runtime.Scheme
	events *decodeCache
	leases *leases
	// watchIDs numbers etcd watches so each gets its own stream.
	watchIDs atomic.Uint64
	// caches serve lists and watches while RunWatchCache runs.
	cacheMu     sync.RWMutex
	caches      map[string]*cacher
	canary      *canary
	cacheEvents int
	// transformers turn objects' JSON into stored values and back (nil:
	// stored as they are).
	transformers Transformers
}

// decodedEvents is how many decoded watch objects the store keeps for
// watchers that have not yet seen them.
const decodedEvents = 4096

// New returns a store that encodes objects as JSON with the given scheme.
func New(client *clientv3.Client, scheme *runtime.Scheme) *Store {
	return NewWithTransformers(client, scheme, nil)
}

// NewWithTransformers is New for a store whose values pass through
// transformers (such as encryption at rest) on their way to etcd and back.
func NewWithTransformers(client *clientv3.Client, scheme *runtime.Scheme, t Transformers) *Store {
	s := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{})
	return &Store{client: client, codec: s, scheme: scheme, events: newDecodeCache(decodedEvents), leases: &leases{client: client}, cacheEvents: CacheEvents, transformers: t}
}

// Client is the underlying etcd client, for components that need raw keys.
func (s *Store) Client() *clientv3.Client { return s.client }

func (s *Store) encode(obj runtime.Object) ([]byte, error) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	// The revision is the etcd key's, never stored in the value.
	rv := acc.GetResourceVersion()
	acc.SetResourceVersion("")
	defer acc.SetResourceVersion(rv)
	data, err := runtime.Encode(s.codec, obj)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return data, nil
}

// Decode turns a stored value into an object with its resourceVersion set.
func (s *Store) Decode(data []byte, rev int64) (runtime.Object, error) {
	obj, _, err := s.codec.Decode(data, nil, nil)
	if runtime.IsNotRegisteredError(err) {
		// A kind the scheme does not know is a custom resource.
		obj, _, err = unstructured.UnstructuredJSONScheme.Decode(data, nil, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	return obj, nil
}

// Create writes obj at key if nothing is there; it returns the stored object.
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	return s.CreateWithTTL(ctx, key, obj, 0)
}

// CreateWithTTL is Create for an object that etcd removes after about ttl
// (0: never), as Kubernetes does with events.
func (s *Store) CreateWithTTL(ctx context.Context, key string, obj runtime.Object, ttl time.Duration) (runtime.Object, error) {
	data, err := s.encode(obj)
	if err != nil {
		return nil, err
	}
	stored, err := s.toStorage(ctx, key, data)
	if err != nil {
		return nil, err
	}
	var opts []clientv3.OpOption
	if ttl > 0 {
		id, err := s.leases.get(ctx, ttl)
		if err != nil {
			return nil, err
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(stored), opts...)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", key, mapErr(err))
	}
	if !resp.Succeeded {
		return nil, ErrExists
	}
	return s.Decode(data, resp.Header.Revision)
}

// Get reads the object at key.
func (s *Store) Get(ctx context.Context, key string) (runtime.Object, error) {
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, mapErr(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	data, err := s.fromStorage(ctx, key, resp.Kvs[0].Value)
	if err != nil {
		return nil, err
	}
	return s.Decode(data, resp.Kvs[0].ModRevision)
}

// Update replaces the object at key if its revision is still rev; rev 0
// means "whatever is there" (but something must be).
func (s *Store) Update(ctx context.Context, key string, obj runtime.Object, rev int64) (runtime.Object, error) {
	data, err := s.encode(obj)
	if err != nil {
		return nil, err
	}
	stored, err := s.toStorage(ctx, key, data)
	if err != nil {
		return nil, err
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	// The key exists (the comparison says so), so its lease is kept: an
	// updated event still expires.
	resp, err := s.client.Txn(ctx).If(cmp).
		Then(clientv3.OpPut(key, string(stored), clientv3.WithIgnoreLease())).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("update %s: %w", key, mapErr(err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return nil, ErrNotFound
		}
		return nil, ErrConflict
	}
	return s.Decode(data, resp.Header.Revision)
}

// UpdateFunc computes the new object from the current one (a private copy).
// Returning a nil object with a nil error means "no change".
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// GuaranteedUpdate re-reads and retries tryUpdate until its write wins the
// compare-and-swap. It returns the stored object and whether it changed.
func (s *Store) GuaranteedUpdate(ctx context.Context, key string, tryUpdate UpdateFunc) (runtime.Object, error) {
	for {
		cur, err := s.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		acc, _ := meta.Accessor(cur)
		rev, _ := strconv.ParseInt(acc.GetResourceVersion(), 10, 64)
		next, err := tryUpdate(cur.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		if next == nil {
			return cur, nil
		}
		out, err := s.Update(ctx, key, next, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return out, err
	}
}

// Delete removes the object at key if its revision is still rev (0: any).
// It returns the object as it was.
func (s *Store) Delete(ctx context.Context, key string, rev int64) (runtime.Object, error) {
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	if rev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	resp, err := s.client.Txn(ctx).If(cmp).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("delete %s: %w", key, mapErr(err))
	}
	if !resp.Succeeded {
		if len(resp.Responses) == 0 || len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return nil, ErrNotFound
		}
		return nil, ErrConflict
	}
	prev := resp.Responses[0].GetResponseDeleteRange().PrevKvs
	if len(prev) == 0 {
		return nil, ErrNotFound
	}
	data, err := s.fromStorage(ctx, key, prev[0].Value)
	if err != nil {
		return nil, err
	}
	// A deleted object reports the revision of its deletion, as Kubernetes does.
	return s.Decode(data, resp.Header.Revision)
}

// List reads every object under prefix at revision rev (0: the newest) and
// returns them with the revision read. Without a revision, the watch cache
// answers once it has caught up with etcd (see StartWatchCache).
func (s *Store) List(ctx context.Context, prefix string, rev int64) ([]runtime.Object, int64, error) {
	if rev == 0 {
		if out, read, err := s.listCached(ctx, prefix); !errors.Is(err, errCacheNotReady) {
			return out, read, err
		}
	}
	kvs, read, err := s.rangeAt(ctx, prefix, rev)
	if err != nil {
		return nil, 0, err
	}
	out := make([]runtime.Object, 0, len(kvs))
	for _, kv := range kvs {
		obj, err := s.Decode(kv.Value, kv.ModRevision)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: key %s: %w", prefix, kv.Key, err)
		}
		out = append(out, obj)
	}
	return out, read, nil
}

// rangeAt reads the keys under prefix at revision rev (0: the newest) and
// returns them, with their values as objects' JSON, and the revision read.
func (s *Store) rangeAt(ctx context.Context, prefix string, rev int64) ([]*mvccpb.KeyValue, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.client.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, mapErr(err))
	}
	read := resp.Header.Revision
	if rev > 0 {
		read = rev
	}
	kvs, err := s.plainKVs(ctx, resp.Kvs)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	return kvs, read, nil
}

// revisionProbeKey is a key nothing writes: reads of it only check the store.
const revisionProbeKey = "/registry/health-revision"

// CurrentRevision returns etcd's newest revision.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.client.Get(ctx, revisionProbeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// CheckRevision reports whether rev can still be read (and so watched
// from): ErrCompacted when it has been compacted away, ErrFutureRevision
// when the store has not reached it. rev 0 (or less) is the newest.
func (s *Store) CheckRevision(ctx context.Context, rev int64) error {
	if rev <= 0 {
		return nil
	}
	if _, err := s.client.Get(ctx, revisionProbeKey, clientv3.WithRev(rev), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("read at revision %d: %w", rev, mapErr(err))
	}
	return nil
}

// transientEtcdErrors are etcd's answers while it elects a leader or is
// overloaded: the request did not happen (or may not have) and a retry soon
// is the right move.
var transientEtcdErrors = []error{
	rpctypes.ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged,
	rpctypes.ErrNoLeader, rpctypes.ErrGRPCNoLeader,
	rpctypes.ErrTimeout, rpctypes.ErrGRPCTimeout,
	rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrGRPCTimeoutDueToLeaderFail,
	rpctypes.ErrTimeoutDueToConnectionLost, rpctypes.ErrGRPCTimeoutDueToConnectionLost,
	rpctypes.ErrTooManyRequests, rpctypes.ErrGRPCRequestTooManyRequests,
}

// IsUnavailable reports whether err is etcd saying it cannot serve right
// now (leader election, timeout, overload), rather than a real failure.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	desc := rpctypes.ErrorDesc(err)
	for _, e := range transientEtcdErrors {
		if errors.Is(err, e) || strings.HasSuffix(err.Error(), rpctypes.ErrorDesc(e)) || desc == rpctypes.ErrorDesc(e) {
			return true
		}
	}
	return false
}

func mapErr(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrGRPCCompacted) {
		return ErrCompacted
	}
	if errors.Is(err, rpctypes.ErrFutureRev) || errors.Is(err, rpctypes.ErrGRPCFutureRev) {
		return ErrFutureRevision
	}
	return err
}

// RawObject is a stored object's JSON as etcd holds it, without its
// resourceVersion, and the revision that is its resourceVersion.
type RawObject struct {
	Data     []byte
	Revision int64
	// Key is the object's etcd key.
	Key string
}

// ListRaw is List without decoding: for answers that pass objects through
// unchanged, it saves a decode and an encode per object.
func (s *Store) ListRaw(ctx context.Context, prefix string, rev int64) ([]RawObject, int64, error) {
	if rev == 0 {
		if out, read, err := s.listRawCached(ctx, prefix); !errors.Is(err, errCacheNotReady) {
			return out, read, err
		}
	}
	kvs, read, err := s.rangeAt(ctx, prefix, rev)
	if err != nil {
		return nil, 0, err
	}
	out := make([]RawObject, len(kvs))
	for i, kv := range kvs {
		out[i] = RawObject{Data: kv.Value, Revision: kv.ModRevision, Key: string(kv.Key)}
	}
	return out, read, nil
}

// metadataOpen is how every stored object's metadata starts: the store
// encodes objects with the same serializer, which writes it this way.
const metadataOpen = `"metadata":{`

// WithResourceVersion returns the object's JSON with its resourceVersion
// put back at the start of its metadata, or false if the JSON does not
// have the expected shape (the caller then decodes it).
func (o RawObject) WithResourceVersion() ([]byte, bool) {
	i := bytes.Index(o.Data, []byte(metadataOpen))
	if i < 0 {
		return nil, false
	}
	at := i + len(metadataOpen)
	rv := `"resourceVersion":"` + strconv.FormatInt(o.Revision, 10) + `"`
	if o.Data[at] != '}' {
		rv += ","
	}
	out := make([]byte, 0, len(o.Data)+len(rv))
	out = append(out, o.Data[:at]...)
	out = append(out, rv...)
	return append(out, o.Data[at:]...), true
}
