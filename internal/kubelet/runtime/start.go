package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// startReport is what the shim writes to its status pipe once the
// container process runs (Error == "") or failed to start.
type startReport struct {
	Pid   int
	Error string
}

// Start creates the container and starts its process through a new shim
// process. It returns once the process runs, or with the start error (for
// example `exec: "nope": executable file not found in $PATH`). A container
// that failed to start is still recorded (Status exited, ExitCode 128,
// Message = the error) and must be removed with Remove.
func (r *Runtime) Start(ctx context.Context, spec ContainerSpec) error {
	if err := validID(spec.ID); err != nil {
		return fmt.Errorf("start container: %w", err)
	}
	if len(spec.Layers) == 0 {
		return fmt.Errorf("start container %s: no image layers", spec.ID)
	}
	if len(spec.Args) == 0 {
		return fmt.Errorf("start container %s: no command", spec.ID)
	}
	id := spec.ID
	dir := r.ctrDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("start container %s: container already exists", id)
		}
		return fmt.Errorf("start container %s: %w", id, err)
	}
	// A stale libcontainer dir from an interrupted Remove would make Create fail.
	_ = os.RemoveAll(filepath.Join(r.runcRoot(), id))

	if err := writeJSONAtomic(filepath.Join(dir, "spec.json"), spec); err != nil {
		return fmt.Errorf("start container %s: write spec: %w", id, err)
	}
	rec := record{State: ContainerState{
		ID: id, PodUID: spec.PodUID, Labels: spec.Labels,
		Status: StatusCreated, CreatedAt: time.Now(),
	}}
	if err := writeJSONAtomic(filepath.Join(dir, "state.json"), rec); err != nil {
		return fmt.Errorf("start container %s: write state: %w", id, err)
	}

	rep, err := r.runShim(ctx, id)
	if err != nil {
		if ctx.Err() != nil {
			// The shim may still be starting the container and owns the state now.
			return fmt.Errorf("start container %s: %w", id, err)
		}
		// The shim died without reporting: record the failure so List shows it.
		rec.State.Status = StatusExited
		rec.State.ExitCode = 128
		rec.State.FinishedAt = time.Now()
		rec.State.Message = err.Error()
		_ = writeJSONAtomic(filepath.Join(dir, "state.json"), rec)
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if rep.Error != "" {
		return fmt.Errorf("start container %s: %s", id, rep.Error)
	}
	r.log.Debug("container started", "container", id, "pid", rep.Pid)
	return nil
}

// runShim launches the shim detached from the agent (own session, no
// stdio tied to the agent) so it survives an agent restart, and waits for
// its start report.
func (r *Runtime) runShim(ctx context.Context, id string) (startReport, error) {
	var rep startReport
	dir := r.ctrDir(id)
	logf, err := os.OpenFile(filepath.Join(dir, "shim.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return rep, fmt.Errorf("open shim log: %w", err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return rep, fmt.Errorf("status pipe: %w", err)
	}
	defer pr.Close()

	cmd := exec.Command(r.binary, "shim", "--root", r.root, "--id", id, "--cgroup-parent", r.cgroupParent)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{pw} // fd 3 in the shim
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return rep, fmt.Errorf("run shim %s: %w", r.binary, err)
	}
	// Reap the shim when it exits (only while this agent process lives; an
	// adopted shim is reaped by init). The goroutine ends with the shim.
	go func() { _ = cmd.Wait() }()

	stop := context.AfterFunc(ctx, func() { _ = pr.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(pr)
	if err != nil {
		if ctx.Err() != nil {
			return rep, fmt.Errorf("waiting for shim: %w (the shim keeps starting the container)", ctx.Err())
		}
		return rep, fmt.Errorf("read shim status: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return rep, fmt.Errorf("shim exited without reporting: %s", tailFile(filepath.Join(dir, "shim.log"), 512))
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("parse shim status %q: %w", b, err)
	}
	return rep, nil
}

func tailFile(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no shim log)"
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(shim log is empty)"
	}
	return s
}
