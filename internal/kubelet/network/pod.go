package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// hostVethName is the host end of a pod's veth. It derives from the pod UID
// so Teardown finds it after an agent restart without extra state.
func hostVethName(podUID string) string {
	sum := sha256.Sum256([]byte(podUID))
	return hostVethPrefix + hex.EncodeToString(sum[:])[:12]
}

// Setup connects a pod: a veth pair (host end on skiff0 with hairpin on,
// pod end eth0 inside netnsPath), an address from PodCIDR (the same pod UID
// gets the same address back), a default route via the gateway, and DNAT
// rules for its host ports. Returns the pod's IP. Idempotent.
func (n *Network) Setup(ctx context.Context, podUID, netnsPath string, ports []PortMapping) (net.IP, error) {
	select {
	case <-n.ready:
	default:
		return nil, errors.New("pod network is not set up yet")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()

	old, existed := n.ipam.get(podUID)
	ip, err := n.ipam.allocate(podUID, ports)
	if err != nil {
		return nil, err
	}
	if err := n.connect(podUID, netnsPath, ip); err != nil {
		if !existed {
			n.deleteHostVeth(podUID)
			if rerr := n.ipam.release(podUID); rerr != nil {
				n.log.Warn("release address after failed setup", "pod", podUID, "err", rerr)
			}
		}
		return nil, fmt.Errorf("connect pod %s: %w", podUID, err)
	}
	// Most pods have no host ports: spare them an iptables-restore.
	if len(ports) > 0 || len(old.Ports) > 0 {
		if err := n.syncRulesLocked(); err != nil {
			return nil, fmt.Errorf("host ports of pod %s: %w", podUID, err)
		}
	}
	n.log.Debug("pod connected", "pod", podUID, "ip", ip, "ports", len(ports))
	return ip, nil
}

// Teardown disconnects a pod: removes its veth and host-port rules and frees
// its address. Idempotent; works when the netns is already gone.
func (n *Network) Teardown(ctx context.Context, podUID string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.deleteHostVeth(podUID); err != nil {
		return fmt.Errorf("disconnect pod %s: %w", podUID, err)
	}
	rec, held := n.ipam.get(podUID)
	if ip := net.ParseIP(rec.IP); held && ip != nil {
		if br, err := n.nl.LinkByName(BridgeName); err == nil {
			n.forgetNeigh(br, ip)
		}
	}
	if err := n.ipam.release(podUID); err != nil {
		return err
	}
	if held && len(rec.Ports) > 0 {
		if err := n.syncRulesLocked(); err != nil {
			return fmt.Errorf("remove host ports of pod %s: %w", podUID, err)
		}
	}
	return nil
}

// forgetNeigh drops the node's ARP entry for a pod address, if any.
func (n *Network) forgetNeigh(br netlink.Link, ip net.IP) {
	_ = n.nl.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, Family: netlink.FAMILY_V4, IP: ip})
}

func (n *Network) deleteHostVeth(podUID string) error {
	l, err := n.nl.LinkByName(hostVethName(podUID))
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up veth: %w", err)
	}
	// Deleting one end deletes the pod's eth0 too.
	if err := n.nl.LinkDel(l); err != nil {
		return fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err)
	}
	return nil
}

// connect builds (or verifies) the pod's link. A half-built link from an
// interrupted attempt is removed and built again.
func (n *Network) connect(podUID, netnsPath string, ip net.IP) error {
	podNS, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("open pod netns %s: %w", netnsPath, err)
	}
	defer podNS.Close()
	pnl, err := netlink.NewHandleAt(podNS)
	if err != nil {
		return fmt.Errorf("netlink in pod netns: %w", err)
	}
	defer pnl.Close()

	br, err := n.nl.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", BridgeName, err)
	}
	addr := &net.IPNet{IP: ip, Mask: n.cfg.PodCIDR.Mask}
	hostName := hostVethName(podUID)

	if n.connected(pnl, hostName, br, addr) {
		return n.configurePod(pnl, addr)
	}
	if err := n.deleteHostVeth(podUID); err != nil {
		return err
	}
	if old, err := pnl.LinkByName(podIfName); err == nil {
		if err := pnl.LinkDel(old); err != nil {
			return fmt.Errorf("remove stale %s in pod: %w", podIfName, err)
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hostName, MTU: n.mtu},
		PeerName:      podIfName,
		PeerNamespace: netlink.NsFd(podNS),
		PeerMTU:       uint32(n.mtu),
	}
	if err := n.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", hostName, err)
	}
	host, err := n.nl.LinkByName(hostName)
	if err != nil {
		return fmt.Errorf("look up veth %s: %w", hostName, err)
	}
	if err := n.nl.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", hostName, BridgeName, err)
	}
	// Hairpin lets a pod reach itself through a service or host port: the
	// NATed packet goes back out of the port it came in on.
	if err := n.nl.LinkSetHairpin(host, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", hostName, err)
	}
	if err := n.nl.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring %s up: %w", hostName, err)
	}
	// The address may have been someone else's a moment ago (or this
	// pod's old link): forget its MAC so the node asks again.
	n.forgetNeigh(br, ip)
	return n.configurePod(pnl, addr)
}

// connected reports whether the pod already has a working link: our host
// veth on the bridge whose peer is the pod's eth0 holding addr.
func (n *Network) connected(pnl *netlink.Handle, hostName string, br netlink.Link, addr *net.IPNet) bool {
	host, err := n.nl.LinkByName(hostName)
	if err != nil {
		return false
	}
	if _, ok := host.(*netlink.Veth); !ok || host.Attrs().MasterIndex != br.Attrs().Index {
		return false
	}
	eth0, err := pnl.LinkByName(podIfName)
	if err != nil {
		return false
	}
	// A veth's link attribute is its peer's index (in the peer's netns).
	if _, ok := eth0.(*netlink.Veth); !ok || host.Attrs().ParentIndex != eth0.Attrs().Index || eth0.Attrs().ParentIndex != host.Attrs().Index {
		return false
	}
	addrs, err := pnl.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IPNet.String() == addr.String() {
			return true
		}
	}
	return false
}

// configurePod sets the pod side: address, MTU, links up, default route.
func (n *Network) configurePod(pnl *netlink.Handle, addr *net.IPNet) error {
	if lo, err := pnl.LinkByName("lo"); err == nil {
		if err := pnl.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring lo up in pod: %w", err)
		}
	}
	eth0, err := pnl.LinkByName(podIfName)
	if err != nil {
		return fmt.Errorf("look up %s in pod: %w", podIfName, err)
	}
	if eth0.Attrs().MTU != n.mtu {
		if err := pnl.LinkSetMTU(eth0, n.mtu); err != nil {
			return fmt.Errorf("set pod MTU: %w", err)
		}
	}
	if err := pnl.AddrReplace(eth0, &netlink.Addr{IPNet: addr}); err != nil {
		return fmt.Errorf("add %s to pod: %w", addr, err)
	}
	if err := pnl.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("bring pod %s up: %w", podIfName, err)
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: n.gateway.IP}
	if err := pnl.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s in pod: %w", n.gateway.IP, err)
	}
	return nil
}
