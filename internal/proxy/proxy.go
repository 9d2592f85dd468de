// Package proxy is skiff's service proxy: it watches Services and
// EndpointSlices and programs iptables (nat and filter tables) so that
// ClusterIPs, NodePorts, external IPs and LoadBalancer ports reach the
// ready endpoints, like kube-proxy's iptables mode. LoadBalancer Services
// are answered on the nodes' own addresses (k3s ServiceLB style): the
// proxy writes their status.loadBalancer.ingress.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// Config configures a Proxier.
type Config struct {
	Client   kubernetes.Interface
	NodeName string
	// NodeIPs are the addresses NodePorts and LoadBalancer ports answer
	// on (the node's InternalIP(s)). Empty: every local address.
	NodeIPs []net.IP
	// ClusterCIDR is the pod network (10.42.0.0/16): traffic from outside
	// it to a ClusterIP is masqueraded.
	ClusterCIDR *net.IPNet
	// MinSyncInterval coalesces syncs: at most one per interval (default 1s).
	MinSyncInterval time.Duration
	// SyncPeriod is how often everything is re-applied even without
	// changes, repairing rules someone else removed (default 30s).
	SyncPeriod time.Duration
	Logger     *slog.Logger
}

// Proxier keeps the node's iptables rules in line with the cluster's
// Services and EndpointSlices.
type Proxier struct {
	cfg   Config
	log   *slog.Logger
	ready chan struct{}
	// trigger asks the sync loop for a sync; it holds at most one request.
	trigger chan struct{}

	// mu serialises syncs and guards what follows.
	mu        sync.Mutex
	listers   *listers
	readyOnce sync.Once
	// udpEndpoints are the endpoints of each UDP service port at the last
	// successful sync, to find the removed ones whose conntrack entries
	// must go.
	udpEndpoints map[string]map[endpoint]bool
	// written is the rules of each chain as last written, nil after a
	// failure (then the next sync rewrites everything).
	written map[string]string
	// lastFull is when all chains were last rewritten.
	lastFull time.Time

	// netnsDo runs f where the rules live. It is the identity in
	// production; tests run it in a network namespace they made.
	netnsDo func(f func() error) error
}

type listers struct {
	services corelisters.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	nodes    corelisters.NodeLister
}

// New checks cfg and returns a Proxier; nothing is changed until Run or Sync.
func New(cfg Config) (*Proxier, error) {
	if cfg.Client == nil {
		return nil, errors.New("proxy: no API client")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("proxy: no node name")
	}
	for _, ip := range cfg.NodeIPs {
		if ip.To4() == nil {
			return nil, fmt.Errorf("proxy: node IP %s: only IPv4 is supported", ip)
		}
	}
	if cfg.ClusterCIDR != nil && cfg.ClusterCIDR.IP.To4() == nil {
		return nil, fmt.Errorf("proxy: cluster CIDR %s: only IPv4 is supported", cfg.ClusterCIDR)
	}
	if cfg.MinSyncInterval <= 0 {
		cfg.MinSyncInterval = time.Second
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.NodeIPs = append([]net.IP(nil), cfg.NodeIPs...)
	return &Proxier{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "proxy"),
		ready:        make(chan struct{}),
		trigger:      make(chan struct{}, 1),
		udpEndpoints: map[string]map[endpoint]bool{},
		netnsDo:      func(f func() error) error { return f() },
	}, nil
}

// Ready is closed after the first successful sync.
func (p *Proxier) Ready() <-chan struct{} { return p.ready }

