package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"skiff/internal/kubelet/kubelettest"
	"skiff/internal/server/servertest"
)

// startNode starts `skiff server` with its agent on loopback, and returns
// it with the test image's reference in an in-process registry.
func startNode(t *testing.T) (*cluster, string) {
	t.Helper()
	return startNodeWith(t)
}

// startNodeWith is startNode with more server flags.
func startNodeWith(t *testing.T, extraArgs ...string) (*cluster, string) {
	t.Helper()
	kubelettest.RequireRoot(t)
	reg := kubelettest.StartRegistry(t)
	image := reg.Push(t, "e2e/prog:v1", kubelettest.Image(t))
	dir := t.TempDir()
	// Registered before the server's own cleanup, so it runs after the
	// server has stopped: it kills what is left of this cluster's
	// containers and unmounts their mounts.
	var c *cluster
	cgroupParent := fmt.Sprintf("/skiff-e2e-%d-%s", os.Getpid(), strings.ToLower(t.Name()))
	t.Cleanup(func() {
		if c != nil {
			c.removeContainers(t)
		}
		kubelettest.RemoveCgroups(cgroupParent)
	})
	c = startServer(t, append([]string{
		"--node-name", "e2e-node",
		"--node-ip", "127.0.0.1",
		"--kubelet-address", "127.0.0.1",
		"--kubelet-port", fmt.Sprint(servertest.FreePort(t)),
		"--pod-log-dir", filepath.Join(dir, "pod-logs"),
		"--cgroup-parent", cgroupParent,
		// These tests run in the machine's own network namespace: pods stay
		// on loopback (network_test.go covers the pod network in namespaces).
		"--pod-network", "none",
	}, extraArgs...)...)
	// Runs before the server stops (cleanups run last-in, first-out):
	// pods are deleted through the API while it still serves.
	t.Cleanup(func() {
		if !c.stopped {
			_, _, _ = c.kubectlQuiet(90*time.Second, "delete", "pods", "--all", "--wait", "--timeout=80s")
		}
	})
	// kubectl wait fails at once on an object that does not exist yet, and
	// the kubelet registers its node a moment after the API is ready.
	c.waitExists(t, "node/e2e-node", 60*time.Second)
	c.mustKubectl(t, "wait", "--for=condition=Ready", "node/e2e-node", "--timeout=60s")
	return c, image
}

