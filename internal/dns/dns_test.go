package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/server/servertest"
)

func testLogger() *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startDNS runs a DNS server on a free loopback port until the test ends
// and returns its address.
func startDNS(t testing.TB, c kubernetes.Interface, upstreams []string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(servertest.FreePort(t)))
		s, err := New(Config{Client: c, Domain: "cluster.local", Listen: []string{addr},
			Upstreams: upstreams, Logger: testLogger()})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Ready():
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			return addr
		case err := <-done:
			cancel()
			if attempt < 5 && strings.Contains(fmt.Sprint(err), "address already in use") {
				continue
			}
			t.Fatalf("Run: %v", err)
		case <-time.After(60 * time.Second):
			cancel()
			t.Fatalf("DNS server not ready after 60s")
		}
	}
}

// fakeUpstream is a DNS server standing in for the host's resolver. It knows
// example.com and big.example (whose answer is truncated over UDP), answers
// NXDOMAIN otherwise, and counts the queries it sees per name.
type fakeUpstream struct {
	addr  string
	mu    sync.Mutex
	count map[string]int
}

func (f *fakeUpstream) queries(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count[name]
}

func startUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{count: map[string]int{}}
	handler := func(net string) dns.HandlerFunc {
		return func(w dns.ResponseWriter, r *dns.Msg) {
			q := r.Question[0]
			f.mu.Lock()
			f.count[q.Name+" "+net]++
			f.count[q.Name]++
			f.mu.Unlock()
			m := new(dns.Msg)
			m.SetReply(r)
			m.RecursionAvailable = true
			switch {
			case q.Name == "example.com." && q.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net4("93.184.216.34")})
			case q.Name == "big.example." && q.Qtype == dns.TypeA && net == "udp":
				m.Truncated = true
			case q.Name == "big.example." && q.Qtype == dns.TypeA:
				for i := 1; i <= 60; i++ {
					m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net4(fmt.Sprintf("192.0.2.%d", i))})
				}
			case q.Name == "example.com." || q.Name == "big.example.":
			default:
				m.Rcode = dns.RcodeNameError
				m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
					Ns: "a.root.", Mbox: "x.root.", Serial: 1, Refresh: 1, Retry: 1, Expire: 1, Minttl: 60})
			}
			w.WriteMsg(m)
		}
	}
	for attempt := 1; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if attempt < 10 {
				continue
			}
			t.Fatal(err)
		}
		f.addr = pc.LocalAddr().String()
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler("udp")}, {Listener: l, Handler: handler("tcp")}} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			go srv.ActivateAndServe()
			<-started
			t.Cleanup(func() { srv.Shutdown() })
		}
		return f
	}
}

func net4(s string) net.IP { return net.ParseIP(s).To4() }

func query(t testing.TB, network, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, err := exchange(network, server, name, qtype)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return m
}

func exchange(network, server, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 10 * time.Second}
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), qtype)
	m, _, err := c.Exchange(req, server)
	return m, err
}

// answers renders the answer section's data, sorted, e.g. "A 10.43.0.1".
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append([]string{dns.TypeToString[rr.Header().Rrtype]}, f[4:]...), " "))
	}
	slices.Sort(out)
	return out
}

func wantAnswers(t testing.TB, m *dns.Msg, want ...string) {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s, want NOERROR; answer:\n%v", dns.RcodeToString[m.Rcode], m)
	}
	slices.Sort(want)
	if got := answers(m); !slices.Equal(got, want) {
		t.Fatalf("answers %q, want %q", got, want)
	}
}

func wantNXDomain(t testing.TB, m *dns.Msg) {
	t.Helper()
	if m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s, want NXDOMAIN; answer:\n%v", dns.RcodeToString[m.Rcode], m)
	}
	if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA || m.Ns[0].Header().Name != "cluster.local." {
		t.Fatalf("authority %v, want the cluster.local SOA", m.Ns)
	}
}

func ptr[T any](v T) *T { return &v }

func createService(t testing.TB, c kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	got, err := c.CoreV1().Services(svc.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s: %v", svc.Name, err)
	}
	return got
}

