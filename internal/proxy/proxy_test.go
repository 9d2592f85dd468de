package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"skiff/internal/server/servertest"

	"skiff/internal/config"
)

func testLogger() *slog.Logger {
	var out io.Writer = io.Discard
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		out = os.Stderr
	}
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestProxier makes a proxier for node1 whose rules go into the
// namespace ns.
func newTestProxier(t *testing.T, c kubernetes.Interface, ns string) *Proxier {
	t.Helper()
	_, cidr, _ := net.ParseCIDR("10.42.0.0/16")
	p, err := New(Config{
		Client:          c,
		NodeName:        "node1",
		NodeIPs:         []net.IP{net.ParseIP(testNodeIP)},
		ClusterCIDR:     cidr,
		MinSyncInterval: 100 * time.Millisecond,
		Logger:          testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.netnsDo = func(f func() error) error { return inNetNS(ns, f) }
	return p
}

type svcOpt func(*corev1.Service)

func createService(t *testing.T, c kubernetes.Interface, name string, ports []corev1.ServicePort, opts ...svcOpt) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.ServiceSpec{Ports: ports, Selector: map[string]string{"app": name}},
	}
	for _, o := range opts {
		o(svc)
	}
	out, err := c.CoreV1().Services("default").Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", name, err)
	}
	return out
}

func tcpPort(port, target int) corev1.ServicePort {
	return corev1.ServicePort{Name: "p", Protocol: corev1.ProtocolTCP, Port: int32(port), TargetPort: intstr.FromInt(target)}
}

// ep is an endpoint for a slice: ip on node.
type ep struct{ ip, node string }

// setEndpoints creates or replaces the service's one EndpointSlice, with
// port "p" = port/proto on every endpoint.
func setEndpoints(t *testing.T, c kubernetes.Interface, svc string, proto corev1.Protocol, port int, eps ...ep) {
	t.Helper()
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: svc + "-1", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p"), Protocol: &proto, Port: ptr.To(int32(port))}},
	}
	for _, e := range eps {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(e.node),
		})
	}
	ctx := context.Background()
	cur, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, es.Name, metav1.GetOptions{})
	if err == nil {
		es.ResourceVersion = cur.ResourceVersion
		_, err = c.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{})
	} else {
		_, err = c.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("endpoints of %s: %v", svc, err)
	}
}

