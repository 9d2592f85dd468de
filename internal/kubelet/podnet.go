package kubelet

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/config"
	"skiff/internal/dns"
	"skiff/internal/kubelet/network"
	"skiff/internal/kubelet/runtime"
)

// NetworkFactory builds the node's pod network once the node has its
// podCIDR; the kubelet calls it after registering and owns the result for
// its run.
type NetworkFactory func(ctx context.Context, node *corev1.Node) (*network.Network, error)

// startNetwork waits for the node's podCIDR (the server's node IPAM
// assigns it), then builds the pod network. Pods that need it wait.
func (k *Kubelet) startNetwork(ctx context.Context) {
	defer close(k.netReady)
	delay := 500 * time.Millisecond
	for {
		var node *corev1.Node
		var err error
		// No server: the node as last kept, so that pods get their
		// addresses back.
		if kept, ok := k.state.node(k.nodeName); ok && kept.Spec.PodCIDR != "" && k.offline.Load() {
			k.log.Info("no server answers: starting the pod network from the node's last known podCIDR", "podCIDR", kept.Spec.PodCIDR)
			node = kept
		} else if node, err = k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{}); err == nil && node.Spec.PodCIDR != "" {
			if err := k.state.putNode(node); err != nil {
				k.log.Warn("keep the node's podCIDR in local state failed", "err", err)
			}
		}
		if err == nil && node.Spec.PodCIDR != "" {
			n, err := k.cfg.Network(ctx, node)
			if err == nil {
				k.net = n
				k.log.Info("pod network ready", "podCIDR", node.Spec.PodCIDR)
				return
			}
			k.log.Error("pod network setup failed; retrying", "err", err)
		} else if err == nil {
			k.log.Debug("waiting for the node's podCIDR")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// podNetwork returns the pod network once it is ready, nil before.
func (k *Kubelet) podNetwork() *network.Network {
	select {
	case <-k.netReady:
		return k.net
	default:
		return nil
	}
}

// connectPod gives the pod its address on the pod network (idempotent).
// Pods on the host's network, or a kubelet without a pod network (tests),
// have none of their own.
func (w *podWorker) connectPod(ctx context.Context, pod *corev1.Pod, sb *runtime.Sandbox) (bool, error) {
	if pod.Spec.HostNetwork || w.k.cfg.Network == nil || w.podIP != nil {
		return true, nil
	}
	n := w.k.podNetwork()
	if n == nil {
		return false, nil
	}
	ip, err := n.Setup(ctx, string(pod.UID), sb.NetNS, hostPorts(pod))
	if err != nil {
		return false, fmt.Errorf("connect pod %s to the pod network: %w", podRef(pod, pod.UID), err)
	}
	w.podIP = ip
	return true, nil
}

func (w *podWorker) disconnectPod(ctx context.Context) {
	if w.k.cfg.Network == nil {
		return
	}
	// A pod torn down right after an agent restart may come before the
	// network is back; its address is freed once it is.
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case <-w.k.netReady:
	case <-wait.Done():
	}
	if n := w.k.podNetwork(); n != nil {
		if err := n.Teardown(ctx, string(w.uid)); err != nil {
			w.k.log.Warn("disconnect pod from the pod network failed", "pod", w.uid, "err", err)
		}
	}
	w.podIP = nil
}

func hostPorts(pod *corev1.Pod) []network.PortMapping {
	var out []network.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			out = append(out, network.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
		}
	}
	return out
}

// dnsMounts writes the pod's /etc/resolv.conf (for its dnsPolicy) and
// /etc/hosts (its own name and hostAliases) and returns them as mounts.
func (k *Kubelet) dnsMounts(pod *corev1.Pod, podIP net.IP) ([]runtime.Mount, error) {
	dir := filepath.Join(config.Layout{DataDir: k.cfg.Agent.DataDir}.PodsDir(), string(pod.UID), "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hostResolv := hostResolvConf()
	// Without a pod network there is no cluster DNS to reach: pods get the
	// host's resolvers, as with dnsPolicy Default.
	clusterDNS := k.cfg.Agent.ClusterDNS
	if k.cfg.Network == nil {
		clusterDNS = nil
	}
	resolv, err := dns.ResolvConf(pod, clusterDNS, k.cfg.Agent.ClusterDomain, hostResolv)
	if err != nil {
		return nil, err
	}
	if err := writeIfChanged(filepath.Join(dir, "resolv.conf"), resolv); err != nil {
		return nil, err
	}
	mounts := []runtime.Mount{{Source: filepath.Join(dir, "resolv.conf"), Destination: "/etc/resolv.conf"}}
	if pod.Spec.HostNetwork {
		return mounts, nil
	}
	if err := writeIfChanged(filepath.Join(dir, "hosts"), hostsFile(pod, podIP, k.cfg.Agent.ClusterDomain)); err != nil {
		return nil, err
	}
	return append(mounts, runtime.Mount{Source: filepath.Join(dir, "hosts"), Destination: "/etc/hosts"}), nil
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// hostsFile is the kubelet's managed /etc/hosts.
func hostsFile(pod *corev1.Pod, podIP net.IP, domain string) []byte {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	host := sandboxSpec(pod).Hostname
	if podIP != nil {
		if pod.Spec.Subdomain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", podIP, host, pod.Spec.Subdomain, pod.Namespace, domain, host)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, host)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return []byte(b.String())
}

// hostResolvConf is the resolv.conf pods with dnsPolicy Default inherit. A
// host whose /etc/resolv.conf only names a loopback stub (systemd-resolved's
// 127.0.0.53) would hand pods a server they cannot reach from their own
// network namespace: resolved's list of real servers is used then, as the
// kubelet's --resolv-conf is usually set to.
func hostResolvConf() []byte {
	etc, _ := os.ReadFile("/etc/resolv.conf")
	loopbackOnly := false
	for _, line := range strings.Split(string(etc), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		ip := net.ParseIP(f[1])
		if ip == nil || !ip.IsLoopback() {
			return etc
		}
		loopbackOnly = true
	}
	if loopbackOnly {
		if resolved, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			return resolved
		}
	}
	return etc
}
