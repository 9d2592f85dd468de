package dns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCacheEntries bounds the upstream answer cache: a pod looping over
// random names must not grow the agent's memory without limit.
const maxCacheEntries = 10000

// upstreamTimeout is how long one upstream gets to answer one attempt.
const upstreamTimeout = 2 * time.Second

type cacheKey struct {
	name  string // lower case
	qtype uint16
	class uint16
	do    bool
}

type cached struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// call is one upstream exchange that concurrent identical queries share.
type call struct {
	done chan struct{}
	msg  *dns.Msg
	err  error
}

// forwarder sends queries for names outside the cluster domain to the
// upstream servers and caches the answers.
type forwarder struct {
	upstreams []string
	maxTTL    time.Duration
	now       func() time.Time

	mu       sync.Mutex
	cache    map[cacheKey]*cached
	inflight map[cacheKey]*call
}

func newForwarder(upstreams []string, maxTTL time.Duration) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		maxTTL:    maxTTL,
		now:       time.Now,
		cache:     map[cacheKey]*cached{},
		inflight:  map[cacheKey]*call{},
	}
}

// resolve answers q (the question of a client's request) from the cache or
// the upstreams. The returned message is the caller's to modify; its TTLs
// are already lowered by the time it spent in the cache.
func (f *forwarder) resolve(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	key := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, class: q.Qclass, do: do}
	f.mu.Lock()
	if c, ok := f.cache[key]; ok {
		now := f.now()
		if now.Before(c.expires) {
			f.mu.Unlock()
			m := c.msg.Copy()
			ageTTLs(m, now.Sub(c.stored))
			return m, nil
		}
		delete(f.cache, key)
	}
	if cl, ok := f.inflight[key]; ok {
		f.mu.Unlock()
		select {
		case <-cl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if cl.err != nil {
			return nil, cl.err
		}
		return cl.msg.Copy(), nil
	}
	cl := &call{done: make(chan struct{})}
	f.inflight[key] = cl
	f.mu.Unlock()

	cl.msg, cl.err = f.exchange(ctx, q, do, cd)

	f.mu.Lock()
	delete(f.inflight, key)
	if cl.err == nil {
		if ttl := f.cacheTTL(cl.msg); ttl > 0 {
			f.store(key, cl.msg, ttl)
		}
	}
	f.mu.Unlock()
	close(cl.done)
	if cl.err != nil {
		return nil, cl.err
	}
	return cl.msg.Copy(), nil
}

// store adds an answer to the cache; f.mu is held.
func (f *forwarder) store(key cacheKey, m *dns.Msg, ttl time.Duration) {
	now := f.now()
	if len(f.cache) >= maxCacheEntries {
		for k, c := range f.cache {
			if !now.Before(c.expires) {
				delete(f.cache, k)
			}
		}
		// Still full: drop arbitrary entries (map order is random enough
		// for a cache that only has to stay bounded).
		for k := range f.cache {
			if len(f.cache) < maxCacheEntries {
				break
			}
			delete(f.cache, k)
		}
	}
	f.cache[key] = &cached{msg: m, stored: now, expires: now.Add(ttl)}
}

// cacheTTL is how long an upstream answer may be reused: the smallest TTL in
// it (for a negative answer, the SOA's negative TTL), at most maxTTL. Server
// failures are not cached so that a flapping upstream recovers at once.
func (f *forwarder) cacheTTL(m *dns.Msg) time.Duration {
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return 0
	}
	if m.Truncated {
		return 0
	}
	minTTL := uint32(f.maxTTL / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			ttl := rr.Header().Ttl
			if soa, ok := rr.(*dns.SOA); ok && soa.Minttl < ttl {
				ttl = soa.Minttl
			}
			if ttl < minTTL {
				minTTL = ttl
			}
		}
	}
	return time.Duration(minTTL) * time.Second
}

// ageTTLs lowers every TTL by the time an answer spent in the cache.
func ageTTLs(m *dns.Msg, age time.Duration) {
	sec := uint32(age / time.Second)
	for _, s := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range s {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > sec {
				h.Ttl -= sec
			} else {
				h.Ttl = 0
			}
		}
	}
}

// exchange asks the upstreams in order until one answers, over UDP and, when
// the answer is truncated, again over TCP.
func (f *forwarder) exchange(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, errors.New("no upstream DNS servers configured")
	}
	req := new(dns.Msg)
	req.Id = dns.Id()
	req.RecursionDesired = true
	req.CheckingDisabled = cd
	req.Question = []dns.Question{q}
	// Ask for large UDP answers so that TCP is rarely needed.
	req.SetEdns0(dns.DefaultMsgSize, do)

	var errs []error
	for _, up := range f.upstreams {
		m, err := exchangeOne(ctx, req, up, "udp")
		if err == nil && m.Truncated {
			m, err = exchangeOne(ctx, req, up, "tcp")
		}
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("forward %s %s: %w", q.Name, dns.TypeToString[q.Qtype], errors.Join(errs...))
}

func exchangeOne(ctx context.Context, req *dns.Msg, upstream, network string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: upstreamTimeout, UDPSize: dns.DefaultMsgSize}
	m, _, err := c.ExchangeContext(ctx, req, upstream)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", network, upstream, err)
	}
	return m, nil
}

// defaultUpstreams reads the host's nameservers from /etc/resolv.conf. A
// loopback stub resolver (systemd-resolved's 127.0.0.53) is passed over in
// favour of the servers resolved itself uses, which skip a hop; but where a
// loopback resolver is all there is (Docker's 127.0.0.11 in a container
// node), it is used: this server runs in the node's own network namespace,
// where it answers.
func defaultUpstreams(exclude []string) []string {
	paths := []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}
	for _, allowLoopback := range []bool{false, true} {
		for _, path := range paths {
			data, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			if ups := upstreamsFrom(data, exclude, allowLoopback); len(ups) > 0 {
				return ups
			}
		}
	}
	return nil
}

// upstreamsFrom returns the usable nameservers of a resolv.conf as
// "host:port", leaving out our own listen addresses (forwarding to
// ourselves would loop) and, unless allowed, loopback addresses.
func upstreamsFrom(resolvConf []byte, exclude []string, allowLoopback bool) []string {
	var out []string
	for _, ns := range parseResolvConf(resolvConf).nameservers {
		a, err := netip.ParseAddr(ns)
		if err != nil || (a.IsLoopback() && !allowLoopback) || a.IsUnspecified() {
			continue
		}
		hp := net.JoinHostPort(a.String(), "53")
		if slices.Contains(exclude, hp) || slices.Contains(out, hp) {
			continue
		}
		out = append(out, hp)
	}
	return out
}

// resolvConf is the part of a resolv.conf that matters to us.
type resolvConf struct {
	nameservers []string
	searches    []string
	options     []string
}

func parseResolvConf(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				rc.nameservers = append(rc.nameservers, f[1])
			}
		case "domain":
			// As in glibc, the last of "domain" and "search" wins.
			if len(f) > 1 {
				rc.searches = []string{f[1]}
			}
		case "search":
			rc.searches = nil
			for _, s := range f[1:] {
				if s != "." {
					rc.searches = append(rc.searches, s)
				}
			}
		case "options":
			rc.options = append(rc.options, f[1:]...)
		}
	}
	return rc
}
