// Package check is skiff's host preflight: the kernel features, cgroup
// controllers, tools, ports, clock and disk a server or agent needs. Each
// failing line says how to fix it. `skiff check` prints the report, and
// server and agent refuse to start when something required is missing.
package check

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Status of one check.
type Status string

// A check passes, warns (skiff works, something is degraded or could not
// be verified) or fails (skiff cannot work).
const (
	Pass Status = "ok"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// Result is one line of the report.
type Result struct {
	Name   string
	Status Status
	Detail string
	// Fix says what to do when the check did not pass.
	Fix string
}

// Options says what the node will run.
type Options struct {
	// Agent is true when this node runs containers.
	Agent bool
	// PodNetwork is the agent's --pod-network ("vxlan", "host-gw", "none").
	PodNetwork string
	DataDir    string
	// Ports are checked to be free; leave empty at start-up, where the
	// listeners report their own errors.
	Ports []int
}

// Run performs every check that applies.
func Run(opts Options) []Result {
	k := newKernel()
	var out []Result
	add := func(r Result) { out = append(out, r) }
	if opts.Agent {
		add(root())
		add(namespaces())
		add(k.feature("overlayfs", "OVERLAY_FS", "overlay", Fail))
		add(cgroups())
		if opts.PodNetwork != "none" {
			add(k.feature("bridge", "BRIDGE", "bridge", Fail))
			add(k.feature("veth", "VETH", "veth", Fail))
			if opts.PodNetwork == "vxlan" || opts.PodNetwork == "" {
				add(k.feature("vxlan", "VXLAN", "vxlan", Fail))
			}
			add(k.feature("netfilter (nf_tables or ip_tables)", "NF_TABLES|IP_NF_IPTABLES", "nf_tables|ip_tables", Fail))
			add(k.feature("br_netfilter", "BRIDGE_NETFILTER", "br_netfilter", Warn))
			add(tool("iptables"))
			add(tool("iptables-restore"))
			add(tool("iptables-save"))
		}
	}
	for _, p := range opts.Ports {
		add(port(p))
	}
	add(clock())
	if opts.DataDir != "" {
		add(disk(opts.DataDir))
	}
	return out
}

// Failed returns the results that failed.
func Failed(results []Result) []Result {
	var out []Result
	for _, r := range results {
		if r.Status == Fail {
			out = append(out, r)
		}
	}
	return out
}

// Print writes the report, one line per check.
func Print(w io.Writer, results []Result) {
	for _, r := range results {
		fmt.Fprintf(w, "%-4s  %-36s %s\n", r.Status, r.Name, r.Detail)
		if r.Status != Pass && r.Fix != "" {
			fmt.Fprintf(w, "      %-36s fix: %s\n", "", r.Fix)
		}
	}
}

func root() Result {
	if os.Geteuid() == 0 {
		return Result{Name: "running as root", Status: Pass}
	}
	return Result{Name: "running as root", Status: Fail, Detail: fmt.Sprintf("uid %d", os.Geteuid()),
		Fix: "run skiff as root (sudo), or run a server with --disable-agent"}
}

func namespaces() Result {
	var missing []string
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			missing = append(missing, ns)
		}
	}
	if len(missing) > 0 {
		return Result{Name: "namespaces", Status: Fail, Detail: "missing: " + strings.Join(missing, ", "),
			Fix: "use a kernel built with CONFIG_NAMESPACES and the mount, PID, network, IPC and UTS namespaces"}
	}
	return Result{Name: "namespaces", Status: Pass, Detail: "mnt pid net ipc uts"}
}

// cgroups checks for the controllers containers are limited with, on v1
// (including hybrid hosts) or v2.
func cgroups() Result {
	need := []string{"cpu", "memory", "pids"}
	have := map[string]bool{}
	version := "v1"
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		version = "v2"
		for _, c := range strings.Fields(string(b)) {
			have[c] = true
		}
	} else if f, err := os.Open("/proc/cgroups"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 4 && fields[3] == "1" {
				have[fields[0]] = true
			}
		}
		f.Close()
	}
	var missing []string
	for _, c := range need {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return Result{Name: "cgroup controllers", Status: Fail, Detail: version + ", missing: " + strings.Join(missing, ", "),
			Fix: "enable them on the kernel command line (e.g. cgroup_enable=memory cgroup_memory=1 on a Raspberry Pi: /boot/cmdline.txt) and reboot"}
	}
	return Result{Name: "cgroup controllers", Status: Pass, Detail: version + ": " + strings.Join(need, " ")}
}