// waitExists polls until kubectl can get the object.
func (c *cluster) waitExists(t *testing.T, object string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, errOut, err := c.kubectlQuiet(commandTimeout, "get", object)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still missing after %v: %v\n%s", object, timeout, err, errOut)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// removeContainers kills what an interrupted test left running from this
// cluster's data dir (shims and their containers) and unmounts its mounts.
func (c *cluster) removeContainers(t *testing.T) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), c.dir) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	time.Sleep(200 * time.Millisecond)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], c.dir) {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// TestAgentKubectl drives a node the way a user does: kubectl run, logs -f,
// exec with and without a terminal, port-forward, delete.
func TestAgentKubectl(t *testing.T) {
	c, image := startNode(t)

	c.mustKubectl(t, "run", "web", "--image="+image, "--command", "--", "/testprog", "serve", ":8080")
	c.mustKubectl(t, "run", "talker", "--image="+image, "--command", "--",
		"sh", "-c", "for i in 1 2 3 4 5 6; do echo line $i; sleep 1; done; sleep 3600")
	c.mustKubectl(t, "wait", "--for=condition=Ready", "pod/web", "pod/talker", "--timeout=90s")

	out := c.mustKubectl(t, "get", "pods", "-o", "wide")
	if !strings.Contains(out, "Running") || !strings.Contains(out, "e2e-node") {
		t.Errorf("kubectl get pods -o wide:\n%s", out)
	}
	// Ready means started; the line reaches the log a moment later.
	var webLog string
	if !waitFor(30*time.Second, func() bool {
		webLog, _, _ = c.kubectlQuiet(commandTimeout, "logs", "web")
		return strings.Contains(webLog, "serving on :8080")
	}) {
		t.Errorf("kubectl logs web = %q", webLog)
	}

	// logs --previous shows the last exited instance of a restarted container.
	c.mustKubectl(t, "run", "crash", "--image="+image, "--command", "--", "sh", "-c", "echo attempt $(date +%s%N); exit 1")
	if !waitFor(60*time.Second, func() bool {
		out, _, _ := c.kubectlQuiet(10*time.Second, "get", "pod", "crash", "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		return out != "" && out != "0"
	}) {
		t.Errorf("crash pod never restarted")
	}
	if out := c.mustKubectl(t, "logs", "crash", "--previous"); !strings.HasPrefix(out, "attempt ") {
		t.Errorf("kubectl logs --previous = %q", out)
	}
	c.mustKubectl(t, "delete", "pod", "crash", "--grace-period=1")

	// logs -f streams lines as they are written.
	follow := c.kubectlBackground(t, "logs", "-f", "talker")
	if !waitFor(30*time.Second, func() bool { return strings.Contains(follow.out.String(), "line 6") }) {
		t.Errorf("kubectl logs -f talker: got %q (stderr %q)", follow.out.String(), follow.errOut.String())
	}
	if follow.exited() {
		t.Errorf("kubectl logs -f ended while the container runs: %v %s", follow.err, follow.errOut.String())
	}
	follow.cancel()

	// exec without a terminal: output and exit code come back.
	out, _, err := c.kubectl("exec", "web", "--", "sh", "-c", "echo from-exec; hostname; exit 3")
	var exitErr *exec.ExitError
	if err == nil || !asExit(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("kubectl exec exit: %v, want exit status 3", err)
	}
	if out != "from-exec\nweb\n" {
		t.Errorf("kubectl exec output %q", out)
	}
	// exec -i: stdin reaches the process.
	cmd := exec.Command(c.kubectlBin, "exec", "-i", "web", "--", "sh", "-c", "read line; echo got $line")
	cmd.Env = c.env()
	cmd.Stdin = strings.NewReader("piped\n")
	if b, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "got piped" {
		t.Errorf("kubectl exec -i: %v %q", err, b)
	}
	// exec -it, under a pseudo-terminal made by script(1).
	if script, err := exec.LookPath("script"); err == nil {
		cmd := exec.Command(script, "-qec", c.kubectlBin+" exec -it web -- sh -c 'tty; echo tty-done'", "/dev/null")
		cmd.Env = c.env()
		b, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(b), "/dev/pts/") || !strings.Contains(string(b), "tty-done") {
			t.Errorf("kubectl exec -it: %v %q", err, b)
		}
	} else {
		t.Log("script(1) not found: kubectl exec -it not exercised")
	}

	// port-forward reaches the pod's port.
	local := servertest.FreePort(t)
	pf := c.kubectlBackground(t, "port-forward", "pod/web", fmt.Sprintf("%d:8080", local))
	var body string
	if !waitFor(30*time.Second, func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	}) {
		t.Errorf("port-forward: no answer (kubectl: %q %q)", pf.out.String(), pf.errOut.String())
	} else if body != "hello from web\n" {
		t.Errorf("port-forward answer %q", body)
	}
	pf.cancel()

	// delete waits for the kubelet to stop the containers and finish.
	start := time.Now()
	// The shell loop is PID 1 in its container and ignores SIGTERM, as it
	// would under any kubelet: a short grace period bounds the wait.
	c.mustKubectl(t, "delete", "pod", "web", "talker", "--grace-period=3")
	t.Logf("kubectl delete took %v", time.Since(start).Round(time.Millisecond))
	if out, _, _ := c.kubectl("get", "pods"); strings.Contains(out, "web") {
		t.Errorf("pods still listed after delete:\n%s", out)
	}
	t.Logf("transcript:\n%s", c.transcript.String())
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// TestAgentKill9 kills skiff (server and agent) with SIGKILL while pods
// run: containers keep running, and after a restart the agent adopts them;
// a container that exited meanwhile reports its exit code.
func TestAgentKill9(t *testing.T) {
	c, image := startNode(t)
	c.mustKubectl(t, "run", "steady", "--image="+image, "--command", "--", "/testprog", "serve", ":8080")
	c.mustKubectl(t, "run", "short", "--image="+image, "--restart=Never", "--command", "--", "sh", "-c", "sleep 8; exit 7")
	c.mustKubectl(t, "wait", "--for=condition=Ready", "pod/steady", "pod/short", "--timeout=90s")
	before := c.mustKubectl(t, "get", "pod", "steady", "-o", "jsonpath={.status.containerStatuses[0].containerID}")

	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	// The containers outlive the agent.
	if !processRunning("/testprog serve :8080") {
		t.Fatalf("the container's process died with the agent")
	}
	time.Sleep(10 * time.Second) // "short" exits while no agent runs
	c.launch(t)
	c.waitReady(t)

	if !waitFor(90*time.Second, func() bool {
		out, _, _ := c.kubectlQuiet(10*time.Second, "get", "pod", "short", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}")
		return out == "Failed 7"
	}) {
		out, _, _ := c.kubectl("get", "pod", "short", "-o", "yaml")
		t.Errorf("short did not report exit code 7 after the restart:\n%s", out)
	}
	after := c.mustKubectl(t, "get", "pod", "steady", "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
	if after != before+" 0" {
		t.Errorf("steady after restart: %q, want the same container %q and no restart", after, before)
	}
	t.Logf("transcript:\n%s", c.transcript.String())
}

// processRunning reports whether a process with this command line exists.
func processRunning(cmdline string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ") == cmdline {
			return true
		}
	}
	return false
}
