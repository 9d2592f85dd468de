package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"skiff/internal/agent"
	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/identity"
)

// nodeFlags are the kubelet's flags, shared by `skiff agent` and the agent
// a server runs on its own node.
func nodeFlags() []cli.Flag {
	def := config.DefaultAgent()
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "node-label", Usage: "label for this node, KEY=VALUE (repeatable)"},
		&cli.BoolFlag{Name: "with-node-id", Usage: "append a stable random suffix (kept in the data dir) to the node name, for machines that share a host name", EnvVars: []string{"SKIFF_WITH_NODE_ID"}},
		&cli.StringFlag{Name: "kubelet-address", Usage: "address the kubelet API listens on (default: all)"},
		&cli.IntFlag{Name: "kubelet-port", Value: def.KubeletPort, Usage: "kubelet API port (logs, exec, port-forward)"},
		&cli.StringFlag{Name: "pod-log-dir", Value: def.PodLogDir, Usage: "where container logs are written"},
		&cli.StringFlag{Name: "cgroup-parent", Value: def.CgroupParent, Usage: "cgroup under which pods are placed"},
		&cli.StringFlag{Name: "registries-file", Aliases: []string{"private-registry"}, Value: def.RegistriesFile, Usage: "registry mirrors, credentials and insecure registries (YAML)"},
		&cli.IntFlag{Name: "max-pods", Value: def.MaxPods, Usage: "pods this node accepts"},
		&cli.IntFlag{Name: "image-gc-high-threshold", Value: def.ImageGCHighPercent, Usage: "disk usage percent above which unused images are removed"},
		&cli.IntFlag{Name: "image-gc-low-threshold", Value: def.ImageGCLowPercent, Usage: "disk usage percent image garbage collection brings usage down to"},
		&cli.StringFlag{Name: "pod-network", Value: def.PodNetwork, Usage: "how pods reach other nodes: vxlan, host-gw (nodes on one L2 segment) or none (loopback only)"},
	}
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run a worker node: join a server and run pods",
		Flags: append([]cli.Flag{
			dataDirFlag(),
			&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "server to join, https://HOST:6443", EnvVars: []string{"SKIFF_URL"}},
			&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "join token (run skiff token on the server to print it)", EnvVars: []string{"SKIFF_TOKEN"}},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the join token", EnvVars: []string{"SKIFF_TOKEN_FILE"}},
			&cli.StringFlag{Name: "node-name", Usage: "this node's name (default: the host name)", EnvVars: []string{"SKIFF_NODE_NAME"}},
			&cli.StringFlag{Name: "node-ip", Usage: "this node's IP (default: the address of the default route's interface)"},
			&cli.StringFlag{Name: "cluster-cidr", Value: config.DefaultClusterCIDR, Usage: "pod IP range (the server's --cluster-cidr)"},
			&cli.StringFlag{Name: "service-cidr", Value: config.DefaultServiceCIDR, Usage: "service IP range (the server's --service-cidr)"},
			&cli.StringFlag{Name: "cluster-dns", Value: config.DefaultClusterDNS, Usage: "cluster DNS address (the server's --cluster-dns)"},
			&cli.StringFlag{Name: "cluster-domain", Value: config.DefaultClusterDomain, Usage: "cluster DNS domain"},
		}, nodeFlags()...),
		Action: runAgent,
	}
}

