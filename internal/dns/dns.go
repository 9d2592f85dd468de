// Package dns is skiff's cluster DNS: every agent answers the cluster domain
// itself (no DNS pod) from an in-memory index of Services and EndpointSlices
// kept up to date by informers, and forwards other names to the host's
// upstream servers with a small cache.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// clusterTTL is the TTL of answers for cluster names: short, because
// services and endpoints change and clients cache.
const clusterTTL = 5

// Config configures the DNS server.
type Config struct {
	// Client reads Services and EndpointSlices.
	Client kubernetes.Interface
	// Domain is the cluster domain, e.g. "cluster.local".
	Domain string
	// Listen are the addresses served over both UDP and TCP, e.g.
	// "10.43.0.10:53". The addresses need not be configured yet when Run
	// starts (the sockets are bound with IP_FREEBIND on Linux).
	Listen []string
	// Upstreams are the servers ("ip:port") for names outside the cluster
	// domain. Empty: the host's nameservers from /etc/resolv.conf, or from
	// /run/systemd/resolve/resolv.conf when that only has a loopback stub.
	Upstreams []string
	// CacheTTL caps how long an upstream answer is cached (its own TTL is
	// respected below that). Default 30s.
	CacheTTL time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is a cluster DNS server. Create it with New and start it with Run.
type Server struct {
	client    kubernetes.Interface
	domain    string // lower-case FQDN: "cluster.local."
	listen    []string
	log       *slog.Logger
	index     *index
	forwarder *forwarder
	serial    uint32
	lastWarn  atomic.Int64 // unix nanos of the last upstream failure warning

	ready   chan struct{}
	started chan struct{} // closed by the first Run; Run may only run once

	syncMu   sync.Mutex // serializes index rebuilds (read listers + write index)
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
}

// New validates cfg and returns a server that is not running yet.
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil {
		return nil, errors.New("dns: Client is required")
	}
	domain := strings.ToLower(strings.Trim(cfg.Domain, "."))
	if domain == "" {
		return nil, errors.New("dns: Domain is required")
	}
	if _, ok := dns.IsDomainName(domain); !ok {
		return nil, fmt.Errorf("dns: invalid domain %q", cfg.Domain)
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dns: at least one Listen address is required")
	}
	for _, l := range cfg.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			return nil, fmt.Errorf("dns: listen address %q: %w", l, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "dns")
	ups := append([]string(nil), cfg.Upstreams...)
	if len(ups) == 0 {
		ups = defaultUpstreams(cfg.Listen)
		if len(ups) == 0 {
			log.Warn("no upstream DNS servers found in /etc/resolv.conf; names outside the cluster domain will fail")
		}
	}
	for i, u := range ups {
		if _, _, err := net.SplitHostPort(u); err != nil {
			ups[i] = net.JoinHostPort(u, "53")
		}
	}
	ttl := cfg.CacheTTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &Server{
		client:    cfg.Client,
		domain:    domain + ".",
		listen:    append([]string(nil), cfg.Listen...),
		log:       log,
		index:     newIndex(),
		forwarder: newForwarder(ups, ttl),
		serial:    uint32(time.Now().Unix()),
		ready:     make(chan struct{}),
		started:   make(chan struct{}),
	}, nil
}

