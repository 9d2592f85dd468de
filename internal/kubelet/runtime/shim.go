package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// shim owns one container for its whole life: it mounts the rootfs, creates
// and starts the libcontainer container, copies its output to the CRI log,
// reaps it, records the exit and cleans up.
type shim struct {
	root, id, dir, cgroupParent string
	log                         *slog.Logger
}

func (s *shim) runcRoot() string { return filepath.Join(s.root, "runc") }

// shimMain is the entry point of "BINARY shim --root R --id ID". fd 3 is
// the status pipe to Start. It returns the process exit code.
func shimMain(args []string) int {
	fset := flag.NewFlagSet("shim", flag.ContinueOnError)
	root := fset.String("root", "", "runtime root")
	id := fset.String("id", "", "container id")
	cgParent := fset.String("cgroup-parent", "/skiff", "cgroup parent")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("container", *id)
	// Do not leak the status pipe into the container.
	unix.CloseOnExec(3)
	status := os.NewFile(3, "status")
	report := func(rep startReport) {
		if status == nil {
			return
		}
		_ = json.NewEncoder(status).Encode(rep)
		status.Close()
		status = nil
	}
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)

	if err := validID(*id); err != nil || *root == "" {
		report(startReport{Error: fmt.Sprintf("shim: bad arguments %q", args)})
		return 2
	}
	s := &shim{root: *root, id: *id, dir: filepath.Join(*root, "ctr", *id), cgroupParent: *cgParent, log: log}
	if err := s.run(report); err != nil {
		log.Error("shim failed", "err", err)
		return 1
	}
	return 0
}

func (s *shim) writeState(rec record) {
	if err := writeJSONAtomic(filepath.Join(s.dir, "state.json"), rec); err != nil {
		s.log.Error("write state", "err", err)
	}
}

func (s *shim) run(report func(startReport)) error {
	var spec ContainerSpec
	b, err := os.ReadFile(filepath.Join(s.dir, "spec.json"))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		report(startReport{Error: fmt.Sprintf("read spec: %v", err)})
		return err
	}
	rec, err := readRecord(s.dir)
	if err != nil {
		report(startReport{Error: fmt.Sprintf("read state: %v", err)})
		return err
	}
	rec.ShimPid = os.Getpid()
	if rec.ShimStart, err = procStartTime(rec.ShimPid); err != nil {
		report(startReport{Error: fmt.Sprintf("shim start time: %v", err)})
		return err
	}
	s.writeState(rec)

	logs, err := openCRILog(spec.LogPath, spec.LogMaxSize, spec.LogMaxFiles)
	if err != nil {
		s.fail(&rec, nil, err, report)
		return err
	}
	defer logs.Close()

	c, proc, outR, errR, err := s.start(&spec)
	if err != nil {
		s.fail(&rec, c, err, report)
		return err
	}
	pid, _ := proc.Pid()
	rec.State.Status = StatusRunning
	rec.State.Pid = pid
	rec.State.StartedAt = time.Now()
	s.writeState(rec)
	report(startReport{Pid: pid})
	s.log.Info("container running", "pid", pid)

	var wg sync.WaitGroup
	for stream, r := range map[string]*os.File{"stdout": outR, "stderr": errR} {
		wg.Go(func() {
			defer r.Close()
			logs.copyStream(stream, r, func(err error) { s.log.Warn("write container log", "err", err) })
		})
	}

	ps, werr := proc.Wait()
	rec.State.FinishedAt = time.Now()
	code, sig := 255, ""
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				code = 128 + int(ws.Signal())
				sig = unix.SignalName(ws.Signal())
			case ws.Exited():
				code = ws.ExitStatus()
			}
		}
	} else if werr != nil {
		rec.State.Message = fmt.Sprintf("wait for container process: %v", werr)
	}
	rec.State.ExitCode, rec.State.Signal = code, sig
	rec.State.OOMKilled = oomKilled(c)

	// Destroy kills whatever is left in the cgroup (with a shared PID
	// namespace, children survive init) so the output pipes close.
	if err := c.Destroy(); err != nil {
		s.log.Warn("destroy container", "err", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("container output still open after exit; log may be truncated")
	}
	if err := unmountAll(filepath.Join(s.dir, "rootfs")); err != nil {
		s.log.Warn("unmount rootfs", "err", err)
	}
	rec.State.Status = StatusExited
	s.writeState(rec)
	s.log.Info("container exited", "exitCode", code, "signal", sig, "oomKilled", rec.State.OOMKilled)
	return nil
}

