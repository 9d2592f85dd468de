package check

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

func TestKernelFeature(t *testing.T) {
	cases := []struct {
		name string
		k    *kernel
		want Status
	}{
		{"built in", &kernel{config: map[string]string{"NOPE_FEATURE": "y"}}, Pass},
		{"module", &kernel{config: map[string]string{"NOPE_FEATURE": "m"}}, Pass},
		{"module list", &kernel{config: map[string]string{}, modules: "kernel/drivers/net/nope_mod.ko:\n"}, Pass},
		{"absent from a known config", &kernel{config: map[string]string{"OTHER": "y"}}, Fail},
		{"nothing to tell from", &kernel{config: map[string]string{}}, Warn},
	}
	for _, tc := range cases {
		r := tc.k.feature("nope", "NOPE_FEATURE", "nope_mod", Fail)
		if r.Status != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.name, r.Status, r.Detail, tc.want)
		}
		if r.Status != Pass && !strings.Contains(r.Fix, "modprobe nope_mod") {
			t.Errorf("%s: fix %q does not say what to do", tc.name, r.Fix)
		}
	}
}

func TestPortInUseFails(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	results := Run(Options{Ports: []int{p}})
	failed := Failed(results)
	if len(failed) != 1 || !strings.Contains(failed[0].Name, "port") {
		t.Fatalf("failed = %+v, want the port check", failed)
	}
	var out bytes.Buffer
	Print(&out, results)
	if !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "fix:") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestAgentChecksFollowPodNetwork(t *testing.T) {
	names := func(rs []Result) string {
		var n []string
		for _, r := range rs {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	none := names(Run(Options{Agent: true, PodNetwork: "none"}))
	vxlan := names(Run(Options{Agent: true, PodNetwork: "vxlan"}))
	hostgw := names(Run(Options{Agent: true, PodNetwork: "host-gw"}))
	if strings.Contains(none, "iptables") || strings.Contains(none, "vxlan") {
		t.Errorf("loopback-only pods need no iptables or vxlan: %s", none)
	}
	if !strings.Contains(vxlan, "vxlan") || !strings.Contains(vxlan, "iptables-restore") {
		t.Errorf("vxlan checks: %s", vxlan)
	}
	if strings.Contains(hostgw, "vxlan") || !strings.Contains(hostgw, "bridge") {
		t.Errorf("host-gw checks: %s", hostgw)
	}
}
