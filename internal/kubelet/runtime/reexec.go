package runtime

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// nsenter's C constructor joins namespaces in "init" before the Go
	// runtime starts threads; it must be linked into every binary that
	// starts containers.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	// Registers the cgroup device-rule manager used for the devices cgroup.
	_ "github.com/opencontainers/cgroups/devices"
)

// Reexec handles the re-executions of the skiff binary. main() and every
// TestMain that starts containers call it first: if os.Args[1] is "init" it
// runs libcontainer's container init (never returns); if it is "shim" it
// runs the container shim and exits. Otherwise it returns false.
func Reexec() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case "init":
		libcontainer.Init() // does not return
		return true
	case "shim":
		os.Exit(shimMain(os.Args[2:]))
	}
	return false
}
