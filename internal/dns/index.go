package dns

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// srvTarget is one SRV record's data.
type srvTarget struct {
	port   uint16
	target string // FQDN, lower case
}

// entry holds the records of one name. Entries are immutable once they are
// in the index, so lookups can hand them out without copying.
type entry struct {
	addrs []netip.Addr // A and AAAA
	cname string       // ExternalName target, FQDN
	srv   []srvTarget
	ptr   []string
}

func (e *entry) empty() bool {
	return len(e.addrs) == 0 && e.cname == "" && len(e.srv) == 0 && len(e.ptr) == 0
}

// index maps DNS names to records. Every name is contributed by an owner
// (one Service); a name can have several owners (the shared parents such as
// "<ns>.svc.<domain>", or a PTR name for an address two services share), so
// replacing one owner's records never disturbs the others.
type index struct {
	mu    sync.RWMutex
	names map[string]map[string]*entry // name → owner → records
	owned map[string][]string          // owner → names it contributes
}

func newIndex() *index {
	return &index{names: map[string]map[string]*entry{}, owned: map[string][]string{}}
}

// set replaces everything owner contributes with recs (nil removes it).
func (ix *index) set(owner string, recs map[string]*entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, name := range ix.owned[owner] {
		m := ix.names[name]
		delete(m, owner)
		if len(m) == 0 {
			delete(ix.names, name)
		}
	}
	delete(ix.owned, owner)
	if len(recs) == 0 {
		return
	}
	names := make([]string, 0, len(recs))
	for name, e := range recs {
		m := ix.names[name]
		if m == nil {
			m = map[string]*entry{}
			ix.names[name] = m
		}
		m[owner] = e
		names = append(names, name)
	}
	ix.owned[owner] = names
}

// lookup returns the records of a lower-case FQDN and whether the name exists
// at all (a name with no records of its own but with children exists: its
// answer is NODATA, not NXDOMAIN).
func (ix *index) lookup(name string) (*entry, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	m, ok := ix.names[name]
	if !ok {
		return nil, false
	}
	if len(m) == 1 {
		for _, e := range m {
			return e, true
		}
	}
	// Several owners: merge in a stable order so answers do not flap.
	owners := make([]string, 0, len(m))
	for o := range m {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	merged := &entry{}
	for _, o := range owners {
		e := m[o]
		merged.addrs = append(merged.addrs, e.addrs...)
		merged.srv = append(merged.srv, e.srv...)
		merged.ptr = append(merged.ptr, e.ptr...)
		if merged.cname == "" {
			merged.cname = e.cname
		}
	}
	return merged, true
}

func serviceOwner(ns, name string) string { return "svc/" + ns + "/" + name }

// serviceRecords computes the DNS names and records of one Service and its
// EndpointSlices, following the Kubernetes DNS specification. domain is a
// lower-case FQDN ("cluster.local.").
func serviceRecords(svc *corev1.Service, eps []*discoveryv1.EndpointSlice, domain string) map[string]*entry {
	recs := map[string]*entry{}
	get := func(name string) *entry {
		e := recs[name]
		if e == nil {
			e = &entry{}
			recs[name] = e
		}
		return e
	}
	svcName := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + domain)
	// The parents exist so that queries for them get NODATA, not NXDOMAIN.
	get(strings.ToLower(svc.Namespace + ".svc." + domain))
	self := get(svcName)

	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		if svc.Spec.ExternalName != "" {
			self.cname = strings.ToLower(fqdn(svc.Spec.ExternalName))
		}
		return recs
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		headlessRecords(svc, eps, svcName, get)
		return recs
	}

	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		self.addrs = append(self.addrs, a)
		p := get(reverseName(a))
		p.ptr = append(p.ptr, svcName)
	}
	if len(self.addrs) == 0 {
		// A service whose IP is not allocated yet has nothing to answer.
		return recs
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			continue
		}
		proto := protoLabel(p.Protocol)
		get(proto + "." + svcName)
		name := "_" + strings.ToLower(p.Name) + "." + proto + "." + svcName
		t := srvTarget{port: uint16(p.Port), target: svcName}
		get(name).srv = append(get(name).srv, t)
		self.srv = append(self.srv, t)
	}
	return recs
}

// headlessRecords adds the records of a headless service: its name resolves to
// the ready endpoints, each endpoint gets a name (its hostname, or its address
// with dashes) and named ports get one SRV record per endpoint.
func headlessRecords(svc *corev1.Service, eps []*discoveryv1.EndpointSlice, svcName string, get func(string) *entry) {
	self := get(svcName)
	seenAddr := map[netip.Addr]bool{}
	seenSRV := map[string]map[srvTarget]bool{}
	for _, sl := range eps {
		for _, ep := range sl.Endpoints {
			if !svc.Spec.PublishNotReadyAddresses && ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, s := range ep.Addresses {
				a, err := netip.ParseAddr(s)
				if err != nil {
					continue
				}
				host := ""
				if ep.Hostname != nil && *ep.Hostname != "" {
					host = strings.ToLower(*ep.Hostname)
				} else {
					host = dashed(a)
				}
				epName := host + "." + svcName
				if !seenAddr[a] {
					seenAddr[a] = true
					self.addrs = append(self.addrs, a)
				}
				e := get(epName)
				if !slices.Contains(e.addrs, a) {
					e.addrs = append(e.addrs, a)
				}
				if ep.Hostname != nil && *ep.Hostname != "" {
					p := get(reverseName(a))
					if !slices.Contains(p.ptr, epName) {
						p.ptr = append(p.ptr, epName)
					}
				}
				for _, port := range sl.Ports {
					if port.Name == nil || *port.Name == "" || port.Port == nil {
						continue
					}
					proto := corev1.ProtocolTCP
					if port.Protocol != nil {
						proto = *port.Protocol
					}
					get(protoLabel(proto) + "." + svcName)
					name := "_" + strings.ToLower(*port.Name) + "." + protoLabel(proto) + "." + svcName
					t := srvTarget{port: uint16(*port.Port), target: epName}
					if seenSRV[name] == nil {
						seenSRV[name] = map[srvTarget]bool{}
					}
					if seenSRV[name][t] {
						continue
					}
					seenSRV[name][t] = true
					get(name).srv = append(get(name).srv, t)
					self.srv = append(self.srv, t)
				}
			}
		}
	}
}

func protoLabel(p corev1.Protocol) string {
	if p == "" {
		p = corev1.ProtocolTCP
	}
	return "_" + strings.ToLower(string(p))
}

// dashed writes an address as one DNS label: 10.42.1.5 → 10-42-1-5,
// fd00::1 → fd00--1 (the form used for pod and endpoint names).
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.String(), ":", "-")
}

// undash parses a label written by dashed.
func undash(label string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ".")); err == nil && a.Is4() {
		return a, true
	}
	if a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":")); err == nil && a.Is6() && !a.Is4In6() {
		return a, true
	}
	return netip.Addr{}, false
}

// reverseName is the in-addr.arpa / ip6.arpa name of an address.
func reverseName(a netip.Addr) string {
	var b strings.Builder
	if a.Is4() {
		v := a.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(v[i])))
			b.WriteByte('.')
		}
		b.WriteString("in-addr.arpa.")
		return b.String()
	}
	const hex = "0123456789abcdef"
	v := a.As16()
	for i := 15; i >= 0; i-- {
		b.WriteByte(hex[v[i]&0xf])
		b.WriteByte('.')
		b.WriteByte(hex[v[i]>>4])
		b.WriteByte('.')
	}
	b.WriteString("ip6.arpa.")
	return b.String()
}

func fqdn(s string) string {
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}
