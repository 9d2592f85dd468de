package storage

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apiserver/pkg/storage/value"
)

// Transformers chooses how the values of a key are kept in etcd: the
// transformer turns a stored value into the object's JSON and back (for
// example, encryption at rest). For a key whose values are stored as they
// are, it returns nil. The choice comes from configuration; the store knows
// no resource by name.
type Transformers interface {
	TransformerFor(key string) value.Transformer
}

// toStorage turns an object's JSON into the value stored at key.
func (s *Store) toStorage(ctx context.Context, key string, data []byte) ([]byte, error) {
	if s.transformers == nil {
		return data, nil
	}
	t := s.transformers.TransformerFor(key)
	if t == nil {
		return data, nil
	}
	out, err := t.TransformToStorage(ctx, data, value.DefaultContext(key))
	if err != nil {
		return nil, fmt.Errorf("transform %s for storage: %w", key, err)
	}
	return out, nil
}

// fromStorage turns the value stored at key into the object's JSON.
// Values written before the key's transformer was configured are read as
// the configuration says (with an identity provider, as they are).
func (s *Store) fromStorage(ctx context.Context, key string, data []byte) ([]byte, error) {
	if s.transformers == nil {
		return data, nil
	}
	t := s.transformers.TransformerFor(key)
	if t == nil {
		return data, nil
	}
	out, _, err := t.TransformFromStorage(ctx, data, value.DefaultContext(key))
	if err != nil {
		return nil, fmt.Errorf("read %s from storage: %w", key, err)
	}
	return out, nil
}

// plainKV is kv with its value as the object's JSON.
func (s *Store) plainKV(ctx context.Context, kv *mvccpb.KeyValue) (*mvccpb.KeyValue, error) {
	if kv == nil || s.transformers == nil {
		return kv, nil
	}
	data, err := s.fromStorage(ctx, string(kv.Key), kv.Value)
	if err != nil {
		return nil, err
	}
	return &mvccpb.KeyValue{Key: kv.Key, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision,
		Version: kv.Version, Lease: kv.Lease, Value: data}, nil
}

// plainKVs is plainKV for each of kvs.
func (s *Store) plainKVs(ctx context.Context, kvs []*mvccpb.KeyValue) ([]*mvccpb.KeyValue, error) {
	if s.transformers == nil {
		return kvs, nil
	}
	out := make([]*mvccpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		var err error
		if out[i], err = s.plainKV(ctx, kv); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// plainEvent is ev with its values as the objects' JSON; ev is not changed.
func (s *Store) plainEvent(ctx context.Context, ev *clientv3.Event) (*clientv3.Event, error) {
	if s.transformers == nil {
		return ev, nil
	}
	out := &clientv3.Event{Type: ev.Type, Kv: ev.Kv, PrevKv: ev.PrevKv}
	var err error
	// A delete event's Kv has no value.
	if ev.Type != clientv3.EventTypeDelete {
		if out.Kv, err = s.plainKV(ctx, ev.Kv); err != nil {
			return nil, err
		}
	}
	if out.PrevKv, err = s.plainKV(ctx, ev.PrevKv); err != nil {
		return nil, err
	}
	return out, nil
}
