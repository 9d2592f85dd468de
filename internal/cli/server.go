package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"skiff/internal/agent"
	"skiff/internal/config"
	"skiff/internal/server"
)

func serverCommand() *cli.Command {
	def := config.DefaultServer()
	return &cli.Command{
		Name:  "server",
		Usage: "run a control plane node: embedded etcd and the Kubernetes API",
		Flags: append([]cli.Flag{
			dataDirFlag(),
			&cli.StringFlag{Name: "bind-address", Usage: "address the API server listens on (default: all)"},
			&cli.IntFlag{Name: "https-listen-port", Value: def.HTTPSPort, Usage: "API server port"},
			&cli.StringSliceFlag{Name: "advertise-address", Aliases: []string{"node-ip"}, Usage: "IP other nodes use to reach this server"},
			&cli.StringSliceFlag{Name: "tls-san", Usage: "extra host name or IP for the serving certificate"},
			&cli.StringFlag{Name: "write-kubeconfig", Aliases: []string{"o"}, Value: def.KubeconfigPath, Usage: "where to write the admin kubeconfig (\"\" skips it)", EnvVars: []string{"SKIFF_KUBECONFIG_OUTPUT"}},
			&cli.StringFlag{Name: "write-kubeconfig-mode", Value: "0600", Usage: "file mode of the written kubeconfig"},
			&cli.IntFlag{Name: "etcd-client-port", Value: def.EtcdClientPort, Usage: "embedded etcd client port"},
			&cli.IntFlag{Name: "etcd-peer-port", Value: def.EtcdPeerPort, Usage: "embedded etcd peer port"},
			&cli.StringFlag{Name: "etcd-listen-address", Value: def.EtcdListenAddress, Usage: "address embedded etcd listens on"},
			&cli.Int64Flag{Name: "etcd-quota-bytes", Value: def.EtcdQuotaBytes, Usage: "etcd backend size quota"},
			&cli.StringFlag{Name: "etcd-compaction-retention", Value: def.EtcdCompactionRetention, Usage: "etcd periodic auto-compaction window"},
			&cli.StringFlag{Name: "etcd-snapshot-schedule-cron", Value: def.EtcdSnapshots.Schedule, Usage: "when to take etcd snapshots, as a 5-field cron expression"},
			&cli.IntFlag{Name: "etcd-snapshot-retention", Value: def.EtcdSnapshots.Retention, Usage: "how many scheduled etcd snapshots to keep"},
			&cli.BoolFlag{Name: "etcd-disable-snapshots", Usage: "take no scheduled etcd snapshots"},
			&cli.StringFlag{Name: "etcd-snapshot-dir", Usage: "where etcd snapshots are kept (default: <data-dir>/server/db/snapshots)"},
			&cli.BoolFlag{Name: "cluster-init", Usage: "start a cluster that other servers can join (etcd peers on the node IP, over TLS)", EnvVars: []string{"SKIFF_CLUSTER_INIT"}},
			&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Usage: "join the cluster of this server as another server, https://HOST:6443", EnvVars: []string{"SKIFF_URL"}},
			&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "join token of the cluster to join (run skiff token on a server to print it)", EnvVars: []string{"SKIFF_TOKEN"}},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the join token", EnvVars: []string{"SKIFF_TOKEN_FILE"}},
			&cli.BoolFlag{Name: "cluster-reset", Usage: "make this server the only member of its etcd cluster, keeping its data (or restoring --cluster-reset-restore-path)"},
			&cli.StringFlag{Name: "cluster-reset-restore-path", Usage: "with --cluster-reset, the etcd snapshot file to restore"},
			&cli.StringFlag{Name: "service-cidr", Value: config.DefaultServiceCIDR, Usage: "service cluster IP range"},
			&cli.StringFlag{Name: "cluster-cidr", Value: config.DefaultClusterCIDR, Usage: "pod IP range"},
			&cli.StringFlag{Name: "service-node-port-range", Value: config.DefaultNodePortRange, Usage: "NodePort range"},
			&cli.StringFlag{Name: "cluster-domain", Value: config.DefaultClusterDomain, Usage: "cluster DNS domain"},
			&cli.StringFlag{Name: "cluster-dns", Value: config.DefaultClusterDNS, Usage: "cluster DNS address (inside --service-cidr), answered on every node"},
			&cli.DurationFlag{Name: "event-ttl", Value: def.EventTTL, Usage: "how long events are kept"},
			&cli.BoolFlag{Name: "disable-agent", Usage: "run the control plane only, no kubelet on this node"},
			&cli.BoolFlag{Name: "disable-scheduler", Usage: "do not run the scheduler on this server"},
			&cli.BoolFlag{Name: "disable-controller-manager", Usage: "do not run the controllers on this server"},
			&cli.StringFlag{Name: "authorization-mode", Value: def.AuthorizationMode, EnvVars: []string{"SKIFF_AUTHORIZATION_MODE"},
				Usage: "Node,RBAC (service-account tokens, RBAC, the node authorizer) or AlwaysAllow (every authenticated caller is an admin)"},
			&cli.StringFlag{Name: "node-name", Usage: "this node's name (default: the host name)", EnvVars: []string{"SKIFF_NODE_NAME"}},
			&cli.DurationFlag{Name: "leader-elect-ttl", Value: def.LeaderElectTTL, Usage: "control-plane leader lease TTL; a dead leader is replaced within it"},
			&cli.DurationFlag{Name: "node-monitor-grace-period", Value: def.Controllers.NodeMonitorGracePeriod, Usage: "how long a node may miss lease renewals before it is marked not ready"},
			&cli.Int64Flag{Name: "default-not-ready-toleration-seconds", Value: def.Controllers.DefaultNotReadyTolerationSeconds, Usage: "how long pods tolerate a not-ready or unreachable node by default"},
			&cli.IntFlag{Name: "terminated-pod-gc-threshold", Value: def.Controllers.TerminatedPodGCThreshold, Usage: "terminated pods kept before the oldest are deleted"},
		}, nodeFlags()...),
		Action: runServer,
	}
}

