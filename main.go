// Command skiff is a Kubernetes-style cluster in one binary.
package main

import (
	"fmt"
	"os"

	"skiff/internal/cli"
)

func main() {
	if err := cli.NewApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "skiff: %v\n", err)
		os.Exit(1)
	}
}
