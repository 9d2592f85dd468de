// Package cli is skiff's command line: one file per command. Flags are
// turned into internal/config structs here, once.
package cli

import (
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

// Version, Commit and BuildDate are set at build time with -ldflags -X.
var (
	Version   = "v0.1.0-dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// NewApp returns the skiff command line application.
func NewApp() *cli.App {
	return &cli.App{
		Name:    "skiff",
		Usage:   "a Kubernetes-compatible cluster in one small binary",
		Version: Version,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages", EnvVars: []string{"SKIFF_DEBUG"}},
		},
		Commands: []*cli.Command{
			serverCommand(),
			agentCommand(),
			imagesCommand(),
			checkCommand(),
			snapshotCommand(),
			secretsEncryptCommand(),
			kubeconfigCommand(),
			tokenCommand(),
			certificateCommand(),
			versionCommand(),
		},
	}
}

// newLogger builds the process logger: text to stderr, info by default.
func newLogger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
