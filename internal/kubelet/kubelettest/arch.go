package kubelettest

import (
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	goruntime "runtime"
)

func runtimeArch() string { return goruntime.GOARCH }

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// RemoveCgroups removes the cgroup tree a test's containers lived under
// (parent, e.g. "/skiff-test-123") in every hierarchy, deepest first. Only
// empty cgroups can be removed; anything still running keeps its own.
func RemoveCgroups(parent string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		top := filepath.Join(root, parent)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}
