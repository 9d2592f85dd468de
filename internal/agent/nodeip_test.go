package agent

import (
	"net"
	"testing"
)

func TestNextNodeIP(t *testing.T) {
	old, fresh := net.ParseIP("192.168.1.20"), net.ParseIP("192.168.1.57")
	has := func(ips ...net.IP) func(net.IP) bool {
		return func(ip net.IP) bool {
			for _, x := range ips {
				if x.Equal(ip) {
					return true
				}
			}
			return false
		}
	}
	detects := func(ip net.IP) func() net.IP { return func() net.IP { return ip } }
	for _, tc := range []struct {
		name    string
		current net.IP
		has     func(net.IP) bool
		detect  func() net.IP
		want    net.IP
	}{
		{"unchanged", old, has(old), detects(old), nil},
		{"an address added, the old one kept", old, has(old, fresh), detects(fresh), nil},
		{"the address replaced (DHCP)", old, has(fresh), detects(fresh), fresh},
		{"the address gone, no other yet", old, has(), detects(nil), nil},
		{"the loopback stand-in, then a real address", net.IPv4(127, 0, 0, 1), has(net.IPv4(127, 0, 0, 1), fresh), detects(fresh), fresh},
	} {
		if got := nextNodeIP(tc.current, tc.has, tc.detect); !got.Equal(tc.want) {
			t.Errorf("%s: nextNodeIP = %v; want %v", tc.name, got, tc.want)
		}
	}
}