// serverConfig converts the flags into a config.Server.
func serverConfig(c *cli.Context) (config.Server, error) {
	cfg := config.DefaultServer()
	cfg.DataDir = c.String("data-dir")
	cfg.BindAddress = c.String("bind-address")
	if cfg.BindAddress != "" && net.ParseIP(cfg.BindAddress) == nil {
		return cfg, fmt.Errorf("--bind-address %q: not an IP address", cfg.BindAddress)
	}
	cfg.HTTPSPort = c.Int("https-listen-port")
	for _, a := range c.StringSlice("advertise-address") {
		ip := net.ParseIP(a)
		if ip == nil {
			return cfg, fmt.Errorf("--advertise-address %q: not an IP address", a)
		}
		cfg.AdvertiseIPs = append(cfg.AdvertiseIPs, ip)
	}
	cfg.TLSSANs = c.StringSlice("tls-san")
	cfg.KubeconfigPath = c.String("write-kubeconfig")
	mode, err := strconv.ParseUint(c.String("write-kubeconfig-mode"), 8, 32)
	if err != nil || mode > 0o777 {
		return cfg, fmt.Errorf("--write-kubeconfig-mode %q: want an octal file mode like 0600", c.String("write-kubeconfig-mode"))
	}
	cfg.KubeconfigMode = uint32(mode)
	cfg.EtcdClientPort = c.Int("etcd-client-port")
	cfg.EtcdPeerPort = c.Int("etcd-peer-port")
	cfg.EtcdListenAddress = c.String("etcd-listen-address")
	cfg.EtcdQuotaBytes = c.Int64("etcd-quota-bytes")
	cfg.EtcdCompactionRetention = c.String("etcd-compaction-retention")
	if cfg.EtcdSnapshots, err = snapshotsConfig(c); err != nil {
		return cfg, err
	}
	cfg.ClusterInit = c.Bool("cluster-init")
	cfg.JoinURL = c.String("server")
	if cfg.Token, err = tokenFlag(c); err != nil {
		return cfg, err
	}
	switch {
	case cfg.JoinURL != "" && cfg.ClusterInit:
		return cfg, fmt.Errorf("--cluster-init starts a new cluster and --server joins one: use one of them")
	case cfg.JoinURL != "" && !strings.HasPrefix(cfg.JoinURL, "https://"):
		return cfg, fmt.Errorf("--server %q: want the URL of a skiff server, e.g. https://10.0.0.1:6443", cfg.JoinURL)
	case cfg.JoinURL != "" && cfg.Token == "":
		return cfg, fmt.Errorf("--server needs --token: run `skiff token` on that server to print it")
	}
	if cfg.ServiceCIDR, err = config.ParseCIDR("service-cidr", c.String("service-cidr")); err != nil {
		return cfg, err
	}
	if cfg.ClusterCIDR, err = config.ParseCIDR("cluster-cidr", c.String("cluster-cidr")); err != nil {
		return cfg, err
	}
	if cfg.NodePortRange, err = config.ParsePortRange(c.String("service-node-port-range")); err != nil {
		return cfg, fmt.Errorf("--service-node-port-range: %w", err)
	}
	cfg.ClusterDomain = c.String("cluster-domain")
	if cfg.ClusterDNS = net.ParseIP(c.String("cluster-dns")); cfg.ClusterDNS == nil || !cfg.ServiceCIDR.Contains(cfg.ClusterDNS) {
		return cfg, fmt.Errorf("--cluster-dns %q: want an IP inside --service-cidr %s", c.String("cluster-dns"), cfg.ServiceCIDR)
	}
	cfg.EventTTL = c.Duration("event-ttl")
	if cfg.EventTTL < 2*time.Second {
		return cfg, fmt.Errorf("--event-ttl %v: must be at least 2s", cfg.EventTTL)
	}
	cfg.DisableAgent = c.Bool("disable-agent")
	cfg.DisableScheduler = c.Bool("disable-scheduler")
	cfg.DisableControllerManager = c.Bool("disable-controller-manager")
	switch mode := c.String("authorization-mode"); mode {
	case config.AuthorizationAlwaysAllow, config.AuthorizationNodeRBAC, "RBAC,Node":
		cfg.AuthorizationMode = mode
	default:
		return cfg, fmt.Errorf("--authorization-mode %q: want %s or %s", mode, config.AuthorizationAlwaysAllow, config.AuthorizationNodeRBAC)
	}
	if cfg.NodeName, err = nodeName(c, cfg.DataDir); err != nil {
		return cfg, err
	}
	cfg.LeaderElectTTL = c.Duration("leader-elect-ttl")
	if cfg.LeaderElectTTL < 2*time.Second {
		return cfg, fmt.Errorf("--leader-elect-ttl %v: must be at least 2s", cfg.LeaderElectTTL)
	}
	cfg.Controllers.NodeMonitorGracePeriod = c.Duration("node-monitor-grace-period")
	cfg.Controllers.DefaultNotReadyTolerationSeconds = c.Int64("default-not-ready-toleration-seconds")
	cfg.Controllers.TerminatedPodGCThreshold = c.Int("terminated-pod-gc-threshold")
	cfg.Debug = c.Bool("debug")
	return cfg, nil
}

