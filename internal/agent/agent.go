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
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff/internal/agent/loadbalancer"
	"skiff/internal/config"
	"skiff/internal/dns"
	"skiff/internal/kubelet"
	"skiff/internal/kubelet/bootstrap"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/network"
	"skiff/internal/kubelet/runtime"
	"skiff/internal/proxy"
)

// Run joins the cluster and runs the node's pods until ctx ends.
// kubeVersion is the Kubernetes version the node reports (v1.37.2+skiff-…).
// Without a node IP in cfg the node takes the default route's address and
// follows it when it changes (DHCP): it starts its components again with
// the new address, and the pods keep running.
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
	if cfg.NodeIP != nil {
		return run(ctx, cfg, kubeVersion, log)
	}
	return followNodeIP(ctx, cfg, log, func(ctx context.Context, cfg config.Agent) error {
		return run(ctx, cfg, kubeVersion, log)
	})
}

// run runs the agent with cfg.NodeIP until ctx ends; every goroutine it
// starts has ended when it returns.
func run(ctx context.Context, cfg config.Agent, kubeVersion string, log *slog.Logger) error {
	layout := config.Layout{DataDir: cfg.DataDir}
	hostname, _ := os.Hostname()
	joined, err := join(ctx, bootstrap.Config{
		ServerURL: cfg.ServerURL,
		Token:     cfg.Token,
		NodeName:  cfg.NodeName,
		Addresses: []net.IP{cfg.NodeIP},
		Hostnames: []string{hostname},
		Dir:       layout.AgentDir(),
		Logger:    log,
	}, log)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(joined.CAFile)
	if err != nil {
		return fmt.Errorf("cluster CA: %w", err)
	}
	clientCA := x509.NewCertPool()
	clientCA.AppendCertsFromPEM(caPEM)

	// Every client of this node goes through a local load balancer over
	// the cluster's servers, so the node keeps working while one server
	// answers.
	apis, balancer, err := serverBalancer(ctx, cfg, joined, clientCA, layout, log)
	if err != nil {
		return err
	}
	rc := apis.node
	defer balancer.Wait()

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
	var networkFactory kubelet.NetworkFactory
	var networkRuns sync.WaitGroup
	defer networkRuns.Wait()
	if cfg.PodNetwork != "none" {
		networkFactory = podNetwork(cfg, rc, &networkRuns, log)
	}
	services, err := startServices(ctx, cfg, apis, log)
	if err != nil {
		return err
	}
	defer services.Wait()
	k, err := kubelet.New(kubelet.Config{
		Agent:           cfg,
		RESTConfig:      rc,
		Runtime:         rt,
		Images:          store,
		Version:         kubeVersion,
		Logger:          log,
		ServingCertFile: joined.ServingCertFile,
		ServingKeyFile:  joined.ServingKeyFile,
		ClientCA:        clientCA,
		Network:         networkFactory,
	})
	if err != nil {
		return err
	}
	return k.Run(ctx)
}

// podNetwork returns the kubelet's factory for the node's pod network: it
// is built once the server assigned the node a podCIDR, and runs until the
// kubelet's context ends; runs ends with it.
func podNetwork(cfg config.Agent, rc *rest.Config, runs *sync.WaitGroup, log *slog.Logger) kubelet.NetworkFactory {
	return func(runCtx context.Context, node *corev1.Node) (*network.Network, error) {
		_, podCIDR, err := net.ParseCIDR(node.Spec.PodCIDR)
		if err != nil {
			return nil, fmt.Errorf("node %s podCIDR %q: %w", node.Name, node.Spec.PodCIDR, err)
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return nil, err
		}
		n, err := network.New(network.Config{
			StateFile:   filepath.Join(config.Layout{DataDir: cfg.DataDir}.AgentDir(), "network.db"),
			NodeName:    cfg.NodeName,
			NodeIP:      cfg.NodeIP,
			PodCIDR:     podCIDR,
			ClusterCIDR: cfg.ClusterCIDR,
			ServiceCIDR: cfg.ServiceCIDR,
			Mode:        network.Mode(cfg.PodNetwork),
			Client:      client,
			Logger:      log.With("component", "network"),
		})
		if err != nil {
			return nil, err
		}
		errc := make(chan error, 1)
		runs.Add(1)
		go func() { defer runs.Done(); errc <- n.Run(runCtx) }()
		select {
		case <-n.Ready():
			runs.Add(1)
			go func() {
				defer runs.Done()
				if err := <-errc; err != nil && runCtx.Err() == nil {
					log.Error("pod network stopped", "err", err)
				}
			}()
			return n, nil
		case err := <-errc:
			return nil, fmt.Errorf("pod network: %w", err)
		case <-runCtx.Done():
			return nil, runCtx.Err()
		}
	}
}

