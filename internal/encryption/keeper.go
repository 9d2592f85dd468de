package encryption

import (
	"sync/atomic"

	"k8s.io/apiserver/pkg/storage/value"
)

// Keeper holds the configuration in force and lets it be replaced while
// the store uses it (a key rotation): each read or write uses the
// configuration current when it starts.
type Keeper struct {
	cur atomic.Pointer[Config]
}

// NewKeeper returns a keeper of c.
func NewKeeper(c *Config) *Keeper {
	k := &Keeper{}
	k.cur.Store(c)
	return k
}

// Config is the configuration in force.
func (k *Keeper) Config() *Config { return k.cur.Load() }

// Set puts c in force.
func (k *Keeper) Set(c *Config) { k.cur.Store(c) }

// TransformerFor is the current configuration's transformer for key.
func (k *Keeper) TransformerFor(key string) value.Transformer {
	return k.cur.Load().TransformerFor(key)
}
