package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/server/servertest"
)

// requireNetAdmin skips unless the test can create network namespaces and
// run iptables in them.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

var nsCounter atomic.Int32

// newNS creates a named network namespace (skt-<pid>-<n>) with loopback up,
// deleted when the test ends. Returns its name and nsfs path.
func newNS(t *testing.T) (string, string) {
	t.Helper()
	name := fmt.Sprintf("skt-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serve answers every TCP connection on addr inside the namespace with
// "<name> <remote IP>", so a client learns who answered and from which
// address it was seen.
func serve(t *testing.T, nsPath, addr, name string) {
	t.Helper()
	var l net.Listener
	err := inNS(nsPath, func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", name, host)
			c.Close()
		}
	}()
}

// ask dials addr from inside the namespace and returns the answer.
func ask(nsPath, addr string) (string, error) {
	var answer string
	err := inNS(nsPath, func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		answer = strings.TrimSpace(line)
		return nil
	})
	return answer, err
}

// expectAnswer waits until addr, dialled from nsPath, answers want.
func expectAnswer(t *testing.T, what, nsPath, addr, want string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s: answered after %v", what, time.Since(start).Round(time.Millisecond)) }()
	servertest.Eventually(t, 60*time.Second, what, func() error {
		got, err := ask(nsPath, addr)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("answer %q, want %q", got, want)
		}
		return nil
	})
}

type testNode struct {
	name   string
	ns     string // nsfs path of the node's namespace
	nsName string
	ip     net.IP
	cidr   *net.IPNet
	state  string
	net    *Network
	stop   func() // stops Run and waits for it
}

func cidr(s string) *net.IPNet { _, c, _ := net.ParseCIDR(s); return c }

// addNode registers a Node with the API server as its kubelet would.
func addNode(t *testing.T, c kubernetes.Interface, name, ip, podCIDR string) {
	t.Helper()
	servertest.AddNode(t, c, name, func(n *corev1.Node) {
		n.Spec.PodCIDR = podCIDR
		n.Spec.PodCIDRs = []string{podCIDR}
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	})
	got, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || got.Spec.PodCIDR != podCIDR || internalIP(got) != ip {
		t.Fatalf("node %s as stored: %+v, %v", name, got, err)
	}
}

func (tn *testNode) start(t *testing.T, c kubernetes.Interface, mode Mode) {
	t.Helper()
	n, err := New(Config{
		StateFile:   tn.state,
		NodeName:    tn.name,
		NodeIP:      tn.ip,
		PodCIDR:     tn.cidr,
		ClusterCIDR: cidr("10.42.0.0/16"),
		ServiceCIDR: cidr("10.43.0.0/16"),
		Mode:        mode,
		Client:      c,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", tn.name),
		NetNS:       tn.ns,
	})
	if err != nil {
		t.Fatalf("new network for %s: %v", tn.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	tn.net = n
	stopped := false
	tn.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run network of %s: %v", tn.name, err)
		}
	}
	t.Cleanup(tn.stop)
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatalf("network of %s stopped before ready: %v", tn.name, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("network of %s not ready within 60s", tn.name)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// twoNodes makes two node namespaces joined by a veth pair (a "wire").
func twoNodes(t *testing.T) (*testNode, *testNode) {
	t.Helper()
	n1, p1 := newNS(t)
	n2, p2 := newNS(t)
	run(t, "ip", "-n", n1, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", n2)
	for _, x := range []struct{ ns, addr string }{{n1, "192.168.200.1/24"}, {n2, "192.168.200.2/24"}} {
		run(t, "ip", "-n", x.ns, "addr", "add", x.addr, "dev", "eth0")
		run(t, "ip", "-n", x.ns, "link", "set", "eth0", "up")
	}
	dir := t.TempDir()
	return &testNode{name: "node-a", ns: p1, nsName: n1, ip: net.ParseIP("192.168.200.1").To4(), cidr: cidr("10.42.1.0/24"), state: filepath.Join(dir, "a.db")},
		&testNode{name: "node-b", ns: p2, nsName: n2, ip: net.ParseIP("192.168.200.2").To4(), cidr: cidr("10.42.2.0/24"), state: filepath.Join(dir, "b.db")}
}

// podNS makes a namespace for a pod, as the runtime's sandbox would.
func podNS(t *testing.T) string {
	t.Helper()
	_, p := newNS(t)
	return p
}

func setup(t *testing.T, n *Network, uid, ns string, ports ...PortMapping) net.IP {
	t.Helper()
	ip, err := n.Setup(context.Background(), uid, ns, ports)
	if err != nil {
		t.Fatalf("setup pod %s: %v", uid, err)
	}
	return ip
}

// rulesOf is iptables-save of a namespace without comments and counters.
func rulesOf(t *testing.T, nsName string) string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", nsName, "iptables-save")
	var keep []string
	counters := regexp.MustCompile(`\[\d+:\d+\]`)
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, counters.ReplaceAllString(l, ""))
		}
	}
	return strings.Join(keep, "\n")
}

