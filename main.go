// Command skiff is a Kubernetes-style cluster in one binary.
package main

import (
	"fmt"
	"os"

	"skiff/internal/cli"
	"skiff/internal/kubelet/runtime"
)

func main() {
	// The same binary is the container init (runc's libcontainer) and each
	// container's shim; those re-executions never reach the CLI.
	if runtime.Reexec() {
		return
	}
	if err := cli.NewApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "skiff: %v\n", err)
		os.Exit(1)
	}
}
