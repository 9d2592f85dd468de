package network

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// iptables chains owned by the pod network. The service proxy owns its own
// SKIFF-* chains and never touches these.
const (
	chainForward     = "SKIFF-FORWARD"
	chainPostrouting = "SKIFF-POSTROUTING"
	chainHostPorts   = "SKIFF-HOSTPORTS"
)

// jump is a rule in a built-in chain that sends traffic to one of ours.
type jump struct {
	table, chain string
	first        bool // insert at the top rather than append
	rule         []string
}

func (n *Network) jumps() []jump {
	return []jump{
		// First, because hosts with Docker set the FORWARD policy to DROP
		// and append their own rejecting rules.
		{"filter", "FORWARD", true, []string{"-m", "comment", "--comment", "skiff pod network", "-j", chainForward}},
		{"nat", "POSTROUTING", false, []string{"-m", "comment", "--comment", "skiff pod network", "-j", chainPostrouting}},
		{"nat", "PREROUTING", false, []string{"-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment", "skiff host ports", "-j", chainHostPorts}},
		{"nat", "OUTPUT", false, []string{"-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment", "skiff host ports", "-j", chainHostPorts}},
	}
}

// ensureRules writes our chains from the IPAM state and adds the jumps to
// them. Safe to repeat: the chains are flushed and rebuilt, jumps are only
// added when missing.
func (n *Network) ensureRules() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.syncRulesLocked(); err != nil {
		return err
	}
	return n.inNodeNS(func() error {
		ipt, err := iptables.New(iptables.Timeout(5))
		if err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
		for _, j := range n.jumps() {
			ok, err := ipt.Exists(j.table, j.chain, j.rule...)
			if err != nil {
				return fmt.Errorf("check jump %s/%s: %w", j.table, j.chain, err)
			}
			if ok {
				continue
			}
			if j.first {
				err = ipt.Insert(j.table, j.chain, 1, j.rule...)
			} else {
				err = ipt.Append(j.table, j.chain, j.rule...)
			}
			if err != nil {
				return fmt.Errorf("add jump %s/%s -> %s: %w", j.table, j.chain, j.rule[len(j.rule)-1], err)
			}
		}
		return nil
	})
}

// syncRulesLocked rebuilds our chains in one iptables-restore transaction.
// Caller holds n.mu.
func (n *Network) syncRulesLocked() error {
	pods, err := n.ipam.all()
	if err != nil {
		return err
	}
	data := n.rules(pods)
	return n.inNodeNS(func() error {
		cmd := exec.Command("iptables-restore", "-w", "5", "--noflush")
		cmd.Stdin = bytes.NewReader(data)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// rules renders our chains. Declaring a chain in --noflush mode empties it,
// so the result replaces the previous content exactly.
func (n *Network) rules(pods map[string]podRecord) []byte {
	cluster := n.cfg.ClusterCIDR.String()
	var b bytes.Buffer
	w := func(args ...string) { b.WriteString(strings.Join(args, " ") + "\n") }

	w("*filter")
	w(":" + chainForward + " - [0:0]")
	w("-A", chainForward, "-s", cluster, "-m comment --comment", `"from pods"`, "-j ACCEPT")
	w("-A", chainForward, "-d", cluster, "-m comment --comment", `"to pods"`, "-j ACCEPT")
	w("COMMIT")

	type entry struct {
		uid string
		ip  net.IP
		pm  PortMapping
	}
	var entries []entry
	for uid, rec := range pods {
		ip := net.ParseIP(rec.IP)
		if ip == nil {
			continue
		}
		for _, pm := range rec.Ports {
			if hip := net.ParseIP(pm.HostIP); hip != nil && hip.To4() == nil && !hip.IsUnspecified() {
				continue // an IPv6 host IP does not apply to this IPv4 network
			}
			if pm.HostPort > 0 && pm.ContainerPort > 0 {
				entries = append(entries, entry{uid, ip, pm})
			}
		}
	}
	// A stable order keeps the output identical across restarts.
	sort.Slice(entries, func(i, j int) bool {
		a, c := entries[i], entries[j]
		if a.pm.HostPort != c.pm.HostPort {
			return a.pm.HostPort < c.pm.HostPort
		}
		if a.pm.Protocol != c.pm.Protocol {
			return a.pm.Protocol < c.pm.Protocol
		}
		return a.uid < c.uid
	})

	w("*nat")
	w(":" + chainPostrouting + " - [0:0]")
	w(":" + chainHostPorts + " - [0:0]")
	for _, e := range entries {
		// A pod of this node reaching a host port (its own included) gets
		// the reply through the gateway only if its source is rewritten;
		// otherwise the target would answer it directly over the bridge.
		w("-A", chainPostrouting, "-s", n.cfg.PodCIDR.String(), "-d", e.ip.String()+"/32", "-p", proto(e.pm.Protocol),
			"-m", proto(e.pm.Protocol), "--dport", strconv.Itoa(int(e.pm.ContainerPort)),
			"-m conntrack --ctstate DNAT -m comment --comment", `"host port hairpin"`, "-j MASQUERADE")
	}
	w("-A", chainPostrouting, "-s", cluster, "!", "-d", cluster, "-m comment --comment", `"pods to outside"`, "-j MASQUERADE")
	for _, e := range entries {
		args := []string{"-A", chainHostPorts}
		if hip := net.ParseIP(e.pm.HostIP); hip != nil && !hip.IsUnspecified() {
			args = append(args, "-d", hip.String()+"/32")
		}
		args = append(args, "-p", proto(e.pm.Protocol), "-m", proto(e.pm.Protocol), "--dport", strconv.Itoa(int(e.pm.HostPort)),
			"-m comment --comment", strconv.Quote("pod "+e.uid),
			"-j DNAT --to-destination", net.JoinHostPort(e.ip.String(), strconv.Itoa(int(e.pm.ContainerPort))))
		w(args...)
	}
	w("COMMIT")
	return b.Bytes()
}

func proto(p string) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(p)
}