func linkIndex(t *testing.T, nsPath, name string) int {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, nsPath, err)
	}
	return l.Attrs().Index
}

func linkExists(t *testing.T, nsPath, name string) bool {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	return err == nil
}

func TestPodNetworkVXLAN(t *testing.T)  { testPodNetwork(t, ModeVXLAN) }
func TestPodNetworkHostGW(t *testing.T) { testPodNetwork(t, ModeHostGW) }

func testPodNetwork(t *testing.T, mode Mode) {
	requireNetAdmin(t)
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	client := srv.Client(t)
	a, b := twoNodes(t)
	addNode(t, client, a.name, a.ip.String(), a.cidr.String())
	addNode(t, client, b.name, b.ip.String(), b.cidr.String())
	a.start(t, client, mode)
	b.start(t, client, mode)
	ctx := context.Background()

	// Two pods on node a, one on node b with a host port.
	a1ns, a2ns, b1ns := podNS(t), podNS(t), podNS(t)
	a1 := setup(t, a.net, "pod-a1", a1ns)
	a2 := setup(t, a.net, "pod-a2", a2ns)
	b1 := setup(t, b.net, "pod-b1", b1ns, PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"})
	for _, x := range []struct {
		ip   net.IP
		cidr *net.IPNet
	}{{a1, a.cidr}, {a2, a.cidr}, {b1, b.cidr}} {
		if !x.cidr.Contains(x.ip) {
			t.Fatalf("pod IP %s outside its node's podCIDR %s", x.ip, x.cidr)
		}
	}
	if a1.Equal(a2) {
		t.Fatalf("two pods got the same address %s", a1)
	}
	if again := setup(t, a.net, "pod-a1", a1ns); !again.Equal(a1) {
		t.Fatalf("repeated setup gave %s, first %s", again, a1)
	}
	if ip, ok := a.net.PodIP("pod-a1"); !ok || !ip.Equal(a1) {
		t.Fatalf("PodIP(pod-a1) = %v, %v; want %s", ip, ok, a1)
	}

	serve(t, a2ns, ":80", "a2")
	serve(t, b1ns, ":80", "b1")
	serve(t, b.ns, "192.168.200.2:9000", "node-b")

	// Same node: straight over the bridge, the source address is kept.
	expectAnswer(t, "pod a1 → pod a2 (same node)", a1ns, net.JoinHostPort(a2.String(), "80"), "a2 "+a1.String())
	// Across nodes through the overlay, still without NAT.
	expectAnswer(t, "pod a1 → pod b1 (other node)", a1ns, net.JoinHostPort(b1.String(), "80"), "b1 "+a1.String())
	expectAnswer(t, "pod b1 → pod a2 (other node)", b1ns, net.JoinHostPort(a2.String(), "80"), "a2 "+b1.String())
	// To a node address outside the cluster CIDR: masqueraded to node a's IP.
	expectAnswer(t, "pod a1 → node b", a1ns, "192.168.200.2:9000", "node-b 192.168.200.1")
	// Host port of pod b1, from the other node and from a pod.
	expectAnswer(t, "node a → hostPort on node b", a.ns, "192.168.200.2:8080", "b1 192.168.200.1")
	expectAnswer(t, "pod a1 → hostPort on node b", a1ns, "192.168.200.2:8080", "b1 192.168.200.1")
	// A pod reaching its own host port comes back through the gateway.
	expectAnswer(t, "pod b1 → its own hostPort (hairpin)", b1ns, "192.168.200.2:8080", "b1 "+nthIP(b.cidr, 1).String())

	// The route to the other node's pods takes the overlay, and pods get an
	// MTU that leaves room for its header.
	route := run(t, "ip", "-n", a.nsName, "route", "show", b.cidr.String())
	wantRoute, wantMTU := "via 192.168.200.2 dev eth0", 1500
	if mode == ModeVXLAN {
		wantRoute, wantMTU = "via 10.42.2.0 dev skiff.vxlan onlink", 1450
	}
	if !strings.Contains(route, wantRoute) {
		t.Fatalf("node a's route to %s = %q, want %q", b.cidr, route, wantRoute)
	}
	if link := run(t, "ip", "-n", filepath.Base(a1ns), "link", "show", "eth0"); !strings.Contains(link, fmt.Sprintf("mtu %d ", wantMTU)) {
		t.Fatalf("pod eth0 = %s, want mtu %d", link, wantMTU)
	}

	if mode == ModeVXLAN {
		node, err := client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := node.Annotations[VXLANMACKey], stableMAC("vtep", a.name).String(); got != want {
			t.Fatalf("node annotation %s = %q, want %q", VXLANMACKey, got, want)
		}
	}

	// Teardown frees the address and removes the link; again is a no-op.
	if err := a.net.Teardown(ctx, "pod-a2"); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if err := a.net.Teardown(ctx, "pod-a2"); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
	if _, ok := a.net.PodIP("pod-a2"); ok {
		t.Fatal("pod-a2 still holds an address after teardown")
	}
	if linkExists(t, a.ns, hostVethName("pod-a2")) || linkExists(t, a2ns, "eth0") {
		t.Fatal("pod-a2's veth survived teardown")
	}
	if _, err := ask(a1ns, net.JoinHostPort(a2.String(), "80")); err == nil {
		t.Fatal("a torn-down pod is still reachable")
	}
	// Teardown when the runtime already deleted the netns.
	goneName, gone := newNS(t)
	setup(t, a.net, "pod-gone", gone)
	run(t, "ip", "netns", "del", goneName)
	if err := a.net.Teardown(ctx, "pod-gone"); err != nil {
		t.Fatalf("teardown after the netns is gone: %v", err)
	}

	// An agent restart keeps addresses, host ports and rules, without
	// duplicating any rule.
	beforeA, beforeB := rulesOf(t, a.nsName), rulesOf(t, b.nsName)
	for _, want := range []string{"-j SKIFF-FORWARD", "-j SKIFF-POSTROUTING", "-j SKIFF-HOSTPORTS", "--to-destination " + b1.String() + ":80"} {
		if !strings.Contains(beforeB, want) {
			t.Fatalf("node b rules lack %q:\n%s", want, beforeB)
		}
	}
	linkBefore := linkIndex(t, b1ns, "eth0")
	a.stop()
	b.stop()
	a.start(t, client, mode)
	b.start(t, client, mode)
	if ip, ok := b.net.PodIP("pod-b1"); !ok || !ip.Equal(b1) {
		t.Fatalf("after restart PodIP(pod-b1) = %v, %v; want %s", ip, ok, b1)
	}
	if again := setup(t, b.net, "pod-b1", b1ns, PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"}); !again.Equal(b1) {
		t.Fatalf("after restart setup gave %s, want %s", again, b1)
	}
	if after := linkIndex(t, b1ns, "eth0"); after != linkBefore {
		t.Fatalf("setup after a restart rebuilt the pod's link (eth0 index %d → %d): running pods would be cut off", linkBefore, after)
	}
	if afterA, afterB := rulesOf(t, a.nsName), rulesOf(t, b.nsName); afterA != beforeA || afterB != beforeB {
		t.Fatalf("rules changed across a restart:\nnode a before:\n%s\nafter:\n%s\nnode b before:\n%s\nafter:\n%s", beforeA, afterA, beforeB, afterB)
	}
	expectAnswer(t, "pod a1 → pod b1 after restart", a1ns, net.JoinHostPort(b1.String(), "80"), "b1 "+a1.String())
	expectAnswer(t, "node a → hostPort on node b after restart", a.ns, "192.168.200.2:8080", "b1 192.168.200.1")

	// Tearing down a pod removes its host port.
	if err := b.net.Teardown(ctx, "pod-b1"); err != nil {
		t.Fatal(err)
	}
	if rules := rulesOf(t, b.nsName); strings.Contains(rules, b1.String()) {
		t.Fatalf("rules still mention the torn-down pod %s:\n%s", b1, rules)
	}
	if _, err := ask(a.ns, "192.168.200.2:8080"); err == nil {
		t.Fatal("host port still answers after its pod was torn down")
	}

	// A node that changes its address is followed by the others.
	node, err := client.CoreV1().Nodes().Get(ctx, b.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range node.Status.Addresses {
		if node.Status.Addresses[i].Type == corev1.NodeInternalIP {
			node.Status.Addresses[i].Address = "192.168.200.3"
		}
	}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 60*time.Second, "node a follows node b's new address", func() error {
		var out, want string
		if mode == ModeVXLAN {
			out, want = run(t, "bridge", "-n", a.nsName, "fdb", "show", "dev", "skiff.vxlan"), "dst 192.168.200.3 "
			if strings.Contains(out, "192.168.200.2") {
				return fmt.Errorf("old FDB entry left: %s", out)
			}
		} else {
			out, want = run(t, "ip", "-n", a.nsName, "route", "show", b.cidr.String()), "via 192.168.200.3 "
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("got %q, want %q", out, want)
		}
		return nil
	})

	// A node that leaves loses its route on the others.
	if err := client.CoreV1().Nodes().Delete(ctx, b.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 60*time.Second, "route to the deleted node's podCIDR removed", func() error {
		out := run(t, "ip", "-n", a.nsName, "route", "show", b.cidr.String())
		if strings.TrimSpace(out) != "" {
			return fmt.Errorf("still routed: %s", out)
		}
		return nil
	})
}
