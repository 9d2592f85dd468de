package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"skiff/internal/config"
)

// Chain names. The pod network package owns SKIFF-FORWARD,
// SKIFF-POSTROUTING and SKIFF-HOSTPORTS; every chain here is the proxy's.
const (
	chainServices    = "SKIFF-SERVICES"
	chainNodePorts   = "SKIFF-NODEPORTS"
	chainMarkMasq    = "SKIFF-MARK-MASQ"
	chainPostrouting = "SKIFF-PROXY-POSTROUTING"
	chainFilter      = "SKIFF-PROXY-FILTER"

	prefixSvc   = "SKIFF-SVC-" // all ready endpoints of a service port
	prefixLocal = "SKIFF-SVL-" // the ready endpoints on this node (traffic policy Local)
	prefixExt   = "SKIFF-EXT-" // traffic from outside: NodePort, LoadBalancer, external IPs
	prefixSep   = "SKIFF-SEP-" // one endpoint: DNAT
)

// perServicePrefixes are the prefixes of chains that come and go with
// services; a chain with one of them that the new ruleset does not name
// is stale and is deleted.
var perServicePrefixes = [...]string{prefixSvc, prefixLocal, prefixExt, prefixSep}

const (
	// labelServiceProxyName marks a Service as handled by another proxy.
	labelServiceProxyName = "service.kubernetes.io/service-proxy-name"

	masqMark = "0x4000/0x4000"
	// defaultAffinitySeconds is Kubernetes' default ClientIP timeout (3h).
	defaultAffinitySeconds = 10800
)

// RuleConfig is what BuildRules needs to know about this node.
type RuleConfig struct {
	NodeName string
	// NodeIPs are the addresses NodePorts and LoadBalancer ports answer
	// on. Empty means every local address.
	NodeIPs []net.IP
	// ClusterCIDR is the pod network; traffic to a ClusterIP from outside
	// it is masqueraded. Nil: none is.
	ClusterCIDR *net.IPNet
	// ExistingChains are the nat table's chains now in the kernel; the
	// proxy's per-service chains among them that are no longer wanted
	// are flushed and deleted by the ruleset.
	ExistingChains []string
}

// endpoint is one ready backend of a service port.
type endpoint struct {
	ip    string
	port  int32
	local bool
}

func (e endpoint) String() string { return net.JoinHostPort(e.ip, strconv.Itoa(int(e.port))) }

// servicePort is one port of one service, with everything the rules need.
type servicePort struct {
	name        string // namespace/name:port, for comments and hashes
	protocol    string // tcp, udp, sctp
	clusterIP   string
	port        int32
	nodePort    int32
	externalIPs []string // spec.externalIPs, LoadBalancer ingress and, for LoadBalancers, the node IPs
	affinity    int      // ClientIP affinity timeout in seconds, 0 for none
	extLocal    bool     // externalTrafficPolicy Local
	intLocal    bool     // internalTrafficPolicy Local
	endpoints   []endpoint
}

func (sp *servicePort) hasExternal() bool { return sp.nodePort != 0 || len(sp.externalIPs) > 0 }

func (sp *servicePort) localEndpoints() []endpoint {
	var out []endpoint
	for _, e := range sp.endpoints {
		if e.local {
			out = append(out, e)
		}
	}
	return out
}

// proxied reports whether the proxy programs rules for svc.
func proxied(svc *corev1.Service) bool {
	if svc.Labels[config.LabelNodeLocalDNS] == "true" || svc.Labels[labelServiceProxyName] != "" {
		return false
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	ip := net.ParseIP(svc.Spec.ClusterIP)
	return ip != nil && ip.To4() != nil
}

// servicePorts flattens services and their EndpointSlices into service
// ports in a deterministic order: by namespace, name, then spec order.
func servicePorts(cfg RuleConfig, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []*servicePort {
	byService := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" || s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		key := s.Namespace + "/" + name
		byService[key] = append(byService[key], s)
	}
	svcs := make([]*corev1.Service, 0, len(services))
	for _, s := range services {
		if proxied(s) {
			svcs = append(svcs, s)
		}
	}
	sort.Slice(svcs, func(i, j int) bool {
		if svcs[i].Namespace != svcs[j].Namespace {
			return svcs[i].Namespace < svcs[j].Namespace
		}
		return svcs[i].Name < svcs[j].Name
	})

	var out []*servicePort
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		var external []string
		external = append(external, svc.Spec.ExternalIPs...)
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			// ServiceLB: a LoadBalancer answers on the nodes' own addresses.
			for _, ip := range cfg.NodeIPs {
				external = append(external, ip.String())
			}
			for _, in := range svc.Status.LoadBalancer.Ingress {
				if in.IP != "" {
					external = append(external, in.IP)
				}
			}
		}
		external = ipv4Set(external)
		affinity := 0
		if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			affinity = defaultAffinitySeconds
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				affinity = int(*c.ClientIP.TimeoutSeconds)
			}
		}
		for _, p := range svc.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			sp := &servicePort{
				name:        key + ":" + p.Name,
				protocol:    strings.ToLower(string(proto)),
				clusterIP:   svc.Spec.ClusterIP,
				port:        p.Port,
				nodePort:    p.NodePort,
				externalIPs: external,
				affinity:    affinity,
				extLocal:    svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
				intLocal:    svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
			}
			if svc.Spec.Type != corev1.ServiceTypeNodePort && svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
				sp.nodePort = 0
			}
			sp.endpoints = readyEndpoints(cfg.NodeName, byService[key], p.Name, proto)
			out = append(out, sp)
		}
	}
	return out
}

