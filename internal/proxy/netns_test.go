package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Test networks live in network namespaces the tests make; nothing is
// changed in the machine's own namespace.

func requireNetAdmin(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and iptables rules")
	}
	for _, tool := range []string{"ip", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

var nsCounter atomic.Int64

// newNetNS makes a network namespace with loopback up, deleted when the
// test ends, and returns its name.
func newNetNS(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("skt-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func nsPath(name string) string { return "/run/netns/" + name }

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNetNS runs f on an OS thread switched into the named namespace.
// Sockets f opens stay in that namespace after it returns, and processes
// it starts are born there.
func inNetNS(name string, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(nsPath(name))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine ends, instead of reusing a thread in the wrong namespace.
		return fmt.Errorf("leave netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// podNet is a node namespace with a bridge br0 (10.42.0.1/24) and pods
// (10.42.0.11, .12, ...) on it, and an outside client namespace ext
// (192.168.77.2) on the node's eth0 (192.168.77.10).
type podNet struct {
	node, ext string
	pods      []string // namespace names
	podIPs    []string
}

const (
	testNodeIP   = "192.168.77.10"
	testClientIP = "192.168.77.2"
)

func newPodNet(t *testing.T, npods int) *podNet {
	t.Helper()
	pn := &podNet{node: newNetNS(t), ext: newNetNS(t)}
	run(t, "ip", "-n", pn.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", pn.ext)
	run(t, "ip", "-n", pn.node, "addr", "add", testNodeIP+"/24", "dev", "eth0")
	run(t, "ip", "-n", pn.ext, "addr", "add", testClientIP+"/24", "dev", "eth0")
	run(t, "ip", "-n", pn.node, "link", "set", "eth0", "up")
	run(t, "ip", "-n", pn.ext, "link", "set", "eth0", "up")
	// Service IPs are reached through the default route before DNAT.
	run(t, "ip", "-n", pn.node, "route", "add", "default", "via", testClientIP)
	run(t, "ip", "netns", "exec", pn.node, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	run(t, "ip", "-n", pn.node, "link", "add", "br0", "type", "bridge")
	run(t, "ip", "-n", pn.node, "addr", "add", "10.42.0.1/24", "dev", "br0")
	run(t, "ip", "-n", pn.node, "link", "set", "br0", "up")
	for i := 1; i <= npods; i++ {
		pod := newNetNS(t)
		ip := fmt.Sprintf("10.42.0.%d", 10+i)
		veth := fmt.Sprintf("vp%d", i)
		run(t, "ip", "-n", pn.node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod)
		run(t, "ip", "-n", pn.node, "link", "set", veth, "master", "br0", "up")
		run(t, "ip", "-n", pod, "addr", "add", ip+"/24", "dev", "eth0")
		run(t, "ip", "-n", pod, "link", "set", "eth0", "up")
		run(t, "ip", "-n", pod, "route", "add", "default", "via", "10.42.0.1")
		pn.pods = append(pn.pods, pod)
		pn.podIPs = append(pn.podIPs, ip)
	}
	return pn
}

// serve starts, in every pod, a TCP server on each of tcpPorts that
// answers "pod<N> <client address>" and closes, and a UDP server on
// udpPort that answers "pod<N>".
func (pn *podNet) serve(t *testing.T, tcpPorts []int, udpPort int) {
	t.Helper()
	for i, pod := range pn.pods {
		name := fmt.Sprintf("pod%d", i+1)
		for _, port := range tcpPorts {
			var l net.Listener
			if err := inNetNS(pod, func() (err error) {
				l, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
				return err
			}); err != nil {
				t.Fatalf("listen in %s: %v", name, err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
					c.Close()
				}
			}()
		}
		var pc net.PacketConn
		if err := inNetNS(pod, func() (err error) {
			pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", udpPort))
			return err
		}); err != nil {
			t.Fatalf("listen udp in %s: %v", name, err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 512)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo([]byte(name), from)
			}
		}()
	}
}

// ask connects from namespace ns to addr and returns the pod's name and
// the client address it saw.
func ask(ns, addr string) (pod, client string, err error) {
	var c net.Conn
	if err := inNetNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	}); err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", "", fmt.Errorf("read from %s: %w", addr, err)
	}
	pod, client, _ = strings.Cut(strings.TrimSpace(line), " ")
	return pod, client, nil
}

// askN makes n connections and counts the answers per pod.
func askN(t *testing.T, ns, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		pod, _, err := ask(ns, addr)
		if err != nil {
			t.Fatalf("connect from %s to %s: %v", ns, addr, err)
		}
		seen[pod]++
	}
	return seen
}

// iptablesSave is the namespace's ruleset, without the comment lines
// (they carry a date).
func iptablesSave(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(run(t, "ip", "netns", "exec", ns, "iptables-save"), "\n") {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// skiffLines are the ruleset's lines that mention the proxy's chains.
func skiffLines(save string) []string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		if strings.Contains(line, "SKIFF-") || strings.HasPrefix(line, "*") {
			out = append(out, line)
		}
	}
	return out
}