// agentConfig converts the node flags; server and token are the caller's.
func agentConfig(c *cli.Context, nodeIP string) (config.Agent, error) {
	cfg := config.DefaultAgent()
	cfg.DataDir = c.String("data-dir")
	var err error
	if cfg.NodeName, err = nodeName(c, cfg.DataDir); err != nil {
		return cfg, err
	}
	if nodeIP != "" {
		if cfg.NodeIP = net.ParseIP(nodeIP); cfg.NodeIP == nil {
			return cfg, fmt.Errorf("--node-ip %q: not an IP address", nodeIP)
		}
	}
	for _, l := range c.StringSlice("node-label") {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return cfg, fmt.Errorf("--node-label %q: want KEY=VALUE", l)
		}
		if cfg.NodeLabels == nil {
			cfg.NodeLabels = map[string]string{}
		}
		cfg.NodeLabels[k] = v
	}
	cfg.KubeletAddress = c.String("kubelet-address")
	cfg.KubeletPort = c.Int("kubelet-port")
	if cfg.KubeletPort < 1 || cfg.KubeletPort > 65535 {
		return cfg, fmt.Errorf("--kubelet-port %d: not a port", cfg.KubeletPort)
	}
	cfg.PodLogDir = c.String("pod-log-dir")
	cfg.CgroupParent = c.String("cgroup-parent")
	cfg.RegistriesFile = c.String("registries-file")
	cfg.MaxPods = c.Int("max-pods")
	cfg.PodNetwork = c.String("pod-network")
	switch cfg.PodNetwork {
	case "vxlan", "host-gw", "none":
	default:
		return cfg, fmt.Errorf("--pod-network %q: want vxlan, host-gw or none", cfg.PodNetwork)
	}
	if cfg.ClusterCIDR, err = config.ParseCIDR("cluster-cidr", c.String("cluster-cidr")); err != nil {
		return cfg, err
	}
	if cfg.ServiceCIDR, err = config.ParseCIDR("service-cidr", c.String("service-cidr")); err != nil {
		return cfg, err
	}
	if cfg.ClusterDNS = net.ParseIP(c.String("cluster-dns")); cfg.ClusterDNS == nil {
		return cfg, fmt.Errorf("--cluster-dns %q: not an IP address", c.String("cluster-dns"))
	}
	cfg.ClusterDomain = c.String("cluster-domain")
	cfg.ImageGCHighPercent = c.Int("image-gc-high-threshold")
	cfg.ImageGCLowPercent = c.Int("image-gc-low-threshold")
	if cfg.ImageGCLowPercent > cfg.ImageGCHighPercent || cfg.ImageGCHighPercent > 100 {
		return cfg, fmt.Errorf("--image-gc-low-threshold %d must not exceed --image-gc-high-threshold %d (at most 100)", cfg.ImageGCLowPercent, cfg.ImageGCHighPercent)
	}
	cfg.Debug = c.Bool("debug")
	return cfg, nil
}

func runAgent(c *cli.Context) error {
	cfg, err := agentConfig(c, c.String("node-ip"))
	if err != nil {
		return err
	}
	cfg.ServerURL = c.String("server")
	if cfg.ServerURL == "" {
		return fmt.Errorf("--server is required: the URL of a skiff server, e.g. https://10.0.0.1:6443")
	}
	if cfg.Token, err = tokenFlag(c); err != nil {
		return err
	}
	if cfg.Token == "" {
		return fmt.Errorf("--token is required: run `skiff token` on the server to print it")
	}
	if err := preflight(true, cfg.PodNetwork, cfg.DataDir); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := newLogger(c)
	cfg.OnRegistered = func() { notifyReady(ctx, nil, log) }
	return agent.Run(ctx, cfg, kubeletVersion(), log)
}

// nodeName is --node-name or the host name, with the stable suffix kept
// in the data dir under --with-node-id.
func nodeName(c *cli.Context, dataDir string) (string, error) {
	return identity.NodeName(c.String("node-name"), c.Bool("with-node-id"), config.Layout{DataDir: dataDir}.NodeIDFile())
}

// kubeletVersion is what nodes report, e.g. v1.37.2+skiff-0.1.0.
func kubeletVersion() string {
	return apiserver.KubernetesVersion + "+skiff-" + strings.TrimPrefix(Version, "v")
}

// tokenFlag is --token, or the contents of --token-file.
func tokenFlag(c *cli.Context) (string, error) {
	if t := c.String("token"); t != "" {
		return t, nil
	}
	f := c.String("token-file")
	if f == "" {
		return "", nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
