package agent

import (
	"context"
	"log/slog"
	"net"
	"time"

	"skiff/internal/config"
	"skiff/internal/identity"
)

// nodeIPCheckInterval is how often a node without --node-ip checks that its
// address is still its own: a changed address is noticed within it.
const nodeIPCheckInterval = 10 * time.Second

// followNodeIP runs the agent with the default route's address and, when
// the machine loses that address (a new DHCP lease, another network),
// stops it and runs it again with the new one. The kubelet then reports the
// new InternalIP (which the other nodes' VXLAN peers follow), gets a serving
// certificate for it, and adopts the running pods, which keep running.
func followNodeIP(ctx context.Context, cfg config.Agent, log *slog.Logger, run func(context.Context, config.Agent) error) error {
	exclude := []*net.IPNet{cfg.ServiceCIDR, cfg.ClusterCIDR}
	detect := func() net.IP { return identity.DefaultAddress(exclude...) }
	if cfg.NodeIP = detect(); cfg.NodeIP == nil {
		log.Warn("this machine has no address other nodes can reach (no default route, no global address); using 127.0.0.1 until it has one, or set --node-ip")
		cfg.NodeIP = net.IPv4(127, 0, 0, 1)
	}
	for {
		runCtx, cancel := context.WithCancel(ctx)
		changed := make(chan net.IP, 1)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			if ip := watchNodeIP(runCtx, cfg.NodeIP, hasAddress, detect); ip != nil {
				changed <- ip
				cancel()
			}
		}()
		err := run(runCtx, cfg)
		cancel()
		<-watched
		select {
		case ip := <-changed:
			if ctx.Err() == nil {
				log.Info("the node IP changed; the agent starts again with the new one (pods keep running)", "from", cfg.NodeIP, "to", ip)
				cfg.NodeIP = ip
				continue
			}
		default:
		}
		return err
	}
}

// watchNodeIP returns the node's new address once current is no longer
// one of the machine's (and detect finds another), or nil when ctx ends.
func watchNodeIP(ctx context.Context, current net.IP, has func(net.IP) bool, detect func() net.IP) net.IP {
	tick := time.NewTicker(nodeIPCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if ip := nextNodeIP(current, has, detect); ip != nil {
			return ip
		}
	}
}

// nextNodeIP is the address the node should move to, or nil to stay: it
// moves only when its address is gone from the machine (or was the
// loopback stand-in) and another usable one is there. An address that is
// only added, or the default route moving between two addresses the
// machine still has, changes nothing.
func nextNodeIP(current net.IP, has func(net.IP) bool, detect func() net.IP) net.IP {
	if identity.Usable(current) && has(current) {
		return nil
	}
	ip := detect()
	if ip == nil || ip.Equal(current) {
		return nil
	}
	return ip
}

// hasAddress reports whether ip is one of the machine's addresses.
func hasAddress(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: stay
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