func TestClusterDNS(t *testing.T) {
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	c := srv.Client(t)
	ctx := context.Background()

	web := createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
		}},
	})
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "db"},
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}},
	})
	_, err := c.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-abc", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.42.1.5"}, Hostname: ptr("db-0"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			{Addresses: []string{"10.42.2.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			{Addresses: []string{"10.42.2.9"}, Hostname: ptr("db-2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("pg"), Port: ptr(int32(5432)), Protocol: ptr(corev1.ProtocolTCP)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create endpointslice: %v", err)
	}
	createService(t, c, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
	})
	kube, err := c.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get kubernetes service: %v", err)
	}

	up := startUpstream(t)
	addr := startDNS(t, c, []string{up.addr})

	t.Run("kubernetes service", func(t *testing.T) {
		wantAnswers(t, query(t, "udp", addr, "kubernetes.default.svc.cluster.local", dns.TypeA), "A "+kube.Spec.ClusterIP)
	})
	t.Run("ClusterIP A, case-insensitive", func(t *testing.T) {
		m := query(t, "udp", addr, "Web.Default.SVC.cluster.local", dns.TypeA)
		wantAnswers(t, m, "A "+web.Spec.ClusterIP)
		if !m.Authoritative || m.Answer[0].Header().Ttl != 5 || m.Answer[0].Header().Name != "Web.Default.SVC.cluster.local." {
			t.Fatalf("want an authoritative answer with TTL 5 for the name as asked, got\n%v", m)
		}
	})
	t.Run("ClusterIP AAAA is NODATA", func(t *testing.T) {
		m := query(t, "udp", addr, "web.default.svc.cluster.local", dns.TypeAAAA)
		wantAnswers(t, m)
		if len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("want SOA in authority, got %v", m.Ns)
		}
	})
	t.Run("ClusterIP SRV", func(t *testing.T) {
		m := query(t, "udp", addr, "_http._tcp.web.default.svc.cluster.local", dns.TypeSRV)
		wantAnswers(t, m, "SRV 0 100 80 web.default.svc.cluster.local.")
		if len(m.Extra) != 1 || m.Extra[0].(*dns.A).A.String() != web.Spec.ClusterIP {
			t.Fatalf("want the target's A record in additional, got %v", m.Extra)
		}
		wantAnswers(t, query(t, "udp", addr, "_dns._udp.web.default.svc.cluster.local", dns.TypeSRV), "SRV 0 100 53 web.default.svc.cluster.local.")
	})
	t.Run("PTR for ClusterIP", func(t *testing.T) {
		rev, _ := dns.ReverseAddr(web.Spec.ClusterIP)
		wantAnswers(t, query(t, "udp", addr, rev, dns.TypePTR), "PTR web.default.svc.cluster.local.")
	})
	t.Run("headless A is the ready endpoints", func(t *testing.T) {
		wantAnswers(t, query(t, "udp", addr, "db.default.svc.cluster.local", dns.TypeA), "A 10.42.1.5", "A 10.42.2.7")
	})
	t.Run("headless endpoint hostname", func(t *testing.T) {
		wantAnswers(t, query(t, "udp", addr, "db-0.db.default.svc.cluster.local", dns.TypeA), "A 10.42.1.5")
		wantNXDomain(t, query(t, "udp", addr, "db-2.db.default.svc.cluster.local", dns.TypeA))
	})
	t.Run("headless SRV", func(t *testing.T) {
		m := query(t, "udp", addr, "_pg._tcp.db.default.svc.cluster.local", dns.TypeSRV)
		wantAnswers(t, m, "SRV 0 50 5432 db-0.db.default.svc.cluster.local.", "SRV 0 50 5432 10-42-2-7.db.default.svc.cluster.local.")
		wantAnswers(t, query(t, "udp", addr, "10-42-2-7.db.default.svc.cluster.local", dns.TypeA), "A 10.42.2.7")
	})
	t.Run("pod A", func(t *testing.T) {
		wantAnswers(t, query(t, "udp", addr, "10-42-3-4.default.pod.cluster.local", dns.TypeA), "A 10.42.3.4")
		wantNXDomain(t, query(t, "udp", addr, "not-an-ip.default.pod.cluster.local", dns.TypeA))
	})
	t.Run("ExternalName CNAME", func(t *testing.T) {
		wantAnswers(t, query(t, "udp", addr, "ext.default.svc.cluster.local", dns.TypeCNAME), "CNAME example.com.")
		// An A query also gets the target's address, resolved upstream.
		wantAnswers(t, query(t, "udp", addr, "ext.default.svc.cluster.local", dns.TypeA), "CNAME example.com.", "A 93.184.216.34")
	})
	t.Run("unknown names are NXDOMAIN with SOA", func(t *testing.T) {
		wantNXDomain(t, query(t, "udp", addr, "nope.default.svc.cluster.local", dns.TypeA))
		wantNXDomain(t, query(t, "udp", addr, "google.com.default.svc.cluster.local", dns.TypeA))
		wantNXDomain(t, query(t, "udp", addr, "web.nons.svc.cluster.local", dns.TypeA))
		if n := up.queries("nope.default.svc.cluster.local."); n != 0 {
			t.Fatalf("cluster names must not be forwarded, upstream saw %d queries", n)
		}
	})
	t.Run("domain SOA and NS", func(t *testing.T) {
		m := query(t, "udp", addr, "cluster.local", dns.TypeSOA)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("want the SOA, got\n%v", m)
		}
		wantAnswers(t, query(t, "udp", addr, "cluster.local", dns.TypeNS), "NS ns.dns.cluster.local.")
	})
	t.Run("TCP", func(t *testing.T) {
		wantAnswers(t, query(t, "tcp", addr, "web.default.svc.cluster.local", dns.TypeA), "A "+web.Spec.ClusterIP)
	})
	t.Run("forwarding and caching", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			wantAnswers(t, query(t, "udp", addr, "example.com", dns.TypeA), "A 93.184.216.34")
		}
		// The ExternalName test may already have asked for example.com: either
		// way the upstream must have been asked exactly once.
		if n := up.queries("example.com."); n != 1 {
			t.Fatalf("upstream saw %d queries for example.com, want 1 (cached)", n)
		}
		for i := 0; i < 2; i++ {
			if m := query(t, "udp", addr, "missing.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
				t.Fatalf("rcode %s, want the upstream's NXDOMAIN", dns.RcodeToString[m.Rcode])
			}
		}
		if n := up.queries("missing.example."); n != 1 {
			t.Fatalf("upstream saw %d queries for missing.example, want 1 (negative answer cached)", n)
		}
	})
	t.Run("forwarding retries truncated answers over TCP", func(t *testing.T) {
		m := query(t, "tcp", addr, "big.example", dns.TypeA)
		if len(m.Answer) != 60 {
			t.Fatalf("got %d answers, want 60", len(m.Answer))
		}
		if up.queries("big.example. udp") != 1 || up.queries("big.example. tcp") != 1 {
			t.Fatalf("want one UDP then one TCP query upstream, got udp=%d tcp=%d", up.queries("big.example. udp"), up.queries("big.example. tcp"))
		}
		// A plain UDP client gets a truncated answer and can retry over TCP.
		if m := query(t, "udp", addr, "big.example", dns.TypeA); !m.Truncated {
			t.Fatalf("want a truncated UDP answer, got %d records", len(m.Answer))
		}
	})
	t.Run("updates", func(t *testing.T) {
		name := "later.default.svc.cluster.local"
		wantNXDomain(t, query(t, "udp", addr, name, dns.TypeA))
		later := createService(t, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		})
		servertest.Eventually(t, 20*time.Second, "new service resolves", func() error {
			m, err := exchange("udp", addr, name, dns.TypeA)
			if err != nil {
				return err
			}
			if got := answers(m); !slices.Equal(got, []string{"A " + later.Spec.ClusterIP}) {
				return fmt.Errorf("answers %q", got)
			}
			return nil
		})
		// Endpoints becoming ready show up in the headless answer.
		sl, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, "db-abc", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sl.Endpoints[2].Conditions.Ready = ptr(true)
		if _, err := c.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "ready endpoint resolves", func() error {
			m, err := exchange("udp", addr, "db.default.svc.cluster.local", dns.TypeA)
			if err != nil {
				return err
			}
			if got := answers(m); len(got) != 3 {
				return fmt.Errorf("answers %q, want 3 addresses", got)
			}
			return nil
		})

		if err := c.CoreV1().Services("default").Delete(ctx, "later", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "deleted service is NXDOMAIN", func() error {
			m, err := exchange("udp", addr, name, dns.TypeA)
			if err != nil {
				return err
			}
			if m.Rcode != dns.RcodeNameError {
				return fmt.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
			}
			return nil
		})
		// The SRV names and the PTR of the deleted service went with it.
		rev, _ := dns.ReverseAddr(later.Spec.ClusterIP)
		if m := query(t, "udp", addr, rev, dns.TypePTR); len(m.Answer) != 0 {
			t.Fatalf("PTR of a deleted service still answered: %v", m.Answer)
		}
	})
}

