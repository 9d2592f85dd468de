// Package endpointslice keeps the EndpointSlices of every Service with a
// selector in step with the pods it selects. Each pod that has an address
// and has not finished is an endpoint with its ready, serving and
// terminating conditions; endpoints are grouped by address family and by
// their (per pod resolved) ports into slices of at most 100, labelled
// kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by and
// owned by the service. A service with no endpoints keeps one empty slice.
// Services without a selector, and default/kubernetes (kept by the API
// server), are left alone.
package endpointslice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
	"skiff/internal/controller/servicepods"
)

// Name is the controller's name in logs and the manager.
const Name = "endpointslice"

const (
	// ManagedBy is this controller's endpointslice.kubernetes.io/managed-by
	// value, the one Kubernetes' controller uses.
	ManagedBy = "endpointslice-controller.k8s.io"
	// MaxEndpointsPerSlice is how many endpoints one slice holds.
	MaxEndpointsPerSlice = 100

	labelHeadless    = "service.kubernetes.io/headless"
	labelZone        = "topology.kubernetes.io/zone"
	apiServerService = "default/kubernetes"
	workers          = 4
	// staleRetry is how soon a service is looked at again when the slice
	// cache has not caught up with this controller's own writes.
	staleRetry = 100 * time.Millisecond
	// writeMemory is how long a write is waited for in the cache at most:
	// one overtaken by another writer (a slice deleted again at once)
	// never shows.
	writeMemory = 5 * time.Second
)

// Controller is the endpointslice controller.
type Controller struct {
	client kubernetes.Interface
	svcs   corelisters.ServiceLister
	pods   corelisters.PodLister
	nodes  corelisters.NodeLister
	slices discoverylisters.EndpointSliceLister
	synced []cache.InformerSynced
	queue  controller.Queue
	log    *slog.Logger

	// written remembers this controller's last writes per service until
	// the cache shows them, so a sync never works from a cache older than
	// its own writes (which could create duplicate slices).
	mu      sync.Mutex
	written map[string]map[string]write
	now     func() time.Time
}

// write is one write of a slice: the resourceVersion it got ("" for a
// deletion), and when.
type write struct {
	rv string
	at time.Time
}

// New builds the controller from cctx.
func New(cctx *controller.Context) (*Controller, error) {
	svcInf := cctx.Informers.Core().V1().Services()
	podInf := cctx.Informers.Core().V1().Pods()
	nodeInf := cctx.Informers.Core().V1().Nodes()
	sliceInf := cctx.Informers.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: cctx.Client,
		svcs:   svcInf.Lister(),
		pods:   podInf.Lister(),
		nodes:  nodeInf.Lister(),
		slices: sliceInf.Lister(),
		synced: []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced},
		queue:   controller.NewQueue(Name),
		log:     cctx.ControllerLogger(Name),
		written: map[string]map[string]write{},
		now:     time.Now,
	}
	if _, err := svcInf.Informer().AddEventHandler(controller.EnqueueHandler(c.queue)); err != nil {
		return nil, fmt.Errorf("endpointslice: service handler: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(servicepods.PodHandler(c.svcs, c.queue)); err != nil {
		return nil, fmt.Errorf("endpointslice: pod handler: %w", err)
	}
	if _, err := sliceInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onSlice,
		UpdateFunc: func(_, cur interface{}) { c.onSlice(cur) },
		DeleteFunc: c.onSlice,
	}); err != nil {
		return nil, fmt.Errorf("endpointslice: slice handler: %w", err)
	}
	return c, nil
}

// onSlice queues the service of a slice this controller manages, so a
// slice changed or deleted by someone else is put back.
func (c *Controller) onSlice(obj interface{}) {
	s, ok := controller.ObjectOf[*discoveryv1.EndpointSlice](obj)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels[discoveryv1.LabelServiceName] == "" {
		return
	}
	c.queue.Add(s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName])
}

// Run syncs services until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

// sync makes the slices of service key match its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	if key == apiServerService {
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	existing, err := c.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: ManagedBy}))
	if err != nil {
		return err
	}
	if c.cacheBehind(key, existing) {
		c.queue.AddAfter(key, staleRetry)
		return nil
	}
	svc, err := c.svcs.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The garbage collector would remove them too (they are owned by
		// the service); doing it here does not depend on it.
		return c.apply(ctx, key, plan{deletes: existing})
	}
	if err != nil {
		return err
	}
	if len(svc.Spec.Selector) == 0 {
		// No selector: the service's endpoints are the user's business.
		// Slices this controller made while it had one are stale.
		return c.apply(ctx, key, plan{deletes: existing})
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	desired := desiredEndpoints(svc, pods, c.zoneOf)
	return c.apply(ctx, key, reconcile(svc, existing, desired))
}

