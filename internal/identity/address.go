package identity

import (
	"net"
	"os"
	"strconv"
	"strings"
)

// DefaultAddress is the address other nodes reach this one at: an IPv4
// address of the interface that holds the default route (the one with the
// lowest metric); on a machine without a default route (an isolated edge
// network), the first global IPv4 address of an interface that is up and
// not loopback. Loopback addresses and those inside exclude are never
// taken: skiff puts the cluster DNS address (in the service range) on lo
// and pod gateways (in the cluster range) on its bridge, and neither can be
// reached from another node. It returns nil when there is no such address.
func DefaultAddress(exclude ...*net.IPNet) net.IP {
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		if ip := firstAddress(defaultRouteInterfaces(string(b)), exclude); ip != nil {
			return ip
		}
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var names []string
	for _, i := range ifaces {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagLoopback == 0 {
			names = append(names, i.Name)
		}
	}
	return firstAddress(names, exclude)
}

// defaultRouteInterfaces names the interfaces of the default routes in
// /proc/net/route, lowest metric first.
func defaultRouteInterfaces(table string) []string {
	type route struct {
		iface  string
		metric int
	}
	var routes []route
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&1 == 0 { // RTF_UP
			continue
		}
		metric, _ := strconv.Atoi(f[6])
		routes = append(routes, route{f[0], metric})
	}
	// Few routes: an insertion sort keeps equal metrics in table order.
	for i := 1; i < len(routes); i++ {
		for j := i; j > 0 && routes[j].metric < routes[j-1].metric; j-- {
			routes[j], routes[j-1] = routes[j-1], routes[j]
		}
	}
	names := make([]string, 0, len(routes))
	for _, r := range routes {
		names = append(names, r.iface)
	}
	return names
}

func firstAddress(ifaces []string, exclude []*net.IPNet) net.IP {
	for _, name := range ifaces {
		iface, err := net.InterfaceByName(name)
		if err != nil {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && Usable(n.IP, exclude...) {
				return n.IP.To4()
			}
		}
	}
	return nil
}

// Usable reports whether ip can name this node to others: an IPv4 global
// unicast address outside exclude.
func Usable(ip net.IP, exclude ...*net.IPNet) bool {
	if ip.To4() == nil || !ip.IsGlobalUnicast() {
		return false
	}
	for _, n := range exclude {
		if n != nil && n.Contains(ip) {
			return false
		}
	}
	return true
}
