package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// resyncEvery repairs entries someone else removed (and retries failures)
// even when no Node changes.
const resyncEvery = 30 * time.Second

// peer is another node as the overlay needs it.
type peer struct {
	name    string
	podCIDR *net.IPNet
	nodeIP  net.IP
	mac     net.HardwareAddr // vxlan only
}

// vtep is the address of a node's VXLAN device: the .0 of its podCIDR, as a
// /32 (flannel's scheme). Routes to a node's pods go via it, onlink.
func vtep(podCIDR *net.IPNet) net.IP { return nthIP(podCIDR, 0) }

// ensureVXLAN creates or repairs the VXLAN device and returns it.
func (n *Network) ensureVXLAN() (netlink.Link, error) {
	mac := stableMAC("vtep", n.cfg.NodeName)
	want := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: VXLANName, MTU: n.mtu, HardwareAddr: mac},
		VxlanId:   VXLANID,
		SrcAddr:   n.cfg.NodeIP,
		Port:      VXLANPort,
		Learning:  false,
	}
	l, err := n.nl.LinkByName(VXLANName)
	if err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.VxlanId != VXLANID || vx.Port != VXLANPort || !vx.SrcAddr.Equal(n.cfg.NodeIP) || vx.Learning {
			// The node's address changed (or someone else made the
			// device): VXLAN attributes cannot be changed in place.
			n.log.Info("recreating the VXLAN device", "nodeIP", n.cfg.NodeIP)
			if err := n.nl.LinkDel(l); err != nil {
				return nil, fmt.Errorf("remove stale %s: %w", VXLANName, err)
			}
			l = nil
		}
	} else {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, fmt.Errorf("look up %s: %w", VXLANName, err)
		}
		l = nil
	}
	if l == nil {
		if err := n.nl.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("create %s: %w", VXLANName, err)
		}
		if l, err = n.nl.LinkByName(VXLANName); err != nil {
			return nil, fmt.Errorf("look up %s: %w", VXLANName, err)
		}
	}
	if l.Attrs().MTU != n.mtu {
		if err := n.nl.LinkSetMTU(l, n.mtu); err != nil {
			return nil, fmt.Errorf("set %s MTU: %w", VXLANName, err)
		}
	}
	if l.Attrs().HardwareAddr.String() != mac.String() {
		if err := n.nl.LinkSetHardwareAddr(l, mac); err != nil {
			return nil, fmt.Errorf("set %s MAC: %w", VXLANName, err)
		}
	}
	if err := n.replaceAddrs(l, &net.IPNet{IP: vtep(n.cfg.PodCIDR), Mask: net.CIDRMask(32, 32)}); err != nil {
		return nil, err
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("bring %s up: %w", VXLANName, err)
	}
	return l, nil
}

// runOverlay follows the Nodes and converges routes (and, for vxlan, the
// neighbour and FDB entries) until ctx ends.
func (n *Network) runOverlay(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(n.cfg.Client, 0)
	nodes := factory.Core().V1().Nodes()
	poke := make(chan struct{}, 1)
	trigger := func() {
		select {
		case poke <- struct{}{}:
		default:
		}
	}
	_, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { trigger() },
		UpdateFunc: func(oldObj, newObj any) {
			// Status heartbeats are frequent; only what the overlay
			// uses matters.
			o, ok1 := oldObj.(*corev1.Node)
			nw, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || overlayKey(o) != overlayKey(nw) {
				trigger()
			}
		},
		DeleteFunc: func(any) { trigger() },
	})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return nil // ctx ended
	}
	trigger()
	ticker := time.NewTicker(resyncEvery)
	defer ticker.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-retry:
		case <-poke:
		}
		retry = nil
		if err := n.syncOverlay(ctx, nodes.Lister()); err != nil {
			n.log.Warn("overlay sync failed; retrying", "err", err)
			retry = time.After(2 * time.Second)
		}
	}
}

// overlayKey is what of a Node the overlay depends on.
func overlayKey(node *corev1.Node) string {
	b, _ := json.Marshal([]string{node.Spec.PodCIDR, internalIP(node), node.Annotations[VXLANMACKey]})
	return string(b)
}

func internalIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP && net.ParseIP(a.Address).To4() != nil {
			return a.Address
		}
	}
	return ""
}

// syncOverlay publishes our VTEP MAC and converges the kernel's entries to
// the current Nodes.
func (n *Network) syncOverlay(ctx context.Context, lister corelisters.NodeLister) error {
	all, err := lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var errs []error
	if n.cfg.Mode == ModeVXLAN {
		if err := n.publishMAC(ctx, lister); err != nil {
			errs = append(errs, err)
		}
	}
	peers := n.peers(all)
	switch n.cfg.Mode {
	case ModeVXLAN:
		errs = append(errs, n.syncVXLAN(peers))
	case ModeHostGW:
		errs = append(errs, n.syncHostGW(peers))
	}
	return errors.Join(errs...)
}

// publishMAC sets our Node's VTEP MAC annotation when it is missing or
// wrong, so the other nodes can reach us.
func (n *Network) publishMAC(ctx context.Context, lister corelisters.NodeLister) error {
	mac := stableMAC("vtep", n.cfg.NodeName).String()
	self, err := lister.Get(n.cfg.NodeName)
	if err == nil && self.Annotations[VXLANMACKey] == mac {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{VXLANMACKey: mac}}})
	if _, err := n.cfg.Client.CoreV1().Nodes().Patch(ctx, n.cfg.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate node %s with the VTEP MAC: %w", n.cfg.NodeName, err)
	}
	n.log.Info("published VTEP MAC", "mac", mac)
	return nil
}

