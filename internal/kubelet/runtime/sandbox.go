package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"

	"golang.org/x/sys/unix"
)

// SandboxSpec describes the namespaces shared by a pod's containers.
type SandboxSpec struct {
	PodUID, Hostname              string
	HostNetwork, HostIPC, HostPID bool
}

// Sandbox holds the nsfs paths of a pod's shared namespaces ("" = the host's).
// A HostNetwork pod also uses the host's UTS namespace, as in Kubernetes.
type Sandbox struct {
	PodUID, NetNS, IPCNS, UTSNS string
	// Hostname is the pod hostname (written to the containers' /etc/hosts).
	Hostname string
	// HostPID makes containers share the host's PID namespace.
	HostPID bool
}

// EnsureSandbox creates the pod's namespaces, or returns the existing ones
// (an existing UTS namespace keeps its hostname). The namespaces are
// bind-mounted under Root so they outlive the agent process.
func (r *Runtime) EnsureSandbox(ctx context.Context, spec SandboxSpec) (*Sandbox, error) {
	if spec.PodUID == "" || filepath.Base(spec.PodUID) != spec.PodUID || spec.PodUID == ".." {
		return nil, fmt.Errorf("ensure sandbox: invalid pod uid %q", spec.PodUID)
	}
	dir := r.sandboxDir(spec.PodUID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ensure sandbox %s: %w", spec.PodUID, err)
	}
	sb := &Sandbox{PodUID: spec.PodUID, Hostname: spec.Hostname, HostPID: spec.HostPID}
	var flags int
	var missing []string
	want := func(kind string, flag int, dst *string) {
		p := filepath.Join(dir, kind)
		*dst = p
		if !isNsfs(p) {
			flags |= flag
			missing = append(missing, kind)
		}
	}
	if !spec.HostNetwork {
		want("net", unix.CLONE_NEWNET, &sb.NetNS)
		want("uts", unix.CLONE_NEWUTS, &sb.UTSNS)
	}
	if !spec.HostIPC {
		want("ipc", unix.CLONE_NEWIPC, &sb.IPCNS)
	}
	if flags == 0 {
		return sb, nil
	}
	for _, kind := range missing {
		f, err := os.OpenFile(filepath.Join(dir, kind), os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("ensure sandbox %s: %w", spec.PodUID, err)
		}
		f.Close()
	}
	errc := make(chan error, 1)
	go func() {
		// This thread's namespaces are changed for good; it stays locked so
		// the Go runtime discards it when the goroutine ends.
		goruntime.LockOSThread()
		errc <- newNamespaces(flags, spec.Hostname, dir, missing)
	}()
	if err := <-errc; err != nil {
		for _, kind := range missing {
			_ = unix.Unmount(filepath.Join(dir, kind), unix.MNT_DETACH)
		}
		return nil, fmt.Errorf("ensure sandbox %s: %w", spec.PodUID, err)
	}
	r.log.Debug("sandbox created", "pod", spec.PodUID, "namespaces", missing)
	return sb, nil
}

// newNamespaces runs on a locked, throw-away thread.
func newNamespaces(flags int, hostname, dir string, kinds []string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	if flags&unix.CLONE_NEWNET != 0 {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	tid := unix.Gettid()
	for _, kind := range kinds {
		src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, kind)
		if err := unix.Mount(src, filepath.Join(dir, kind), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount %s namespace: %w", kind, err)
		}
	}
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

func isNsfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// RemoveSandbox unmounts and deletes the pod's namespaces and its pod
// cgroup. Removing an unknown sandbox is a no-op. Containers must be removed first.
func (r *Runtime) RemoveSandbox(ctx context.Context, podUID string) error {
	if podUID == "" || filepath.Base(podUID) != podUID || podUID == ".." {
		return fmt.Errorf("remove sandbox: invalid pod uid %q", podUID)
	}
	dir := r.sandboxDir(podUID)
	for _, kind := range []string{"net", "ipc", "uts"} {
		if err := unmountAll(filepath.Join(dir, kind)); err != nil {
			return fmt.Errorf("remove sandbox %s: %w", podUID, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox %s: %w", podUID, err)
	}
	removePodCgroup(r.cgroupParent, podUID)
	return nil
}

// removePodCgroup removes <parent>/pod<uid> from every hierarchy, best
// effort: it fails harmlessly (EBUSY) while containers remain.
func removePodCgroup(parent, podUID string) {
	rel := podCgroup(parent, podUID)
	paths := []string{filepath.Join("/sys/fs/cgroup", rel)}
	if m, err := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", rel)); err == nil {
		paths = append(paths, m...)
	}
	for _, p := range paths {
		_ = unix.Rmdir(p)
	}
}

// DialInSandbox dials from inside the pod's network namespace, for probes
// and port-forwarding. addr must use an IP address (name resolution could
// run on another thread, outside the namespace).
func (r *Runtime) DialInSandbox(ctx context.Context, sb *Sandbox, network, addr string) (net.Conn, error) {
	if sb == nil || sb.NetNS == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	conn, err := DialInNetNS(ctx, sb.NetNS, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s in pod %s: %w", addr, sb.PodUID, err)
	}
	return conn, nil
}

// DialInNetNS dials from inside the network namespace at nsPath (a file
// such as /run/netns/NAME): the socket is made there and keeps that
// namespace for its life. addr must use an IP address (name resolution
// could run on another thread, outside the namespace).
func DialInNetNS(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	// A fresh goroutine owns the thread switch: if the thread cannot be
	// switched back it exits still locked and Go discards the thread.
	go func() {
		goruntime.LockOSThread()
		conn, err, restored := dialInNetns(ctx, nsPath, network, addr)
		if restored {
			goruntime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	res := <-ch
	return res.conn, res.err
}

// dialInNetns runs on a locked thread. restored reports whether the thread
// is back in its original network namespace.
func dialInNetns(ctx context.Context, nsPath, network, addr string) (conn net.Conn, err error, restored bool) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, err, true
	}
	defer target.Close()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, err, true
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter netns: %w", err), true
	}
	// The socket is created on this thread, so it belongs to the pod's
	// netns for its whole life, whichever thread later uses it.
	var d net.Dialer
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, errors.Join(dialErr, fmt.Errorf("restore netns: %w", err)), false
	}
	return conn, dialErr, true
}
