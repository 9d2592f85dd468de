package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// TermSize is a terminal size in character cells.
type TermSize struct{ Width, Height uint16 }

// ExecOptions describe a process to run in a running container.
type ExecOptions struct {
	Cmd            []string
	Env            []string // added to the container's environment
	Tty            bool
	Stdin          io.Reader
	Stdout, Stderr io.Writer // with Tty, everything goes to Stdout
	Resize         <-chan TermSize
}

// Exec runs a process in a running container, in the calling (agent)
// process, and returns its exit code (128+n when killed by signal n). When
// ctx ends the process is killed.
func (r *Runtime) Exec(ctx context.Context, id string, opts ExecOptions) (int, error) {
	if len(opts.Cmd) == 0 {
		return -1, fmt.Errorf("exec in container %s: no command", id)
	}
	rec, err := r.load(id)
	if err != nil {
		return -1, err
	}
	if rec.State.Status != StatusRunning {
		return -1, fmt.Errorf("exec in container %s: container is %s, not running", id, rec.State.Status)
	}
	var spec ContainerSpec
	b, err := os.ReadFile(filepath.Join(r.ctrDir(id), "spec.json"))
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: read spec: %w", id, err)
	}
	c, err := libcontainer.Load(r.runcRoot(), id)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	gids := make([]int, 0, len(spec.AdditionalGIDs))
	for _, g := range spec.AdditionalGIDs {
		gids = append(gids, int(g))
	}
	env := withDefaultPath(append(append([]string(nil), spec.Env...), opts.Env...))
	if opts.Tty {
		env = append(env, "TERM=xterm")
	}
	p := &libcontainer.Process{
		Args:             opts.Cmd,
		Env:              env,
		Cwd:              cwd,
		UID:              int(spec.UID),
		GID:              int(spec.GID),
		AdditionalGroups: gids,
	}
	if opts.Tty {
		return r.execTty(ctx, c, p, opts)
	}
	p.Stdout = opts.Stdout
	p.Stderr = opts.Stderr
	var stdinW *os.File
	if opts.Stdin != nil {
		// Our own pipe rather than exec.Cmd's copier: Cmd.Wait would block
		// until opts.Stdin (often a network stream) returns from Read.
		pr, pw, err := os.Pipe()
		if err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		defer pr.Close()
		p.Stdin, stdinW = pr, pw
	}
	if err := c.Run(p); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if stdinW != nil {
		// Ends when opts.Stdin ends (then the process sees EOF) or when the
		// pipe is closed below after the process exits.
		go func() {
			_, _ = io.Copy(stdinW, opts.Stdin)
			stdinW.Close()
		}()
	}
	code, err := waitExec(ctx, p)
	if stdinW != nil {
		stdinW.Close()
	}
	return code, err
}

func waitExec(ctx context.Context, p *libcontainer.Process) (int, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.Signal(unix.SIGKILL) })
	defer stop()
	ps, err := p.Wait()
	if ps == nil {
		return -1, fmt.Errorf("wait for exec process: %w", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if ctx.Err() != nil {
			return 128 + int(ws.Signal()), fmt.Errorf("exec: %w", ctx.Err())
		}
		return 128 + int(ws.Signal()), nil
	}
	// Wait also reports a non-zero exit as an *exec.ExitError; the exit code says it all.
	return ps.ExitCode(), nil
}

// execTty runs p on a new pseudo-terminal whose master side init sends back
// over a socket pair (runc's console-socket protocol).
func (r *Runtime) execTty(ctx context.Context, c *libcontainer.Container, p *libcontainer.Process, opts ExecOptions) (int, error) {
	parent, child, err := utils.NewSockPair("console")
	if err != nil {
		return -1, fmt.Errorf("exec tty: %w", err)
	}
	defer parent.Close()
	p.ConsoleSocket = child
	if err := c.Run(p); err != nil {
		child.Close()
		return -1, fmt.Errorf("exec in container %s: %w", c.ID(), err)
	}
	child.Close()
	master, err := utils.RecvFile(parent)
	if err != nil {
		_ = p.Signal(unix.SIGKILL)
		_, _ = p.Wait()
		return -1, fmt.Errorf("exec tty: receive console: %w", err)
	}
	defer master.Close()

	var wg sync.WaitGroup
	done := make(chan struct{})
	if opts.Resize != nil {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
				}
			}
		})
	}
	if opts.Stdin != nil {
		// Not waited for: a blocked stdin read (e.g. a network stream) ends
		// when its owner closes it; writes fail once master is closed.
		go func() { _, _ = io.Copy(master, opts.Stdin) }()
	}
	out := opts.Stdout
	if out == nil {
		out = io.Discard
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// EIO on the master means the last slave fd closed: normal end.
		_, err := io.Copy(out, master)
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
			r.log.Debug("exec tty output", "err", err)
		}
	}()
	code, werr := waitExec(ctx, p)
	<-copied
	close(done)
	wg.Wait()
	return code, werr
}
