package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if Reexec() {
		return
	}
	code := m.Run()
	removeCgroupTree(testCgroupParent())
	if layerDir != "" {
		_ = os.RemoveAll(layerDir)
	}
	os.Exit(code)
}

func testCgroupParent() string { return fmt.Sprintf("/skiff-test-%d", os.Getpid()) }

// removeCgroupTree removes rel (depth first) from every cgroup hierarchy.
func removeCgroupTree(rel string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(root, rel), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}

// testEnv is a Runtime on a temp root plus a busybox image layer.
type testEnv struct {
	rt     *Runtime
	cfg    Config
	layer  string
	logDir string
}

var (
	layerOnce sync.Once
	layerDir  string
	layerErr  error
)

// busyboxLayer builds, once per test binary, a layer dir with a static
// busybox and its applets as symlinks.
func busyboxLayer(t testing.TB) string {
	layerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skiff-busybox-layer-")
		if err != nil {
			layerErr = err
			return
		}
		layerDir = dir
		for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				layerErr = err
				return
			}
		}
		_ = os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
		src, err := os.ReadFile("/bin/busybox")
		if err != nil {
			layerErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), src, 0o755); err != nil {
			layerErr = err
			return
		}
		out, err := exec.Command("/bin/busybox", "--list").Output()
		if err != nil {
			layerErr = fmt.Errorf("busybox --list: %w", err)
			return
		}
		for _, name := range strings.Fields(string(out)) {
			if name == "busybox" {
				continue
			}
			_ = os.Symlink("busybox", filepath.Join(dir, "bin", name))
		}
		passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
		_ = os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte(passwd), 0o644)
		_ = os.WriteFile(filepath.Join(dir, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	})
	if layerErr != nil {
		t.Fatalf("build busybox layer: %v", layerErr)
	}
	return layerDir
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("container runtime tests need root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (apt-get install busybox-static)")
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !bytes.Contains(b, []byte("overlay")) {
		t.Skip("needs overlayfs in the kernel")
	}
	root := t.TempDir()
	cfg := Config{
		Root:         filepath.Join(root, "containers"),
		CgroupParent: testCgroupParent(),
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{rt: rt, cfg: cfg, layer: busyboxLayer(t), logDir: filepath.Join(root, "logs")}
}

// spec returns a container spec for args with a unique ID and a log file,
// and registers cleanup (stop + remove) for it.
func (e *testEnv) spec(t testing.TB, id string, args ...string) ContainerSpec {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.rt.Stop(ctx, id, 0)
		_ = e.rt.Remove(ctx, id)
	})
	return ContainerSpec{
		ID:      id,
		PodUID:  "pod-" + id,
		Labels:  map[string]string{"name": id},
		Layers:  []string{e.layer},
		Args:    args,
		Env:     []string{"PATH=/bin"},
		LogPath: filepath.Join(e.logDir, id, "0.log"),
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitLog polls the log until it contains every want string.
func waitLog(t *testing.T, path string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		ok := true
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				ok = false
			}
		}
		if ok {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s does not contain %q; it has:\n%s", path, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustWait(t *testing.T, rt *Runtime, id string) ContainerState {
	t.Helper()
	st, err := rt.Wait(testCtx(t), id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	if st.Status != StatusExited {
		t.Fatalf("container %s: status %s (%s), want exited", id, st.Status, st.Message)
	}
	return st
}

func TestOutputAndExitCode(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "logs", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := mustWait(t, e.rt, s.ID)
	if st.ExitCode != 3 || st.Signal != "" || st.OOMKilled {
		t.Fatalf("state = %+v, want exit code 3", st)
	}
	if st.Labels["name"] != "logs" || st.PodUID != "pod-logs" {
		t.Fatalf("labels/pod uid not kept: %+v", st)
	}
	if st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Fatalf("bad times: %+v", st)
	}
	log := waitLog(t, s.LogPath, " stdout F to-stdout\n", " stderr F to-stderr\n")
	// Every line must parse as a CRI record with an RFC 3339 timestamp.
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 {
			t.Fatalf("bad CRI line %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("bad timestamp in %q: %v", sc.Text(), err)
		}
	}
}

