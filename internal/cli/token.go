package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"skiff/internal/config"
)

func tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "print the join token of the server on this machine",
		Flags: []cli.Flag{dataDirFlag()},
		Action: func(c *cli.Context) error {
			p := config.Layout{DataDir: c.String("data-dir")}.TokenFile()
			data, err := os.ReadFile(p)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no token at %s: has `skiff server` run with this --data-dir?", p)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, strings.TrimSpace(string(data)))
			return nil
		},
	}
}