// Ready is closed once the server listens on every address and its index
// holds the current Services and EndpointSlices.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run serves DNS until ctx ends. Binding errors are returned at once; queries
// are answered only after the informers have synced, so a starting server
// never answers NXDOMAIN for a name that exists.
func (s *Server) Run(ctx context.Context) error {
	select {
	case <-s.started:
		return errors.New("dns: Run called twice")
	default:
		close(s.started)
	}
	s.log.Info("starting", "listen", s.listen, "domain", s.domain, "upstreams", s.forwarder.upstreams)

	var servers []*dns.Server
	closeAll := func() {
		for _, srv := range servers {
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	for _, addr := range s.listen {
		pc, err := listenPacket(ctx, addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveDNS)})
		l, err := listenStream(ctx, addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
		}
		servers = append(servers, &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serveDNS), ReadTimeout: 10 * time.Second})
	}

	factory := informers.NewSharedInformerFactory(s.client, 0)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	s.services = svcInf.Lister()
	s.slices = sliceInf.Lister()
	svcReg, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onService(obj) },
		UpdateFunc: func(_, obj any) { s.onService(obj) },
		DeleteFunc: func(obj any) { s.onService(obj) },
	})
	if err != nil {
		closeAll()
		return fmt.Errorf("dns: watch services: %w", err)
	}
	sliceReg, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.onSlice(obj) },
		UpdateFunc: func(old, obj any) {
			s.onSlice(old)
			s.onSlice(obj)
		},
		DeleteFunc: func(obj any) { s.onSlice(obj) },
	})
	if err != nil {
		closeAll()
		return fmt.Errorf("dns: watch endpointslices: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, sliceInf.Informer().HasSynced, svcReg.HasSynced, sliceReg.HasSynced) {
		closeAll()
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("dns: informers did not sync")
	}

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		}()
		// Wait until it runs so that Shutdown below cannot race the start.
		select {
		case <-started:
		case err := <-errc:
			closeAll()
			wg.Wait()
			return fmt.Errorf("dns: serve: %w", err)
		}
	}
	close(s.ready)
	s.log.Info("ready")

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		runErr = fmt.Errorf("dns: serve: %w", err)
	}
	s.log.Info("stopping")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.ShutdownContext(shutCtx); err != nil {
			s.log.Debug("shutdown", "err", err)
		}
	}
	wg.Wait()
	s.log.Info("stopped")
	return runErr
}

func (s *Server) onService(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return
	}
	s.rebuild(ns, name)
}

func (s *Server) onSlice(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	sl, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
		s.rebuild(sl.Namespace, name)
	}
}

// rebuild recomputes one service's records from the informer caches. It
// works from current state, not from the event, so the order in which
// service and slice events arrive does not matter.
func (s *Server) rebuild(ns, name string) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	owner := serviceOwner(ns, name)
	svc, err := s.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		s.index.set(owner, nil)
		return
	}
	if err != nil {
		s.log.Error("read service from cache", "service", ns+"/"+name, "err", err)
		return
	}
	var slices []*discoveryv1.EndpointSlice
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
		slices, err = s.slices.EndpointSlices(ns).List(sel)
		if err != nil {
			s.log.Error("read endpointslices from cache", "service", ns+"/"+name, "err", err)
			return
		}
	}
	s.index.set(owner, serviceRecords(svc, slices, s.domain))
}

// serveDNS answers one query.
func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := s.answer(context.Background(), r)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil && int(o.UDPSize()) > size {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("write answer", "err", err)
	}
}

// answer builds the reply to r.
func (s *Server) answer(ctx context.Context, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	if r.Opcode != dns.OpcodeQuery {
		m.SetRcode(r, dns.RcodeNotImplemented)
		return m
	}
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		return m
	}
	m.SetReply(r)
	m.RecursionAvailable = true
	var do bool
	if o := r.IsEdns0(); o != nil {
		do = o.Do()
		m.SetEdns0(dns.DefaultMsgSize, do)
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass == dns.ClassINET || q.Qclass == dns.ClassANY {
		if s.inDomain(name) {
			s.answerCluster(ctx, m, q, name, do, 0)
			return m
		}
		if e, ok := s.index.lookup(name); ok && len(e.ptr) > 0 && q.Qtype == dns.TypePTR {
			// Reverse lookups for cluster addresses; other reverse names go upstream.
			m.Authoritative = true
			for _, p := range e.ptr {
				m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: p})
			}
			return m
		}
	}
	up, err := s.forwarder.resolve(ctx, q, do, r.CheckingDisabled)
	if err != nil {
		s.warnForward(q.Name, err)
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	m.Rcode = up.Rcode
	m.AuthenticatedData = up.AuthenticatedData
	m.Answer = up.Answer
	m.Ns = up.Ns
	for _, rr := range up.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
	return m
}

// warnForward logs an upstream failure, at most once every 30s: when the
// upstreams are down every lookup fails and the log must stay readable.
func (s *Server) warnForward(name string, err error) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(30*time.Second) || !s.lastWarn.CompareAndSwap(last, now) {
		s.log.Debug("forward failed", "name", name, "err", err)
		return
	}
	s.log.Warn("forwarding to upstream DNS failed; check the upstream servers (Config.Upstreams or the host's resolv.conf)", "name", name, "err", err)
}