func TestLongLinesAndRotation(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	// A 20000-byte line is split into a 16 KiB partial record and the rest;
	// then enough output to rotate a 32 KiB log several times.
	s := e.spec(t, "rotate", "sh", "-c",
		`head -c 20000 /dev/zero | tr '\0' a; echo; i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done`)
	s.LogMaxSize = 32 << 10
	s.LogMaxFiles = 2
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	if st := mustWait(t, e.rt, s.ID); st.ExitCode != 0 {
		t.Fatalf("exit code %d", st.ExitCode)
	}
	cur := waitLog(t, s.LogPath, "line-399-")
	if _, err := os.Stat(s.LogPath + ".1"); err != nil {
		t.Fatalf("no rotated log: %v", err)
	}
	if _, err := os.Stat(s.LogPath + ".3"); err == nil {
		t.Fatalf("kept more than LogMaxFiles rotated files")
	}
	for _, p := range []string{s.LogPath, s.LogPath + ".1", s.LogPath + ".2"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 32<<10 {
			t.Fatalf("%s is %d bytes, over the 32 KiB limit", p, fi.Size())
		}
	}
	if strings.Contains(cur, "line-0-") {
		t.Fatalf("current log still has the first lines; not rotated")
	}
}

func TestPartialLine(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "partial", "sh", "-c", `head -c 20000 /dev/zero | tr '\0' a; echo`)
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	mustWait(t, e.rt, s.ID)
	log := waitLog(t, s.LogPath, " stdout P ", " stdout F ")
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 records (P then F), got %d", len(lines))
	}
	p := strings.SplitN(lines[0], " ", 4)[3]
	f := strings.SplitN(lines[1], " ", 4)[3]
	if len(p) != maxLogLine || len(p)+len(f) != 20000 {
		t.Fatalf("partial %d + final %d bytes, want 16384 + rest of 20000", len(p), len(f))
	}
}

