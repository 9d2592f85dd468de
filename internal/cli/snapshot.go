package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/server"
)

// snapshotsConfig converts the server's snapshot and cluster-reset flags.
func snapshotsConfig(c *cli.Context) (config.EtcdSnapshots, error) {
	s := config.EtcdSnapshots{
		Disable:      c.Bool("etcd-disable-snapshots"),
		Schedule:     c.String("etcd-snapshot-schedule-cron"),
		Retention:    c.Int("etcd-snapshot-retention"),
		Dir:          c.String("etcd-snapshot-dir"),
		ClusterReset: c.Bool("cluster-reset"),
		RestorePath:  c.String("cluster-reset-restore-path"),
	}
	if !s.Disable {
		if _, err := etcd.ParseSchedule(s.Schedule); err != nil {
			return s, fmt.Errorf("--etcd-snapshot-schedule-cron: %w", err)
		}
	}
	if s.Retention < 1 {
		return s, fmt.Errorf("--etcd-snapshot-retention %d: want at least 1", s.Retention)
	}
	if s.RestorePath != "" && !s.ClusterReset {
		return s, errors.New("--cluster-reset-restore-path needs --cluster-reset too")
	}
	return s, nil
}

func snapshotCommand() *cli.Command {
	def := config.DefaultServer()
	dirFlags := []cli.Flag{
		dataDirFlag(),
		&cli.StringFlag{Name: "etcd-snapshot-dir", Aliases: []string{"dir"}, Usage: "where etcd snapshots are kept (default: <data-dir>/server/db/snapshots)"},
	}
	return &cli.Command{
		Name:  "etcd-snapshot",
		Usage: "save, list and delete snapshots of the embedded etcd",
		Subcommands: []*cli.Command{
			{
				Name:  "save",
				Usage: "take a snapshot of the running server's etcd now",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "name", Value: "on-demand", Usage: "snapshot name prefix; the file is <name>-<node>-<unix time>"},
					&cli.StringFlag{Name: "node-name", Usage: "this node's name (default: the host name)", EnvVars: []string{"SKIFF_NODE_NAME"}},
					&cli.StringFlag{Name: "etcd-listen-address", Value: def.EtcdListenAddress, Usage: "address the server's etcd listens on"},
					&cli.IntFlag{Name: "etcd-client-port", Value: def.EtcdClientPort, Usage: "the server's etcd client port"},
				}, dirFlags...),
				Action: snapshotSave,
			},
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list snapshots with their size, time and whether their checksum matches",
				Flags:   dirFlags,
				Action:  snapshotList,
			},
			{
				Name:      "delete",
				Aliases:   []string{"rm"},
				Usage:     "delete snapshots by name",
				ArgsUsage: "NAME...",
				Flags:     dirFlags,
				Action:    snapshotDelete,
			},
		},
	}
}

func snapshotDir(c *cli.Context) string {
	if d := c.String("etcd-snapshot-dir"); d != "" {
		return d
	}
	return config.Layout{DataDir: c.String("data-dir")}.SnapshotDir()
}

func snapshotSave(c *cli.Context) error {
	node := c.String("node-name")
	if node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --node-name and no hostname: %w", err)
		}
		node = strings.ToLower(h)
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	ec, err := localEtcd(ctx, c)
	if err != nil {
		return err
	}
	defer ec.Close()
	name := etcd.SnapshotName(c.String("name"), node, time.Now())
	s, err := etcd.SaveSnapshot(ctx, ec, snapshotDir(c), name)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "saved snapshot %s (%d bytes) to %s\n", s.Name, s.Size, s.Path)
	return nil
}

func snapshotList(c *cli.Context) error {
	list, err := etcd.ListSnapshots(snapshotDir(c))
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tCREATED\tCHECKSUM")
	for _, s := range list {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", s.Name, s.Size, s.Created.Format(time.RFC3339), s.Checksum)
	}
	return w.Flush()
}

func snapshotDelete(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("name at least one snapshot to delete (see `skiff etcd-snapshot ls`)")
	}
	dir := snapshotDir(c)
	var errs []error
	for _, name := range c.Args().Slice() {
		if err := etcd.DeleteSnapshot(dir, name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "deleted snapshot %s\n", name)
	}
	return errors.Join(errs...)
}

// localEtcd is a client of the etcd of the server running on this
// machine, from the --etcd-listen-address and --etcd-client-port flags.
// etcd's client port takes only certificates from the etcd CA; the server
// keeps a client certificate for local tools in its data dir.
func localEtcd(ctx context.Context, c *cli.Context) (*clientv3.Client, error) {
	endpoint := "https://" + net.JoinHostPort(c.String("etcd-listen-address"), strconv.Itoa(c.Int("etcd-client-port")))
	tlsFiles := server.EtcdClientTLS(c.String("data-dir"))
	if _, err := os.Stat(tlsFiles.CertFile); err != nil {
		return nil, fmt.Errorf("`skiff server` must be running on this machine with this --data-dir (run this as root): no etcd client certificate: %w", err)
	}
	ec, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: []string{endpoint}, TLS: tlsFiles, DialTimeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cannot reach etcd at %s: `skiff server` must be running on this machine (see --etcd-client-port): %w", endpoint, err)
	}
	return ec, nil
}
