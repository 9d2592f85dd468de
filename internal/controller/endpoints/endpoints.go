// Package endpoints keeps the Endpoints object of every Service with a
// selector in step with the pods it selects: ready pods under addresses,
// the others under notReadyAddresses (all under addresses when the service
// publishes not-ready addresses), named target ports resolved per pod,
// headless services without ports included. Services without a selector
// are left alone (their Endpoints belong to the user), and so is
// default/kubernetes, which the API server keeps.
package endpoints

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
	"skiff/internal/controller/servicepods"
)

// Name is the controller's name in logs and the manager.
const Name = "endpoints"

const (
	// labelHeadless marks the Endpoints of a headless service.
	labelHeadless = "service.kubernetes.io/headless"
	// annotationOverCapacity says the addresses were cut at maxAddresses.
	annotationOverCapacity = "endpoints.kubernetes.io/over-capacity"
	// maxAddresses is how many addresses one Endpoints object holds.
	maxAddresses = 1000
	// apiServerService is owned by the API server.
	apiServerService = "default/kubernetes"
	workers          = 4
)

// Controller is the endpoints controller.
type Controller struct {
	client    kubernetes.Interface
	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	endpoints corelisters.EndpointsLister
	synced    []cache.InformerSynced
	queue     controller.Queue
	log       *slog.Logger
}

// New builds the controller from cctx.
func New(cctx *controller.Context) (*Controller, error) {
	svcInf := cctx.Informers.Core().V1().Services()
	podInf := cctx.Informers.Core().V1().Pods()
	epInf := cctx.Informers.Core().V1().Endpoints()
	c := &Controller{
		client:    cctx.Client,
		services:  svcInf.Lister(),
		pods:      podInf.Lister(),
		endpoints: epInf.Lister(),
		synced:    []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced, epInf.Informer().HasSynced},
		queue:     controller.NewQueue(Name),
		log:       cctx.ControllerLogger(Name),
	}
	enqueue := func(obj interface{}) { controller.Enqueue(c.queue, obj) }
	if _, err := svcInf.Informer().AddEventHandler(controller.EnqueueHandler(c.queue)); err != nil {
		return nil, fmt.Errorf("endpoints: service handler: %w", err)
	}
	if _, err := podInf.Informer().AddEventHandler(servicepods.PodHandler(c.services, c.queue)); err != nil {
		return nil, fmt.Errorf("endpoints: pod handler: %w", err)
	}
	// A changed or deleted Endpoints is put back as the service wants it.
	if _, err := epInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur interface{}) { enqueue(cur) },
		DeleteFunc: enqueue,
	}); err != nil {
		return nil, fmt.Errorf("endpoints: endpoints handler: %w", err)
	}
	return c, nil
}

// Run syncs services until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

// sync makes the Endpoints of service key match its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	if key == apiServerService {
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// The service is gone: so are its endpoints.
		if _, err := c.endpoints.Endpoints(ns).Get(name); apierrors.IsNotFound(err) {
			return nil
		}
		err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete endpoints %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	pods, err := c.pods.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	subsets, truncated := subsetsFor(svc, pods)

	cur, err := c.endpoints.Endpoints(ns).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	exists := err == nil
	wantLabels := endpointsLabels(svc)
	if exists && reflect.DeepEqual(normalize(cur.Subsets), subsets) && maps.Equal(cur.Labels, wantLabels) &&
		(cur.Annotations[annotationOverCapacity] == "truncated") == truncated {
		return nil
	}
	var next *corev1.Endpoints
	if exists {
		next = cur.DeepCopy()
	} else {
		next = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	}
	next.Subsets = subsets
	next.Labels = wantLabels
	if truncated {
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		next.Annotations[annotationOverCapacity] = "truncated"
	} else {
		delete(next.Annotations, annotationOverCapacity)
	}
	if exists {
		_, err = c.client.CoreV1().Endpoints(ns).Update(ctx, next, metav1.UpdateOptions{})
	} else {
		_, err = c.client.CoreV1().Endpoints(ns).Create(ctx, next, metav1.CreateOptions{})
	}
	if err != nil {
		if apierrors.IsForbidden(err) {
			// The namespace is terminating: nothing new may be created.
			c.log.Debug("endpoints write refused", "service", key, "err", err)
			return nil
		}
		return fmt.Errorf("write endpoints %s: %w", key, err)
	}
	c.log.Debug("endpoints updated", "service", key, "subsets", len(subsets))
	return nil
}

