package loadbalancer

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// WatchServers keeps lb's list in sync with the endpoints of the
// default/kubernetes service (its EndpointSlices), which every API server
// keeps pointing at itself, until ctx ends. client should reach the
// cluster through lb, so the watch itself fails over with it.
func WatchServers(ctx context.Context, client kubernetes.Interface, lb *LoadBalancer) error {
	selector := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: "kubernetes"}).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	slicesInformer := factory.Discovery().V1().EndpointSlices()
	lister := slicesInformer.Lister().EndpointSlices(metav1.NamespaceDefault)
	// Every event re-reads the whole cache: the list is small and it is
	// the current state that matters, not the event.
	sync := func() {
		all, err := lister.List(labels.Everything())
		if err != nil {
			lb.log.Warn("list kubernetes endpoint slices", "err", err)
			return
		}
		if servers := lb.endpointServers(all); len(servers) > 0 {
			lb.SetServers(servers)
		}
	}
	if _, err := slicesInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { sync() },
		UpdateFunc: func(any, any) { sync() },
		DeleteFunc: func(any) { sync() },
	}); err != nil {
		return fmt.Errorf("watch kubernetes endpoints: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	<-ctx.Done()
	return nil
}

// endpointServers turns the service's ready endpoints into host:port
// entries, sorted so that an unchanged set is recognised as such. Loopback
// addresses are skipped unless the agent itself was configured with a
// loopback server: a server advertising 127.0.0.1 is only reachable there.
func (lb *LoadBalancer) endpointServers(all []*discoveryv1.EndpointSlice) []string {
	allowLoopback := slices.ContainsFunc(lb.defaults, isLoopback)
	var out []string
	for _, s := range all {
		port := httpsPort(s)
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				hp := net.JoinHostPort(a, strconv.Itoa(int(port)))
				if (!allowLoopback && isLoopback(hp)) || slices.Contains(out, hp) {
					continue
				}
				out = append(out, hp)
			}
		}
	}
	slices.Sort(out)
	return out
}

// httpsPort is the slice's port named "https", or its only port.
func httpsPort(s *discoveryv1.EndpointSlice) int32 {
	for _, p := range s.Ports {
		if p.Port != nil && (p.Name != nil && *p.Name == "https" || len(s.Ports) == 1) {
			return *p.Port
		}
	}
	return 0
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
