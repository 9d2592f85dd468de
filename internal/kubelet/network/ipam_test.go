package network

import (
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"testing"
)

func mustCIDR(t *testing.T, s string) *net.IPNet {
	t.Helper()
	_, c, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIPAMAllocatesEveryUsableAddressOnce(t *testing.T) {
	a, err := openIPAM(filepath.Join(t.TempDir(), "net.db"), mustCIDR(t, "10.42.7.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	// A /29 has 8 addresses: network, gateway and broadcast are reserved.
	want := map[string]bool{"10.42.7.2": true, "10.42.7.3": true, "10.42.7.4": true, "10.42.7.5": true, "10.42.7.6": true}
	got := map[string]string{}
	for i := range 5 {
		uid := fmt.Sprintf("pod-%d", i)
		ip, err := a.allocate(uid, nil)
		if err != nil {
			t.Fatalf("allocate %s: %v", uid, err)
		}
		if !want[ip.String()] {
			t.Errorf("pod %s got %s, not a usable address of the /29", uid, ip)
		}
		if prev, dup := got[ip.String()]; dup {
			t.Errorf("%s handed out twice (%s and %s)", ip, prev, uid)
		}
		got[ip.String()] = uid
	}
	if _, err := a.allocate("one-too-many", nil); err == nil {
		t.Fatal("allocation succeeded with the pool exhausted")
	}

	// The same pod asking again gets the same address and nothing new is used.
	again, err := a.allocate("pod-3", nil)
	if err != nil || got[again.String()] != "pod-3" {
		t.Fatalf("re-allocate pod-3 = %v, %v; want its own address", again, err)
	}

	// Freeing makes exactly that address available again.
	freed, _ := a.get("pod-1")
	if err := a.release("pod-1"); err != nil {
		t.Fatal(err)
	}
	if err := a.release("pod-1"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, ok := a.get("pod-1"); ok {
		t.Fatal("pod-1 still holds an address after release")
	}
	ip, err := a.allocate("new", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ip.String() != freed.IP {
		t.Fatalf("new pod got %s, want the freed %s", ip, freed.IP)
	}
}

func TestIPAMDoesNotReuseAFreedAddressAtOnce(t *testing.T) {
	a, err := openIPAM(filepath.Join(t.TempDir(), "net.db"), mustCIDR(t, "10.42.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	first, _ := a.allocate("a", nil)
	if err := a.release("a"); err != nil {
		t.Fatal(err)
	}
	second, _ := a.allocate("b", nil)
	if first.Equal(second) {
		t.Fatalf("freed address %s reused by the next pod; peers may still cache it", first)
	}
}

func TestIPAMSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.db")
	cidr := mustCIDR(t, "10.42.1.0/24")
	a, err := openIPAM(path, cidr)
	if err != nil {
		t.Fatal(err)
	}
	ports := []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"}}
	ipA, _ := a.allocate("a", ports)
	ipB, _ := a.allocate("b", nil)
	if err := a.close(); err != nil {
		t.Fatal(err)
	}

	a, err = openIPAM(path, cidr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	rec, ok := a.get("a")
	if !ok || rec.IP != ipA.String() || !reflect.DeepEqual(rec.Ports, ports) {
		t.Fatalf("after reopen pod a = %+v, %v; want %s with its host ports", rec, ok, ipA)
	}
	c, err := a.allocate("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Equal(ipA) || c.Equal(ipB) {
		t.Fatalf("after reopen a new pod got %s, already held", c)
	}
}

func TestIPAMReallocatesWhenPodCIDRChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "net.db")
	a, err := openIPAM(path, mustCIDR(t, "10.42.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.allocate("a", nil); err != nil {
		t.Fatal(err)
	}
	a.close()
	a, err = openIPAM(path, mustCIDR(t, "10.42.9.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	ip, err := a.allocate("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !mustCIDR(t, "10.42.9.0/24").Contains(ip) {
		t.Fatalf("pod got %s, outside the new podCIDR", ip)
	}
}