// normalize makes a stored subsets list comparable to a computed one: the
// API turns an empty list into nil.
func normalize(s []corev1.EndpointSubset) []corev1.EndpointSubset {
	if len(s) == 0 {
		return nil
	}
	return s
}

// endpointsLabels are the service's labels, and the headless mark for a
// headless service.
func endpointsLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		out[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[labelHeadless] = ""
	} else {
		delete(out, labelHeadless)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// address is one pod's address with its readiness.
type address struct {
	addr  corev1.EndpointAddress
	ready bool
}

// subsetsFor computes the Endpoints subsets of svc from its selected pods,
// in a stable order; truncated says addresses were cut at the capacity.
func subsetsFor(svc *corev1.Service, pods []*corev1.Pod) ([]corev1.EndpointSubset, bool) {
	publishNotReady := svc.Spec.PublishNotReadyAddresses
	family := servicepods.ServiceFamily(svc)
	groups := map[string]*group{}
	for _, p := range pods {
		if servicepods.Terminal(p) || (p.DeletionTimestamp != nil && !publishNotReady) {
			continue
		}
		ip := servicepods.IP(p, family)
		if ip == "" {
			continue
		}
		a := address{ready: publishNotReady || servicepods.Ready(p), addr: corev1.EndpointAddress{
			IP:        ip,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}}
		if p.Spec.NodeName != "" {
			a.addr.NodeName = &p.Spec.NodeName
		}
		if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace {
			a.addr.Hostname = p.Spec.Hostname
		}
		if len(svc.Spec.Ports) == 0 {
			if svc.Spec.ClusterIP == corev1.ClusterIPNone {
				addTo(groups, nil, a)
			}
			continue
		}
		var ports []corev1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			n, ok := servicepods.FindPort(p, sp)
			if !ok {
				continue // a named port this pod does not have
			}
			ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: servicepods.Protocol(sp.Protocol), AppProtocol: sp.AppProtocol})
		}
		if len(ports) > 0 {
			addTo(groups, ports, a)
		}
	}
	return pack(groups)
}

// group is the addresses that share one set of ports.
type group struct {
	ports    []corev1.EndpointPort
	ready    map[string]corev1.EndpointAddress
	notReady map[string]corev1.EndpointAddress
}

func addTo(groups map[string]*group, ports []corev1.EndpointPort, a address) {
	sort.Slice(ports, func(i, j int) bool { return portKey(ports[i]) < portKey(ports[j]) })
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(portKey(p))
		b.WriteByte(';')
	}
	k := b.String()
	g := groups[k]
	if g == nil {
		g = &group{ports: ports, ready: map[string]corev1.EndpointAddress{}, notReady: map[string]corev1.EndpointAddress{}}
		groups[k] = g
	}
	ak := a.addr.IP + "/" + string(a.addr.TargetRef.UID)
	if a.ready {
		g.ready[ak] = a.addr
	} else {
		g.notReady[ak] = a.addr
	}
}

func portKey(p corev1.EndpointPort) string {
	return p.Name + "/" + strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol)
}

// pack orders the groups into subsets and cuts them at maxAddresses, ready
// addresses first.
func pack(groups map[string]*group) ([]corev1.EndpointSubset, bool) {
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	room := maxAddresses
	take := func(m map[string]corev1.EndpointAddress) []corev1.EndpointAddress {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		if len(ks) > room {
			ks = ks[:room]
		}
		room -= len(ks)
		var out []corev1.EndpointAddress
		for _, k := range ks {
			out = append(out, m[k])
		}
		return out
	}
	total := 0
	for _, g := range groups {
		total += len(g.ready) + len(g.notReady)
	}
	subsets := make([]corev1.EndpointSubset, 0, len(keys))
	ready := make([][]corev1.EndpointAddress, len(keys))
	for i, k := range keys {
		ready[i] = take(groups[k].ready)
	}
	for i, k := range keys {
		s := corev1.EndpointSubset{Addresses: ready[i], NotReadyAddresses: take(groups[k].notReady), Ports: groups[k].ports}
		if len(s.Addresses) > 0 || len(s.NotReadyAddresses) > 0 {
			subsets = append(subsets, s)
		}
	}
	if len(subsets) == 0 {
		return nil, false
	}
	return subsets, total > maxAddresses
}
