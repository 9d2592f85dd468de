package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/config"
	"skiff/internal/identity"
)

// TestEdge runs two servers and an agent that all share one host name, as
// cloned machines or Raspberry Pi images do (the namespaces share the
// machine's UTS namespace, so its host name), none given --node-name or
// --node-ip: they find their names and addresses themselves.
func TestEdge(t *testing.T) {
	host, err := identity.Hostname()
	if err != nil {
		t.Skip(err)
	}
	c := newHACluster(startNetNodes(t, "e", "vxlan", []netNodeSpec{
		{name: "s1", server: true, hostIdentity: true, args: []string{"--cluster-init"}},
		{name: "s2", server: true, hostIdentity: true, args: []string{"--with-node-id"}},
		{name: "a1", hostIdentity: true, args: []string{"--with-node-id"}},
	}))
	s1, s2, a1 := c.node("s1"), c.node("s2"), c.node("a1")

	// nodeNames maps each node's InternalIP to its Node.
	nodesByIP := func(t *testing.T, via *netNode) map[string]corev1.Node {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		list, err := c.client(via).CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list nodes: %v", err)
		}
		out := map[string]corev1.Node{}
		for _, n := range list.Items {
			out[internalIP(n)] = n
		}
		return out
	}

	t.Run("shared-host-names", func(t *testing.T) {
		byIP := nodesByIP(t, s2)
		if len(byIP) != 3 {
			t.Fatalf("nodes by InternalIP %v: want the 3 nodes at their own addresses", keys(byIP))
		}
		if got := byIP[s1.ip].Name; got != host {
			t.Errorf("the first server's node is %q; want the host name %q", got, host)
		}
		for _, n := range []*netNode{s2, a1} {
			name := byIP[n.ip].Name
			suffix, _ := os.ReadFile(config.Layout{DataDir: filepath.Join(n.dir, "data")}.NodeIDFile())
			if want := host + "-" + strings.TrimSpace(string(suffix)); name != want {
				t.Errorf("%s's node is %q; want %q (host name and the suffix kept in its data dir)", n.name, name, want)
			}
		}
		var members []string
		for _, n := range []*netNode{s1, s2} {
			b, err := os.ReadFile(config.Layout{DataDir: filepath.Join(n.dir, "data")}.EtcdMemberNameFile())
			if err != nil {
				t.Fatal(err)
			}
			members = append(members, strings.TrimSpace(string(b)))
		}
		if members[0] == members[1] || !strings.HasPrefix(members[0], host+"-") || !strings.HasPrefix(members[1], byIP[s2.ip].Name+"-") {
			t.Errorf("etcd member names %v: want distinct names, each a node name and a suffix", members)
		}
		// The member each server's node names is the one its data dir keeps.
		for i, n := range []*netNode{s1, s2} {
			if got := byIP[n.ip].Annotations["skiff.io/etcd-member"]; got != members[i] {
				t.Errorf("%s's node names etcd member %q; want %q", n.name, got, members[i])
			}
		}
	})

	t.Run("taken-name-refused", func(t *testing.T) {
		// Another machine with the same host name and no --with-node-id:
		// refused, with a message that says what to do.
		dir := filepath.Join(c.dir, "refused")
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+c.sw, c.skiff, "agent",
			"--server", "https://"+s1.ip+":6443", "--token", c.token,
			"--data-dir", filepath.Join(dir, "data"), "--pod-log-dir", filepath.Join(dir, "pod-logs"),
			"--cgroup-parent", "/skiff-e2e-"+c.id+"refused", "--kubelet-port", "10251").CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("an agent taking the name %q of another machine: err %v (want a refusal)\n%s", host, err, tail2(string(out), 20))
		}
		last := tail2(string(out), 3)
		if !strings.Contains(last, "node-password") || !strings.Contains(last, "--with-node-id") || !strings.Contains(last, "--node-name") {
			t.Errorf("the refusal does not say to use --with-node-id or --node-name:\n%s", tail2(string(out), 20))
		}
		t.Logf("refused: %s", last)
	})

	t.Run("kubernetes-endpoints-after-restart", func(t *testing.T) {
		want := []string{s1.ip, s2.ip}
		endpointsAre := func(via *netNode) bool {
			got := c.apiEndpoints(via)
			sort.Strings(got)
			return slices.Equal(got, want)
		}
		if !waitFor(30*time.Second, func() bool { return endpointsAre(s2) }) {
			t.Fatalf("default/kubernetes lists %v; want the servers' node IPs %v", c.apiEndpoints(s2), want)
		}
		// The server's agent put the cluster DNS address on lo; a restart
		// must not advertise it.
		if out, _ := inNS(s1.ns, "ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(out, "10.43.0.10") {
			t.Fatalf("the cluster DNS address is not on s1's lo:\n%s", out)
		}
		c.stop(s1)
		restarted := time.Now()
		c.start(s1)
		if !waitFor(120*time.Second, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := c.client(s1).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil && endpointsAre(s1)
		}) {
			t.Fatalf("after a restart of s1, default/kubernetes lists %v; want %v; log:\n%s", c.apiEndpoints(s2), want, tail(s1.logPath, 40))
		}
		t.Logf("s1 serves again, default/kubernetes lists %v, %s after the restart", c.apiEndpoints(s1), secs(time.Since(restarted)))
		byIP := nodesByIP(t, s1)
		if _, ok := byIP[s1.ip]; !ok || len(byIP) != 3 {
			t.Errorf("after a restart, nodes by InternalIP: %v; want s1 at %s", keys(byIP), s1.ip)
		}
	})

	t.Run("node-ip-change", func(t *testing.T) {
		byIP := nodesByIP(t, s1)
		agentNode, s2Node := byIP[a1.ip].Name, byIP[s2.ip].Name
		c.apply(podManifest("edge-web", agentNode, "edge-web", "/testprog", "serve", ":8080") + "---\n" +
			podManifest("edge-client", s2Node, "edge-client", "sleep", "3600"))
		c.kubectl("wait", "--for=condition=Ready", "pod/edge-web", "pod/edge-client", "--timeout=120s")
		webIP := c.kubectl("get", "pod", "edge-web", "-o", "jsonpath={.status.podIP}")
		containerID := c.kubectl("get", "pod", "edge-web", "-o", "jsonpath={.status.containerStatuses[0].containerID}")
		reach := func() error {
			out, err := c.kubectlQuiet("exec", "edge-client", "--", "timeout", "5", "wget", "-qO-", "http://"+webIP+":8080/")
			if err != nil || !strings.HasPrefix(out, "hello from edge-web") {
				return fmt.Errorf("%v %q", err, out)
			}
			return nil
		}
		if !waitFor(30*time.Second, func() bool { return reach() == nil }) {
			t.Fatalf("a pod on s2 cannot reach the agent's pod before the change: %v", reach())
		}

		// A new DHCP lease: the old address goes, a new one comes (and the
		// default route with it).
		newIP := netSubnet + ".50"
		for _, cmd := range [][]string{
			{"ip", "addr", "del", a1.ip + "/24", "dev", "eth0"},
			{"ip", "addr", "add", newIP + "/24", "dev", "eth0"},
			{"ip", "route", "replace", "default", "via", netSubnet + ".1"},
		} {
			if out, err := inNS(a1.ns, cmd...); err != nil {
				t.Fatalf("%v in %s: %v\n%s", cmd, a1.ns, err, out)
			}
		}
		changed := time.Now()
		a1.ip = newIP
		if !waitFor(60*time.Second, func() bool {
			_, ok := nodesByIP(t, s1)[newIP]
			return ok
		}) {
			t.Fatalf("the agent's Node does not list %s within 60 s of the change: %v; log:\n%s", newIP, keys(nodesByIP(t, s1)), tail(a1.logPath, 40))
		}
		t.Logf("the Node's InternalIP followed in %s", secs(time.Since(changed)))
		if !waitFor(60*time.Second, func() bool { return reach() == nil }) {
			t.Errorf("after the change, a pod on s2 cannot reach the agent's pod (VXLAN peers): %v", reach())
		}
		if got := c.kubectl("get", "pod", "edge-web", "-o", "jsonpath={.status.containerStatuses[0].containerID}"); got != containerID {
			t.Errorf("the agent's pod's container changed from %s to %s: want it kept running", containerID, got)
		}
		// The API server reaches the kubelet at its new address, with a
		// serving certificate that covers it.
		if !waitFor(30*time.Second, func() bool {
			_, err := c.kubectlQuiet("exec", "edge-web", "--", "true")
			return err == nil
		}) {
			out, err := c.kubectlQuiet("exec", "edge-web", "--", "true")
			t.Errorf("kubectl exec into the agent's pod after the change: %v\n%s", err, out)
		}
	})
}

func internalIP(n corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func tail2(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
