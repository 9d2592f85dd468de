package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// jump is a rule in a built-in chain that leads to one of the proxy's.
type jump struct {
	table, chain string
	rule         []string
}

// jumps are inserted first in their built-in chains, once, so that the
// proxy sees packets before any rule that would accept them.
var jumps = []jump{
	{"nat", "PREROUTING", []string{"-m", "comment", "--comment", "skiff service portals", "-j", chainServices}},
	{"nat", "OUTPUT", []string{"-m", "comment", "--comment", "skiff service portals", "-j", chainServices}},
	{"nat", "POSTROUTING", []string{"-m", "comment", "--comment", "skiff service SNAT", "-j", chainPostrouting}},
	{"filter", "INPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "skiff service firewall", "-j", chainFilter}},
	{"filter", "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "skiff service firewall", "-j", chainFilter}},
	{"filter", "OUTPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "skiff service firewall", "-j", chainFilter}},
}

// tableState is what iptables-save says about a table: its chains and
// which built-in chains already jump to which of ours.
type tableState struct {
	chains []string
	jumps  map[string]bool // "PREROUTING SKIFF-SERVICES"
}

func saveTable(ctx context.Context, table string) (tableState, error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-save", "-t", table)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return tableState{}, fmt.Errorf("iptables-save -t %s: %w: %s", table, err, strings.TrimSpace(stderr.String()))
	}
	st := tableState{jumps: map[string]bool{}}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"):
			if name, _, ok := strings.Cut(line[1:], " "); ok {
				st.chains = append(st.chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) >= 3 && f[len(f)-2] == "-j" && strings.HasPrefix(f[len(f)-1], "SKIFF-") {
				st.jumps[f[1]+" "+f[len(f)-1]] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return tableState{}, fmt.Errorf("iptables-save -t %s: %w", table, err)
	}
	return st, nil
}

func restore(ctx context.Context, rules []byte) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-restore", "--noflush", "-w", "5")
	cmd.Stdin, cmd.Stderr = bytes.NewReader(rules), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// applyRules brings the proxy's chains in line with ports in one
// iptables-restore transaction, then adds any missing jumps to them.
//
// written holds the rules of each chain ("table/chain") as last written;
// a per-service chain whose rules are the same and which is still in the
// kernel is left out of the transaction, because restoring tens of
// thousands of unchanged rules takes seconds. A nil written rewrites
// everything. It returns what it wrote, for the next call.
func applyRules(ctx context.Context, cfg RuleConfig, ports []*servicePort, written map[string]string) (map[string]string, error) {
	nat, err := saveTable(ctx, "nat")
	if err != nil {
		return nil, err
	}
	filter, err := saveTable(ctx, "filter")
	if err != nil {
		return nil, err
	}
	inKernel := map[string]bool{}
	for _, c := range nat.chains {
		inKernel["nat/"+c] = true
	}
	cfg.ExistingChains = nat.chains
	rs := buildRules(cfg, ports)
	now := map[string]string{}
	keep := func(table, chain string, rules []byte) bool {
		key := table + "/" + chain
		now[key] = string(rules)
		if written == nil || !inKernel[key] || written[key] != string(rules) {
			return false
		}
		for _, p := range perServicePrefixes {
			if strings.HasPrefix(chain, p) {
				return true
			}
		}
		return false
	}
	if err := restore(ctx, rs.render(keep)); err != nil {
		return nil, err
	}
	var ipt *iptables.IPTables
	for _, j := range jumps {
		st := nat
		if j.table == "filter" {
			st = filter
		}
		if st.jumps[j.chain+" "+j.rule[len(j.rule)-1]] {
			continue
		}
		if ipt == nil {
			if ipt, err = iptables.New(iptables.Timeout(5)); err != nil {
				return nil, fmt.Errorf("iptables: %w", err)
			}
		}
		if err := ipt.InsertUnique(j.table, j.chain, 1, j.rule...); err != nil {
			return nil, fmt.Errorf("add jump from %s %s: %w", j.table, j.chain, err)
		}
	}
	return now, nil
}
