package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"skiff/internal/check"
	"skiff/internal/config"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "check this host for what a skiff node needs (kernel, cgroups, iptables, ports, clock, disk)",
		Flags: []cli.Flag{
			dataDirFlag(),
			&cli.BoolFlag{Name: "server", Usage: "check for a server (its ports), not only an agent"},
			&cli.StringFlag{Name: "pod-network", Value: config.DefaultPodNetwork, Usage: "the agent's --pod-network"},
		},
		Action: func(c *cli.Context) error {
			ports := []int{config.DefaultKubeletPort}
			if c.Bool("server") {
				ports = append(ports, config.DefaultHTTPSPort, config.DefaultEtcdClientPort, config.DefaultEtcdPeerPort)
			}
			results := check.Run(check.Options{Agent: true, PodNetwork: c.String("pod-network"), DataDir: c.String("data-dir"), Ports: ports})
			check.Print(c.App.Writer, results)
			if failed := check.Failed(results); len(failed) > 0 {
				return fmt.Errorf("%d required check(s) failed", len(failed))
			}
			return nil
		},
	}
}

// preflight runs the host checks a starting node needs and refuses to go
// on when one fails, printing what to fix.
func preflight(agent bool, podNetwork, dataDir string) error {
	results := check.Run(check.Options{Agent: agent, PodNetwork: podNetwork, DataDir: dataDir})
	failed := check.Failed(results)
	if len(failed) == 0 {
		return nil
	}
	fmt.Fprintln(os.Stderr, "skiff: this host is missing what a node needs:")
	check.Print(os.Stderr, failed)
	return errors.New("host check failed; `skiff check` prints the full report")
}

// notifyReady tells systemd (Type=notify units) that skiff serves, once
// ready is closed (nil: now). Outside systemd it does nothing.
func notifyReady(ctx context.Context, ready <-chan struct{}, log *slog.Logger) {
	if ready != nil {
		select {
		case <-ctx.Done():
			return
		case <-ready:
		}
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("tell systemd that skiff is ready", "err", err)
	}
}
