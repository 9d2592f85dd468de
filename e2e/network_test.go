package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"skiff/internal/kubelet/kubelettest"
)

// netCluster is one server and two agents, each node in its own network
// namespace, joined by a bridge in a "switch" namespace: several hosts on
// one machine. Nothing touches the machine's own network namespace.
type netCluster struct {
	t     testing.TB
	id    string
	dir   string
	skiff string
	kctl  string
	mode  string
	sw    string // the switch namespace
	nodes []*netNode
	token string
	// agentToken is what nodes with netNodeSpec.agentToken join with (the
	// server's agent token, unless the test changes it).
	agentToken string
}

type netNode struct {
	name, ns, ip, dir string
	server            bool
	extraArgs         []string // flags of this node's own, after the common ones
	// hostIdentity leaves out --node-name and --node-ip: the node is
	// named after the host name and finds its own address.
	hostIdentity bool
	// agentToken: an agent that joins with the agent token.
	agentToken bool
	cmd        *exec.Cmd
	done       chan struct{}
	logPath    string
}

const netSubnet = "192.168.77"

func requireNetTools(t testing.TB) {
	t.Helper()
	kubelettest.RequireRoot(t)
	for _, tool := range []string{"ip", "nsenter", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install iproute2 iptables)", tool)
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// netNodeSpec is one node of a netCluster: a server or an agent, and flags
// of its own. The first node is a server; a server after it joins the
// first one's cluster (which then needs --cluster-init).
type netNodeSpec struct {
	name   string
	server bool
	args   []string
	// hostIdentity: no --node-name and no --node-ip (see netNode).
	hostIdentity bool
	// agentToken: an agent that joins with the agent token, not the
	// server token.
	agentToken bool
	// manual: not started by startNetNodes; the test starts it (c.start).
	manual bool
}

// startNetCluster builds the namespaces and starts the three nodes.
func startNetCluster(t testing.TB, mode string) *netCluster {
	t.Helper()
	return startNetNodes(t, mode[:1], mode, []netNodeSpec{{name: "n1", server: true}, {name: "n2"}, {name: "n3"}})
}

// startNetNodes builds the namespaces and starts the nodes of specs, the
// servers one after the other, then the agents, and waits until every
// node with a kubelet is Ready. tag (one character) tells apart the
// namespaces of clusters that one test binary starts.
func startNetNodes(t testing.TB, tag, mode string, specs []netNodeSpec) *netCluster {
	t.Helper()
	requireNetTools(t)
	skiffBin, kubectlBin := binaries(t)
	c := &netCluster{t: t, id: fmt.Sprintf("%d%s", os.Getpid()%100000, tag), dir: t.TempDir(), skiff: skiffBin, kctl: kubectlBin, mode: mode}
	c.sw = "sk" + c.id + "sw"
	run(t, "ip", "netns", "add", c.sw)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", c.sw).Run() })
	run(t, "ip", "netns", "exec", c.sw, "ip", "link", "add", "br0", "type", "bridge")
	run(t, "ip", "netns", "exec", c.sw, "ip", "addr", "add", netSubnet+".1/24", "dev", "br0")
	run(t, "ip", "netns", "exec", c.sw, "ip", "link", "set", "br0", "up")
	run(t, "ip", "netns", "exec", c.sw, "ip", "link", "set", "lo", "up")
	if mode == "vxlan" {
		if out, err := exec.Command("ip", "netns", "exec", c.sw, "ip", "link", "add", "vxprobe", "type", "vxlan", "id", "42", "dstport", "4789", "dev", "br0").CombinedOutput(); err != nil {
			t.Skipf("this kernel cannot create VXLAN devices (modprobe vxlan): %v %s", err, out)
		}
	}

	var img v1.Image
	for i, spec := range specs {
		name := spec.name
		n := &netNode{name: name, ns: "sk" + c.id + name, ip: fmt.Sprintf("%s.%d", netSubnet, 11+i), dir: filepath.Join(c.dir, name),
			server: spec.server, extraArgs: spec.args, hostIdentity: spec.hostIdentity, agentToken: spec.agentToken}
		n.logPath = filepath.Join(n.dir, "skiff.log")
		c.nodes = append(c.nodes, n)
		run(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.ns).Run() })
		host, peer := "v"+c.id+name, "eth0"
		run(t, "ip", "link", "add", host, "netns", c.sw, "type", "veth", "peer", "name", peer, "netns", n.ns)
		run(t, "ip", "netns", "exec", c.sw, "ip", "link", "set", host, "master", "br0", "up")
		run(t, "ip", "netns", "exec", n.ns, "ip", "addr", "add", n.ip+"/24", "dev", peer)
		run(t, "ip", "netns", "exec", n.ns, "ip", "link", "set", peer, "up")
		run(t, "ip", "netns", "exec", n.ns, "ip", "link", "set", "lo", "up")
		run(t, "ip", "netns", "exec", n.ns, "ip", "route", "add", "default", "via", netSubnet+".1")
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(n.extraArgs, "--disable-agent") {
			continue
		}
		// The test image, imported by each agent from its air-gap folder.
		importDir := filepath.Join(n.dir, "data", "agent", "images", "import")
		if err := os.MkdirAll(importDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if img == nil {
			img = kubelettest.Image(t)
		}
		kubelettest.SaveTarball(t, filepath.Join(importDir, "prog.tar"), "skiff.test/prog:v1", img)
	}
	t.Cleanup(c.stopAll)
	c.start(c.nodes[0])
	tokenFile := filepath.Join(c.nodes[0].dir, "data", "server", "token")
	if !waitFor(60*time.Second, func() bool { _, err := os.Stat(tokenFile); return err == nil }) {
		t.Fatalf("server wrote no token; log:\n%s", tail(c.nodes[0].logPath, 40))
	}
	b, _ := os.ReadFile(tokenFile)
	c.token = strings.TrimSpace(string(b))
	b, _ = os.ReadFile(filepath.Join(c.nodes[0].dir, "data", "server", "agent-token"))
	c.agentToken = strings.TrimSpace(string(b))
	// Servers join one at a time: etcd takes one learner at a time.
	for _, n := range c.nodes[1:] {
		if !n.server {
			continue
		}
		c.start(n)
		if !waitFor(120*time.Second, func() bool {
			_, err := c.kubectlOn(n, "get", "--raw", "/readyz")
			return err == nil
		}) {
			t.Fatalf("server %s not ready; log:\n%s", n.name, tail(n.logPath, 40))
		}
	}
	kubelets := 0
	for i, n := range c.nodes {
		if specs[i].manual {
			continue
		}
		if !n.server {
			c.start(n)
		}
		if !slices.Contains(n.extraArgs, "--disable-agent") {
			kubelets++
		}
	}
	if kubelets > 0 && !waitFor(120*time.Second, func() bool {
		out, _ := c.kubectlQuiet("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}")
		return strings.Count(out, "=True") == kubelets
	}) {
		out, _ := c.kubectlQuiet("get", "nodes", "-o", "wide")
		t.Fatalf("%d nodes not Ready:\n%s\nagent log:\n%s", kubelets, out, tail(c.nodes[len(c.nodes)-1].logPath, 30))
	}
	return c
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *netCluster) args(n *netNode) []string {
	common := []string{
		"--data-dir", filepath.Join(n.dir, "data"),
		"--pod-log-dir", filepath.Join(n.dir, "pod-logs"),
		"--cgroup-parent", "/skiff-e2e-" + c.id + n.name,
		"--pod-network", c.mode,
	}
	if !n.hostIdentity {
		common = append(common, "--node-name", n.name, "--node-ip", n.ip)
	}
	var role []string
	switch {
	case n == c.nodes[0]:
		role = []string{"server", "--write-kubeconfig", filepath.Join(c.dir, "kubeconfig.yaml")}
	case n.server:
		role = []string{"server", "--write-kubeconfig", filepath.Join(n.dir, "kubeconfig.yaml"),
			"--server", "https://" + c.nodes[0].ip + ":6443", "--token", c.token}
	case n.agentToken:
		role = []string{"agent", "--server", "https://" + c.nodes[0].ip + ":6443", "--token", c.agentToken}
	default:
		role = []string{"agent", "--server", "https://" + c.nodes[0].ip + ":6443", "--token", c.token}
	}
	return append(append(role, common...), n.extraArgs...)
}

