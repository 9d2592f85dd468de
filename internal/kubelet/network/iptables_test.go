package network

import (
	"net"
	"strings"
	"testing"
)

func TestRulesRenderHostPortsAndMasquerade(t *testing.T) {
	n := &Network{cfg: Config{ClusterCIDR: mustCIDR(t, "10.42.0.0/16"), PodCIDR: mustCIDR(t, "10.42.1.0/24")}}
	pods := map[string]podRecord{
		"uid-web": {IP: "10.42.1.5", Ports: []PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
			{HostPort: 5353, ContainerPort: 53, Protocol: "UDP", HostIP: "192.168.1.10"},
			{HostPort: 9000, ContainerPort: 9000, HostIP: "fd00::1"}, // IPv6: not ours
		}},
		"uid-plain": {IP: "10.42.1.6"},
	}
	got := string(n.rules(pods))
	for _, want := range []string{
		"-A SKIFF-FORWARD -s 10.42.0.0/16 ",
		"-A SKIFF-FORWARD -d 10.42.0.0/16 ",
		"-A SKIFF-POSTROUTING -s 10.42.0.0/16 ! -d 10.42.0.0/16 ",
		"-A SKIFF-HOSTPORTS -p tcp -m tcp --dport 8080 ",
		"--to-destination 10.42.1.5:80",
		"-A SKIFF-HOSTPORTS -d 192.168.1.10/32 -p udp -m udp --dport 5353 ",
		"--to-destination 10.42.1.5:53",
		"-A SKIFF-POSTROUTING -s 10.42.1.0/24 -d 10.42.1.5/32 -p tcp -m tcp --dport 80 ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "--dport 9000") {
		t.Errorf("an IPv6 hostIP produced an IPv4 rule:\n%s", got)
	}
	// Rendering is deterministic, so a restart rewrites identical rules.
	if again := string(n.rules(pods)); again != got {
		t.Errorf("rules differ between two renderings:\n%s\n---\n%s", got, again)
	}
}

func TestHostVethNameFitsAndIsStable(t *testing.T) {
	a, b := hostVethName("0b7c6f8e-1111-4c3a-9d1e-000000000001"), hostVethName("0b7c6f8e-1111-4c3a-9d1e-000000000002")
	if len(a) > 15 || a == b || a != hostVethName("0b7c6f8e-1111-4c3a-9d1e-000000000001") {
		t.Fatalf("veth names %q %q: want ≤15 chars, distinct per pod, stable", a, b)
	}
}

func TestStableMACIsLocalUnicast(t *testing.T) {
	mac := stableMAC("vtep", "node-a")
	if mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Fatalf("%s is not a locally administered unicast MAC", mac)
	}
	if stableMAC("vtep", "node-a").String() != mac.String() || stableMAC("vtep", "node-b").String() == mac.String() {
		t.Fatal("MAC not stable per node")
	}
	if vtep(mustCIDR(t, "10.42.3.0/24")).String() != net.ParseIP("10.42.3.0").String() {
		t.Fatal("VTEP address is not the .0 of the podCIDR")
	}
}
