//go:build !unix

package etcd

// lockDataDir does nothing where flock is unavailable; skiff servers run on
// Linux, this only keeps the package building elsewhere.
func lockDataDir(string) (unlock func(), err error) { return func() {}, nil }