// startServices starts the node's service proxy and cluster DNS, which
// only need the API. The returned group ends when ctx does.
func startServices(ctx context.Context, cfg config.Agent, apis apiConfigs, log *slog.Logger) (*sync.WaitGroup, error) {
	var wg sync.WaitGroup
	if cfg.PodNetwork == "none" {
		return &wg, nil
	}
	// The proxy and DNS each act as their own user, with their own role;
	// the proxy's client keeps the lists, and both recall them while no
	// server answers.
	lastKnownDir := config.Layout{DataDir: cfg.DataDir}.LastKnownDir()
	proxyAPI, err := kubernetes.NewForConfig(apis.proxy)
	if err != nil {
		return nil, err
	}
	dnsAPI, err := kubernetes.NewForConfig(apis.dns)
	if err != nil {
		return nil, err
	}
	client := newLastKnown(proxyAPI, lastKnownDir, log.With("component", "last-known"))
	dnsClient := newLastKnown(dnsAPI, lastKnownDir, log.With("component", "last-known"))
	dnsClient.recallOnly = true // the proxy's keeps the same lists
	proxier, err := proxy.New(proxy.Config{
		Client:      client,
		NodeName:    cfg.NodeName,
		NodeIPs:     []net.IP{cfg.NodeIP},
		ClusterCIDR: cfg.ClusterCIDR,
		Logger:      log.With("component", "proxy"),
	})
	if err != nil {
		return nil, err
	}
	if err := ensureDNSAddress(cfg.ClusterDNS); err != nil {
		return nil, fmt.Errorf("cluster DNS address %s: %w", cfg.ClusterDNS, err)
	}
	resolver, err := dns.New(dns.Config{
		Client: dnsClient,
		Domain: cfg.ClusterDomain,
		Listen: []string{net.JoinHostPort(cfg.ClusterDNS.String(), "53")},
		Logger: log.With("component", "dns"),
	})
	if err != nil {
		return nil, err
	}
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.Error(name+" stopped", "err", err)
			}
		}()
	}
	run("service proxy", proxier.Run)
	run("cluster DNS", resolver.Run)
	run("last known services", func(ctx context.Context) error { client.keepFresh(ctx); return nil })
	return &wg, nil
}

// ensureDNSAddress puts the cluster DNS address on the node's loopback
// device: it is then local on every node (no dummy-interface kernel module
// needed), and pods reach the node's own DNS server through their gateway.
func ensureDNSAddress(ip net.IP) error {
	link, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on lo: %w", ip, err)
	}
	return nil
}

// join joins the cluster, waiting for a server that is not up yet (a
// rebooted cluster's agents often start first); a wrong token or CA fails
// at once.
func join(ctx context.Context, cfg bootstrap.Config, log *slog.Logger) (*bootstrap.Result, error) {
	delay := time.Second
	for {
		res, err := bootstrap.Join(ctx, cfg)
		var netErr net.Error
		if err == nil || !errors.As(err, &netErr) || ctx.Err() != nil {
			return res, err
		}
		log.Warn("cannot reach the server yet; retrying", "server", cfg.ServerURL, "err", err, "retry", delay)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 15*time.Second)
	}
}

// serverBalancer starts the node's load balancer over the servers (the one
// it joined first, then every server in the default/kubernetes endpoints,
// remembered across restarts) and returns a client config that uses it. The
// returned group ends when ctx does.
func serverBalancer(ctx context.Context, cfg config.Agent, joined *bootstrap.Result, ca *x509.CertPool, layout config.Layout, log *slog.Logger) (apiConfigs, *sync.WaitGroup, error) {
	u, err := url.Parse(cfg.ServerURL)
	if err != nil {
		return apiConfigs{}, nil, fmt.Errorf("server URL %q: %w", cfg.ServerURL, err)
	}
	hostPort := u.Host
	if u.Port() == "" {
		hostPort = net.JoinHostPort(u.Hostname(), "6443")
	}
	lb, err := loadbalancer.New(loadbalancer.Config{
		Servers:   []string{hostPort},
		StateFile: filepath.Join(layout.AgentDir(), "servers.json"),
		CAPool:    ca,
		Logger:    log.With("component", "loadbalancer"),
	})
	if err != nil {
		return apiConfigs{}, nil, err
	}
	balanced := func(c *rest.Config) *rest.Config {
		c = rest.CopyConfig(c)
		c.Host = "https://" + lb.Addr()
		return c
	}
	apis := apiConfigs{node: balanced(joined.RESTConfig), proxy: balanced(joined.ProxyRESTConfig), dns: balanced(joined.DNSRESTConfig)}
	// The servers are the endpoints of default/kubernetes, which the
	// proxy's role may watch and the node's may not.
	client, err := kubernetes.NewForConfig(apis.proxy)
	if err != nil {
		return apiConfigs{}, nil, err
	}
	var wg sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"server load balancer": lb.Run,
		"server list watch":    func(ctx context.Context) error { return loadbalancer.WatchServers(ctx, client, lb) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				log.Error(name+" stopped", "err", err)
			}
		}()
	}
	return apis, &wg, nil
}

// apiConfigs are the node's clients of the API, each with its own
// identity, all through the node's load balancer.
type apiConfigs struct {
	node  *rest.Config // system:node:<name>: the kubelet and pod network
	proxy *rest.Config // system:kube-proxy: the service proxy and the server list
	dns   *rest.Config // system:kube-dns: cluster DNS
}