func (c *Controller) zoneOf(node string) string {
	if node == "" {
		return ""
	}
	n, err := c.nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[labelZone]
}

// cacheBehind reports whether the slice cache does not yet show this
// controller's last writes for key; what it shows (or what is too old to
// wait for) is forgotten.
func (c *Controller) cacheBehind(key string, existing []*discoveryv1.EndpointSlice) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.written[key]
	if len(w) == 0 {
		return false
	}
	have := map[string]string{}
	for _, s := range existing {
		have[s.Name] = s.ResourceVersion
	}
	now := c.now()
	for name, wr := range w {
		cur, ok := have[name]
		switch {
		case now.Sub(wr.at) > writeMemory,
			wr.rv == "" && !ok,
			wr.rv != "" && ok && !olderRV(cur, wr.rv):
			delete(w, name)
		}
	}
	if len(w) == 0 {
		delete(c.written, key)
		return false
	}
	return true
}

// olderRV compares resource versions, which skiff keeps as etcd revisions.
// Versions that are not numbers are never "older".
func olderRV(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}

func (c *Controller) remember(key, name, rv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written[key] == nil {
		c.written[key] = map[string]write{}
	}
	c.written[key][name] = write{rv: rv, at: c.now()}
}

// plan is what a sync writes.
type plan struct {
	creates, updates, deletes []*discoveryv1.EndpointSlice
}

// apply writes a plan: creations and updates first, deletions last, so
// endpoints moving between slices are never missing from all of them.
func (c *Controller) apply(ctx context.Context, key string, p plan) error {
	api := c.client.DiscoveryV1().EndpointSlices
	var errs []error
	for _, s := range p.creates {
		out, err := api(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			// The namespace is terminating: nothing new may be created.
			c.log.Debug("slice create refused", "service", key, "err", err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("create slice for %s: %w", key, err))
			continue
		}
		c.remember(key, out.Name, out.ResourceVersion)
	}
	for _, s := range p.updates {
		out, err := api(s.Namespace).Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update slice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		c.remember(key, out.Name, out.ResourceVersion)
	}
	for _, s := range p.deletes {
		err := api(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete slice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		c.remember(key, s.Name, "")
	}
	if n := len(p.creates) + len(p.updates) + len(p.deletes); n > 0 {
		c.log.Debug("slices written", "service", key, "created", len(p.creates), "updated", len(p.updates), "deleted", len(p.deletes))
	}
	return errors.Join(errs...)
}

// endpoint is a desired endpoint with the ports it serves.
type endpoint struct {
	ep       discoveryv1.Endpoint
	ports    []discoveryv1.EndpointPort
	portsKey string
	// key identifies the endpoint across syncs: its pod and address.
	key string
}

// groupKey names a set of slices: address type and ports.
type groupKey struct {
	addressType discoveryv1.AddressType
	ports       string
}

// desiredEndpoints lists svc's endpoints from its pods, by slice group.
func desiredEndpoints(svc *corev1.Service, pods []*corev1.Pod, zoneOf func(string) string) map[groupKey][]endpoint {
	out := map[groupKey][]endpoint{}
	for _, family := range serviceFamilies(svc) {
		at := discoveryv1.AddressTypeIPv4
		if family == corev1.IPv6Protocol {
			at = discoveryv1.AddressTypeIPv6
		}
		for _, p := range pods {
			if servicepods.Terminal(p) {
				continue
			}
			ip := servicepods.IP(p, family)
			if ip == "" {
				continue
			}
			serving := servicepods.Ready(p)
			terminating := p.DeletionTimestamp != nil
			ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
			ep := discoveryv1.Endpoint{
				Addresses:  []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
			}
			if p.Spec.NodeName != "" {
				node := p.Spec.NodeName
				ep.NodeName = &node
				if z := zoneOf(node); z != "" {
					ep.Zone = &z
				}
			}
			if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace {
				h := p.Spec.Hostname
				ep.Hostname = &h
			}
			ports := slicePorts(svc, p)
			e := endpoint{ep: ep, ports: ports, portsKey: portsKey(ports), key: string(p.UID) + "/" + ip}
			gk := groupKey{addressType: at, ports: e.portsKey}
			out[gk] = append(out[gk], e)
		}
	}
	return out
}

// serviceFamilies are the address families a service's slices cover.
func serviceFamilies(svc *corev1.Service) []corev1.IPFamily {
	if len(svc.Spec.IPFamilies) > 0 {
		return svc.Spec.IPFamilies
	}
	if f := servicepods.ServiceFamily(svc); f != "" {
		return []corev1.IPFamily{f}
	}
	return []corev1.IPFamily{corev1.IPv4Protocol}
}

// slicePorts resolves svc's ports on pod p, sorted; ports that do not
// resolve on this pod are left out.
func slicePorts(svc *corev1.Service, p *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, ok := servicepods.FindPort(p, sp)
		if !ok {
			continue // a named port this pod does not have
		}
		name, proto := sp.Name, servicepods.Protocol(sp.Protocol)
		out = append(out, discoveryv1.EndpointPort{Name: &name, Port: &n, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	sort.Slice(out, func(i, j int) bool { return portKey(out[i]) < portKey(out[j]) })
	return out
}

func portKey(p discoveryv1.EndpointPort) string {
	var b strings.Builder
	if p.Name != nil {
		b.WriteString(*p.Name)
	}
	b.WriteByte('/')
	if p.Port != nil {
		b.WriteString(strconv.Itoa(int(*p.Port)))
	}
	b.WriteByte('/')
	if p.Protocol != nil {
		b.WriteString(string(*p.Protocol))
	}
	b.WriteByte('/')
	if p.AppProtocol != nil {
		b.WriteString(*p.AppProtocol)
	}
	return b.String()
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, len(ports))
	for i, p := range ports {
		keys[i] = portKey(p)
	}
	sort.Strings(keys)
	return strings.Join(keys, ";")
}

// sliceLabels are the service's labels plus the slice's own.
func sliceLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		out[k] = v
	}
	delete(out, labelHeadless)
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[labelHeadless] = ""
	}
	out[discoveryv1.LabelServiceName] = svc.Name
	out[discoveryv1.LabelManagedBy] = ManagedBy
	return out
}