func mustSync(t *testing.T, p *Proxier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Sync(ctx); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func hostPort(ip string, port int32) string { return net.JoinHostPort(ip, strconv.Itoa(int(port))) }

func withNode(name, ip string, ready bool) servertest.NodeOption {
	return func(n *corev1.Node) {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		if !ready {
			n.Status.Conditions[0].Status = corev1.ConditionFalse
		}
	}
}

// TestProxy runs the proxy against a real API server, with its rules in
// a node namespace whose pods (namespaces on a bridge) serve real traffic.
func TestProxy(t *testing.T) {
	requireNetAdmin(t)
	pn := newPodNet(t, 3)
	pn.serve(t, []int{8080}, 5353)
	pod1, pod2, pod3 := pn.podIPs[0], pn.podIPs[1], pn.podIPs[2]

	srv := servertest.Start(t, "", servertest.NoControlPlane)
	c := srv.Client(t)
	servertest.AddNode(t, c, "node1", withNode("node1", testNodeIP, true))
	servertest.AddNode(t, c, "node2", withNode("node2", "192.168.77.11", false))
	ctx := context.Background()

	web := createService(t, c, "web", []corev1.ServicePort{tcpPort(80, 8080)}, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
	})
	setEndpoints(t, c, "web", corev1.ProtocolTCP, 8080, ep{pod1, "node1"}, ep{pod2, "node1"}, ep{pod3, "node1"})
	sticky := createService(t, c, "sticky", []corev1.ServicePort{tcpPort(80, 8080)}, func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	})
	setEndpoints(t, c, "sticky", corev1.ProtocolTCP, 8080, ep{pod1, "node1"}, ep{pod2, "node1"}, ep{pod3, "node1"})
	empty := createService(t, c, "empty", []corev1.ServicePort{tcpPort(80, 8080)}, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
	})
	local := createService(t, c, "local", []corev1.ServicePort{tcpPort(80, 8080)}, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	// pod2 plays a pod on another node.
	setEndpoints(t, c, "local", corev1.ProtocolTCP, 8080, ep{pod1, "node1"}, ep{pod2, "node2"})
	lb := createService(t, c, "lb", []corev1.ServicePort{tcpPort(8081, 8080)}, func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
	})
	setEndpoints(t, c, "lb", corev1.ProtocolTCP, 8080, ep{pod1, "node1"}, ep{pod2, "node1"}, ep{pod3, "node1"})
	udp := createService(t, c, "udp", []corev1.ServicePort{{Name: "p", Protocol: corev1.ProtocolUDP, Port: 53, TargetPort: intstr.FromInt(5353)}})
	setEndpoints(t, c, "udp", corev1.ProtocolUDP, 5353, ep{pod1, "node1"}, ep{pod2, "node1"})
	// The cluster DNS Service is answered on the node: no rules for it.
	createService(t, c, "dns", []corev1.ServicePort{tcpPort(53, 53)}, func(s *corev1.Service) {
		s.Labels = map[string]string{config.LabelNodeLocalDNS: "true"}
		s.Spec.Selector = nil
	})

	p := newTestProxier(t, c, pn.node)
	mustSync(t, p)
	select {
	case <-p.Ready():
	default:
		t.Fatal("not ready after a successful sync")
	}

	t.Run("ClusterIPBalances", func(t *testing.T) {
		seen := askN(t, pn.node, hostPort(web.Spec.ClusterIP, 80), 50)
		if len(seen) != 3 {
			t.Fatalf("50 connections reached %v, want all 3 pods", seen)
		}
	})

	t.Run("NodePortFromOutside", func(t *testing.T) {
		np := web.Spec.Ports[0].NodePort
		seen := map[string]int{}
		for range 30 {
			pod, client, err := ask(pn.ext, hostPort(testNodeIP, np))
			if err != nil {
				t.Fatalf("node port %d: %v", np, err)
			}
			// Cluster policy: the pod sees the node (SNAT), so replies
			// go back through it.
			if !strings.HasPrefix(client, "10.42.0.1:") {
				t.Errorf("pod saw client %s, want the node's bridge address 10.42.0.1", client)
			}
			seen[pod]++
		}
		if len(seen) < 2 {
			t.Errorf("node port spread %v, want several pods", seen)
		}
	})

	t.Run("SessionAffinity", func(t *testing.T) {
		seen := askN(t, pn.node, hostPort(sticky.Spec.ClusterIP, 80), 20)
		if len(seen) != 1 {
			t.Fatalf("ClientIP affinity: 20 connections reached %v, want one pod", seen)
		}
	})

	t.Run("NoEndpointsRejected", func(t *testing.T) {
		for _, target := range []struct{ ns, addr string }{
			{pn.node, hostPort(empty.Spec.ClusterIP, 80)},
			{pn.ext, hostPort(testNodeIP, empty.Spec.Ports[0].NodePort)},
		} {
			_, _, err := ask(target.ns, target.addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("connect to %s (no endpoints): %v, want connection refused", target.addr, err)
			}
		}
	})

	t.Run("ExternalTrafficPolicyLocal", func(t *testing.T) {
		np := local.Spec.Ports[0].NodePort
		for range 20 {
			pod, client, err := ask(pn.ext, hostPort(testNodeIP, np))
			if err != nil {
				t.Fatalf("node port %d: %v", np, err)
			}
			if pod != "pod1" {
				t.Fatalf("external traffic reached %s, want only the local endpoint pod1", pod)
			}
			if !strings.HasPrefix(client, testClientIP+":") {
				t.Fatalf("pod saw client %s, want the real client %s", client, testClientIP)
			}
		}
		// Inside the cluster the policy does not apply.
		seen := askN(t, pn.node, hostPort(local.Spec.ClusterIP, 80), 30)
		if len(seen) != 2 {
			t.Errorf("cluster IP of a Local service reached %v, want pod1 and pod2", seen)
		}
	})

	t.Run("LoadBalancer", func(t *testing.T) {
		got, err := c.CoreV1().Services("default").Get(ctx, "lb", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ips []string
		for _, in := range got.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		if fmt.Sprint(ips) != "["+testNodeIP+"]" {
			t.Errorf("ingress %v, want the Ready node's address [%s]", ips, testNodeIP)
		}
		rv := got.ResourceVersion
		mustSync(t, p)
		if again, _ := c.CoreV1().Services("default").Get(ctx, "lb", metav1.GetOptions{}); again.ResourceVersion != rv {
			t.Errorf("a sync with nothing changed rewrote the load balancer status")
		}
		pod, _, err := ask(pn.ext, hostPort(testNodeIP, lb.Spec.Ports[0].Port))
		if err != nil || pod == "" {
			t.Errorf("load balancer port %s: %q %v", hostPort(testNodeIP, lb.Spec.Ports[0].Port), pod, err)
		}
	})

	t.Run("RemovedEndpointGetsNoTraffic", func(t *testing.T) {
		setEndpoints(t, c, "web", corev1.ProtocolTCP, 8080, ep{pod1, "node1"}, ep{pod2, "node1"})
		mustSync(t, p)
		seen := askN(t, pn.node, hostPort(web.Spec.ClusterIP, 80), 40)
		if seen["pod3"] > 0 || len(seen) != 2 {
			t.Errorf("after removing pod3: %v, want pod1 and pod2 only", seen)
		}
	})

	t.Run("UDPFlowMovesOffRemovedEndpoint", func(t *testing.T) {
		var conn *net.UDPConn
		if err := inNetNS(pn.node, func() (err error) {
			conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(mustAddrPort(udp.Spec.ClusterIP, 53)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		query := func() string {
			t.Helper()
			buf := make([]byte, 64)
			for range 5 { // UDP may lose a datagram
				_, _ = conn.Write([]byte("?"))
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, err := conn.Read(buf); err == nil {
					return string(buf[:n])
				}
			}
			t.Fatalf("no UDP answer from %s:53", udp.Spec.ClusterIP)
			return ""
		}
		first := query()
		if again := query(); again != first {
			t.Fatalf("one UDP flow answered by %s then %s", first, again)
		}
		keep := ep{pod2, "node1"}
		if first == "pod2" {
			keep = ep{pod1, "node1"}
		}
		setEndpoints(t, c, "udp", corev1.ProtocolUDP, 5353, keep)
		mustSync(t, p)
		if now := query(); now == first {
			t.Errorf("the flow still reaches %s after it left the endpoints (stale conntrack entry)", first)
		}
	})

	t.Run("DeletedServiceLosesItsChains", func(t *testing.T) {
		if err := c.CoreV1().Services("default").Delete(ctx, "sticky", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, p)
		save := iptablesSave(t, pn.node)
		if strings.Contains(save, "default/sticky") {
			t.Errorf("rules of deleted service remain:\n%s", save)
		}
		checkNoOrphanChains(t, save)
		if strings.Contains(save, "default/dns") {
			t.Errorf("rules for the node-local DNS service:\n%s", save)
		}
	})

	t.Run("ResyncAndRestartChangeNothing", func(t *testing.T) {
		before := skiffLines(iptablesSave(t, pn.node))
		mustSync(t, p)
		p2 := newTestProxier(t, c, pn.node)
		mustSync(t, p2)
		after := skiffLines(iptablesSave(t, pn.node))
		if strings.Join(before, "\n") != strings.Join(after, "\n") {
			t.Errorf("rules changed on resync/restart:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
		}
		for _, j := range []string{"-A PREROUTING", "-A OUTPUT", "-A POSTROUTING", "-A INPUT", "-A FORWARD"} {
			n := 0
			for _, l := range after {
				if strings.HasPrefix(l, j+" ") {
					n++
				}
			}
			want := 1
			if j == "-A OUTPUT" {
				want = 2 // nat and filter
			}
			if n != want {
				t.Errorf("%d jumps in %s, want %d", n, j, want)
			}
		}
	})

	t.Run("RunFollowsChanges", func(t *testing.T) {
		p3 := newTestProxier(t, c, pn.node)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p3.Run(rctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		select {
		case <-p3.Ready():
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("not ready within a minute")
		}
		late := createService(t, c, "late", []corev1.ServicePort{tcpPort(80, 8080)})
		setEndpoints(t, c, "late", corev1.ProtocolTCP, 8080, ep{pod3, "node1"})
		servertest.Eventually(t, 30*time.Second, "new service reachable", func() error {
			pod, _, err := ask(pn.node, hostPort(late.Spec.ClusterIP, 80))
			if err != nil {
				return err
			}
			if pod != "pod3" {
				return fmt.Errorf("reached %q", pod)
			}
			return nil
		})
	})
}

// checkNoOrphanChains fails if a per-service chain is declared that no
// rule jumps to: a stale chain the sync forgot.
func checkNoOrphanChains(t *testing.T, save string) {
	t.Helper()
	for _, line := range strings.Split(save, "\n") {
		if !strings.HasPrefix(line, ":SKIFF-") {
			continue
		}
		name, _, _ := strings.Cut(line[1:], " ")
		isPerService := false
		for _, p := range perServicePrefixes {
			isPerService = isPerService || strings.HasPrefix(name, p)
		}
		if isPerService && !strings.Contains(save, "-j "+name+"\n") && !strings.Contains(save, "-j "+name+" ") {
			t.Errorf("chain %s is not used", name)
		}
	}
}

func mustAddrPort(ip string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), port)
}
