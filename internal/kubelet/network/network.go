// Package network is the node's pod network: a bridge (skiff0) that every
// pod joins through a veth pair, addresses from the node's podCIDR (IPAM in
// bbolt), host ports and masquerading in iptables, and an overlay (VXLAN or
// plain routes) that reaches the pods of the other nodes.
package network

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"k8s.io/client-go/kubernetes"
)

// Names shared with the rest of skiff (proxy, DNS, end-to-end tests).
const (
	BridgeName       = "skiff0"
	VXLANName        = "skiff.vxlan"
	VXLANID          = 1
	VXLANPort        = 8472
	VXLANMACKey      = "skiff.io/vxlan-mac"
	podIfName        = "eth0"
	vxlanOverhead    = 50
	hostVethPrefix   = "skf"
	defaultUplinkMTU = 1500
)

// Mode selects how pods on other nodes are reached.
type Mode string

const (
	// ModeVXLAN encapsulates pod traffic in VXLAN between node addresses,
	// so nodes only need to reach each other by IP (any L3 network).
	ModeVXLAN Mode = "vxlan"
	// ModeHostGW routes each node's podCIDR via the node's address; the
	// nodes must share an L2 segment.
	ModeHostGW Mode = "host-gw"
)

// Config describes the node's pod network.
type Config struct {
	StateFile   string     // bbolt IPAM state, e.g. <data-dir>/agent/network.db
	NodeName    string     // our Node object
	NodeIP      net.IP     // this node's InternalIP (the overlay's underlay address)
	PodCIDR     *net.IPNet // this node's podCIDR
	ClusterCIDR *net.IPNet // all pods of the cluster, e.g. 10.42.0.0/16
	ServiceCIDR *net.IPNet // service IPs; informational (the proxy owns service traffic)
	Mode        Mode       // "" = vxlan
	// MTU of pod interfaces; 0 = MTU of the interface holding NodeIP minus the
	// overlay's overhead.
	MTU int
	// Client watches Nodes for the overlay and publishes our VTEP MAC. Nil
	// runs a single-node network (no overlay sync).
	Client kubernetes.Interface
	Logger *slog.Logger
	// NetNS is the path of the network namespace that is the "host" side of
	// this network (bridge, iptables, overlay). "" = the caller's own
	// namespace, as in the agent. Tests use it to run several nodes in one
	// process.
	NetNS string
}

// PortMapping is a pod's hostPort.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // TCP, UDP or SCTP; "" = TCP
	HostIP        string `json:"hostIP,omitempty"`
}

// Network is the pod network of one node. Run sets it up; Setup and
// Teardown connect and disconnect pods once Ready is closed.
type Network struct {
	cfg     Config
	log     *slog.Logger
	ipam    *ipam
	nl      *netlink.Handle // netlink in the node's namespace
	gateway *net.IPNet      // first address of PodCIDR, on the bridge

	ready     chan struct{}
	closeOnce sync.Once

	// mu serialises pod connects/disconnects with the rebuild of the
	// host-port rules, which are generated from the IPAM state.
	mu  sync.Mutex
	mtu int
}

// New validates cfg and opens the IPAM state. It changes nothing on the node.
func New(cfg Config) (*Network, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeVXLAN
	}
	if cfg.Mode != ModeVXLAN && cfg.Mode != ModeHostGW {
		return nil, fmt.Errorf("pod network: unknown mode %q (want %q or %q)", cfg.Mode, ModeVXLAN, ModeHostGW)
	}
	switch {
	case cfg.StateFile == "":
		return nil, errors.New("pod network: no state file")
	case cfg.NodeName == "":
		return nil, errors.New("pod network: no node name")
	case cfg.NodeIP.To4() == nil:
		return nil, fmt.Errorf("pod network: node IP %v is not IPv4", cfg.NodeIP)
	case cfg.PodCIDR == nil || cfg.ClusterCIDR == nil:
		return nil, errors.New("pod network: podCIDR and cluster CIDR are required")
	case !cfg.ClusterCIDR.Contains(cfg.PodCIDR.IP):
		return nil, fmt.Errorf("pod network: podCIDR %s is outside the cluster CIDR %s", cfg.PodCIDR, cfg.ClusterCIDR)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.NodeIP = cfg.NodeIP.To4()
	cfg.PodCIDR = &net.IPNet{IP: cfg.PodCIDR.IP.Mask(cfg.PodCIDR.Mask).To4(), Mask: cfg.PodCIDR.Mask}
	cfg.ClusterCIDR = &net.IPNet{IP: cfg.ClusterCIDR.IP.Mask(cfg.ClusterCIDR.Mask).To4(), Mask: cfg.ClusterCIDR.Mask}

	var nl *netlink.Handle
	var err error
	if cfg.NetNS == "" {
		nl, err = netlink.NewHandle()
	} else {
		var ns netns.NsHandle
		ns, err = netns.GetFromPath(cfg.NetNS)
		if err == nil {
			nl, err = netlink.NewHandleAt(ns)
			ns.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pod network: netlink in %q: %w", cfg.NetNS, err)
	}
	a, err := openIPAM(cfg.StateFile, cfg.PodCIDR)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("pod network: %w", err)
	}
	return &Network{
		cfg:     cfg,
		log:     cfg.Logger,
		ipam:    a,
		nl:      nl,
		gateway: &net.IPNet{IP: nthIP(cfg.PodCIDR, 1), Mask: cfg.PodCIDR.Mask},
		ready:   make(chan struct{}),
	}, nil
}

// Ready is closed once the node is set up and pods can be connected.
func (n *Network) Ready() <-chan struct{} { return n.ready }