func ownerRef(svc *corev1.Service) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: &yes, BlockOwnerDeletion: &yes}
}

// reconcile plans the writes that turn existing into desired. Endpoints
// stay in the slice they are in where they can, new ones fill the slices
// with room first; slices no longer needed are reused (their ports
// rewritten) before new ones are made, and the rest are deleted. A service
// without endpoints keeps one empty slice.
func reconcile(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, desired map[groupKey][]endpoint) plan {
	b := &planner{labels: sliceLabels(svc), owner: ownerRef(svc), svc: svc}
	byGroup := map[groupKey][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !hasOwner(s, b.owner) {
			// Left from an older service of the same name.
			b.p.deletes = append(b.p.deletes, s)
			continue
		}
		gk := groupKey{addressType: s.AddressType, ports: portsKey(s.Ports)}
		byGroup[gk] = append(byGroup[gk], s)
	}
	for _, ss := range byGroup {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Name < ss[j].Name })
	}

	total := 0
	for _, eps := range desired {
		total += len(eps)
	}
	if total == 0 {
		// The placeholder: one empty slice, of the service's first family.
		at := discoveryv1.AddressTypeIPv4
		if serviceFamilies(svc)[0] == corev1.IPv6Protocol {
			at = discoveryv1.AddressTypeIPv6
		}
		desired = map[groupKey][]endpoint{{addressType: at}: nil}
	}

	groups := make([]groupKey, 0, len(desired))
	for gk := range desired {
		groups = append(groups, gk)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].addressType != groups[j].addressType {
			return groups[i].addressType < groups[j].addressType
		}
		return groups[i].ports < groups[j].ports
	})
	type newSlice struct {
		gk    groupKey
		ports []discoveryv1.EndpointPort
		eps   []endpoint
	}
	var wanted []newSlice
	for _, gk := range groups {
		eps := desired[gk]
		sort.Slice(eps, func(i, j int) bool { return eps[i].key < eps[j].key })
		have := byGroup[gk]
		delete(byGroup, gk)
		if len(eps) == 0 {
			// Only the placeholder has no endpoints: keep one slice.
			if len(have) == 0 {
				wanted = append(wanted, newSlice{gk: gk})
				continue
			}
			b.write(have[0], have[0].Ports, nil)
			b.p.deletes = append(b.p.deletes, have[1:]...)
			continue
		}
		pending := map[string]bool{}
		for _, e := range eps {
			pending[e.key] = true
		}
		// Keep endpoints where they are.
		kept := make([][]endpoint, len(have))
		byKey := map[string]endpoint{}
		for _, e := range eps {
			byKey[e.key] = e
		}
		for i, s := range have {
			for _, e := range s.Endpoints {
				k := endpointKey(e)
				if pending[k] && len(kept[i]) < MaxEndpointsPerSlice {
					kept[i] = append(kept[i], byKey[k])
					delete(pending, k)
				}
			}
		}
		// New endpoints fill slices with room, then new slices.
		var rest []endpoint
		for _, e := range eps {
			if pending[e.key] {
				rest = append(rest, e)
			}
		}
		for i := range have {
			for len(rest) > 0 && len(kept[i]) < MaxEndpointsPerSlice {
				kept[i] = append(kept[i], rest[0])
				rest = rest[1:]
			}
		}
		for i, s := range have {
			if len(kept[i]) == 0 {
				b.p.deletes = append(b.p.deletes, s)
				continue
			}
			sort.Slice(kept[i], func(x, y int) bool { return kept[i][x].key < kept[i][y].key })
			b.write(s, s.Ports, kept[i])
		}
		for len(rest) > 0 {
			n := min(len(rest), MaxEndpointsPerSlice)
			wanted = append(wanted, newSlice{gk: gk, ports: eps[0].ports, eps: rest[:n]})
			rest = rest[n:]
		}
	}
	// Slices of groups no longer wanted are reused for new ones of the
	// same address type (its ports rewritten), then deleted.
	var spare []*discoveryv1.EndpointSlice
	for _, ss := range byGroup {
		spare = append(spare, ss...)
	}
	sort.Slice(spare, func(i, j int) bool { return spare[i].Name < spare[j].Name })
	for _, w := range wanted {
		i := slices.IndexFunc(spare, func(s *discoveryv1.EndpointSlice) bool { return s.AddressType == w.gk.addressType })
		if i < 0 {
			b.create(w.gk.addressType, w.ports, w.eps)
			continue
		}
		b.write(spare[i], w.ports, w.eps)
		spare = slices.Delete(spare, i, i+1)
	}
	b.p.deletes = append(b.p.deletes, spare...)
	return b.p
}