func tool(name string) Result {
	path, err := exec.LookPath(name)
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: "not found in PATH",
			Fix: "install iptables (apt-get install iptables / dnf install iptables / apk add iptables)"}
	}
	return Result{Name: name, Status: Pass, Detail: path}
}

func port(p int) Result {
	name := fmt.Sprintf("port %d free", p)
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
	if err != nil {
		return Result{Name: name, Status: Fail, Detail: err.Error(),
			Fix: fmt.Sprintf("stop what listens on %d (ss -ltnp 'sport = :%d'), or move skiff to another port", p, p)}
	}
	l.Close()
	return Result{Name: name, Status: Pass}
}

// clock warns when the kernel says the clock is not synchronised:
// certificates and leases depend on it.
func clock() Result {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Result{Name: "clock synchronised", Status: Warn, Detail: "cannot ask the kernel: " + err.Error()}
	}
	if state == unix.TIME_ERROR {
		return Result{Name: "clock synchronised", Status: Warn, Detail: "the kernel reports the clock unsynchronised",
			Fix: "run an NTP client (systemd-timesyncd, chrony); certificates and leases need agreeing clocks"}
	}
	return Result{Name: "clock synchronised", Status: Pass}
}

// disk needs some room for etcd, images and logs.
func disk(dir string) Result {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			free := int64(st.Bavail) * st.Bsize
			detail := fmt.Sprintf("%.1f GiB free under %s", float64(free)/(1<<30), d)
			switch {
			case free < 512<<20:
				return Result{Name: "disk space", Status: Fail, Detail: detail, Fix: "free space, or point --data-dir at a larger disk"}
			case free < 2<<30:
				return Result{Name: "disk space", Status: Warn, Detail: detail, Fix: "images and etcd need a few GiB"}
			}
			return Result{Name: "disk space", Status: Pass, Detail: detail}
		}
		if d == "/" || d == "." {
			return Result{Name: "disk space", Status: Warn, Detail: "cannot stat " + dir}
		}
	}
}

// kernel answers whether a feature is built in or loadable, from what the
// running kernel publishes: loaded modules, its config, its module lists.
type kernel struct {
	config  map[string]string
	modules string // modules.dep + modules.builtin, if present
}

func newKernel() *kernel {
	k := &kernel{config: map[string]string{}}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	var r io.Reader
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if gz, err := gzip.NewReader(f); err == nil {
			r = gz
		}
	} else if f, err := os.Open("/boot/config-" + release); err == nil {
		defer f.Close()
		r = f
	}
	if r != nil {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if key, v, ok := strings.Cut(sc.Text(), "="); ok {
				k.config[strings.TrimPrefix(key, "CONFIG_")] = v
			}
		}
	}
	for _, f := range []string{"modules.dep", "modules.builtin"} {
		if b, err := os.ReadFile(filepath.Join("/lib/modules", release, f)); err == nil {
			k.modules += string(b)
		}
	}
	return k
}

// feature checks config options and module names (alternatives split by
// "|"); severity is what a missing feature means.
func (k *kernel) feature(name, configs, modules string, severity Status) Result {
	for _, m := range strings.Split(modules, "|") {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			return Result{Name: name, Status: Pass, Detail: "loaded"}
		}
		if name == "overlayfs" {
			if b, err := os.ReadFile("/proc/filesystems"); err == nil && strings.Contains(string(b), "\toverlay\n") {
				return Result{Name: name, Status: Pass, Detail: "available"}
			}
		}
	}
	for _, c := range strings.Split(configs, "|") {
		switch k.config[c] {
		case "y":
			return Result{Name: name, Status: Pass, Detail: "built in"}
		case "m":
			return Result{Name: name, Status: Pass, Detail: "module (loaded on first use)"}
		}
	}
	for _, m := range strings.Split(modules, "|") {
		if strings.Contains(k.modules, "/"+m+".ko") {
			return Result{Name: name, Status: Pass, Detail: "module (loaded on first use)"}
		}
	}
	fix := fmt.Sprintf("modprobe %s, or use a kernel with CONFIG_%s", strings.Split(modules, "|")[0], strings.Split(configs, "|")[0])
	if len(k.config) == 0 && k.modules == "" {
		// Nothing to tell from (a container, a minimal image): the agent
		// finds out when it first uses the feature.
		return Result{Name: name, Status: Warn, Detail: "could not verify: no kernel config or module list readable", Fix: fix}
	}
	return Result{Name: name, Status: severity, Detail: "not in this kernel", Fix: fix}
}
