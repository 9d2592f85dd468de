// Package e2e holds end-to-end tests: the real skiff binary, started as a
// process, driven by real clients.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"skiff/internal/server/servertest"
)

// kubectlVersion is the version stamped into the kubectl binary, as the
// Kubernetes release build does; it matches k8s.io/kubectl in go.mod.
const kubectlVersion = "v1.37.2"

const (
	buildTimeout   = 5 * time.Minute
	readyTimeout   = 60 * time.Second
	stopTimeout    = 20 * time.Second
	commandTimeout = 30 * time.Second
)

// binDir holds the binaries built once for the whole package run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "skiff-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: make a temp dir: %v\n", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// binaries builds skiff and kubectl once and returns their paths. It skips
// the test when the go tool is missing.
func binaries(t testing.TB) (skiff, kubectl string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("e2e: the go tool is not on PATH; it is needed to build the skiff and kubectl binaries")
	}
	skiff = filepath.Join(binDir, "skiff")
	kubectl = filepath.Join(binDir, "kubectl")
	buildOnce.Do(func() {
		ldflags := strings.Join([]string{
			"-X k8s.io/client-go/pkg/version.gitVersion=" + kubectlVersion,
			"-X k8s.io/client-go/pkg/version.gitMajor=1",
			"-X k8s.io/client-go/pkg/version.gitMinor=37",
			"-X k8s.io/component-base/version.gitVersion=" + kubectlVersion,
			"-X k8s.io/component-base/version.gitMajor=1",
			"-X k8s.io/component-base/version.gitMinor=37",
		}, " ")
		for _, b := range [][]string{
			{"build", "-o", skiff, "skiff"},
			{"build", "-ldflags", ldflags, "-o", kubectl, "skiff/e2e/kubectl"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
			cmd := exec.CommandContext(ctx, goTool, b...)
			cmd.Dir = ".." // the module root
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(b, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build the e2e binaries: %v", buildErr)
	}
	return skiff, kubectl
}

// syncBuffer is a bytes.Buffer safe for a process to write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cluster is a skiff server running as a separate process, and a kubectl
// pointed at it.
type cluster struct {
	dir        string
	kubeconfig string
	kubectlBin string
	skiffBin   string
	home       string
	args       []string

	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed
	stopped bool

	mu         sync.Mutex
	transcript strings.Builder
}

// startCluster starts `skiff server --disable-agent` (with extra flags, if
// any) and waits until /readyz answers.
func startCluster(t *testing.T, extraArgs ...string) *cluster {
	t.Helper()
	return startServer(t, append([]string{"--disable-agent"}, extraArgs...)...)
}

// startServer starts `skiff server` with the given flags on top of free
// loopback ports and a temp data dir, and waits until /readyz answers.
func startServer(t *testing.T, extraArgs ...string) *cluster {
	t.Helper()
	skiffBin, kubectlBin := binaries(t)
	dir := t.TempDir()
	c := &cluster{
		dir:        dir,
		kubeconfig: filepath.Join(dir, "kubeconfig.yaml"),
		kubectlBin: kubectlBin,
		skiffBin:   skiffBin,
		home:       filepath.Join(dir, "home"),
		logPath:    filepath.Join(dir, "skiff.log"),
	}
	if err := os.MkdirAll(c.home, 0o700); err != nil {
		t.Fatal(err)
	}
	c.args = append([]string{"server",
		"--data-dir", filepath.Join(dir, "data"),
		"--https-listen-port", fmt.Sprint(servertest.FreePort(t)),
		"--etcd-client-port", fmt.Sprint(servertest.FreePort(t)),
		"--etcd-peer-port", fmt.Sprint(servertest.FreePort(t)),
		"--bind-address", "127.0.0.1",
		"--write-kubeconfig", c.kubeconfig,
	}, extraArgs...)
	c.launch(t)
	t.Cleanup(func() {
		if !c.stopped {
			c.stop(t)
		}
		if t.Failed() {
			t.Logf("skiff server log (tail):\n%s", c.logTail(80))
		}
	})
	c.waitReady(t)
	return c
}

// launch starts the skiff process with c.args, appending to its log.
func (c *cluster) launch(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c.exited = make(chan struct{})
	c.stopped = false
	c.cmd = exec.Command(c.skiffBin, c.args...)
	c.cmd.Stdout = logFile
	c.cmd.Stderr = logFile
	c.cmd.Env = c.env()
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start skiff: %v", err)
	}
	t.Logf("started skiff %s (pid %d), log in %s", strings.Join(c.args, " "), c.cmd.Process.Pid, c.logPath)
	exited, cmd := c.exited, c.cmd
	go func() {
		c.waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
}

// env is the environment of skiff and kubectl: the caller's, with HOME
// (kubectl's discovery cache) and KUBECONFIG pointing into the test's dir.
func (c *cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "SKIFF_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KUBECONFIG="+c.kubeconfig, "HOME="+c.home)
}

func (c *cluster) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		select {
		case <-c.exited:
			t.Fatalf("skiff exited before it was ready: %v (its log follows)", c.waitErr)
		default:
		}
		if _, err := os.Stat(c.kubeconfig); err == nil {
			out, errOut, err := c.kubectlQuiet(5*time.Second, "get", "--raw", "/readyz")
			if err == nil && strings.TrimSpace(out) == "ok" {
				c.record([]string{"get", "--raw", "/readyz"}, out, errOut, nil)
				return
			}
			last = fmt.Sprintf("%v: %s%s", err, out, errOut)
		} else {
			last = "kubeconfig not written yet"
		}
		if time.Now().After(deadline) {
			t.Fatalf("skiff not ready after %v; last attempt: %s", readyTimeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks that skiff exits 0 within stopTimeout.
func (c *cluster) stop(t *testing.T) {
	t.Helper()
	c.stopped = true
	select {
	case <-c.exited:
		t.Errorf("skiff had already exited: %v", c.waitErr)
		return
	default:
	}
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("send SIGTERM to skiff: %v", err)
	}
	select {
	case <-c.exited:
		if c.waitErr != nil {
			t.Errorf("skiff exited with %v after SIGTERM, want exit status 0", c.waitErr)
		} else {
			t.Logf("skiff exited 0 %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		}
	case <-time.After(stopTimeout):
		t.Errorf("skiff did not exit within %v of SIGTERM; killing it", stopTimeout)
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *cluster) logTail(n int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", c.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logTranscriptOnFailure logs the kubectl transcript when t fails.
func (c *cluster) logTranscriptOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if t.Failed() {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Logf("kubectl transcript:\n%s", c.transcript.String())
		}
	})
}

// kubectlQuiet runs kubectl without recording it in the transcript.
func (c *cluster) kubectlQuiet(timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.kubectlBin, args...)
	cmd.Env = c.env()
	cmd.Dir = c.dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	return o.String(), e.String(), err
}

// kubectl runs kubectl and records the command and its output.
func (c *cluster) kubectl(args ...string) (stdout, stderr string, err error) {
	stdout, stderr, err = c.kubectlQuiet(commandTimeout, args...)
	c.record(args, stdout, stderr, err)
	return stdout, stderr, err
}

// mustKubectl runs kubectl and fails the test unless it succeeds.
func (c *cluster) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.kubectl(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kubectlFails runs kubectl, fails the test if it succeeds, and returns its stderr.
func (c *cluster) kubectlFails(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.kubectl(args...)
	if err == nil {
		t.Fatalf("kubectl %s succeeded, want an error\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), out, errOut)
	}
	return errOut
}

func (c *cluster) record(args []string, stdout, stderr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(&c.transcript, "$ kubectl %s\n", shellJoin(args))
	for _, o := range []string{stdout, stderr} {
		c.transcript.WriteString(o)
		if o != "" && !strings.HasSuffix(o, "\n") {
			c.transcript.WriteString("\n")
		}
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && !strings.Contains(err.Error(), "timed out") {
			fmt.Fprintf(&c.transcript, "[exit status %d]\n", exit.ExitCode())
		} else {
			fmt.Fprintf(&c.transcript, "[%v]\n", err)
		}
	}
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'{}[]$*?|&;<>()") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}

// writeFile writes a manifest into the test's dir and returns its path.
func (c *cluster) writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// background is a kubectl left running, such as a watch.
type background struct {
	args   []string
	cancel context.CancelFunc
	out    syncBuffer
	errOut syncBuffer
	done   chan struct{}
	err    error
}

// exited reports whether the background kubectl has ended.
func (b *background) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (c *cluster) kubectlBackground(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	b := &background{args: args, cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, c.kubectlBin, args...)
	cmd.Env = c.env()
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = &b.out, &b.errOut
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start kubectl %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	c.mu.Lock()
	fmt.Fprintf(&c.transcript, "$ kubectl %s &\n", shellJoin(args))
	c.mu.Unlock()
	t.Cleanup(func() { b.cancel(); <-b.done })
	return b
}

// waitFor polls cond until it is true or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop kills the background kubectl, waits for it and records its output.
func (c *cluster) stopBackground(b *background) {
	b.cancel()
	<-b.done
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(&c.transcript, "[kill %%1: output of kubectl %s]\n%s%s", shellJoin(b.args), b.out.String(), b.errOut.String())
}

// tableRow returns the fields of the first line of a kubectl table whose
// first field is name, or nil.
func tableRow(out, name string) []string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// tableHeader returns the header fields of the table whose rows include
// name: the nearest preceding line starting with NAME.
func tableHeader(out, name string) []string {
	var header []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "NAME" {
			header = f
		}
		if f[0] == name {
			return header
		}
	}
	return nil
}

// column returns row's value in the column named col of header, or "".
func column(header, row []string, col string) string {
	for i, h := range header {
		if h == col && i < len(row) {
			return row[i]
		}
	}
	return ""
}

func containsAll(s string, subs ...string) []string {
	var missing []string
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			missing = append(missing, sub)
		}
	}
	return missing
}

const webManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: %s
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
`

const badNameManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name
spec:
  replicas: 1
  selector:
    matchLabels:
      app: bad
  template:
    metadata:
      labels:
        app: bad
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
`

// TestKubectl drives a real skiff server process with a real kubectl
// through the everyday workflow and checks what the user sees.
func TestKubectl(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts a server)")
	}
	c := startCluster(t)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Logf("kubectl transcript:\n%s", c.transcript.String())
	})

	t.Run("version", func(t *testing.T) {
		out := c.mustKubectl(t, "version")
		if !strings.Contains(out, "Client Version: "+kubectlVersion) {
			t.Errorf("kubectl version: want %q in\n%s", "Client Version: "+kubectlVersion, out)
		}
		if !strings.Contains(out, "Server Version: v1.37") {
			t.Errorf("kubectl version: want %q in\n%s", "Server Version: v1.37", out)
		}
	})

	t.Run("namespaces", func(t *testing.T) {
		out := c.mustKubectl(t, "get", "ns")
		for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
			row := tableRow(out, ns)
			if row == nil {
				t.Errorf("kubectl get ns: no row for %s in\n%s", ns, out)
				continue
			}
			if st := column(tableHeader(out, ns), row, "STATUS"); st != "Active" {
				t.Errorf("kubectl get ns: %s STATUS = %q, want Active\n%s", ns, st, out)
			}
		}
	})

	manifest := c.writeFile(t, "web.yaml", fmt.Sprintf(webManifest, "nginx:1.27"))
	t.Run("apply", func(t *testing.T) {
		out := c.mustKubectl(t, "apply", "-f", manifest)
		if m := containsAll(out, "deployment.apps/web created", "service/web created"); m != nil {
			t.Errorf("first apply: missing %q in\n%s", m, out)
		}
		c.writeFile(t, "web.yaml", fmt.Sprintf(webManifest, "nginx:1.28"))
		out = c.mustKubectl(t, "apply", "-f", manifest)
		if m := containsAll(out, "deployment.apps/web configured", "service/web unchanged"); m != nil {
			t.Errorf("second apply: missing %q in\n%s", m, out)
		}
		img := c.mustKubectl(t, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if img != "nginx:1.28" {
			t.Errorf("stored image = %q, want nginx:1.28", img)
		}
	})

	t.Run("get wide", func(t *testing.T) {
		out := c.mustKubectl(t, "get", "deploy,svc", "-o", "wide")
		dh, dr := tableHeader(out, "deployment.apps/web"), tableRow(out, "deployment.apps/web")
		if dr == nil {
			t.Fatalf("no deployment.apps/web row in\n%s", out)
		}
		want := []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"}
		if strings.Join(dh, " ") != strings.Join(want, " ") {
			t.Errorf("deployment columns = %q, want %q", dh, want)
		}
		if got := column(dh, dr, "READY"); !strings.HasSuffix(got, "/2") {
			t.Errorf("deployment READY = %q, want x/2", got)
		}
		if got := column(dh, dr, "CONTAINERS"); got != "nginx" {
			t.Errorf("deployment CONTAINERS = %q, want nginx", got)
		}
		if got := column(dh, dr, "IMAGES"); got != "nginx:1.28" {
			t.Errorf("deployment IMAGES = %q, want nginx:1.28", got)
		}
		if got := column(dh, dr, "SELECTOR"); got != "app=web" {
			t.Errorf("deployment SELECTOR = %q, want app=web", got)
		}

		sh, sr := tableHeader(out, "service/web"), tableRow(out, "service/web")
		if sr == nil {
			t.Fatalf("no service/web row in\n%s", out)
		}
		want = []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"}
		if strings.Join(sh, " ") != strings.Join(want, " ") {
			t.Errorf("service columns = %q, want %q", sh, want)
		}
		if got := column(sh, sr, "TYPE"); got != "ClusterIP" {
			t.Errorf("service TYPE = %q, want ClusterIP", got)
		}
		_, svcNet, _ := net.ParseCIDR("10.43.0.0/16")
		if ip := net.ParseIP(column(sh, sr, "CLUSTER-IP")); ip == nil || !svcNet.Contains(ip) {
			t.Errorf("service CLUSTER-IP = %q, want an address in %s", column(sh, sr, "CLUSTER-IP"), svcNet)
		}
		if got := column(sh, sr, "PORT(S)"); got != "80/TCP" {
			t.Errorf("service PORT(S) = %q, want 80/TCP", got)
		}
		if got := column(sh, sr, "SELECTOR"); got != "app=web" {
			t.Errorf("service SELECTOR = %q, want app=web", got)
		}
	})

	t.Run("watch pods", func(t *testing.T) {
		// With no pods, kubectl get -w prints nothing before it starts
		// watching, so a pod p0 made first shows when the initial list is
		// done; p1, made after that, can only arrive as a watch event.
		out := c.mustKubectl(t, "run", "p0", "--image=nginx:1.27", "--restart=Never")
		if !strings.Contains(out, "pod/p0 created") {
			t.Errorf("kubectl run: want %q in\n%s", "pod/p0 created", out)
		}
		w := c.kubectlBackground(t, "get", "pods", "-w")
		listed := waitFor(15*time.Second, func() bool { return w.exited() || tableRow(w.out.String(), "p0") != nil })
		if !listed || w.exited() {
			c.stopBackground(w)
			t.Fatalf("kubectl get pods -w did not list p0 within 15s (exited: %v, %v); stdout:\n%s\nstderr:\n%s", w.exited(), w.err, w.out.String(), w.errOut.String())
		}
		out = c.mustKubectl(t, "run", "p1", "--image=nginx:1.27", "--restart=Never")
		if !strings.Contains(out, "pod/p1 created") {
			t.Errorf("kubectl run: want %q in\n%s", "pod/p1 created", out)
		}
		p1Pending := func() bool {
			row := tableRow(w.out.String(), "p1")
			return row != nil && strings.Contains(strings.Join(row, " "), "Pending")
		}
		// Stop waiting early if the watch dies.
		waitFor(15*time.Second, func() bool { return p1Pending() || w.exited() })
		seen, exitedEarly := p1Pending(), w.exited()
		c.stopBackground(w)
		if !seen {
			t.Errorf("kubectl get pods -w: no line with p1 and Pending within 15s (watch exited early: %v, %v); stdout:\n%s\nstderr:\n%s", exitedEarly, w.err, w.out.String(), w.errOut.String())
		}
		if h := strings.Fields(strings.SplitN(w.out.String(), "\n", 2)[0]); strings.Join(h, " ") != "NAME READY STATUS RESTARTS AGE" {
			t.Errorf("kubectl get pods -w header = %q, want NAME READY STATUS RESTARTS AGE", h)
		}
		// Pods no node has taken are deleted at once, as in Kubernetes.
		out = c.mustKubectl(t, "delete", "pod", "p0", "p1", "--timeout=20s")
		if m := containsAll(out, `pod "p0" deleted`, `pod "p1" deleted`); m != nil {
			t.Errorf("kubectl delete pod: missing %q in\n%s", m, out)
		}
	})

	t.Run("scale", func(t *testing.T) {
		out := c.mustKubectl(t, "scale", "deploy/web", "--replicas=3")
		if !strings.Contains(out, "deployment.apps/web scaled") {
			t.Errorf("kubectl scale: want %q in\n%s", "deployment.apps/web scaled", out)
		}
		if r := c.mustKubectl(t, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"); r != "3" {
			t.Errorf("spec.replicas = %q, want 3", r)
		}
	})

	t.Run("describe", func(t *testing.T) {
		out := c.mustKubectl(t, "describe", "deploy", "web")
		var missing []string
		for _, want := range [][2]string{
			{"Name:", "web"},
			{"Namespace:", "default"},
			{"Replicas:", "3 desired"},
			{"Image:", "nginx:1.28"},
			{"Selector:", "app=web"},
			// Defaults the API server fills in, as Kubernetes does.
			{"StrategyType:", "RollingUpdate"},
			{"Port:", "80/TCP"},
		} {
			found := false
			for _, line := range strings.Split(out, "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, want[0]) && strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(line, want[0])), want[1]) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, want[0]+" "+want[1])
			}
		}
		if missing != nil {
			t.Errorf("kubectl describe deploy web: no lines %q in\n%s", missing, out)
		}
	})

	t.Run("delete", func(t *testing.T) {
		out := c.mustKubectl(t, "delete", "-f", manifest, "--timeout=20s")
		if m := containsAll(out, `deployment.apps "web" deleted`, `service "web" deleted`); m != nil {
			t.Errorf("kubectl delete -f: missing %q in\n%s", m, out)
		}
		errOut := c.kubectlFails(t, "get", "deploy", "web")
		if want := `Error from server (NotFound): deployments.apps "web" not found`; !strings.Contains(errOut, want) {
			t.Errorf("kubectl get deleted deployment: want %q in\n%s", want, errOut)
		}
		errOut = c.kubectlFails(t, "get", "svc", "web")
		if want := `Error from server (NotFound): services "web" not found`; !strings.Contains(errOut, want) {
			t.Errorf("kubectl get deleted service: want %q in\n%s", want, errOut)
		}
	})

	t.Run("invalid name", func(t *testing.T) {
		bad := c.writeFile(t, "bad.yaml", badNameManifest)
		errOut := c.kubectlFails(t, "apply", "-f", bad)
		if m := containsAll(errOut, `The Deployment "Bad_Name" is invalid`, "metadata.name"); m != nil {
			t.Errorf("kubectl apply of a bad name: missing %q in\n%s", m, errOut)
		}
	})

	t.Run("stop", func(t *testing.T) {
		c.stop(t)
	})
}