// planner collects the writes of one reconcile.
type planner struct {
	p      plan
	labels map[string]string
	owner  metav1.OwnerReference
	svc    *corev1.Service
}

// write plans an update turning s into a slice with ports and eps, if
// anything differs.
func (b *planner) write(s *discoveryv1.EndpointSlice, ports []discoveryv1.EndpointPort, eps []endpoint) {
	var want []discoveryv1.Endpoint
	for _, e := range eps {
		want = append(want, e.ep)
	}
	cur := s.Endpoints
	if len(cur) == 0 {
		cur = nil
	}
	if len(ports) == 0 {
		ports = nil
	}
	curPorts := s.Ports
	if len(curPorts) == 0 {
		curPorts = nil
	}
	if reflect.DeepEqual(cur, want) && reflect.DeepEqual(curPorts, ports) && maps.Equal(s.Labels, b.labels) {
		return
	}
	next := s.DeepCopy()
	next.Endpoints, next.Ports, next.Labels = want, ports, b.labels
	b.p.updates = append(b.p.updates, next)
}

// create plans a new slice.
func (b *planner) create(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps []endpoint) {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    b.svc.Name + "-",
			Namespace:       b.svc.Namespace,
			Labels:          b.labels,
			OwnerReferences: []metav1.OwnerReference{b.owner},
		},
		AddressType: at,
		Ports:       ports,
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, e.ep)
	}
	b.p.creates = append(b.p.creates, s)
}

func endpointKey(e discoveryv1.Endpoint) string {
	if e.TargetRef == nil || len(e.Addresses) == 0 {
		return ""
	}
	return string(e.TargetRef.UID) + "/" + e.Addresses[0]
}

func hasOwner(s *discoveryv1.EndpointSlice, owner metav1.OwnerReference) bool {
	for _, r := range s.OwnerReferences {
		if r.UID == owner.UID {
			return true
		}
	}
	return false
}
