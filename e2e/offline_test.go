package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEdgeOffline reboots an agent while its only server is down: the
// agent starts its pods again from local state, with their ConfigMap and
// Secret volumes; when the server is back the node is Ready, the pod is the
// same (same UID, one container), and a pod deleted meanwhile is removed
// with its volumes.
func TestEdgeOffline(t *testing.T) {
	c := newHACluster(startNetNodes(t, "o", "host-gw", []netNodeSpec{
		{name: "s1", server: true},
		{name: "a1"},
	}))
	s1, a1 := c.node("s1"), c.node("a1")
	pod := func(name, sleep string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  nodeName: a1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: skiff.test/prog:v1
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "test \"$(cat /cfg/greeting)\" = hello && test \"$(cat /sec/password)\" = s3cret && exec sleep %s"]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: sec, mountPath: /sec}
  volumes:
  - name: cfg
    configMap: {name: edge-cfg}
  - name: sec
    secret: {secretName: edge-sec}
`, name, sleep)
	}
	c.apply(`apiVersion: v1
kind: ConfigMap
metadata: {name: edge-cfg}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: edge-sec}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Service
metadata: {name: edge-svc}
spec:
  selector: {app: edge-svc}
  ports: [{port: 80}]
---
` + pod("keeper", "3617") + "---\n" + pod("doomed", "3618"))
	c.kubectl("wait", "--for=condition=Ready", "pod/keeper", "pod/doomed", "--timeout=120s")
	svcIP := c.kubectl("get", "svc", "edge-svc", "-o", "jsonpath={.spec.clusterIP}")
	keeperUID := c.kubectl("get", "pod", "keeper", "-o", "jsonpath={.metadata.uid}")
	doomedUID := c.kubectl("get", "pod", "doomed", "-o", "jsonpath={.metadata.uid}")
	if n := countProcs("sleep", "3617"); n != 1 {
		t.Fatalf("%d keeper processes before the reboot; want 1", n)
	}

	// The node keeps the services it knows (refreshed every minute).
	kept := filepath.Join(a1.dir, "data", "agent", "last-known", "services.json")
	if !waitFor(150*time.Second, func() bool {
		b, _ := os.ReadFile(kept)
		return bytes.Contains(b, []byte(`"edge-svc"`))
	}) {
		t.Fatalf("%s does not list edge-svc", kept)
	}

	// The agent "reboots": its process, shims and containers are killed,
	// its mounts and network devices go.
	c.kill(a1)
	c.rebootNode(a1)
	if n := countProcs("sleep", "3617"); n != 0 {
		t.Fatalf("%d keeper processes after the reboot; want none", n)
	}
	// Deleted while the agent is away: its local state is stale.
	c.kubectl("delete", "pod", "doomed", "--grace-period=0", "--force", "--wait=false")
	// Then the server goes too.
	c.stop(s1)

	off := logSize(a1)
	started := time.Now()
	c.start(a1)
	if !waitFor(90*time.Second, func() bool { return countProcs("sleep", "3617") == 1 }) {
		t.Fatalf("the keeper pod's process does not run again with no server; a1 log:\n%s", tail(a1.logPath, 60))
	}
	t.Logf("with no server, the rebooted agent runs its pod again %s after it started", secs(time.Since(started)))
	if log := logSince(a1, off); !strings.Contains(log, "running offline") {
		t.Errorf("the agent does not say it runs offline; log:\n%s", tail(a1.logPath, 30))
	}
	// Services and DNS as last known, with no server.
	if !waitFor(90*time.Second, func() bool {
		out, err := inNS(a1.ns, "busybox", "nslookup", "edge-svc.default.svc.cluster.local", "10.43.0.10")
		return err == nil && strings.Contains(out, svcIP)
	}) {
		out, err := inNS(a1.ns, "busybox", "nslookup", "edge-svc.default.svc.cluster.local", "10.43.0.10")
		t.Errorf("offline, the node's DNS does not answer the last known service %s: %v\n%s", svcIP, err, out)
	} else {
		t.Logf("offline, the node's DNS answers the last known services %s after the agent started", secs(time.Since(started)))
	}
	if !waitFor(30*time.Second, func() bool {
		out, _ := inNS(a1.ns, "iptables-save")
		return strings.Contains(out, svcIP)
	}) {
		t.Errorf("offline, the node has no service rules for the last known service %s", svcIP)
	}

	c.start(s1)
	if !waitFor(120*time.Second, func() bool {
		out, err := c.kubectlQuiet("get", "node", "a1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return err == nil && out == "True"
	}) {
		t.Fatalf("a1 not Ready after the server came back; a1 log:\n%s", tail(a1.logPath, 40))
	}
	// The Node still says Ready from before the reboot: its Offline
	// condition shows that the agent registered again.
	offline := func() (string, error) {
		return c.kubectlQuiet("get", "node", "a1", "-o", `jsonpath={.status.conditions[?(@.type=="Offline")].message}`)
	}
	if !waitFor(90*time.Second, func() bool {
		out, err := offline()
		return err == nil && strings.Contains(out, "ran its pods from local state")
	}) {
		out, err := offline()
		t.Errorf("once back, the node does not say it ran offline (condition Offline): %v %q; a1 log:\n%s", err, out, tail(a1.logPath, 30))
	} else {
		out, _ := offline()
		t.Logf("node condition Offline: %s", out)
	}
	if !waitFor(60*time.Second, func() bool {
		out, err := c.kubectlQuiet("get", "pod", "keeper", "-o", `jsonpath={.metadata.uid} {.status.phase} {.status.containerStatuses[0].ready}`)
		return err == nil && out == keeperUID+" Running true"
	}) {
		out, _ := c.kubectlQuiet("get", "pod", "keeper", "-o", "wide")
		t.Errorf("after the server is back, keeper is not the same Running pod (uid %s):\n%s", keeperUID, out)
	}
	if n := countProcs("sleep", "3617"); n != 1 {
		t.Errorf("%d keeper processes once online; want exactly 1 (no duplicate container)", n)
	}
	doomedDir := filepath.Join(a1.dir, "data", "agent", "pods", doomedUID)
	if !waitFor(60*time.Second, func() bool {
		_, err := os.Stat(doomedDir)
		return countProcs("sleep", "3618") == 0 && os.IsNotExist(err)
	}) {
		t.Errorf("the pod deleted while the agent was offline still runs (%d processes) or keeps its volumes (%s)", countProcs("sleep", "3618"), doomedDir)
	}
}

// countProcs counts the processes whose command line is exactly args.
func countProcs(args ...string) int {
	want := []byte(strings.Join(args, "\x00") + "\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(b, want) {
			n++
		}
	}
	return n
}

// rebootNode does to a stopped node what a reboot does: every process of
// its containers and shims is killed, its mounts are gone, and so are its
// network devices, addresses and iptables rules.
func (c *haCluster) rebootNode(n *netNode) {
	c.t.Helper()
	for i := 0; i < 20; i++ {
		pids := cgroupProcs("/skiff-e2e-" + c.id + n.name)
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(n.dir)) {
				var pid int
				if _, err := fmt.Sscanf(p, "/proc/%d/cmdline", &pid); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	unmountUnder(n.dir)
	for _, cmd := range [][]string{
		{"ip", "link", "del", "skiff0"},
		{"ip", "link", "del", "skiff.vxlan"},
		{"ip", "addr", "del", "10.43.0.10/32", "dev", "lo"},
		{"iptables", "-t", "nat", "-F"},
		{"iptables", "-t", "filter", "-F"},
	} {
		_, _ = inNS(n.ns, cmd...)
	}
}

// cgroupProcs lists the processes in the cgroup parent and below.
func cgroupProcs(parent string) []int {
	var pids []int
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, root := range roots {
		_ = filepath.Walk(filepath.Join(root, parent), func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || info.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}
