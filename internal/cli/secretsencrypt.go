package cli

import (
	"context"

	"github.com/urfave/cli/v2"

	"skiff/internal/config"
	"skiff/internal/server"
)

func secretsEncryptCommand() *cli.Command {
	def := config.DefaultServer()
	flags := []cli.Flag{
		dataDirFlag(),
		&cli.StringFlag{Name: "etcd-listen-address", Value: def.EtcdListenAddress, Usage: "address the server's etcd listens on"},
		&cli.IntFlag{Name: "etcd-client-port", Value: def.EtcdClientPort, Usage: "the server's etcd client port"},
	}
	return &cli.Command{
		Name:  "secrets-encrypt",
		Usage: "show and rotate the keys that encrypt Secrets at rest (run as root on a server)",
		Subcommands: []*cli.Command{
			{
				Name:  "status",
				Usage: "show the write key of each encrypted resource, how many objects are stored under which key, and the configuration each server uses",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "encryption-provider-config", Usage: "the server's own EncryptionConfiguration file, if it was started with one", EnvVars: []string{"SKIFF_ENCRYPTION_PROVIDER_CONFIG"}},
				}, flags...),
				Action: func(c *cli.Context) error {
					ctx := cliContext(c)
					ec, err := localEtcd(ctx, c)
					if err != nil {
						return err
					}
					defer ec.Close()
					return server.EncryptionStatus(ctx, ec, c.String("data-dir"), c.String("encryption-provider-config"), c.App.Writer)
				},
			},
			{
				Name:  "rotate-keys",
				Usage: "make a new key the write key on every server, then rewrite every encrypted object with it; old keys still decrypt",
				Flags: flags,
				Action: func(c *cli.Context) error {
					ctx := cliContext(c)
					ec, err := localEtcd(ctx, c)
					if err != nil {
						return err
					}
					defer ec.Close()
					return server.RotateEncryptionKeys(ctx, ec, c.String("data-dir"), c.App.Writer)
				},
			},
		},
	}
}

func cliContext(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}
