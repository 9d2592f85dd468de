// Package runtime runs containers with runc's libcontainer. Each container is
// owned by its own shim process (the skiff binary re-executed as "shim"), so
// containers keep running, logging and recording their exit while the agent
// restarts; a new Runtime adopts them from the files under Config.Root.
//
// Layout under Root:
//
//	ctr/<id>/spec.json      the ContainerSpec, written by Start
//	ctr/<id>/state.json     the ContainerState (+ shim identity), written atomically
//	ctr/<id>/shim.log       the shim's own log (stderr)
//	ctr/<id>/{upper,work,rootfs}  overlayfs of the image layers
//	ctr/<id>/{hosts,resolv.conf}  generated files bind-mounted into the container
//	runc/<id>/              libcontainer state
//	sandboxes/<poduid>/{net,ipc,uts}  bind-mounted namespace files
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned (wrapped) for an unknown container ID.
var ErrNotFound = errors.New("container not found")

// Config configures a Runtime.
type Config struct {
	// Root is the state directory, e.g. <data-dir>/agent/containers.
	Root string
	// CgroupParent is the cgroup path prefix under each hierarchy (default
	// "/skiff"); containers go to <CgroupParent>/pod<uid>/<id>.
	CgroupParent string
	// Binary is the executable re-executed as the shim; default os.Executable().
	Binary string
	Logger *slog.Logger
}

// Runtime manages containers under one Root. It keeps no state in memory:
// every call reads the files, so several instances (or a restarted agent)
// see the same containers.
type Runtime struct {
	root         string
	cgroupParent string
	binary       string
	log          *slog.Logger
}

// New validates cfg and prepares the state directories.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" {
		return nil, errors.New("runtime: Root is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("runtime root %s: %w", cfg.Root, err)
	}
	r := &Runtime{root: root, cgroupParent: cfg.CgroupParent, binary: cfg.Binary, log: cfg.Logger}
	if r.cgroupParent == "" {
		r.cgroupParent = "/skiff"
	}
	if !strings.HasPrefix(r.cgroupParent, "/") {
		r.cgroupParent = "/" + r.cgroupParent
	}
	if r.binary == "" {
		if r.binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("runtime: find own executable: %w", err)
		}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	for _, d := range []string{r.ctrRoot(), r.runcRoot(), r.sandboxRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("runtime: create state dir: %w", err)
		}
	}
	return r, nil
}

func (r *Runtime) ctrRoot() string              { return filepath.Join(r.root, "ctr") }
func (r *Runtime) runcRoot() string             { return filepath.Join(r.root, "runc") }
func (r *Runtime) sandboxRoot() string          { return filepath.Join(r.root, "sandboxes") }
func (r *Runtime) ctrDir(id string) string      { return filepath.Join(r.ctrRoot(), id) }
func (r *Runtime) sandboxDir(uid string) string { return filepath.Join(r.sandboxRoot(), uid) }

// Status is a container's lifecycle phase.
type Status string

const (
	StatusCreated Status = "created"
	StatusRunning Status = "running"
	StatusExited  Status = "exited"
	// StatusUnknown: the state says created/running but its shim is gone
	// (killed, or the machine rebooted), so nobody will record an exit.
	StatusUnknown Status = "unknown"
)

// ContainerState is what the runtime knows about a container.
type ContainerState struct {
	ID, PodUID string
	Labels     map[string]string
	Status     Status
	Pid        int

	CreatedAt, StartedAt, FinishedAt time.Time

	ExitCode  int
	OOMKilled bool
	Signal    string // e.g. "SIGKILL" when killed by a signal (ExitCode 128+n)
	Message   string
}

// record is the on-disk state file.
type record struct {
	State ContainerState
	// ShimPid and ShimStart (the /proc start time in clock ticks) identify the
	// shim process without being fooled by PID reuse.
	ShimPid   int
	ShimStart uint64
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func validID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("invalid container id %q: want [a-z0-9-], at most 64 characters", id)
	}
	return nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	// fsync so an exit recorded just before a power loss is not lost as an
	// empty file.
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readRecord(dir string) (record, error) {
	var rec record
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("parse %s/state.json: %w", dir, err)
	}
	return rec, nil
}

