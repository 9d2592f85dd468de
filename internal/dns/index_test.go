package dns

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func addrs(e *entry) []string {
	var out []string
	for _, a := range e.addrs {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func TestServiceRecordsDualStackAndPending(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "Web", Namespace: "ns"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.20", ClusterIPs: []string{"10.43.0.20", "fd00:43::20"},
			Ports: []corev1.ServicePort{{Port: 80}}},
	}
	recs := serviceRecords(svc, nil, "cluster.local.")
	e := recs["web.ns.svc.cluster.local."]
	if e == nil || !slices.Equal(addrs(e), []string{"10.43.0.20", "fd00:43::20"}) {
		t.Fatalf("dual-stack service records: %+v", e)
	}
	if len(e.srv) != 0 {
		t.Fatalf("an unnamed port must not get SRV records: %+v", e.srv)
	}
	if p := recs["0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa."]; p == nil || p.ptr[0] != "web.ns.svc.cluster.local." {
		t.Fatalf("IPv6 PTR missing: %v", recs)
	}

	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
	if e := serviceRecords(svc, nil, "cluster.local.")["web.ns.svc.cluster.local."]; !e.empty() {
		t.Fatalf("a service without an IP yet has no addresses, got %+v", e)
	}
}

func TestHeadlessPublishNotReady(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true},
	}
	sl := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv6, Endpoints: []discoveryv1.Endpoint{
		{Addresses: []string{"fd00:42::5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
	}}
	recs := serviceRecords(svc, []*discoveryv1.EndpointSlice{sl, sl}, "cluster.local.")
	if e := recs["db.ns.svc.cluster.local."]; !slices.Equal(addrs(e), []string{"fd00:42::5"}) {
		t.Fatalf("publishNotReadyAddresses: got %+v", e)
	}
	if e := recs["fd00-42--5.db.ns.svc.cluster.local."]; e == nil || len(e.addrs) != 1 {
		t.Fatalf("dashed endpoint name missing: %v", recs)
	}
}

func TestIndexOwnersShareNames(t *testing.T) {
	ix := newIndex()
	mk := func(name, ip string) map[string]*entry {
		return serviceRecords(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Spec: corev1.ServiceSpec{ClusterIP: ip}}, nil, "cluster.local.")
	}
	ix.set("a", mk("a", "10.43.0.1"))
	ix.set("b", mk("b", "10.43.0.2"))
	ix.set("a", nil)
	if _, ok := ix.lookup("a.ns.svc.cluster.local."); ok {
		t.Fatal("removed service still in the index")
	}
	if _, ok := ix.lookup("ns.svc.cluster.local."); !ok {
		t.Fatal("the namespace name must stay while another service in it exists")
	}
	ix.set("b", mk("b", "10.43.0.3"))
	if e, _ := ix.lookup("b.ns.svc.cluster.local."); !slices.Equal(addrs(e), []string{"10.43.0.3"}) {
		t.Fatalf("updated service: %+v", e)
	}
	if _, ok := ix.lookup("2.0.43.10.in-addr.arpa."); ok {
		t.Fatal("PTR of the old address survived an update")
	}
	ix.set("b", nil)
	if len(ix.names) != 0 || len(ix.owned) != 0 {
		t.Fatalf("index not empty after removing everything: %v %v", ix.names, ix.owned)
	}
}

func TestPodNames(t *testing.T) {
	s := &Server{domain: "cluster.local.", index: newIndex()}
	for name, want := range map[string]string{
		"10-42-0-7.default.pod.cluster.local.":   "10.42.0.7",
		"fd00-42--7.default.pod.cluster.local.":  "fd00:42::7",
		"10-42-0-7.a.b.pod.cluster.local.":       "",
		"10-42-0-300.default.pod.cluster.local.": "",
		"10-42-0-7.pod.cluster.local.":           "",
	} {
		e, ok := s.podEntry(name)
		got := ""
		if ok {
			got = e.addrs[0].String()
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	f := newForwarder(nil, 30*time.Second)
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		m    *dns.Msg
		want time.Duration
	}{
		{&dns.Msg{Answer: []dns.RR{rr("a. 300 IN A 1.2.3.4")}}, 30 * time.Second},
		{&dns.Msg{Answer: []dns.RR{rr("a. 300 IN CNAME b."), rr("b. 7 IN A 1.2.3.4")}}, 7 * time.Second},
		{&dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}, Ns: []dns.RR{rr(". 3600 IN SOA a. b. 1 1 1 1 10")}}, 10 * time.Second},
		{&dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}}, 0},
		{&dns.Msg{Answer: []dns.RR{rr("a. 0 IN A 1.2.3.4")}}, 0},
	} {
		if got := f.cacheTTL(tc.m); got != tc.want {
			t.Errorf("cacheTTL(%v) = %v, want %v", tc.m, got, tc.want)
		}
	}

	// Cached answers age: their TTLs count down and they expire.
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	key := cacheKey{name: "a.", qtype: dns.TypeA, class: dns.ClassINET}
	f.store(key, &dns.Msg{Answer: []dns.RR{rr("a. 20 IN A 1.2.3.4")}}, 20*time.Second)
	now = now.Add(12 * time.Second)
	m, err := f.resolve(t.Context(), dns.Question{Name: "A.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false, false)
	if err != nil || m.Answer[0].Header().Ttl != 8 {
		t.Fatalf("aged answer: %v %v", m, err)
	}
	now = now.Add(10 * time.Second)
	if _, err := f.resolve(t.Context(), dns.Question{Name: "a.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, false, false); err == nil {
		t.Fatal("an expired answer was served (want the no-upstream error)")
	}
}

func TestReverseName(t *testing.T) {
	for _, ip := range []string{"10.43.0.10", "fd00:43::a"} {
		want, _ := dns.ReverseAddr(ip)
		if got := reverseName(netip.MustParseAddr(ip)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", ip, got, want)
		}
	}
}

func TestUpstreamDownIsServfail(t *testing.T) {
	s, err := New(Config{Client: fake.NewClientset(), Domain: "cluster.local", Listen: []string{"127.0.0.1:53"},
		Upstreams: []string{"127.0.0.1:1"}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	req := new(dns.Msg)
	req.SetQuestion("example.com.", dns.TypeA)
	if m := s.answer(t.Context(), req); m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	// Cluster names do not depend on the upstreams.
	req.SetQuestion("nothing.svc.cluster.local.", dns.TypeA)
	if m := s.answer(t.Context(), req); m.Rcode != dns.RcodeNameError {
		t.Fatalf("rcode %s, want NXDOMAIN", dns.RcodeToString[m.Rcode])
	}
}
