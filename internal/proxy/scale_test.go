package proxy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSyncScale prints how long a full sync (BuildRules + iptables-restore)
// takes for 1,000 services with 10 endpoints each, in a fresh namespace,
// again with nothing changed, and after half the services went away. It
// asserts what the kernel holds, never a time.
func TestSyncScale(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 1,000 services")
	}
	requireNetAdmin(t)
	ns := newNetNS(t)
	cfg := ruleConfig()
	services, slices := scaleInput(1000, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var written map[string]string
	sync := func(what string, n int, full bool) {
		t.Helper()
		if full {
			written = nil
		}
		start := time.Now()
		var rules int
		err := inNetNS(ns, func() (err error) {
			ports := servicePorts(cfg, services[:n], slices[:n])
			rules = strings.Count(string(buildRules(cfg, ports).render(nil)), "\n-A ")
			written, err = applyRules(ctx, cfg, ports, written)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("sync %-40s %4d services x 10 endpoints, %5d rules: %v", what+":", n, rules, time.Since(start).Round(time.Millisecond))
	}
	sync("first (full)", 1000, true)
	sync("nothing changed, full", 1000, true)
	sync("nothing changed, changed chains only", 1000, false)
	slices[0].Endpoints = slices[0].Endpoints[1:]
	sync("one endpoint gone, changed chains only", 1000, false)
	save := iptablesSave(t, ns)
	if got := strings.Count(save, "-j DNAT"); got != 9999 {
		t.Errorf("%d DNAT rules in the kernel, want 9999", got)
	}
	sync("half the services gone, changed chains only", 500, false)
	save = iptablesSave(t, ns)
	if got := strings.Count(save, "-j DNAT"); got != 4999 {
		t.Errorf("%d DNAT rules after deleting half, want 4999", got)
	}
	if got := strings.Count(save, ":SKIFF-SEP-"); got != 4999 {
		t.Errorf("%d endpoint chains after deleting half, want 4999", got)
	}
	sync("half the services gone, full", 500, true)
	if again := iptablesSave(t, ns); strings.Join(skiffLines(again), "\n") != strings.Join(skiffLines(save), "\n") {
		t.Error("a full rewrite changed what partial syncs left")
	}
	checkNoOrphanChains(t, save)
}