// Run watches Services, EndpointSlices and Nodes and syncs on changes (at
// most once per MinSyncInterval) and every SyncPeriod, until ctx is done.
// Failed syncs are retried with back-off. The rules are left in place on
// return so that traffic keeps flowing while the agent restarts.
func (p *Proxier) Run(ctx context.Context) error {
	p.log.Info("starting", "node", p.cfg.NodeName)
	factory := informers.NewSharedInformerFactory(p.cfg.Client, 0)
	svcInf := factory.Core().V1().Services()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	nodeInf := factory.Core().V1().Nodes()
	queue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.queueSync() },
		UpdateFunc: func(any, any) { p.queueSync() },
		DeleteFunc: func(any) { p.queueSync() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf.Informer(), sliceInf.Informer()} {
		if _, err := inf.AddEventHandler(queue); err != nil {
			return fmt.Errorf("proxy: watch: %w", err)
		}
	}
	// Nodes change often (heartbeats); only what LoadBalancer status
	// depends on matters.
	if _, err := nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { p.queueSync() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || !slices.Equal(nodeLBAddresses(o), nodeLBAddresses(n)) {
				p.queueSync()
			}
		},
		DeleteFunc: func(any) { p.queueSync() },
	}); err != nil {
		return fmt.Errorf("proxy: watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("proxy: cache for %v did not sync", typ)
		}
	}
	p.mu.Lock()
	p.listers = &listers{services: svcInf.Lister(), slices: sliceInf.Lister(), nodes: nodeInf.Lister()}
	p.mu.Unlock()

	timer := time.NewTimer(0) // first sync right away
	defer timer.Stop()
	backoff := p.cfg.MinSyncInterval
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			p.log.Info("stopped")
			return nil
		case <-p.trigger:
		case <-timer.C:
		}
		if wait := time.Until(last.Add(p.cfg.MinSyncInterval)); wait > 0 {
			select {
			case <-ctx.Done():
				p.log.Info("stopped")
				return nil
			case <-time.After(wait):
			}
		}
		// Requests that came in while waiting are covered by this sync.
		select {
		case <-p.trigger:
		default:
		}
		last = time.Now()
		err := p.sync(ctx, false)
		next := p.cfg.SyncPeriod
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			p.log.Error("sync failed, will retry", "err", err, "retry", backoff)
			next, backoff = backoff, min(2*backoff, p.cfg.SyncPeriod)
		} else {
			backoff = p.cfg.MinSyncInterval
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

func (p *Proxier) queueSync() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// fullSyncPeriod is how often Run rewrites every chain, not just the
// changed ones, in case something else altered the rules inside them.
const fullSyncPeriod = time.Hour

// Sync applies the current Services and EndpointSlices now, rewriting
// every chain: from Run's caches when it runs, else straight from the
// API. It writes LoadBalancer status too.
func (p *Proxier) Sync(ctx context.Context) error { return p.sync(ctx, true) }

// sync applies the current state. Unless full, chains whose rules did not
// change since the last sync and that are still in the kernel are left
// alone.
func (p *Proxier) sync(ctx context.Context, full bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	services, slices, nodes, err := p.state(ctx)
	if err != nil {
		return err
	}
	rcfg := RuleConfig{NodeName: p.cfg.NodeName, NodeIPs: p.cfg.NodeIPs, ClusterCIDR: p.cfg.ClusterCIDR}
	ports := servicePorts(rcfg, services, slices)
	udp := udpEndpoints(ports)
	var rulesErr error
	written := p.written
	if full || time.Since(p.lastFull) >= fullSyncPeriod {
		written, full = nil, true
	}
	err = p.netnsDo(func() error {
		now, err := applyRules(ctx, rcfg, ports, written)
		p.written = now
		if err != nil {
			return err
		}
		p.clearStaleUDP(udp)
		return nil
	})
	if err != nil {
		rulesErr = fmt.Errorf("proxy: %w", err)
	} else {
		p.udpEndpoints = udp
		if full {
			p.lastFull = start
		}
	}
	lbErr := p.updateLoadBalancers(ctx, services, slices, nodes)
	if err := errors.Join(rulesErr, lbErr); err != nil {
		return err
	}
	p.log.Debug("synced", "servicePorts", len(ports), "full", full, "took", time.Since(start))
	p.readyOnce.Do(func() {
		p.log.Info("ready")
		close(p.ready)
	})
	return nil
}

// state lists what a sync works from.
func (p *Proxier) state(ctx context.Context) ([]*corev1.Service, []*discoveryv1.EndpointSlice, []*corev1.Node, error) {
	if l := p.listers; l != nil {
		svcs, err := l.services.List(labels.Everything())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("proxy: list services: %w", err)
		}
		slices, err := l.slices.List(labels.Everything())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("proxy: list endpointslices: %w", err)
		}
		nodes, err := l.nodes.List(labels.Everything())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("proxy: list nodes: %w", err)
		}
		return svcs, slices, nodes, nil
	}
	sl, err := p.cfg.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: list services: %w", err)
	}
	el, err := p.cfg.Client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: list endpointslices: %w", err)
	}
	nl, err := p.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("proxy: list nodes: %w", err)
	}
	svcs := make([]*corev1.Service, len(sl.Items))
	for i := range sl.Items {
		svcs[i] = &sl.Items[i]
	}
	slices := make([]*discoveryv1.EndpointSlice, len(el.Items))
	for i := range el.Items {
		slices[i] = &el.Items[i]
	}
	nodes := make([]*corev1.Node, len(nl.Items))
	for i := range nl.Items {
		nodes[i] = &nl.Items[i]
	}
	return svcs, slices, nodes, nil
}
