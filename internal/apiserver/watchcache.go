package apiserver

import (
	"context"
)

// startWatchCache serves lists and watches of every resource from the
// store's watch cache until ctx is done; the returned channel is closed
// once the cache has stopped.
func (s *Server) startWatchCache(ctx context.Context) <-chan struct{} {
	var prefixes []string
	for _, res := range s.reg.All() {
		prefixes = append(prefixes, prefix(res, ""))
	}
	return s.store.StartWatchCache(ctx, prefixes)
}
