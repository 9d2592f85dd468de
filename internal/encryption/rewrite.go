package encryption

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apiserver/pkg/storage/value"
)

// scanPage is how many keys one read of a scan takes.
const scanPage = 500

// scan calls fn for every key and value under prefix, a page at a time, at
// the revision of the first page.
func scan(ctx context.Context, cli *clientv3.Client, prefix string, fn func(kv *mvccpb.KeyValue) error) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	start := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(scanPage)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, start, opts...)
		if err != nil {
			return fmt.Errorf("read %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// UnreadableError lists stored values a configuration cannot read.
type UnreadableError struct {
	// Values: etcd key → what it is encrypted with and why it failed.
	Values map[string]string
}

func (e *UnreadableError) Error() string {
	keys := make([]string, 0, len(e.Values))
	for k := range e.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "the encryption configuration cannot read %d stored value(s); nothing was rewritten. Give the configuration the keys these values were written with:", len(keys))
	for i, k := range keys {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(keys)-10)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", k, e.Values[k])
	}
	return b.String()
}

// Check reads every object the store keeps and reports those c cannot
// read (an *UnreadableError), and those c reads with another than its
// write key or provider (stale: they should be rewritten). It never writes.
func Check(ctx context.Context, cli *clientv3.Client, c *Config) (stale []string, err error) {
	bad := map[string]string{}
	err = scan(ctx, cli, registryPrefix, func(kv *mvccpb.KeyValue) error {
		key := string(kv.Key)
		r := c.ruleFor(key)
		if r == nil {
			// Not configured: stored as it is. An encrypted value here
			// belongs to a resource the configuration no longer lists.
			if strings.HasPrefix(string(kv.Value), encryptedPrefix) {
				bad[key] = fmt.Sprintf("encrypted with %s, but no resource of the configuration covers this key", KeyOf(kv.Value))
			}
			return nil
		}
		_, isStale, err := r.transformer.TransformFromStorage(ctx, kv.Value, value.DefaultContext(key))
		if err != nil {
			bad[key] = fmt.Sprintf("resource %s, encrypted with %s: %v", r.resource, KeyOf(kv.Value), err)
			return nil
		}
		if isStale {
			stale = append(stale, key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, &UnreadableError{Values: bad}
	}
	return stale, nil
}

// Rewrite writes each of keys back with c's write key, if it is not
// written with it already. Each write is a compare-and-swap on the value
// read: a value changed meanwhile is read again (a write by the API server
// is already made with the current key). It returns how many it rewrote.
func Rewrite(ctx context.Context, cli *clientv3.Client, c *Config, keys []string) (int, error) {
	n := 0
	for _, key := range keys {
		t := c.TransformerFor(key)
		if t == nil {
			continue
		}
		for {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				return n, fmt.Errorf("rewrite %s: %w", key, err)
			}
			if len(resp.Kvs) == 0 {
				break // deleted meanwhile
			}
			kv := resp.Kvs[0]
			plain, isStale, err := t.TransformFromStorage(ctx, kv.Value, value.DefaultContext(key))
			if err != nil {
				return n, fmt.Errorf("rewrite %s: %w", key, err)
			}
			if !isStale {
				break
			}
			stored, err := t.TransformToStorage(ctx, plain, value.DefaultContext(key))
			if err != nil {
				return n, fmt.Errorf("rewrite %s: %w", key, err)
			}
			txn, err := cli.Txn(ctx).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
				Then(clientv3.OpPut(key, string(stored), clientv3.WithIgnoreLease())).
				Commit()
			if err != nil {
				return n, fmt.Errorf("rewrite %s: %w", key, err)
			}
			if txn.Succeeded {
				n++
				break
			}
		}
	}
	return n, nil
}

// CheckAndRewrite checks every stored object against c and, when c reads
// them all, rewrites those not written with c's write keys: values stored
// before encryption was on, or with a key rotated away from. A
// configuration that cannot read some value stops here and writes nothing.
func CheckAndRewrite(ctx context.Context, cli *clientv3.Client, c *Config) (int, error) {
	stale, err := Check(ctx, cli, c)
	if err != nil {
		return 0, err
	}
	return Rewrite(ctx, cli, c, stale)
}

// Count tells, for each configured resource, how many of its stored
// objects are under each key ("aesgcm:k1", "identity" for plain ones).
func Count(ctx context.Context, cli *clientv3.Client, c *Config) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	for _, rk := range c.WriteKeys() {
		counts := map[string]int{}
		err := scan(ctx, cli, rk.Prefix, func(kv *mvccpb.KeyValue) error {
			// A key under an earlier, longer rule is that rule's.
			if r := c.ruleFor(string(kv.Key)); r != nil && r.prefix == rk.Prefix {
				counts[KeyOf(kv.Value)]++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out[rk.Resource] = counts
	}
	return out, nil
}