// readyEndpoints are the ready (serving and not terminating) endpoints
// for the port named portName, deduplicated (one endpoint may be in
// several slices while they are updated) and sorted.
func readyEndpoints(nodeName string, slices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol) []endpoint {
	seen := map[string]bool{}
	var out []endpoint
	for _, s := range slices {
		var port *int32
		for _, p := range s.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if name == portName && pp == proto && p.Port != nil {
				port = p.Port
				break
			}
		}
		if port == nil {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			if e.Conditions.Terminating != nil && *e.Conditions.Terminating {
				continue
			}
			if len(e.Addresses) == 0 || net.ParseIP(e.Addresses[0]).To4() == nil {
				continue
			}
			ep := endpoint{ip: e.Addresses[0], port: *port, local: e.NodeName != nil && *e.NodeName == nodeName}
			if seen[ep.String()] {
				continue
			}
			seen[ep.String()] = true
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := net.ParseIP(out[i].ip).To4(), net.ParseIP(out[j].ip).To4()
		if c := bytes.Compare(a, b); c != 0 {
			return c < 0
		}
		return out[i].port < out[j].port
	})
	return out
}

// ipv4Set keeps the IPv4 addresses of ips, deduplicated and sorted.
func ipv4Set(ips []string) []string {
	var out []string
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
			out = append(out, ip.To4().String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// chainName is a stable chain name for key: the same service port (and
// endpoint) always gets the same chain, across syncs and restarts.
func chainName(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + base32.StdEncoding.EncodeToString(sum[:])[:16]
}

func (sp *servicePort) key() string { return sp.name + "/" + sp.protocol }

func (sp *servicePort) svcChain() string   { return chainName(prefixSvc, sp.key()) }
func (sp *servicePort) localChain() string { return chainName(prefixLocal, sp.key()) }
func (sp *servicePort) extChain() string   { return chainName(prefixExt, sp.key()) }
func (sp *servicePort) sepChain(e endpoint) string {
	return chainName(prefixSep, sp.key()+"/"+e.String())
}

// ruleWriter accumulates one table's chains and their rules.
type ruleWriter struct {
	order []string // chains in the order they were declared
	rules map[string]*bytes.Buffer
}

func newRuleWriter() *ruleWriter { return &ruleWriter{rules: map[string]*bytes.Buffer{}} }

func (w *ruleWriter) declared(name string) bool { _, ok := w.rules[name]; return ok }

func (w *ruleWriter) chain(name string) {
	if w.declared(name) {
		return
	}
	w.order = append(w.order, name)
	w.rules[name] = &bytes.Buffer{}
}

func (w *ruleWriter) rule(chain string, args ...string) {
	w.chain(chain)
	b := w.rules[chain]
	b.WriteString("-A ")
	b.WriteString(chain)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(a)
	}
	b.WriteByte('\n')
}

func comment(s string) string { return `-m comment --comment "` + s + `"` }

// ruleset is the proxy's wanted chains of the filter and nat tables, and
// the stale nat chains to delete.
type ruleset struct {
	filter, nat *ruleWriter
	stale       []string
}

// BuildRules renders the proxy's chains of the nat and filter tables for
// services and their EndpointSlices as iptables-restore input, to be
// applied with --noflush: every proxy chain is declared (so flushed) and
// refilled in one transaction, and stale per-service chains among
// cfg.ExistingChains are deleted. The jumps from the built-in chains are
// not part of it. The output depends only on the inputs, not on their
// order.
func BuildRules(cfg RuleConfig, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []byte {
	return buildRules(cfg, servicePorts(cfg, services, slices)).render(nil)
}

// render writes the ruleset as iptables-restore input. Chains for which
// keep returns true are left out, so left as they are in the kernel.
func (rs *ruleset) render(keep func(table, chain string, rules []byte) bool) []byte {
	var out bytes.Buffer
	table := func(name string, w *ruleWriter, stale []string) {
		fmt.Fprintf(&out, "*%s\n", name)
		var write []string
		for _, c := range w.order {
			if keep == nil || !keep(name, c, w.rules[c].Bytes()) {
				write = append(write, c)
			}
		}
		for _, c := range append(write, stale...) {
			fmt.Fprintf(&out, ":%s - [0:0]\n", c)
		}
		for _, c := range write {
			out.Write(w.rules[c].Bytes())
		}
		for _, c := range stale {
			fmt.Fprintf(&out, "-X %s\n", c)
		}
		out.WriteString("COMMIT\n")
	}
	table("filter", rs.filter, nil)
	table("nat", rs.nat, rs.stale)
	return out.Bytes()
}

func buildRules(cfg RuleConfig, ports []*servicePort) *ruleset {
	nat, filter := newRuleWriter(), newRuleWriter()

	for _, c := range []string{chainServices, chainNodePorts, chainMarkMasq, chainPostrouting} {
		nat.chain(c)
	}
	filter.chain(chainFilter)

	nat.rule(chainMarkMasq, "-j MARK --set-xmark", masqMark)
	nat.rule(chainPostrouting, "-m mark ! --mark", masqMark, "-j RETURN")
	// Clear the mark so a packet that is re-routed (e.g. into a tunnel)
	// is not masqueraded twice.
	nat.rule(chainPostrouting, "-j MARK --set-xmark 0x4000/0x0")
	nat.rule(chainPostrouting, comment("skiff service traffic requiring SNAT"), "-j MASQUERADE")

	nodeDests := []string{"-m addrtype --dst-type LOCAL"}
	if len(cfg.NodeIPs) > 0 {
		nodeDests = nil
		for _, ip := range ipv4Set(ipStrings(cfg.NodeIPs)) {
			nodeDests = append(nodeDests, "-d "+ip+"/32")
		}
	}

	for _, sp := range ports {
		writeServicePort(nat, filter, cfg, sp, nodeDests)
	}
	// NodePorts last: the ClusterIP and external IP rules are more specific.
	for _, d := range nodeDests {
		nat.rule(chainServices, d, "-j", chainNodePorts)
	}

	// Stale per-service chains: declared (flushed) and then deleted.
	var stale []string
	for _, c := range cfg.ExistingChains {
		if nat.declared(c) {
			continue
		}
		for _, p := range perServicePrefixes {
			if strings.HasPrefix(c, p) {
				stale = append(stale, c)
				break
			}
		}
	}
	slices.Sort(stale)
	return &ruleset{filter: filter, nat: nat, stale: slices.Compact(stale)}
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func writeServicePort(nat, filter *ruleWriter, cfg RuleConfig, sp *servicePort, nodeDests []string) {
	proto := "-p " + sp.protocol + " -m " + sp.protocol
	dport := func(p int32) string { return "--dport " + strconv.Itoa(int(p)) }
	local := sp.localEndpoints()
	internal := sp.endpoints
	internalChain := sp.svcChain()
	if sp.intLocal {
		internal, internalChain = local, sp.localChain()
	}
	external := sp.endpoints
	if sp.extLocal {
		external = local
	}

	// ClusterIP.
	clusterDst := "-d " + sp.clusterIP + "/32"
	if len(internal) == 0 {
		filter.rule(chainFilter, comment(sp.name+" has no endpoints"), clusterDst, proto, dport(sp.port),
			"-j REJECT --reject-with icmp-port-unreachable")
	} else {
		if cfg.ClusterCIDR != nil {
			nat.rule(chainServices, comment(sp.name+" cluster IP"), "!", "-s", cfg.ClusterCIDR.String(), clusterDst, proto, dport(sp.port),
				"-j", chainMarkMasq)
		}
		nat.rule(chainServices, comment(sp.name+" cluster IP"), clusterDst, proto, dport(sp.port), "-j", internalChain)
	}

	// External IPs, LoadBalancer addresses and NodePorts.
	if sp.hasExternal() {
		switch {
		case len(sp.endpoints) == 0:
			for _, ip := range sp.externalIPs {
				filter.rule(chainFilter, comment(sp.name+" has no endpoints"), "-d "+ip+"/32", proto, dport(sp.port),
					"-j REJECT --reject-with icmp-port-unreachable")
			}
			if sp.nodePort != 0 {
				for _, d := range nodeDests {
					filter.rule(chainFilter, comment(sp.name+" has no endpoints"), d, proto, dport(sp.nodePort),
						"-j REJECT --reject-with icmp-port-unreachable")
				}
			}
		default:
			ext := sp.extChain()
			nat.chain(ext)
			for _, ip := range sp.externalIPs {
				nat.rule(chainServices, comment(sp.name+" external IP"), "-d "+ip+"/32", proto, dport(sp.port), "-j", ext)
			}
			if sp.nodePort != 0 {
				nat.rule(chainNodePorts, comment(sp.name), proto, dport(sp.nodePort), "-j", ext)
			}
			if !sp.extLocal {
				nat.rule(ext, "-j", chainMarkMasq)
				nat.rule(ext, "-j", sp.svcChain())
				break
			}
			// Local: pods and the node itself may reach any endpoint; traffic
			// from elsewhere keeps its source and goes to this node's
			// endpoints only, or is dropped (filter) when there are none.
			if cfg.ClusterCIDR != nil {
				nat.rule(ext, comment("pod traffic for "+sp.name), "-s", cfg.ClusterCIDR.String(), "-j", sp.svcChain())
			}
			nat.rule(ext, comment("masquerade local traffic for "+sp.name), "-m addrtype --src-type LOCAL -j", chainMarkMasq)
			nat.rule(ext, comment("route local traffic for "+sp.name), "-m addrtype --src-type LOCAL -j", sp.svcChain())
			nat.rule(ext, "-j", sp.localChain())
			if len(external) == 0 {
				for _, ip := range sp.externalIPs {
					filter.rule(chainFilter, comment(sp.name+" has no local endpoints"), "-d "+ip+"/32", proto, dport(sp.port), "-j DROP")
				}
				if sp.nodePort != 0 {
					for _, d := range nodeDests {
						filter.rule(chainFilter, comment(sp.name+" has no local endpoints"), d, proto, dport(sp.nodePort), "-j DROP")
					}
				}
			}
		}
	}

	// The cluster-wide chain serves internal traffic (policy Cluster) and
	// all external traffic paths; the local one serves whichever policy is
	// Local. An empty local chain is still declared: the external chain
	// falls through it to the filter table's DROP.
	needSvc := len(sp.endpoints) > 0 && (!sp.intLocal || sp.hasExternal())
	needLocal := (sp.intLocal && len(internal) > 0) || (sp.extLocal && sp.hasExternal() && len(sp.endpoints) > 0)
	if needSvc {
		writeBalance(nat, sp, sp.svcChain(), sp.endpoints)
	}
	if needLocal {
		writeBalance(nat, sp, sp.localChain(), local)
	}
}

// writeBalance fills chain with a random choice among eps (each new
// connection goes to endpoint i with probability 1/(n-i) of what is left,
// so all are equally likely) and, with ClientIP affinity, a first pass
// that sends a client seen recently to its previous endpoint.
func writeBalance(nat *ruleWriter, sp *servicePort, chain string, eps []endpoint) {
	nat.chain(chain)
	if sp.affinity > 0 {
		for _, e := range eps {
			sep := sp.sepChain(e)
			nat.rule(chain, comment(sp.name+" -> "+e.String()), "-m recent --name", sep,
				"--rcheck --seconds", strconv.Itoa(sp.affinity), "--reap -j", sep)
		}
	}
	n := len(eps)
	for i, e := range eps {
		sep := sp.sepChain(e)
		if i < n-1 {
			nat.rule(chain, comment(sp.name+" -> "+e.String()), "-m statistic --mode random --probability",
				strconv.FormatFloat(1/float64(n-i), 'f', 10, 64), "-j", sep)
		} else {
			nat.rule(chain, comment(sp.name+" -> "+e.String()), "-j", sep)
		}
		if nat.declared(sep) {
			continue
		}
		nat.chain(sep)
		nat.rule(sep, comment(sp.name), "-s", e.ip+"/32", "-j", chainMarkMasq) // hairpin
		args := []string{comment(sp.name), "-p", sp.protocol, "-m", sp.protocol}
		if sp.affinity > 0 {
			args = append(args, "-m recent --name", sep, "--set --rsource")
		}
		args = append(args, "-j DNAT --to-destination", e.String())
		nat.rule(sep, args...)
	}
}