// fail records a start failure, cleans up and reports it to Start.
func (s *shim) fail(rec *record, c *libcontainer.Container, err error, report func(startReport)) {
	if c != nil {
		_ = c.Destroy()
	}
	_ = unmountAll(filepath.Join(s.dir, "rootfs"))
	msg := err.Error()
	rec.State.Status = StatusExited
	rec.State.ExitCode = 128
	rec.State.FinishedAt = time.Now()
	rec.State.Message = msg
	s.writeState(*rec)
	report(startReport{Error: msg})
}

// start mounts the rootfs and starts the container's init process. It
// returns the read ends of the stdout/stderr pipes.
func (s *shim) start(spec *ContainerSpec) (*libcontainer.Container, *libcontainer.Process, *os.File, *os.File, error) {
	rootfs := filepath.Join(s.dir, "rootfs")
	if err := s.mountRootfs(spec.Layers, rootfs); err != nil {
		return nil, nil, nil, nil, err
	}
	if err := s.writeEtcFiles(spec); err != nil {
		return nil, nil, nil, nil, err
	}
	cfg, err := s.libcontainerConfig(spec, rootfs)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	c, err := libcontainer.Create(s.runcRoot(), spec.ID, cfg)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("create container: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return c, nil, nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return c, nil, nil, nil, err
	}
	gids := make([]int, 0, len(spec.AdditionalGIDs))
	for _, g := range spec.AdditionalGIDs {
		gids = append(gids, int(g))
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	proc := &libcontainer.Process{
		Args:             spec.Args,
		Env:              withDefaultPath(spec.Env),
		Cwd:              cwd,
		UID:              int(spec.UID),
		GID:              int(spec.GID),
		AdditionalGroups: gids,
		Stdout:           outW,
		Stderr:           errW,
		Init:             true,
	}
	err = c.Run(proc)
	// The container holds its own copies of the write ends now.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return c, nil, nil, nil, err
	}
	return c, proc, outR, errR, nil
}

// withDefaultPath adds a PATH when the image sets none, so Args[0] resolves.
func withDefaultPath(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append(append([]string(nil), env...), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

func (s *shim) mountRootfs(layers []string, rootfs string) error {
	upper, work := filepath.Join(s.dir, "upper"), filepath.Join(s.dir, "work")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
	}
	// overlayfs lists lowerdirs top first; Layers are base first.
	lower := make([]string, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		lower = append(lower, strings.ReplaceAll(layers[i], ":", `\:`))
	}
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("mount rootfs: %d layers give overlay options longer than a page", len(layers))
	}
	_ = unmountAll(rootfs) // a previous attempt may have left it mounted
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay rootfs: %w", err)
	}
	return nil
}

func (s *shim) writeEtcFiles(spec *ContainerSpec) error {
	host := spec.Hostname
	if host == "" && spec.Sandbox != nil {
		host = spec.Sandbox.Hostname
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if host != "" {
		hosts += "127.0.1.1\t" + host + "\n"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return fmt.Errorf("write hosts file: %w", err)
	}
	// With systemd-resolved the host's resolv.conf points at 127.0.0.53,
	// which is unreachable from a pod's network namespace; use its upstream list.
	var resolv []byte
	for _, p := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
		if b, err := os.ReadFile(p); err == nil {
			resolv = b
			break
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "resolv.conf"), resolv, 0o644); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	return nil
}

// oomKilled reports whether the kernel OOM killer fired in the container's
// cgroup (v1 memory.oom_control or v2 memory.events "oom_kill" counter).
func oomKilled(c *libcontainer.Container) bool {
	st, err := c.State()
	if err != nil {
		return false
	}
	for key, file := range map[string]string{"memory": "memory.oom_control", "": "memory.events"} {
		p, ok := st.CgroupPaths[key]
		if !ok {
			continue
		}
		if n, err := readCounter(filepath.Join(p, file), "oom_kill"); err == nil && n > 0 {
			return true
		}
	}
	return false
}

func readCounter(path, key string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New(key + " not found in " + path)
}