func runServer(c *cli.Context) error {
	cfg, err := serverConfig(c)
	if err != nil {
		return err
	}
	log := newLogger(c)
	srv, err := server.New(cfg, log, Version)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if cfg.DisableAgent {
		if err := preflight(false, "", cfg.DataDir); err != nil {
			return err
		}
		go notifyReady(ctx, srv.Ready(), log)
		return srv.Run(ctx)
	}
	nodeIP := ""
	if len(cfg.AdvertiseIPs) > 0 {
		nodeIP = cfg.AdvertiseIPs[0].String()
	}
	agentCfg, err := agentConfig(c, nodeIP)
	if err != nil {
		return err
	}
	agentCfg.NodeName = cfg.NodeName
	agentCfg.ClusterCIDR, agentCfg.ServiceCIDR = cfg.ClusterCIDR, cfg.ServiceCIDR
	agentCfg.ClusterDNS, agentCfg.ClusterDomain = cfg.ClusterDNS, cfg.ClusterDomain
	if err := preflight(true, agentCfg.PodNetwork, cfg.DataDir); err != nil {
		return err
	}
	go notifyReady(ctx, srv.Ready(), log)
	return runServerWithAgent(ctx, srv, agentCfg, log)
}

// runServerWithAgent runs the server and, once it serves, the agent of its
// own node, joined over loopback with the server's token. Either failing
// stops both.
func runServerWithAgent(ctx context.Context, srv *server.Server, agentCfg config.Agent, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Run(ctx) }()
	select {
	case err := <-srvErr:
		return err
	case <-srv.Ready():
	}
	token, err := os.ReadFile(srv.Layout().TokenFile())
	if err != nil {
		cancel()
		<-srvErr
		return fmt.Errorf("read the join token for this node's agent: %w", err)
	}
	agentCfg.ServerURL = srv.LocalURL()
	agentCfg.Token = strings.TrimSpace(string(token))
	// The node names its server's etcd member, which deleting the node
	// removes.
	agentCfg.NodeAnnotations = map[string]string{server.AnnotationEtcdMember: srv.EtcdMemberName()}
	agentErr := make(chan error, 1)
	go func() { agentErr <- agent.Run(ctx, agentCfg, kubeletVersion(), log) }()
	select {
	case err := <-srvErr:
		cancel()
		<-agentErr
		return err
	case err := <-agentErr:
		if err != nil && ctx.Err() == nil {
			log.Error("agent failed; stopping the server too", "err", err)
			cancel()
			<-srvErr
			return fmt.Errorf("agent: %w", err)
		}
		return <-srvErr
	}
}