func TestStartErrorCommandNotFound(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "nope", "nope")
	err := e.rt.Start(ctx, s)
	if err == nil || !strings.Contains(err.Error(), `exec: "nope": executable file not found in $PATH`) {
		t.Fatalf("Start error = %v, want executable file not found", err)
	}
	st, err := e.rt.State(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusExited || !strings.Contains(st.Message, "executable file not found") {
		t.Fatalf("state after failed start = %+v", st)
	}
	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.State(ctx, s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("State after Remove: %v, want ErrNotFound", err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "stubborn", "sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done")
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s.LogPath, "ready")
	if err := e.rt.Stop(ctx, s.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := e.rt.State(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != StatusExited || st.ExitCode != 137 || st.Signal != "SIGKILL" {
		t.Fatalf("state = %+v, want exited 137 SIGKILL", st)
	}
	// Stop is idempotent.
	if err := e.rt.Stop(ctx, s.ID, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStopGraceful(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "graceful", "sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 1; done")
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s.LogPath, "ready")
	if err := e.rt.Stop(ctx, s.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := e.rt.State(ctx, s.ID)
	if st.ExitCode != 0 || st.Signal != "" {
		t.Fatalf("state = %+v, want clean exit on SIGTERM", st)
	}
	waitLog(t, s.LogPath, "bye")
}

func TestOOMKilled(t *testing.T) {
	if raceEnabled {
		t.Skip("the race-instrumented init binary alone exceeds an 8 MiB limit")
	}
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "oom", "sh", "-c", `a=$(head -c 100000000 /dev/zero | tr '\0' x); echo ${#a}`)
	s.Resources.MemoryLimit = 8 << 20
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	st := mustWait(t, e.rt, s.ID)
	if !st.OOMKilled {
		t.Fatalf("state = %+v, want OOMKilled", st)
	}
}

func TestSandboxHostnameAndLoopback(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	sb, err := e.rt.EnsureSandbox(ctx, SandboxSpec{PodUID: "pod-sb", Hostname: "web-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rt.RemoveSandbox(context.Background(), "pod-sb") })
	again, err := e.rt.EnsureSandbox(ctx, SandboxSpec{PodUID: "pod-sb", Hostname: "web-0"})
	if err != nil || *again != *sb {
		t.Fatalf("EnsureSandbox not idempotent: %+v %v", again, err)
	}

	srv := e.spec(t, "srv", "sh", "-c", "mkdir /www && echo hello-from-srv > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www")
	srv.PodUID, srv.Sandbox = "pod-sb", sb
	cli := e.spec(t, "cli", "sh", "-c", "hostname; for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:8080/index.html && exit 0; sleep 0.2; done; exit 1")
	cli.PodUID, cli.Sandbox = "pod-sb", sb
	if err := e.rt.Start(ctx, srv); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Start(ctx, cli); err != nil {
		t.Fatal(err)
	}
	if st := mustWait(t, e.rt, cli.ID); st.ExitCode != 0 {
		t.Fatalf("client exit code %d; log:\n%s", st.ExitCode, readFile(cli.LogPath))
	}
	waitLog(t, cli.LogPath, "stdout F web-0\n", "hello-from-srv")

	// The agent reaches the pod over its loopback too.
	conn, err := e.rt.DialInSandbox(ctx, sb, "tcp", "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /index.html HTTP/1.0\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	body, _ := io.ReadAll(conn)
	if !strings.Contains(string(body), "hello-from-srv") {
		t.Fatalf("DialInSandbox response: %q", body)
	}
	// The host's loopback does not have the pod's server.
	if c, err := e.rt.DialInSandbox(ctx, &Sandbox{}, "tcp", "127.0.0.1:8080"); err == nil {
		c.Close()
		t.Log("note: something on the host listens on 127.0.0.1:8080")
	}

	if err := e.rt.Stop(ctx, srv.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{srv.ID, cli.ID} {
		if err := e.rt.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.rt.RemoveSandbox(ctx, "pod-sb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sb.NetNS); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox netns file still there: %v", err)
	}
	if err := e.rt.RemoveSandbox(ctx, "pod-sb"); err != nil {
		t.Fatalf("RemoveSandbox not idempotent: %v", err)
	}
}

func readFile(p string) string { b, _ := os.ReadFile(p); return string(b) }

func TestExec(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "exec", "sleep", "1000")
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code, err := e.rt.Exec(ctx, s.ID, ExecOptions{Cmd: []string{"sh", "-c", "echo hi; echo oops >&2; exit 4"}, Stdout: &out, Stderr: &errb})
	if err != nil || code != 4 || out.String() != "hi\n" || errb.String() != "oops\n" {
		t.Fatalf("exec = %d, %v, stdout %q, stderr %q", code, err, out.String(), errb.String())
	}
	out.Reset()
	code, err = e.rt.Exec(ctx, s.ID, ExecOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("from-stdin"), Stdout: &out})
	if err != nil || code != 0 || out.String() != "from-stdin" {
		t.Fatalf("exec cat = %d, %v, %q", code, err, out.String())
	}
	out.Reset()
	resize := make(chan TermSize, 1)
	resize <- TermSize{Width: 123, Height: 45}
	code, err = e.rt.Exec(ctx, s.ID, ExecOptions{
		Cmd: []string{"sh", "-c", "sleep 1; tty; stty size; exit 2"}, Tty: true, Stdout: &out, Resize: resize,
	})
	if err != nil || code != 2 {
		t.Fatalf("tty exec = %d, %v, output %q", code, err, out.String())
	}
	if !strings.Contains(out.String(), "/dev/pts/") || !strings.Contains(out.String(), "45 123") {
		t.Fatalf("tty exec output %q, want a pts and size 45 123", out.String())
	}
	if _, err := e.rt.Exec(ctx, "missing", ExecOptions{Cmd: []string{"true"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("exec in missing container: %v", err)
	}
}

func TestAdoptionAfterAgentRestart(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	running := e.spec(t, "adopt-running", "sh", "-c", "echo started; sleep 3; exit 7")
	if err := e.rt.Start(ctx, running); err != nil {
		t.Fatal(err)
	}
	// Exits while no Runtime is waiting for it.
	quick := e.spec(t, "adopt-quick", "sh", "-c", "exit 5")
	if err := e.rt.Start(ctx, quick); err != nil {
		t.Fatal(err)
	}
	waitLog(t, running.LogPath, "started")

	// A new Runtime on the same root stands for the restarted agent.
	rt2, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := rt2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range list {
		if c.ID == running.ID {
			found = true
			if c.Status != StatusRunning || c.Pid == 0 || c.Labels["name"] != running.ID {
				t.Fatalf("adopted container state = %+v", c)
			}
		}
	}
	if !found {
		t.Fatalf("List after restart misses %s: %+v", running.ID, list)
	}
	if st := mustWait(t, rt2, running.ID); st.ExitCode != 7 {
		t.Fatalf("adopted container exit = %+v", st)
	}
	if st := mustWait(t, rt2, quick.ID); st.ExitCode != 5 {
		t.Fatalf("container that exited with no agent: %+v", st)
	}
}

func TestReadOnlyRootfsAndUser(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	ro := e.spec(t, "ro", "sh", "-c", "touch /x")
	ro.ReadOnlyRootfs = true
	if err := e.rt.Start(ctx, ro); err != nil {
		t.Fatal(err)
	}
	if st := mustWait(t, e.rt, ro.ID); st.ExitCode == 0 {
		t.Fatalf("write to read-only rootfs succeeded")
	}
	waitLog(t, ro.LogPath, "Read-only file system")

	rw := e.spec(t, "rw", "sh", "-c", "touch /x && echo wrote")
	if err := e.rt.Start(ctx, rw); err != nil {
		t.Fatal(err)
	}
	if st := mustWait(t, e.rt, rw.ID); st.ExitCode != 0 {
		t.Fatalf("write to writable rootfs failed: %s", readFile(rw.LogPath))
	}

	u := e.spec(t, "user", "sh", "-c", "id -u; id -g; id -G")
	u.UID, u.GID, u.AdditionalGIDs = 1234, 2345, []uint32{3456}
	if err := e.rt.Start(ctx, u); err != nil {
		t.Fatal(err)
	}
	mustWait(t, e.rt, u.ID)
	waitLog(t, u.LogPath, "stdout F 1234\n", "stdout F 2345\n", "3456")
}

func TestRemoveCleansUp(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "cleanup", "sleep", "1000")
	s.Resources = Resources{MemoryLimit: 64 << 20, PidsLimit: 100, CPUShares: 512, CPUQuota: 50000}
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(e.cfg.Root, "ctr", s.ID, "rootfs")
	if !mounted(t, rootfs) {
		t.Fatalf("rootfs %s not mounted while running", rootfs)
	}
	cg := cgroupDirs(e.cfg.CgroupParent, s.PodUID, s.ID)
	if len(cg) == 0 {
		t.Fatalf("no cgroup dir for the running container")
	}
	if err := e.rt.Remove(ctx, s.ID); err == nil {
		t.Fatalf("Remove of a running container succeeded")
	}
	if err := e.rt.Stop(ctx, s.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if mounted(t, rootfs) {
		t.Fatalf("rootfs still mounted after Remove")
	}
	if left := cgroupDirs(e.cfg.CgroupParent, s.PodUID, s.ID); len(left) > 0 {
		t.Fatalf("cgroup dirs left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.Root, "ctr", s.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("container dir left: %v", err)
	}
	if _, err := os.Stat(s.LogPath); err != nil {
		t.Fatalf("log file removed: %v", err)
	}
	if err := e.rt.Remove(ctx, s.ID); err != nil {
		t.Fatalf("Remove not idempotent: %v", err)
	}
	list, _ := e.rt.List(ctx)
	for _, c := range list {
		if c.ID == s.ID {
			t.Fatalf("removed container still listed")
		}
	}
	_ = e.rt.RemoveSandbox(ctx, s.PodUID) // removes the pod cgroup
	for _, d := range cgroupDirs(e.cfg.CgroupParent, s.PodUID, "") {
		t.Errorf("pod cgroup left: %s", d)
	}
}

func mounted(t *testing.T, path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func cgroupDirs(parent, podUID, id string) []string {
	rel := filepath.Join(parent, "pod"+podUID, id)
	var out []string
	for _, p := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(p, rel)); err == nil {
			out = append(out, filepath.Join(p, rel))
		}
	}
	return out
}

func TestSignal(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.spec(t, "sig", "sh", "-c", "trap 'exit 9' USR1; echo ready; while true; do sleep 1; done")
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	waitLog(t, s.LogPath, "ready")
	if err := e.rt.Signal(ctx, s.ID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if st := mustWait(t, e.rt, s.ID); st.ExitCode != 9 {
		t.Fatalf("exit %+v", st)
	}
}

func BenchmarkStart(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		s := e.spec(b, fmt.Sprintf("bench-%d", i), "sleep", "1000")
		if err := e.rt.Start(ctx, s); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := e.rt.Stop(ctx, s.ID, 0); err != nil {
			b.Fatal(err)
		}
		if err := e.rt.Remove(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func TestCapabilitiesAndHostNamespaces(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	hostName, _ := os.Hostname()
	hostSB, err := e.rt.EnsureSandbox(ctx, SandboxSpec{PodUID: "pod-host", Hostname: "ignored", HostNetwork: true, HostIPC: true, HostPID: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.rt.RemoveSandbox(context.Background(), "pod-host") })
	if hostSB.NetNS != "" || hostSB.UTSNS != "" || hostSB.IPCNS != "" {
		t.Fatalf("host sandbox has namespace paths: %+v", hostSB)
	}
	for _, tc := range []struct {
		name   string
		mod    func(*ContainerSpec)
		script string
		want   []string
	}{
		{"default-caps", func(*ContainerSpec) {}, "grep CapEff /proc/self/status", []string{"00000000a80425fb"}},
		{"drop-all-add-one", func(s *ContainerSpec) { s.CapDrop = []string{"ALL"}; s.CapAdd = []string{"NET_ADMIN"} },
			"grep CapEff /proc/self/status", []string{"0000000000001000"}},
		{"drop-one", func(s *ContainerSpec) { s.CapDrop = []string{"CAP_NET_RAW"} },
			"grep CapEff /proc/self/status", []string{"00000000a80405fb"}},
		{"privileged", func(s *ContainerSpec) { s.Privileged = true },
			"grep CapEff /proc/self/status; echo interrupts=$(head -c1 /proc/interrupts | wc -c)", []string{"CapEff:\t" + hostCapBnd(t), "interrupts=1"}},
		{"host-namespaces", func(s *ContainerSpec) { s.Sandbox = hostSB; s.PodUID = "pod-host" },
			"hostname; echo pid1=$(cat /proc/1/comm)", []string{"stdout F " + hostName + "\n"}},
		{"own-pidns", func(*ContainerSpec) {}, "echo pid=$$", []string{"stdout F pid=1\n"}},
		{"masked", func(*ContainerSpec) {}, "echo interrupts=$(head -c1 /proc/interrupts | wc -c)", []string{"interrupts=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.spec(t, "caps-"+tc.name, "sh", "-c", tc.script)
			tc.mod(&s)
			if err := e.rt.Start(ctx, s); err != nil {
				t.Fatal(err)
			}
			mustWait(t, e.rt, s.ID)
			log := waitLog(t, s.LogPath, tc.want...)
			if tc.name == "host-namespaces" && strings.Contains(log, "pid1=sh") {
				t.Fatalf("container has its own PID namespace despite HostPID: %s", log)
			}
		})
	}
}

// hostCapBnd is this process's bounding set as /proc shows it: a
// privileged container gets all of it.
func hostCapBnd(t *testing.T) string {
	b, err := boundingSet()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%016x", b)
}

func TestMounts(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "data"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := e.spec(t, "mounts", "sh", "-c",
		"cat /vol/data; echo; touch /vol/x || echo vol-ro; echo ok > /scratch/f && echo tmpfs-rw; grep -q localhost /etc/hosts && echo hosts-ok")
	s.Mounts = []Mount{
		{Source: vol, Destination: "/vol", ReadOnly: true},
		{Type: "tmpfs", Source: "tmpfs", Destination: "/scratch", Options: []string{"size=1m"}},
	}
	if err := e.rt.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	mustWait(t, e.rt, s.ID)
	waitLog(t, s.LogPath, "from-host", "vol-ro", "tmpfs-rw", "hosts-ok")
}