func (c *netCluster) start(n *netNode) {
	c.t.Helper()
	logFile, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	// nsenter, not `ip netns exec`: the latter remounts /sys for the
	// namespace, which hides the cgroup hierarchies the runtime needs.
	n.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.ns, c.skiff}, c.args(n)...)...)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); logFile.Close(); close(done) }(n.cmd, n.done)
}

func (c *netCluster) stop(n *netNode) {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// stopAll deletes the pods while the cluster runs, stops the nodes, and
// kills whatever containers are left.
func (c *netCluster) stopAll() {
	if c.t.Failed() {
		out, _ := c.kubectlQuiet("get", "pods,nodes", "-A", "-o", "wide")
		c.t.Logf("cluster state:\n%s", out)
		out, _ = c.kubectlQuiet("get", "events", "-A", "--field-selector", "type=Warning")
		c.t.Logf("warnings:\n%s", out)
		for _, n := range c.nodes {
			c.t.Logf("%s log (tail):\n%s", n.name, tail(n.logPath, 80))
		}
	}
	_, _ = c.kubectlQuiet("delete", "pods", "--all", "--wait", "--timeout=60s", "--grace-period=1")
	for i := len(c.nodes) - 1; i >= 0; i-- {
		c.stop(c.nodes[i])
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), c.dir) {
			var pid int
			if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	unmountUnder(c.dir)
	for _, n := range c.nodes {
		kubelettest.RemoveCgroups("/skiff-e2e-" + c.id + n.name)
	}
}

// unmountUnder detaches every mount below dir (overlays, namespace files,
// volumes), deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// kubectlQuiet runs kubectl inside the first server's namespace, where the
// admin kubeconfig's 127.0.0.1:6443 is the server.
func (c *netCluster) kubectlQuiet(args ...string) (string, error) {
	return c.kubectlOn(c.nodes[0], args...)
}

// kubectlOn runs kubectl inside the namespace of server n, against n's API.
func (c *netCluster) kubectlOn(n *netNode, args ...string) (string, error) {
	return c.kubectlWith(n, filepath.Join(c.dir, "kubeconfig.yaml"), args...)
}

// kubectlWith runs kubectl in node n's network namespace with kubeconfig,
// as a program on that machine would.
func (c *netCluster) kubectlWith(n *netNode, kubeconfig string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	full := append([]string{"netns", "exec", n.ns, c.kctl, "--kubeconfig", kubeconfig}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput()
	return string(out), err
}

func (c *netCluster) kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.kubectlQuiet(args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// apply creates objects from a manifest.
func (c *netCluster) apply(manifest string) {
	c.t.Helper()
	p := filepath.Join(c.dir, fmt.Sprintf("m%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.kubectl("apply", "-f", p)
}

// inNS runs a command in a namespace of the test (the switch: an outside host).
func inNS(ns string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

func podManifest(name, node, app string, args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: %s}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.test/prog:v1
    imagePullPolicy: IfNotPresent
    command: [%s]
    ports: [{containerPort: 8080}]
`, name, app, node, strings.Join(quoted, ", "))
}

// skiffChains is a node's iptables rules for skiff's own chains, sorted.
func skiffChains(t testing.TB, ns string) string {
	t.Helper()
	out, err := inNS(ns, "iptables-save")
	if err != nil {
		t.Fatalf("iptables-save in %s: %v\n%s", ns, err, out)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "SKIFF") && !strings.HasPrefix(l, "#") {
			// Packet counters differ between two saves.
			lines = append(lines, regexp.MustCompile(`\[\d+:\d+\]`).ReplaceAllString(l, ""))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestNetworkVXLAN(t *testing.T)  { testNetwork(t, "vxlan") }
func TestNetworkHostGW(t *testing.T) { testNetwork(t, "host-gw") }

func testNetwork(t *testing.T, mode string) {
	c := startNetCluster(t, mode)
	c.apply(podManifest("web-1", "n2", "web", "/testprog", "serve", ":8080") + "---\n" +
		podManifest("web-2", "n3", "web", "/testprog", "serve", ":8080") + "---\n" +
		podManifest("client", "n1", "client", "sleep", "3600") + "---\n" +
		podManifest("client2", "n2", "client", "sleep", "3600") + "---\n" +
		podManifest("sink", "n3", "sink", "/testprog", "sink", ":9000") + `---
apiVersion: v1
kind: Service
metadata: {name: sink}
spec:
  selector: {app: sink}
  ports: [{port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
`)
	c.kubectl("wait", "--for=condition=Ready", "pod/web-1", "pod/web-2", "pod/client", "pod/client2", "pod/sink", "--timeout=120s")
	ip2 := c.kubectl("get", "pod", "web-2", "-o", "jsonpath={.status.podIP}")
	if !strings.HasPrefix(ip2, "10.42.") {
		t.Fatalf("web-2 pod IP %q, want one from 10.42.0.0/16", ip2)
	}
	wget := func(url string) (string, error) {
		return c.kubectlQuiet("exec", "client", "--", "timeout", "10", "wget", "-qO-", url)
	}
	// Pods are Ready before every node's proxy has programmed the new
	// services (syncs are coalesced, as kube-proxy's are); a user retries
	// the first request, and so does the test.
	clusterIP := c.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
	if !waitFor(30*time.Second, func() bool {
		_, err := wget("http://" + clusterIP + "/")
		return err == nil
	}) {
		t.Fatalf("service web (%s) never answered from n1", clusterIP)
	}
	for _, n := range c.nodes {
		waitFor(30*time.Second, func() bool {
			_, err := inNS(c.sw, "busybox", "timeout", "5", "busybox", "wget", "-qO-", "http://"+n.ip+":30080/")
			return err == nil
		})
	}

	t.Run("pod-to-pod-across-nodes", func(t *testing.T) {
		out, err := wget("http://" + ip2 + ":8080/")
		if err != nil || out != "hello from web-2\n" {
			t.Errorf("client (n1) → web-2 (n3) at %s: %v %q", ip2, err, out)
		}
	})
	t.Run("cluster-ip-balances", func(t *testing.T) {
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			out, err := wget("http://" + clusterIP + "/")
			if err != nil {
				t.Fatalf("client → %s: %v %q", clusterIP, err, out)
			}
			seen[strings.TrimSpace(out)]++
		}
		if len(seen) != 2 {
			t.Errorf("20 requests to the ClusterIP reached %v, want both pods", seen)
		}
	})
	t.Run("dns", func(t *testing.T) {
		out, err := wget("http://web.default.svc.cluster.local/")
		if err != nil || !strings.HasPrefix(out, "hello from web-") {
			t.Errorf("wget http://web.default.svc.cluster.local/: %v %q", err, out)
		}
		out, err = c.kubectlQuiet("exec", "client", "--", "nslookup", "web.default.svc.cluster.local")
		if err != nil || !strings.Contains(out, clusterIP) {
			t.Errorf("nslookup: %v\n%s", err, out)
		}
		if out, err := wget("http://web/"); err != nil || !strings.HasPrefix(out, "hello from web-") {
			t.Errorf("short name through the search path: %v %q", err, out)
		}
	})
	t.Run("nodeport-on-every-node", func(t *testing.T) {
		for _, n := range c.nodes {
			out, err := inNS(c.sw, "busybox", "timeout", "10", "busybox", "wget", "-qO-", "http://"+n.ip+":30080/")
			if err != nil || !strings.HasPrefix(out, "hello from web-") {
				t.Errorf("outside host → %s:30080: %v %q", n.ip, err, out)
			}
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 12; i++ {
			out, err := c.kubectlQuiet("exec", "web-1", "--", "timeout", "10", "wget", "-qO-", "http://web/")
			if err != nil {
				t.Fatalf("web-1 → its own service: %v %q", err, out)
			}
			seen[strings.TrimSpace(out)] = true
		}
		if !seen["hello from web-1"] {
			t.Errorf("web-1 never reached itself through its service: %v", seen)
		}
	})
	t.Run("session-affinity", func(t *testing.T) {
		c.kubectl("patch", "svc", "web", "-p", `{"spec":{"sessionAffinity":"ClientIP"}}`)
		time.Sleep(3 * time.Second)
		seen := map[string]int{}
		for i := 0; i < 10; i++ {
			out, err := wget("http://web/")
			if err != nil {
				t.Fatal(err)
			}
			seen[strings.TrimSpace(out)]++
		}
		if len(seen) != 1 {
			t.Errorf("with ClientIP affinity 10 requests reached %v", seen)
		}
		c.kubectl("patch", "svc", "web", "-p", `{"spec":{"sessionAffinity":"None"}}`)
	})
	t.Run("agent-restart-keeps-rules", func(t *testing.T) {
		n2 := c.nodes[1]
		// Earlier steps changed services; take the rules once they settle.
		var before string
		waitFor(30*time.Second, func() bool {
			a := skiffChains(t, n2.ns)
			time.Sleep(3 * time.Second)
			before = skiffChains(t, n2.ns)
			return a == before
		})
		// A connection through a service, from a pod on n2, spans the
		// restart of n2's agent: it must not break (the blaster exits 1 on
		// a write error).
		c.apply(strings.Replace(podManifest("blaster", "n2", "blaster", "/testprog", "blast", "sink:9000", "20"),
			"spec:\n", "spec:\n  restartPolicy: Never\n", 1))
		c.kubectl("wait", "--for=condition=Ready", "pod/blaster", "--timeout=60s")
		time.Sleep(2 * time.Second)
		c.stop(n2)
		c.start(n2)
		time.Sleep(8 * time.Second) // the proxy's first sync after the restart
		if !waitFor(60*time.Second, func() bool { return skiffChains(t, n2.ns) == before }) {
			t.Errorf("rules on n2 differ after an agent restart:\nbefore:\n%s\nafter:\n%s", before, skiffChains(t, n2.ns))
		}
		if out, err := wget("http://web/"); err != nil || !strings.HasPrefix(out, "hello from web-") {
			t.Errorf("service after the restart: %v %q", err, out)
		}
		if !waitFor(60*time.Second, func() bool {
			out, _ := c.kubectlQuiet("get", "pod", "blaster", "-o", "jsonpath={.status.phase}")
			return out == "Succeeded" || out == "Failed"
		}) {
			t.Fatalf("blaster did not finish")
		}
		phase := c.kubectl("get", "pod", "blaster", "-o", "jsonpath={.status.phase}")
		logs, _ := c.kubectlQuiet("logs", "blaster")
		if phase != "Succeeded" {
			t.Errorf("a connection through a service broke while the agent restarted: %s %q", phase, logs)
		} else {
			t.Logf("a connection through the service lasted across the agent restart: %s", strings.TrimSpace(logs))
		}
	})
	t.Run("removed-endpoint-and-service", func(t *testing.T) {
		c.kubectl("delete", "pod", "web-2", "--grace-period=1")
		time.Sleep(3 * time.Second)
		for i := 0; i < 10; i++ {
			out, err := wget("http://web/")
			if err != nil || strings.TrimSpace(out) != "hello from web-1" {
				t.Fatalf("after web-2 went away: %v %q", err, out)
			}
		}
		c.kubectl("delete", "svc", "web", "web-np")
		if !waitFor(30*time.Second, func() bool {
			return !strings.Contains(skiffChains(t, c.nodes[1].ns), "default/web")
		}) {
			t.Errorf("rules for the deleted services remain:\n%s", skiffChains(t, c.nodes[1].ns))
		}
	})
}

// BenchmarkPodNetwork measures TCP throughput between pods on two nodes
// against the same transfer between the nodes themselves, over the same
// veth links, for both pod network modes:
//
//	go test ./e2e -run '^$' -bench PodNetwork -benchtime 1x
func BenchmarkPodNetwork(b *testing.B) {
	for _, mode := range []string{"vxlan", "host-gw"} {
		b.Run(mode, func(b *testing.B) {
			c := startNetCluster(b, mode)
			c.apply(podManifest("sink", "n3", "sink", "/testprog", "sink", ":9000") + "---\n" +
				podManifest("source", "n1", "source", "sleep", "3600"))
			c.kubectl("wait", "--for=condition=Ready", "pod/sink", "pod/source", "--timeout=120s")
			sinkIP := c.kubectl("get", "pod", "sink", "-o", "jsonpath={.status.podIP}")
			prog, err := kubelettest.TestprogBinary()
			if err != nil {
				b.Fatal(err)
			}
			progPath := filepath.Join(c.dir, "testprog")
			if err := os.WriteFile(progPath, prog, 0o755); err != nil {
				b.Fatal(err)
			}
			hostSink := exec.Command("ip", "netns", "exec", c.nodes[2].ns, progPath, "sink", ":9001")
			if err := hostSink.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = hostSink.Process.Kill(); _ = hostSink.Wait() }()
			time.Sleep(500 * time.Millisecond)
			rate := func(out string, err error) float64 {
				var v float64
				if _, serr := fmt.Sscanf(strings.TrimSpace(out[strings.LastIndex(out, "MB/s:"):]), "MB/s: %f", &v); err != nil || serr != nil {
					b.Fatalf("blast: %v %v %q", err, serr, out)
				}
				return v
			}
			var pod, node float64
			for i := 0; i < b.N; i++ {
				pod = rate(c.kubectlQuiet("exec", "source", "--", "/testprog", "blast", sinkIP+":9000", "5"))
				node = rate(inNS(c.nodes[0].ns, progPath, "blast", c.nodes[2].ip+":9001", "5"))
			}
			b.ReportMetric(pod, "pod-MB/s")
			b.ReportMetric(node, "node-MB/s")
			b.ReportMetric(pod/node*100, "pod-%-of-node")
		})
	}
}
