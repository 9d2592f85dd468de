package cli

import (
	"github.com/urfave/cli/v2"

	"skiff/internal/config"
	"skiff/internal/server"
)

func kubeconfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "kubeconfig",
		Usage: "print the admin kubeconfig of the server on this machine",
		Flags: []cli.Flag{dataDirFlag()},
		Action: func(c *cli.Context) error {
			data, err := server.ReadKubeconfig(c.String("data-dir"))
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(data)
			return err
		},
	}
}

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Aliases: []string{"d"}, Value: config.DefaultDataDir, Usage: "folder for all of skiff's state", EnvVars: []string{"SKIFF_DATA_DIR"}}
}
