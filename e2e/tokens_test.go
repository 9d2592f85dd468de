package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJoinTokens: on a cluster of network namespaces, an agent joins with
// the agent token, which opens neither the servers' bootstrap data nor
// etcd membership; after `skiff token rotate --agent` the old token joins
// no new agent, the new one does, and the agent that joined stays Ready;
// neither token is an API credential.
func TestJoinTokens(t *testing.T) {
	c := startNetNodes(t, "j", "host-gw", []netNodeSpec{
		{name: "s1", server: true, args: []string{"--cluster-init"}},
		{name: "a1", agentToken: true},
		{name: "a2", agentToken: true, manual: true},
	})
	s1, a1, a2 := c.nodes[0], c.nodes[1], c.nodes[2]
	if !strings.Contains(c.agentToken, "::node:") || !strings.Contains(c.token, "::server:") {
		t.Fatalf("tokens %q and %q: want a server token and an agent token", c.token, c.agentToken)
	}
	if out := c.kubectl("get", "node", "a1", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"); out != "True" {
		t.Fatalf("a1, joined with the agent token, is not Ready: %q", out)
	}

	// From the agent's machine, the agent token gets no server secrets.
	oldAgent := c.agentToken
	kc := c.tokenKubeconfig(t, a1, "agent-token", oldAgent)
	out, err := c.kubectlWith(a1, kc, "get", "--raw", "/v1-skiff/server-bootstrap")
	if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, "agents only") {
		t.Errorf("server-bootstrap with the agent token: %v\n%s\nwant Forbidden: agents only", err, out)
	}
	body := filepath.Join(c.dir, "member.json")
	if err := os.WriteFile(body, []byte(`{"name":"intruder","peerURL":"https://`+a1.ip+`:2380"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = c.kubectlWith(a1, kc, "create", "--raw", "/v1-skiff/etcd-members", "-f", body)
	if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, "agents only") {
		t.Errorf("adding an etcd member with the agent token: %v\n%s\nwant Forbidden: agents only", err, out)
	}

	// Neither token is an API credential.
	for name, tok := range map[string]string{"agent": oldAgent, "server": c.token} {
		out, err := c.kubectlWith(a1, c.tokenKubeconfig(t, a1, name+"-bearer", tok), "get", "nodes")
		if err == nil || !strings.Contains(out, "Unauthorized") {
			t.Errorf("the %s token as a bearer token: %v\n%s\nwant Unauthorized", name, err, out)
		}
	}

	// Rotate the agent token on the running server.
	rot, err := exec.Command("ip", "netns", "exec", s1.ns, c.skiff, "token", "rotate", "--agent", "--data-dir", filepath.Join(s1.dir, "data")).Output()
	newAgent := strings.TrimSpace(string(rot))
	if err != nil || !strings.Contains(newAgent, "::node:") || newAgent == oldAgent {
		t.Fatalf("skiff token rotate --agent: %v\n%s", err, rot)
	}
	if got, _ := exec.Command("ip", "netns", "exec", s1.ns, c.skiff, "token", "--agent", "--data-dir", filepath.Join(s1.dir, "data")).Output(); strings.TrimSpace(string(got)) != newAgent {
		t.Errorf("skiff token --agent after the rotation: %q, want %q", got, newAgent)
	}

	// The old token joins no new agent: the agent stops with a 401.
	c.start(a2)
	select {
	case <-a2.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("an agent with the old agent token still runs; log:\n%s", tail(a2.logPath, 30))
	}
	a2.cmd = nil
	if log := tail(a2.logPath, 30); !strings.Contains(log, "401") {
		t.Errorf("the agent with the old token did not stop on a refused token; log:\n%s", log)
	}
	if out, _ := c.kubectlQuiet("get", "node", "a2"); !strings.Contains(out, "NotFound") {
		t.Errorf("a2 registered with the old token:\n%s", out)
	}
	// The new one does.
	c.agentToken = newAgent
	c.start(a2)
	if !waitFor(120*time.Second, func() bool {
		out, _ := c.kubectlQuiet("get", "node", "a2", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
		return out == "True"
	}) {
		t.Fatalf("a2 not Ready with the new agent token; log:\n%s", tail(a2.logPath, 30))
	}

	// The agent that joined before keeps working on its certificates,
	// across a restart too (still started with the old token).
	c.agentToken = oldAgent
	c.stop(a1)
	if err := os.Truncate(a1.logPath, 0); err != nil {
		t.Fatal(err)
	}
	c.start(a1)
	if !waitFor(90*time.Second, func() bool {
		out, _ := c.kubectlQuiet("get", "node", "a1", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
		return out == "True" && strings.Contains(tail(a1.logPath, 200), "reusing node certificates")
	}) {
		t.Fatalf("a1 not Ready on its certificates after the rotation and a restart; log:\n%s", tail(a1.logPath, 30))
	}
	if out, err := c.kubectlWith(a1, c.tokenKubeconfig(t, a1, "new-agent-bearer", newAgent), "get", "nodes"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Errorf("the new agent token as a bearer token: %v\n%s\nwant Unauthorized", err, out)
	}
}
