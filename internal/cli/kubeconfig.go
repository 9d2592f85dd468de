package cli

import (
	"github.com/urfave/cli/v2"

	"skiff/internal/config"
	"skiff/internal/server"
)

func kubeconfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "kubeconfig",
		Usage: "print the admin kubeconfig of the server on this machine, or with --user a new user's",
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.StringFlag{Name: "user", Usage: "make a kubeconfig for this user, with a client certificate signed by the cluster CA (bind roles to it with kubectl create rolebinding --user)"},
			&cli.StringSliceFlag{Name: "group", Usage: "a group of --user (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			var data []byte
			var err error
			if user := c.String("user"); user != "" {
				data, err = server.UserKubeconfig(c.String("data-dir"), user, c.StringSlice("group"))
			} else if len(c.StringSlice("group")) > 0 {
				return cli.Exit("--group needs --user", 2)
			} else {
				data, err = server.ReadKubeconfig(c.String("data-dir"))
			}
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