func TestRunStopsAndRejectsBadConfig(t *testing.T) {
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	c := srv.Client(t)
	for _, cfg := range []Config{
		{Domain: "cluster.local", Listen: []string{"127.0.0.1:53"}},
		{Client: c, Listen: []string{"127.0.0.1:53"}},
		{Client: c, Domain: "cluster.local"},
		{Client: c, Domain: "cluster.local", Listen: []string{"10.43.0.10"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}

	// A port in use is reported by Run, not hidden.
	l, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := New(Config{Client: c, Domain: "cluster.local", Listen: []string{l.LocalAddr().String()}, Upstreams: []string{"127.0.0.1:1"}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run on a busy port: %v, want address already in use", err)
	}
	select {
	case <-s.Ready():
		t.Fatal("Ready closed although Run failed")
	default:
	}
}

// The agent may add the cluster DNS address to its interface after the
// server starts: binding an address the host does not have yet must work.
func TestListenOnAddressNotYetConfigured(t *testing.T) {
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	c := srv.Client(t)
	// 192.0.2.0/24 is TEST-NET-1: never configured on a real host.
	addr := net.JoinHostPort("192.0.2.53", strconv.Itoa(servertest.FreePort(t)))
	s, err := New(Config{Client: c, Domain: "cluster.local", Listen: []string{addr}, Upstreams: []string{"127.0.0.1:1"}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run on a not yet configured address: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready after 60s")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
