package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mount is a filesystem mounted into a container.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
	Type                string // "" = bind; "tmpfs"
	Options             []string
}

// Resources are the cgroup limits of a container. Zero means unlimited/default.
type Resources struct {
	CPUShares   uint64
	CPUQuota    int64
	CPUPeriod   uint64
	MemoryLimit int64
	PidsLimit   int64
}

// ContainerSpec describes a container to Start.
type ContainerSpec struct {
	ID     string // unique, [a-z0-9-], at most 64 characters
	PodUID string
	// Labels are opaque to the runtime; persisted and returned by List/State.
	Labels  map[string]string
	Sandbox *Sandbox
	// Layers are unpacked layer dirs, base first; they become the overlayfs lowerdirs.
	Layers []string
	// Args is the argv; Args[0] is resolved against PATH inside the container.
	Args           []string
	Env            []string
	Cwd            string // default "/"
	UID, GID       uint32
	AdditionalGIDs []uint32
	// Hostname is only used when the container has its own UTS namespace
	// (no sandbox); a sandbox's UTS namespace already carries the pod hostname.
	Hostname                                    string
	Privileged, ReadOnlyRootfs, NoNewPrivileges bool
	// CapAdd/CapDrop use Kubernetes spelling ("NET_ADMIN" or "CAP_NET_ADMIN"; "ALL").
	CapAdd, CapDrop []string
	Mounts          []Mount
	Resources       Resources
	LogPath         string // CRI-format log file written by the shim; "" discards output
	LogMaxSize      int64  // rotate at this size (default 10 MiB)
	LogMaxFiles     int    // rotated files kept (default 3)
}

// defaultCaps is Docker's (and containerd's) default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// allCaps is every capability the kernel supports that this process may
// still grant: when the agent itself runs with a reduced bounding set
// (inside another container), asking for more makes the container fail.
func allCaps() []string {
	list, err := capability.ListSupported()
	if err != nil {
		list = capability.ListKnown()
	}
	bnd, bndErr := boundingSet()
	out := make([]string, 0, len(list))
	for _, c := range list {
		if bndErr == nil && bnd&(1<<uint(c)) == 0 {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}

func boundingSet() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapBnd in /proc/self/status")
}

func normCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" || strings.HasPrefix(c, "CAP_") {
		return c
	}
	return "CAP_" + c
}