// peers are the other nodes that can be reached: they have a podCIDR inside
// the cluster CIDR, an InternalIP and (vxlan) a VTEP MAC.
func (n *Network) peers(nodes []*corev1.Node) []peer {
	var out []peer
	for _, node := range nodes {
		if node.Name == n.cfg.NodeName || node.DeletionTimestamp != nil {
			continue
		}
		_, cidr, err := net.ParseCIDR(node.Spec.PodCIDR)
		if err != nil || cidr.IP.To4() == nil || !n.cfg.ClusterCIDR.Contains(cidr.IP) || cidr.String() == n.cfg.PodCIDR.String() {
			continue
		}
		ip := net.ParseIP(internalIP(node)).To4()
		if ip == nil || ip.Equal(n.cfg.NodeIP) {
			continue
		}
		p := peer{name: node.Name, podCIDR: &net.IPNet{IP: cidr.IP.To4(), Mask: cidr.Mask}, nodeIP: ip}
		if n.cfg.Mode == ModeVXLAN {
			mac, err := net.ParseMAC(node.Annotations[VXLANMACKey])
			if err != nil {
				continue
			}
			p.mac = mac
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (n *Network) syncVXLAN(peers []peer) error {
	l, err := n.ensureVXLAN()
	if err != nil {
		return err
	}
	idx := l.Attrs().Index
	var want []*netlink.Route
	neighs := map[string]net.HardwareAddr{} // vtep IP → MAC
	fdb := map[string]net.IP{}              // MAC → node IP
	for _, p := range peers {
		want = append(want, &netlink.Route{LinkIndex: idx, Dst: p.podCIDR, Gw: vtep(p.podCIDR), Flags: int(netlink.FLAG_ONLINK)})
		neighs[vtep(p.podCIDR).String()] = p.mac
		fdb[p.mac.String()] = p.nodeIP
	}
	var errs []error
	// Order matters for a new peer: the FDB and neighbour entries must be
	// there before the route sends traffic to the device.
	errs = append(errs, n.syncFDB(idx, fdb), n.syncNeighs(idx, neighs), n.syncRoutes(want))
	return errors.Join(errs...)
}

func (n *Network) syncHostGW(peers []peer) error {
	var want []*netlink.Route
	for _, p := range peers {
		want = append(want, &netlink.Route{Dst: p.podCIDR, Gw: p.nodeIP})
	}
	return n.syncRoutes(want)
}

// syncRoutes makes the routes to other nodes' podCIDRs exactly want: routes
// in the main table to a subnet of the cluster CIDR (other than our own
// podCIDR) are ours.
func (n *Network) syncRoutes(want []*netlink.Route) error {
	have, err := n.nl.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: syscall.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list routes: %w", err)
	}
	keep := map[string]bool{}
	for _, r := range want {
		keep[r.Dst.String()] = true
	}
	var errs []error
	clusterOnes, _ := n.cfg.ClusterCIDR.Mask.Size()
	for _, r := range have {
		if r.Dst == nil || !n.cfg.ClusterCIDR.Contains(r.Dst.IP) || r.Dst.String() == n.cfg.PodCIDR.String() {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones < clusterOnes || ones == 32 || keep[r.Dst.String()] {
			continue
		}
		if err := n.nl.RouteDel(&r); err == nil {
			n.log.Info("removed route to a departed node", "podCIDR", r.Dst)
		} else if !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("remove route to %s: %w", r.Dst, err))
		}
	}
	for _, r := range want {
		if err := n.nl.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", r.Dst, r.Gw, err))
		}
	}
	return errors.Join(errs...)
}

// syncNeighs makes the permanent ARP entries on the VXLAN device exactly
// want (remote VTEP IP → remote VTEP MAC).
func (n *Network) syncNeighs(idx int, want map[string]net.HardwareAddr) error {
	have, err := n.nl.NeighList(idx, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list neighbours of %s: %w", VXLANName, err)
	}
	var errs []error
	for _, nb := range have {
		if mac, ok := want[nb.IP.String()]; ok && mac.String() == nb.HardwareAddr.String() {
			continue
		}
		if nb.State&netlink.NUD_PERMANENT == 0 {
			continue
		}
		if err := n.nl.NeighDel(&nb); err != nil {
			errs = append(errs, fmt.Errorf("remove neighbour %s: %w", nb.IP, err))
		}
	}
	for ip, mac := range want {
		nb := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: net.ParseIP(ip), HardwareAddr: mac}
		if err := n.nl.NeighSet(nb); err != nil {
			errs = append(errs, fmt.Errorf("neighbour %s → %s: %w", ip, mac, err))
		}
	}
	return errors.Join(errs...)
}

// syncFDB makes the VXLAN forwarding entries exactly want (remote VTEP MAC
// → remote node IP).
func (n *Network) syncFDB(idx int, want map[string]net.IP) error {
	have, err := n.nl.NeighList(idx, syscall.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list FDB of %s: %w", VXLANName, err)
	}
	var errs []error
	for _, e := range have {
		if ip, ok := want[e.HardwareAddr.String()]; ok && ip.Equal(e.IP) {
			continue
		}
		if err := n.nl.NeighDel(&e); err != nil {
			errs = append(errs, fmt.Errorf("remove FDB entry %s: %w", e.HardwareAddr, err))
		}
	}
	for mac, ip := range want {
		hw, _ := net.ParseMAC(mac)
		e := &netlink.Neigh{LinkIndex: idx, Family: syscall.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, IP: ip, HardwareAddr: hw}
		if err := n.nl.NeighSet(e); err != nil {
			errs = append(errs, fmt.Errorf("FDB %s → %s: %w", mac, ip, err))
		}
	}
	return errors.Join(errs...)
}
