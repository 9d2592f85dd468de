package cli

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"skiff/internal/apiserver"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print skiff's version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "skiff version %s (commit %s, built %s)\nkubernetes api %s\ngo %s %s/%s\n",
				Version, Commit, BuildDate, apiserver.KubernetesVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