// capabilities computes the capability set: defaults (or all when
// privileged), minus CapDrop, plus CapAdd, the way Docker orders them.
func capabilities(spec *ContainerSpec) []string {
	if spec.Privileged {
		return allCaps()
	}
	set := map[string]bool{}
	for _, c := range defaultCaps {
		set[c] = true
	}
	for _, c := range spec.CapDrop {
		if c = normCap(c); c == "ALL" {
			set = map[string]bool{}
		} else {
			delete(set, c)
		}
	}
	for _, c := range spec.CapAdd {
		if c = normCap(c); c == "ALL" {
			for _, a := range allCaps() {
				set[a] = true
			}
		} else {
			set[c] = true
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// ociSpec translates a ContainerSpec into an OCI runtime spec; specconv then
// produces the libcontainer config, which keeps us on runc's well-trodden
// path for mounts, devices and cgroups.
func (s *shim) ociSpec(spec *ContainerSpec, rootfs string) *specs.Spec {
	caps := capabilities(spec)
	sb := spec.Sandbox
	if sb == nil {
		sb = &Sandbox{}
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	gids := make([]uint32, len(spec.AdditionalGIDs))
	copy(gids, spec.AdditionalGIDs)
	sysRO := []string{"nosuid", "noexec", "nodev", "ro"}
	if spec.Privileged {
		sysRO = []string{"nosuid", "noexec", "nodev", "rw"}
	}
	o := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: spec.ReadOnlyRootfs},
		Process: &specs.Process{
			Args: spec.Args,
			Env:  spec.Env,
			Cwd:  cwd,
			User: specs.User{UID: spec.UID, GID: spec.GID, AdditionalGids: gids},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: spec.NoNewPrivileges,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysRO},
		},
		Linux: &specs.Linux{
			CgroupsPath: s.cgroupPath(spec),
			Resources:   resources(spec),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: sb.NetNS},
				{Type: specs.IPCNamespace, Path: sb.IPCNS},
				{Type: specs.UTSNamespace, Path: sb.UTSNS},
			},
		},
	}
	if !sb.HostPID {
		o.Linux.Namespaces = append(o.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	if spec.Sandbox == nil {
		// No sandbox: the container gets private net/ipc/uts namespaces.
		o.Hostname = spec.Hostname
	} else {
		// Namespaces with an empty path in a sandbox mean "the host's":
		// drop them so libcontainer does not create private ones.
		kept := o.Linux.Namespaces[:0]
		for _, ns := range o.Linux.Namespaces {
			switch ns.Type {
			case specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace:
				if ns.Path == "" {
					continue
				}
			}
			kept = append(kept, ns)
		}
		o.Linux.Namespaces = kept
	}
	if !spec.Privileged {
		o.Linux.MaskedPaths = maskedPaths
		o.Linux.ReadonlyPaths = readonlyPaths
	}
	if !hasMount(spec.Mounts, "/etc/hosts") {
		o.Mounts = append(o.Mounts, specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(s.dir, "hosts"), Options: []string{"rbind", "rprivate"}})
	}
	if !hasMount(spec.Mounts, "/etc/resolv.conf") {
		o.Mounts = append(o.Mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(s.dir, "resolv.conf"), Options: []string{"rbind", "rprivate"}})
	}
	for _, m := range spec.Mounts {
		om := specs.Mount{Destination: m.Destination, Source: m.Source, Type: m.Type}
		if m.Type == "" || m.Type == "bind" {
			om.Type = "bind"
			om.Options = []string{"rbind", "rprivate"}
		}
		if m.ReadOnly {
			om.Options = append(om.Options, "ro")
		}
		om.Options = append(om.Options, m.Options...)
		o.Mounts = append(o.Mounts, om)
	}
	return o
}

func hasMount(ms []Mount, dest string) bool {
	for _, m := range ms {
		if filepath.Clean(m.Destination) == dest {
			return true
		}
	}
	return false
}

func resources(spec *ContainerSpec) *specs.LinuxResources {
	res := &specs.LinuxResources{}
	if spec.Privileged {
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	rq := spec.Resources
	cpu := &specs.LinuxCPU{}
	if rq.CPUShares > 0 {
		v := rq.CPUShares
		cpu.Shares = &v
	}
	if rq.CPUQuota > 0 {
		q := rq.CPUQuota
		cpu.Quota = &q
		p := rq.CPUPeriod
		if p == 0 {
			p = 100000
		}
		cpu.Period = &p
	}
	res.CPU = cpu
	if rq.MemoryLimit > 0 {
		m := rq.MemoryLimit
		res.Memory = &specs.LinuxMemory{Limit: &m}
		// No swap: memory+swap equals memory. On cgroup v1 this needs swap
		// accounting; without it the kernel has no swap limit to set.
		if swapAccounting() {
			sw := m
			res.Memory.Swap = &sw
		}
	}
	if rq.PidsLimit > 0 {
		res.Pids = &specs.LinuxPids{Limit: &rq.PidsLimit}
	}
	return res
}

func swapAccounting() bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return true // cgroup v2: memory.swap.max exists whenever memory is enabled
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

func (s *shim) cgroupPath(spec *ContainerSpec) string {
	return podCgroup(s.cgroupParent, spec.PodUID) + "/" + spec.ID
}

func podCgroup(parent, podUID string) string {
	if podUID == "" {
		return parent
	}
	return parent + "/pod" + podUID
}

// libcontainerConfig converts the spec via runc's specconv.
func (s *shim) libcontainerConfig(spec *ContainerSpec, rootfs string) (*configs.Config, error) {
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: spec.ID,
		Spec:       s.ociSpec(spec, rootfs),
	})
	if err != nil {
		return nil, fmt.Errorf("build container config: %w", err)
	}
	return cfg, nil
}
