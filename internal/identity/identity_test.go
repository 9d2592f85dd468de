package identity

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSuffixIsStable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "sub", "node-id")
	a, err := Suffix(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2*suffixBytes {
		t.Fatalf("suffix %q: want %d hex digits", a, 2*suffixBytes)
	}
	b, err := Suffix(f)
	if err != nil || b != a {
		t.Fatalf("second read: %q, %v; want %q", b, err, a)
	}
	other, err := Suffix(filepath.Join(t.TempDir(), "node-id"))
	if err != nil || other == a {
		t.Fatalf("another data dir got %q, %v; want a different suffix than %q", other, err, a)
	}
}

func TestSuffixRejectsGarbage(t *testing.T) {
	f := filepath.Join(t.TempDir(), "node-id")
	if err := os.WriteFile(f, []byte("not hex!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Suffix(f); err == nil || !strings.Contains(err.Error(), "remove the file") {
		t.Fatalf("err = %v; want one that says to remove the file", err)
	}
}

func TestNodeName(t *testing.T) {
	dir := t.TempDir()
	idFile := filepath.Join(dir, "node-id")
	if got, err := NodeName("pi", false, idFile); err != nil || got != "pi" {
		t.Fatalf("NodeName(pi) = %q, %v", got, err)
	}
	if _, err := os.Stat(idFile); err == nil {
		t.Fatal("a node id was created without --with-node-id")
	}
	withID, err := NodeName("pi", true, idFile)
	if err != nil || !strings.HasPrefix(withID, "pi-") || len(withID) != len("pi-")+2*suffixBytes {
		t.Fatalf("NodeName(pi, withID) = %q, %v", withID, err)
	}
	again, _ := NodeName("pi", true, idFile)
	if again != withID {
		t.Fatalf("with-node-id name changed: %q then %q", withID, again)
	}
	host, err := Hostname()
	if err != nil {
		t.Skip(err)
	}
	if got, err := NodeName("", false, idFile); err != nil || got != host {
		t.Fatalf("NodeName(\"\") = %q, %v; want the host name %q", got, err, host)
	}
	if _, err := NodeName("Bad_Name", false, idFile); err == nil || !strings.Contains(err.Error(), "--node-name") {
		t.Fatalf("invalid name: err = %v; want one naming --node-name", err)
	}
}

func TestDefaultRouteInterfaces(t *testing.T) {
	table := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
lo	0000000A	00000000	0001	0	0	0	FFFFFFFF	0	0	0
wlan0	00000000	0101A8C0	0003	0	0	600	00000000	0	0	0
eth0	00000000	0100000A	0003	0	0	100	00000000	0	0	0
eth0	0000000A	00000000	0001	0	0	100	00FFFFFF	0	0	0
down0	00000000	0100000A	0002	0	0	1	00000000	0	0	0
`
	if got := defaultRouteInterfaces(table); !slices.Equal(got, []string{"eth0", "wlan0"}) {
		t.Fatalf("default route interfaces = %v; want [eth0 wlan0] (lowest metric first, routes that are down skipped)", got)
	}
}

func TestUsable(t *testing.T) {
	_, svc, _ := net.ParseCIDR("10.43.0.0/16")
	_, pods, _ := net.ParseCIDR("10.42.0.0/16")
	for ip, want := range map[string]bool{
		"192.168.1.20": true,
		"10.43.0.10":   false, // the cluster DNS address skiff puts on lo
		"10.42.3.1":    false, // a pod gateway
		"127.0.0.1":    false,
		"169.254.1.1":  false,
		"fd00::1":      false,
	} {
		if got := Usable(net.ParseIP(ip), svc, pods); got != want {
			t.Errorf("Usable(%s) = %v; want %v", ip, got, want)
		}
	}
	if ip := DefaultAddress(svc, pods); ip != nil && !Usable(ip, svc, pods) {
		t.Errorf("DefaultAddress() = %v, which is not usable", ip)
	}
}
