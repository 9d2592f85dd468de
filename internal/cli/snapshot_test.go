package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

// runSnapshotCmd runs `skiff etcd-snapshot ARGS...` and returns its output.
func runSnapshotCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "skiff", Writer: &out, ErrWriter: &out, Commands: []*cli.Command{snapshotCommand()}}
	err := app.RunContext(context.Background(), append([]string{"skiff", "etcd-snapshot"}, args...))
	return out.String(), err
}

func TestEtcdSnapshotCommands(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.EtcdSnapshots.Disable = true })
	dataDir := "--data-dir=" + s.DataDir
	port := "--etcd-client-port=" + strconv.Itoa(s.Config.EtcdClientPort)

	out, err := runSnapshotCmd(t, "save", dataDir, port, "--node-name=n1", "--name=before-upgrade")
	if err != nil {
		t.Fatalf("save: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.DataDir, "server", "db", "snapshots", "before-upgrade-n1-*"))
	if len(files) != 2 { // the snapshot and its .sha256
		t.Fatalf("snapshot files: %v", files)
	}
	name := filepath.Base(files[0])

	out, err = runSnapshotCmd(t, "ls", dataDir)
	if err != nil {
		t.Fatalf("ls: %v", err)
	}
	if !strings.Contains(out, "CHECKSUM") || !strings.Contains(out, name) || !strings.Contains(out, " ok") {
		t.Fatalf("ls output:\n%s", out)
	}

	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = runSnapshotCmd(t, "ls", dataDir)
	if !strings.Contains(out, " bad") {
		t.Fatalf("a corrupt snapshot is not reported bad:\n%s", out)
	}

	if out, err := runSnapshotCmd(t, "delete", dataDir, name); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, _ := runSnapshotCmd(t, "ls", dataDir); strings.Contains(out, name) {
		t.Fatalf("deleted snapshot still listed:\n%s", out)
	}
	if _, err := runSnapshotCmd(t, "delete", dataDir, name); err == nil {
		t.Fatal("deleting a missing snapshot succeeded")
	}
}

func TestEtcdSnapshotSaveWithoutServer(t *testing.T) {
	port := "--etcd-client-port=" + strconv.Itoa(servertest.FreePort(t))
	_, err := runSnapshotCmd(t, "save", "--data-dir="+t.TempDir(), port, "--node-name=n1")
	if err == nil || !strings.Contains(err.Error(), "skiff server` must be running") {
		t.Fatalf("save without a server: %v", err)
	}
}

func TestServerSnapshotFlags(t *testing.T) {
	parse := func(args ...string) (config.Server, error) {
		var cfg config.Server
		var perr error
		cmd := serverCommand()
		cmd.Action = func(c *cli.Context) error {
			cfg, perr = serverConfig(c)
			return nil
		}
		app := &cli.App{Name: "skiff", Commands: []*cli.Command{cmd}, Flags: []cli.Flag{&cli.BoolFlag{Name: "debug"}}}
		if err := app.Run(append([]string{"skiff", "server"}, args...)); err != nil {
			t.Fatalf("run: %v", err)
		}
		return cfg, perr
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.EtcdSnapshots{Schedule: "0 */12 * * *", Retention: 5}); cfg.EtcdSnapshots != want {
		t.Fatalf("defaults %+v, want %+v", cfg.EtcdSnapshots, want)
	}
	cfg, err = parse("--etcd-snapshot-schedule-cron=*/5 * * * *", "--etcd-snapshot-retention=3",
		"--etcd-snapshot-dir=/snaps", "--cluster-reset", "--cluster-reset-restore-path=/snaps/x")
	if err != nil {
		t.Fatal(err)
	}
	if want := (config.EtcdSnapshots{Schedule: "*/5 * * * *", Retention: 3, Dir: "/snaps", ClusterReset: true, RestorePath: "/snaps/x"}); cfg.EtcdSnapshots != want {
		t.Fatalf("got %+v, want %+v", cfg.EtcdSnapshots, want)
	}
	for _, bad := range [][]string{
		{"--etcd-snapshot-schedule-cron=every noon"},
		{"--etcd-snapshot-retention=0"},
		{"--cluster-reset-restore-path=/snaps/x"},
	} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
