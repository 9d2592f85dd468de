// Package agent composes a node agent: it joins the cluster with the join
// token, opens the image store and the container runtime, and runs the
// kubelet. `skiff agent` runs one; `skiff server` runs one for its own node.
package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"skiff/internal/config"
	"skiff/internal/kubelet"
	"skiff/internal/kubelet/bootstrap"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/runtime"
)

// Run joins the cluster and runs the node's pods until ctx ends.
// kubeVersion is the Kubernetes version the node reports (v1.37.2+skiff-…).
func Run(ctx context.Context, cfg config.Agent, kubeVersion string, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return errors.New("the agent runs containers and needs root: run skiff as root (or start the server with --disable-agent)")
	}
	if cfg.NodeName == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w (set --node-name)", err)
		}
		cfg.NodeName = strings.ToLower(host)
	}
	if cfg.NodeIP == nil {
		cfg.NodeIP = kubelet.DefaultNodeIP()
	}
	layout := config.Layout{DataDir: cfg.DataDir}
	hostname, _ := os.Hostname()
	joined, err := bootstrap.Join(ctx, bootstrap.Config{
		ServerURL: cfg.ServerURL,
		Token:     cfg.Token,
		NodeName:  cfg.NodeName,
		Addresses: []net.IP{cfg.NodeIP},
		Hostnames: []string{hostname},
		Dir:       layout.AgentDir(),
		Logger:    log,
	})
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(joined.CAFile)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	clientCA := x509.NewCertPool()
	clientCA.AppendCertsFromPEM(caPEM)

	regs, err := images.LoadRegistries(cfg.RegistriesFile)
	if err != nil {
		return fmt.Errorf("registries file %s: %w", cfg.RegistriesFile, err)
	}
	store, err := images.Open(layout.ImagesDir(), images.Options{Registries: regs, GCMinAge: 2 * time.Minute, Logger: log.With("component", "images")})
	if err != nil {
		return err
	}
	defer store.Close()
	if imported, err := store.ImportDir(ctx, layout.ImageImportDir()); err != nil {
		log.Warn("auto-import of image tarballs failed", "dir", layout.ImageImportDir(), "err", err)
	} else if len(imported) > 0 {
		log.Info("imported image tarballs", "dir", layout.ImageImportDir(), "images", len(imported))
	}

	rt, err := runtime.New(runtime.Config{
		Root:         layout.ContainersDir(),
		CgroupParent: cfg.CgroupParent,
		Logger:       log.With("component", "runtime"),
	})
	if err != nil {
		return err
	}
	k, err := kubelet.New(kubelet.Config{
		Agent:           cfg,
		RESTConfig:      joined.RESTConfig,
		Runtime:         rt,
		Images:          store,
		Version:         kubeVersion,
		Logger:          log,
		ServingCertFile: joined.ServingCertFile,
		ServingKeyFile:  joined.ServingKeyFile,
		ClientCA:        clientCA,
	})
	if err != nil {
		return err
	}
	return k.Run(ctx)
}
