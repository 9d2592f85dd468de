package images

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskUsage returns the capacity and used bytes of the filesystem holding
// path, computed like df: used against what non-root users can use.
func diskUsage(path string) (total, used int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := int64(st.Bsize)
	used = (int64(st.Blocks) - int64(st.Bfree)) * bs
	total = used + int64(st.Bavail)*bs
	return total, used, nil
}
