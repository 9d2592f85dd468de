//go:build unix

package etcd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive lock on the data dir for as long as etcd
// runs. Without it a second etcd on the same dir (on other ports) blocks
// forever inside etcd, waiting for the bbolt file lock, where no context can
// reach it. The lock is per open file, so it also works within one process.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "skiff-etcd.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcd: lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("etcd: data dir %s is in use by another etcd; is another skiff server running with this --data-dir?", dir)
		}
		return nil, fmt.Errorf("etcd: lock data dir %s: %w", dir, err)
	}
	// Closing the file releases the lock; the file itself stays, harmlessly.
	return func() { f.Close() }, nil
}
