package apiserver

// The endpoint reconciler keeps default/kubernetes pointing at every live
// API server. Each server holds a key under apiserverLeasePrefix, named by
// its advertise IP and attached to an etcd lease that it keeps alive; the
// key disappears when the server stops (the lease is revoked) or dies (the
// lease expires). Every server watches the prefix and writes the list of
// keys into the default/kubernetes Endpoints and EndpointSlice, which the
// agents read to find the servers. All servers compute the same content, so
// running the loop on each of them converges; a write happens only when the
// stored content differs.

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

const (
	// apiserverLeasePrefix holds one key per live API server, named by its
	// advertise IP.
	apiserverLeasePrefix = "/skiff/apiserver-leases/"
	// defaultEndpointLeaseTTL is how long a killed server stays listed.
	defaultEndpointLeaseTTL = 15 * time.Second
	// endpointResync is how often the endpoints are checked without a
	// change of the leases (someone may have edited them).
	endpointResync = 10 * time.Second
	// endpointCallTimeout bounds one etcd call or one reconcile: a server
	// cut off from the etcd majority must not wedge the loop.
	endpointCallTimeout = 10 * time.Second
	// endpointShutdownTimeout bounds the revoke and the last rewrite on a
	// clean stop.
	endpointShutdownTimeout = 3 * time.Second
)

// endpointReconciler registers this server and keeps default/kubernetes
// listing every registered server.
type endpointReconciler struct {
	s      *Server
	client *clientv3.Client
	ip     netip.Addr
	key    string
	ttl    time.Duration
	// servers is the list last seen (and logged); only the loop touches it.
	servers []string
}

// advertiseIP is the address this server puts in default/kubernetes.
func (s *Server) advertiseIP() net.IP {
	if s.cfg.AdvertiseIP == nil {
		return net.IPv4(127, 0, 0, 1)
	}
	return s.cfg.AdvertiseIP
}

// startEndpointReconciler registers this server, writes default/kubernetes
// once with every registered server, then keeps it current until ctx is
// done: it revokes the registration and rewrites the list without this
// server before closing the returned channel. Without an etcd client
// (Config.Etcd) bootstrap wrote this server alone and there is nothing to
// keep: the channel is closed at once.
func (s *Server) startEndpointReconciler(ctx context.Context) (<-chan struct{}, error) {
	done := make(chan struct{})
	if s.cfg.Etcd == nil {
		close(done)
		return done, nil
	}
	ip, ok := netip.AddrFromSlice(s.advertiseIP())
	if !ok {
		close(done)
		return done, fmt.Errorf("advertise IP %v is not an IP address", s.cfg.AdvertiseIP)
	}
	ip = ip.Unmap()
	r := &endpointReconciler{
		s:      s,
		client: s.cfg.Etcd,
		ip:     ip,
		key:    apiserverLeasePrefix + ip.String(),
		ttl:    s.cfg.EndpointLeaseTTL,
	}
	if r.ttl <= 0 {
		r.ttl = defaultEndpointLeaseTTL
	}
	lease, err := r.register(ctx)
	if err != nil {
		close(done)
		return done, err
	}
	if _, err := r.reconcile(ctx); err != nil {
		r.revoke(lease)
		close(done)
		return done, err
	}
	leaseDone := make(chan struct{})
	go func() {
		defer close(leaseDone)
		r.keepLease(ctx, lease)
	}()
	go func() {
		defer close(done)
		r.loop(ctx)
		// The revoke (by keepLease) removes this server from the list the
		// others watch; rewrite once here too, so the list is right even
		// if no other server is there to see it go.
		<-leaseDone
		stopCtx, cancel := context.WithTimeout(context.Background(), endpointShutdownTimeout)
		defer cancel()
		if _, err := r.reconcile(stopCtx); err != nil {
			r.s.log.Debug("could not remove this server from default/kubernetes", "err", err)
		}
	}()
	return done, nil
}

// register grants a lease and puts this server's key on it.
func (r *endpointReconciler) register(ctx context.Context) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, endpointCallTimeout)
	defer cancel()
	ttl := int64(math.Ceil(r.ttl.Seconds()))
	grant, err := r.client.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("register the API server in etcd: grant a lease: %w", err)
	}
	value := net.JoinHostPort(r.ip.String(), strconv.Itoa(r.s.port()))
	if _, err := r.client.Put(ctx, r.key, value, clientv3.WithLease(grant.ID)); err != nil {
		r.revoke(grant.ID)
		return 0, fmt.Errorf("register the API server in etcd: %w", err)
	}
	return grant.ID, nil
}

// revoke drops a lease and so this server's key, for the others to see at
// once rather than when the lease expires.
func (r *endpointReconciler) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), endpointShutdownTimeout)
	defer cancel()
	if _, err := r.client.Revoke(ctx, id); err != nil {
		r.s.log.Debug("could not revoke the API server lease; it expires on its own", "ttl", r.ttl, "err", err)
	}
}