// procStartTime returns the start time (field 22 of /proc/PID/stat).
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces and parentheses: split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func shimAlive(rec record) bool {
	if rec.ShimPid <= 0 {
		return false
	}
	st, err := procStartTime(rec.ShimPid)
	if err != nil {
		return false
	}
	if st != rec.ShimStart {
		return false
	}
	// A zombie shim (exited, not yet reaped by its parent) is not alive.
	b, err := os.ReadFile("/proc/" + strconv.Itoa(rec.ShimPid) + "/stat")
	if err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// load reads a container's state and reconciles it with its shim: a
// created/running container whose shim is gone is reported as unknown.
func (r *Runtime) load(id string) (record, error) {
	if err := validID(id); err != nil {
		return record{}, fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	dir := r.ctrDir(id)
	rec, err := readRecord(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("container %s: %w", id, err)
	}
	if rec.State.Status == StatusCreated || rec.State.Status == StatusRunning {
		if rec.ShimPid == 0 {
			// Start wrote "created" and the shim has not registered yet.
			// Start is still running in some agent; if that agent died, the
			// record stays "created" until the shim dies or Remove.
			return rec, nil
		}
		if !shimAlive(rec) {
			// The shim may have just written its final state and exited.
			if again, err := readRecord(dir); err == nil && again.State.Status == StatusExited {
				return again, nil
			}
			rec.State.Status = StatusUnknown
			rec.State.Message = "container shim exited unexpectedly"
		}
	}
	return rec, nil
}

// State returns a container's current state; ErrNotFound (wrapped) if unknown.
func (r *Runtime) State(ctx context.Context, id string) (ContainerState, error) {
	rec, err := r.load(id)
	return rec.State, err
}

// List returns every container under Root, running or exited, sorted by
// creation time.
func (r *Runtime) List(ctx context.Context) ([]ContainerState, error) {
	return r.ListPrefix(ctx, "")
}

// ListPrefix is List restricted to the containers whose IDs start with
// prefix: a caller that groups IDs by prefix (the kubelet, by pod) reads only
// that group's state files.
func (r *Runtime) ListPrefix(ctx context.Context, prefix string) ([]ContainerState, error) {
	ents, err := os.ReadDir(r.ctrRoot())
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]ContainerState, 0, len(ents))
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		rec, err := r.load(e.Name())
		if err != nil {
			// Half-written (Start in progress) or half-removed: not a container yet/anymore.
			continue
		}
		out = append(out, rec.State)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// Wait blocks until the container has exited (or ctx ends) and returns its
// final state. The shim writes the final state and then exits, so Wait
// sleeps on the shim's process (a pidfd) and reads the state file only when
// that ends, or every few seconds in case of pid reuse; without pidfds it
// polls the state file.
func (r *Runtime) Wait(ctx context.Context, id string) (ContainerState, error) {
	for {
		rec, err := r.load(id)
		if err != nil {
			return rec.State, err
		}
		switch rec.State.Status {
		case StatusExited, StatusUnknown:
			return rec.State, nil
		}
		if !waitProcess(ctx, rec.ShimPid, 5*time.Second) {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		if ctx.Err() != nil {
			return rec.State, fmt.Errorf("wait for container %s: %w", id, ctx.Err())
		}
	}
}

// waitProcess waits until pid exits, ctx ends or max passes, and reports
// whether it could wait at all (pidfd_open needs Linux 5.3).
func waitProcess(ctx context.Context, pid int, max time.Duration) bool {
	if pid <= 0 {
		return false
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(max)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if n > 0 {
			return true
		}
	}
	return true
}

// Signal sends sig to the container's init process.
func (r *Runtime) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if rec.State.Status == StatusExited {
		return fmt.Errorf("signal container %s: container is not running", id)
	}
	c, err := libcontainer.Load(r.runcRoot(), id)
	if err != nil {
		return fmt.Errorf("signal container %s: %w", id, err)
	}
	if err := c.Signal(sig); err != nil {
		return fmt.Errorf("signal container %s with %s: %w", id, unix.SignalName(sig), err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL; it returns once the
// container has exited. Stopping an exited container is a no-op.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	rec, err := r.load(id)
	if err != nil {
		return err
	}
	if rec.State.Status == StatusExited {
		return nil
	}
	if err := r.Signal(ctx, id, unix.SIGTERM); err != nil {
		r.log.Debug("stop: SIGTERM failed", "container", id, "err", err)
	}
	wctx, cancel := context.WithTimeout(ctx, grace)
	st, err := r.Wait(wctx, id)
	cancel()
	if err == nil && st.Status != StatusUnknown {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop container %s: %w", id, ctx.Err())
	}
	if err := r.Signal(ctx, id, unix.SIGKILL); err != nil {
		r.log.Debug("stop: SIGKILL failed", "container", id, "err", err)
	}
	if st.Status == StatusUnknown {
		// No shim will record the exit; the kill was best effort.
		return nil
	}
	if _, err := r.Wait(ctx, id); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// Remove deletes an exited container: libcontainer state, cgroup, overlay
// and shim state. The log file is kept. Removing an unknown ID is a no-op.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	rec, err := r.load(id)
	if errors.Is(err, ErrNotFound) {
		if validID(id) == nil {
			// A Start that failed before writing state may have left files.
			_ = r.cleanup(id)
			_ = os.RemoveAll(r.ctrDir(id))
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch rec.State.Status {
	case StatusRunning:
		return fmt.Errorf("remove container %s: container is running, stop it first", id)
	case StatusCreated:
		if rec.ShimPid != 0 && shimAlive(rec) {
			return fmt.Errorf("remove container %s: container is starting", id)
		}
	}
	if err := r.cleanup(id); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := os.RemoveAll(r.ctrDir(id)); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	// The pod cgroup goes when its last container does; EBUSY means others remain.
	if rec.State.PodUID != "" {
		removePodCgroup(r.cgroupParent, rec.State.PodUID)
	}
	r.log.Debug("container removed", "container", id)
	return nil
}

// cleanup destroys libcontainer state (killing leftovers and removing the
// cgroup) and unmounts the rootfs. The shim normally does this on exit;
// here it covers a shim that died.
func (r *Runtime) cleanup(id string) error {
	if c, err := libcontainer.Load(r.runcRoot(), id); err == nil {
		if err := c.Destroy(); err != nil {
			return fmt.Errorf("destroy libcontainer state: %w", err)
		}
	}
	_ = os.RemoveAll(filepath.Join(r.runcRoot(), id))
	if err := unmountAll(filepath.Join(r.ctrDir(id), "rootfs")); err != nil {
		return err
	}
	return nil
}

// unmountAll detaches every mount stacked on path; not mounted is success.
func unmountAll(path string) error {
	for i := 0; i < 16; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
	return nil
}