// Run sets up the node (bridge, sysctls, iptables chains, overlay device),
// then keeps the overlay in sync with the Nodes until ctx ends. Pods stay
// connected when Run returns: stopping the agent must not cut them off. Run
// closes the Network when it returns; call it once.
func (n *Network) Run(ctx context.Context) error {
	defer n.Close()
	if err := n.setupNode(); err != nil {
		return err
	}
	close(n.ready)
	n.log.Info("pod network ready", "podCIDR", n.cfg.PodCIDR, "mode", n.cfg.Mode, "mtu", n.mtu)
	if n.cfg.Client == nil {
		n.log.Warn("no API client: pods of other nodes are not reachable")
		<-ctx.Done()
		return nil
	}
	return n.runOverlay(ctx)
}

// Close releases the state file and netlink socket. Idempotent. It does not
// disconnect pods.
func (n *Network) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		err = n.ipam.close()
		n.nl.Close()
	})
	return err
}

// PodIP returns the address held by a pod (after an agent restart too).
func (n *Network) PodIP(podUID string) (net.IP, bool) {
	rec, ok := n.ipam.get(podUID)
	if !ok {
		return nil, false
	}
	ip := net.ParseIP(rec.IP)
	return ip, ip != nil
}

// setupNode creates or repairs everything node-wide. Each step is
// idempotent, so an agent restart converges without disturbing pods.
func (n *Network) setupNode() error {
	uplink, err := n.uplinkMTU()
	if err != nil {
		return err
	}
	n.mtu = n.cfg.MTU
	if n.mtu == 0 {
		n.mtu = uplink
		if n.cfg.Mode == ModeVXLAN {
			n.mtu -= vxlanOverhead
		}
	}
	if err := n.ensureBridge(); err != nil {
		return err
	}
	if err := n.setSysctls(); err != nil {
		return err
	}
	if err := n.ensureRules(); err != nil {
		return err
	}
	switch n.cfg.Mode {
	case ModeVXLAN:
		if _, err := n.ensureVXLAN(); err != nil {
			return err
		}
	case ModeHostGW:
		// A node switched from vxlan: the old device and its routes must go.
		if l, err := n.nl.LinkByName(VXLANName); err == nil {
			if err := n.nl.LinkDel(l); err != nil {
				return fmt.Errorf("remove %s: %w", VXLANName, err)
			}
		}
	}
	return nil
}

// uplinkMTU is the MTU of the interface that holds NodeIP.
func (n *Network) uplinkMTU() (int, error) {
	addrs, err := n.nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if !a.IP.Equal(n.cfg.NodeIP) {
			continue
		}
		l, err := n.nl.LinkByIndex(a.LinkIndex)
		if err != nil {
			return 0, fmt.Errorf("uplink of %s: %w", n.cfg.NodeIP, err)
		}
		if l.Attrs().Flags&net.FlagLoopback != 0 {
			// A node on loopback (a single-node setup): loopback's 64 KiB
			// MTU is more than a bridge takes.
			return defaultUplinkMTU, nil
		}
		return l.Attrs().MTU, nil
	}
	n.log.Warn("node IP is on no interface; assuming MTU 1500", "nodeIP", n.cfg.NodeIP)
	return defaultUplinkMTU, nil
}

func (n *Network) ensureBridge() error {
	l, err := n.nl.LinkByName(BridgeName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("look up %s: %w", BridgeName, err)
		}
		// A fixed MAC keeps the gateway's address stable: by default a
		// bridge takes the lowest MAC of its ports, which changes as pods
		// come and go and leaves stale ARP entries in other pods.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: n.mtu, HardwareAddr: stableMAC("bridge", n.cfg.NodeName)}}
		if err := n.nl.LinkAdd(br); err != nil {
			return fmt.Errorf("create %s: %w", BridgeName, err)
		}
		if l, err = n.nl.LinkByName(BridgeName); err != nil {
			return fmt.Errorf("look up %s: %w", BridgeName, err)
		}
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return fmt.Errorf("%s exists and is a %s, not a bridge", BridgeName, l.Type())
	}
	if l.Attrs().MTU != n.mtu {
		if err := n.nl.LinkSetMTU(l, n.mtu); err != nil {
			return fmt.Errorf("set %s MTU %d: %w", BridgeName, n.mtu, err)
		}
	}
	if err := n.replaceAddrs(l, n.gateway); err != nil {
		return err
	}
	if err := n.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", BridgeName, err)
	}
	return nil
}

// replaceAddrs makes want the only IPv4 address of l (the podCIDR may have
// changed since the last run).
func (n *Network) replaceAddrs(l netlink.Link, want *net.IPNet) error {
	addrs, err := n.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() != want.String() {
			if err := n.nl.AddrDel(l, &a); err != nil {
				return fmt.Errorf("remove stale address %s from %s: %w", a.IPNet, l.Attrs().Name, err)
			}
		}
	}
	if err := n.nl.AddrReplace(l, &netlink.Addr{IPNet: want}); err != nil {
		return fmt.Errorf("add %s to %s: %w", want, l.Attrs().Name, err)
	}
	return nil
}

func (n *Network) setSysctls() error {
	return n.inNodeNS(func() error {
		if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
			return fmt.Errorf("enable IP forwarding: %w", err)
		}
		// Without it, replies between two pods on the bridge bypass
		// conntrack, so service and host-port NAT would not be undone.
		if err := writeSysctl("net/bridge/bridge-nf-call-iptables", "1"); err != nil {
			n.log.Warn("cannot enable bridge-nf-call-iptables (is br_netfilter loaded?); same-node service traffic may break", "err", err)
		}
		return nil
	})
}

// stableMAC derives a locally administered unicast MAC from a name, so a
// recreated device keeps its address (and peers' entries stay valid).
func stableMAC(kind, name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("skiff/" + kind + "/" + name))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] &^ 0x01) | 0x02
	return mac
}