// keepLease keeps the lease alive until ctx is done, then revokes it. When
// the lease is lost (etcd unreachable for longer than the TTL), it
// registers again.
func (r *endpointReconciler) keepLease(ctx context.Context, id clientv3.LeaseID) {
	for {
		alive, err := r.client.KeepAlive(ctx, id)
		if err == nil {
			for range alive {
			}
		}
		if ctx.Err() != nil {
			r.revoke(id)
			return
		}
		r.s.log.Warn("lost the API server lease in etcd; registering again", "err", err)
		for backoff := time.Second; ; backoff = min(2*backoff, endpointResync) {
			if !sleep(ctx, backoff) {
				return
			}
			if id, err = r.register(ctx); err == nil {
				break
			}
			r.s.log.Warn("could not register the API server in etcd", "err", err, "retry_in", min(2*backoff, endpointResync))
		}
	}
}

// loop reconciles on every change of the registrations and every
// endpointResync, until ctx is done.
func (r *endpointReconciler) loop(ctx context.Context) {
	tick := time.NewTicker(endpointResync)
	defer tick.Stop()
	backoff := time.Second
	for ctx.Err() == nil {
		rev, err := r.reconcile(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.s.log.Warn("could not update the default/kubernetes endpoints", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, endpointResync)
			continue
		}
		backoff = time.Second
		r.watch(ctx, rev, tick.C)
	}
}

// watch reconciles on every change of the registrations after rev and on
// every tick. It returns when the watch ends (to list again) or ctx is done.
func (r *endpointReconciler) watch(ctx context.Context, rev int64, tick <-chan time.Time) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := r.client.Watch(wctx, apiserverLeasePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				return
			}
			if len(resp.Events) == 0 {
				continue
			}
		case <-tick:
		}
		if _, err := r.reconcile(ctx); err != nil && ctx.Err() == nil {
			r.s.log.Warn("could not update the default/kubernetes endpoints", "err", err)
		}
	}
}

// reconcile lists the registered servers and writes them into
// default/kubernetes where the stored objects differ. It returns the
// revision of the list. An empty list is never written: it would leave the
// agents with no server at all.
func (r *endpointReconciler) reconcile(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, endpointCallTimeout)
	defer cancel()
	resp, err := r.client.Get(ctx, apiserverLeasePrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list the API servers in etcd: %w", err)
	}
	var addrs []netip.Addr
	for _, kv := range resp.Kvs {
		ip, err := netip.ParseAddr(strings.TrimPrefix(string(kv.Key), apiserverLeasePrefix))
		// One Endpoints subset and one EndpointSlice carry one family:
		// this server's.
		if err != nil || ip.Is4() != r.ip.Is4() {
			continue
		}
		addrs = append(addrs, ip)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	servers := make([]string, len(addrs))
	for i, a := range addrs {
		servers[i] = a.String()
	}
	if len(servers) == 0 {
		return resp.Header.Revision, nil
	}
	if err := r.s.writeAPIEndpoints(ctx, servers); err != nil {
		return 0, err
	}
	if !slices.Equal(servers, r.servers) {
		r.s.log.Info("API server endpoints updated", "servers", servers)
		r.servers = servers
	}
	return resp.Header.Revision, nil
}

// writeAPIEndpoints points the default/kubernetes Endpoints and
// EndpointSlice at servers (IPs of one family), on this server's port,
// writing only what differs from the stored objects.
func (s *Server) writeAPIEndpoints(ctx context.Context, servers []string) error {
	port := int32(s.port())
	addresses := make([]corev1.EndpointAddress, len(servers))
	endpoints := make([]discoveryv1.Endpoint, len(servers))
	for i, ip := range servers {
		addresses[i] = corev1.EndpointAddress{IP: ip}
		endpoints[i] = discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: addresses,
			Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := s.ensureSpec(ctx, "", "v1", "endpoints", ep, func(cur runtime.Object) runtime.Object {
		e := cur.(*corev1.Endpoints)
		e.Subsets = ep.Subsets
		return e
	}); err != nil {
		return fmt.Errorf("write the default/kubernetes endpoints: %w", err)
	}
	addressType := discoveryv1.AddressTypeIPv4
	if ip, err := netip.ParseAddr(servers[0]); err == nil && ip.Is6() {
		addressType = discoveryv1.AddressTypeIPv6
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes", discoveryv1.LabelManagedBy: "skiff-apiserver"}},
		AddressType: addressType,
		Endpoints:   endpoints,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := s.ensureSpec(ctx, "discovery.k8s.io", "v1", "endpointslices", slice, func(cur runtime.Object) runtime.Object {
		e := cur.(*discoveryv1.EndpointSlice)
		e.Endpoints, e.Ports = slice.Endpoints, slice.Ports
		return e
	}); err != nil {
		return fmt.Errorf("write the default/kubernetes endpoint slice: %w", err)
	}
	return nil
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
