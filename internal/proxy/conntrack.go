package proxy

import (
	"net/netip"

	"github.com/ti-mo/conntrack"
)

const protoUDP = 17

// udpEndpoints maps each UDP service port to its endpoints.
func udpEndpoints(ports []*servicePort) map[string]map[endpoint]bool {
	out := map[string]map[endpoint]bool{}
	for _, sp := range ports {
		if sp.protocol != "udp" {
			continue
		}
		set := map[endpoint]bool{}
		for _, e := range sp.endpoints {
			set[endpoint{ip: e.ip, port: e.port}] = true
		}
		out[sp.key()] = set
	}
	return out
}

// clearStaleUDP deletes the conntrack entries of UDP flows that were
// DNATed to an endpoint that is gone. UDP has no connection end, so
// without this a client that keeps sending (a DNS resolver's socket, say)
// would keep talking to the removed endpoint for as long as it sends.
// Failures are logged: the rules are right, only old flows linger.
func (p *Proxier) clearStaleUDP(now map[string]map[endpoint]bool) {
	gone := map[netip.AddrPort]bool{}
	for key, old := range p.udpEndpoints {
		for e := range old {
			if now[key][e] {
				continue
			}
			if a, err := netip.ParseAddr(e.ip); err == nil {
				gone[netip.AddrPortFrom(a, uint16(e.port))] = true
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		p.log.Warn("cannot clear conntrack entries of removed UDP endpoints", "err", err)
		return
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		p.log.Warn("cannot list conntrack entries", "err", err)
		return
	}
	deleted := 0
	for _, f := range flows {
		if f.TupleOrig.Proto.Protocol != protoUDP {
			continue
		}
		reply := netip.AddrPortFrom(f.TupleReply.IP.SourceAddress.Unmap(), f.TupleReply.Proto.SourcePort)
		// Only translated flows: a client talking to the endpoint's own
		// address is not the proxy's business.
		if !gone[reply] || f.TupleOrig.IP.DestinationAddress.Unmap() == reply.Addr() && f.TupleOrig.Proto.DestinationPort == reply.Port() {
			continue
		}
		if err := c.Delete(f); err != nil {
			p.log.Warn("cannot delete conntrack entry", "flow", f.TupleOrig.String(), "err", err)
			continue
		}
		deleted++
	}
	p.log.Debug("cleared conntrack entries of removed UDP endpoints", "endpoints", len(gone), "flows", deleted)
}