func (s *Server) inDomain(name string) bool {
	return name == s.domain || strings.HasSuffix(name, "."+s.domain)
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: clusterTTL}
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     hdr(s.domain, dns.TypeSOA),
		Ns:      "ns.dns." + s.domain,
		Mbox:    "hostmaster." + s.domain,
		Serial:  s.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  clusterTTL,
	}
}

// answerCluster answers a name inside the cluster domain into m. depth
// bounds CNAME chains between ExternalName services.
func (s *Server) answerCluster(ctx context.Context, m *dns.Msg, q dns.Question, name string, do bool, depth int) {
	m.Authoritative = true
	qt := q.Qtype
	switch name {
	case s.domain:
		switch qt {
		case dns.TypeSOA, dns.TypeANY:
			m.Answer = append(m.Answer, s.soa())
		case dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(q.Name, dns.TypeNS), Ns: "ns.dns." + s.domain})
		default:
			m.Ns = append(m.Ns, s.soa())
		}
		return
	case "svc." + s.domain, "pod." + s.domain:
		m.Ns = append(m.Ns, s.soa())
		return
	}

	e, ok := s.index.lookup(name)
	if !ok {
		e, ok = s.podEntry(name)
	}
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa())
		return
	}
	if e.cname != "" {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(q.Name, dns.TypeCNAME), Target: e.cname})
		if qt == dns.TypeCNAME || qt == dns.TypeANY {
			return
		}
		s.chase(ctx, m, dns.Question{Name: e.cname, Qtype: qt, Qclass: dns.ClassINET}, do, depth)
		return
	}
	for _, a := range e.addrs {
		switch {
		case a.Is4() && (qt == dns.TypeA || qt == dns.TypeANY):
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: a.AsSlice()})
		case a.Is6() && (qt == dns.TypeAAAA || qt == dns.TypeANY):
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA), AAAA: a.AsSlice()})
		}
	}
	if qt == dns.TypeSRV || qt == dns.TypeANY {
		seen := map[string]bool{}
		for _, t := range e.srv {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(q.Name, dns.TypeSRV), Priority: 0,
				Weight: uint16(100 / len(e.srv)), Port: t.port, Target: t.target})
			if seen[t.target] {
				continue
			}
			seen[t.target] = true
			// Save clients a second round trip: the targets' addresses.
			if te, ok := s.index.lookup(t.target); ok {
				for _, a := range te.addrs {
					if a.Is4() {
						m.Extra = append(m.Extra, &dns.A{Hdr: hdr(t.target, dns.TypeA), A: a.AsSlice()})
					} else {
						m.Extra = append(m.Extra, &dns.AAAA{Hdr: hdr(t.target, dns.TypeAAAA), AAAA: a.AsSlice()})
					}
				}
			}
		}
	}
	if qt == dns.TypePTR {
		for _, p := range e.ptr {
			m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(q.Name, dns.TypePTR), Ptr: p})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, s.soa())
	}
}

// chase resolves the target of an ExternalName CNAME so that clients get
// addresses in one answer: inside the cluster domain from the index, outside
// from the upstreams. A failure leaves just the CNAME, which clients can
// follow themselves.
func (s *Server) chase(ctx context.Context, m *dns.Msg, q dns.Question, do bool, depth int) {
	if depth >= 8 {
		return
	}
	if s.inDomain(q.Name) {
		sub := new(dns.Msg)
		s.answerCluster(ctx, sub, q, q.Name, do, depth+1)
		m.Answer = append(m.Answer, sub.Answer...)
		return
	}
	up, err := s.forwarder.resolve(ctx, q, do, false)
	if err != nil {
		s.log.Debug("resolve ExternalName target", "name", q.Name, "err", err)
		return
	}
	m.Answer = append(m.Answer, up.Answer...)
}

// podEntry answers "<a-b-c-d>.<namespace>.pod.<domain>" with the address
// written in its first label, like kube-dns: the name is derived, not looked
// up, so it works for every pod without watching pods.
func (s *Server) podEntry(name string) (*entry, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+s.domain)
	if !ok {
		return nil, false
	}
	label, ns, ok := strings.Cut(rest, ".")
	if !ok || ns == "" || strings.Contains(ns, ".") {
		return nil, false
	}
	a, ok := undash(label)
	if !ok {
		return nil, false
	}
	return &entry{addrs: []netip.Addr{a}}, true
}
