package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// labelExcludeFromLB keeps a node out of LoadBalancer ingress, as in Kubernetes.
const labelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"

// nodeLBAddresses are the addresses a LoadBalancer can be reached on
// through node: its InternalIPs and ExternalIPs while it is Ready and not
// excluded, else none.
func nodeLBAddresses(n *corev1.Node) []string {
	if _, ok := n.Labels[labelExcludeFromLB]; ok {
		return nil
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return nil
	}
	var ips []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			ips = append(ips, a.Address)
		}
	}
	return ipv4Set(ips)
}

// lbIngress is the ingress a LoadBalancer Service should show: the
// addresses of the Ready nodes or, with externalTrafficPolicy Local, of
// the Ready nodes that have one of its ready endpoints (the others drop
// its external traffic).
func lbIngress(svc *corev1.Service, nodes []*corev1.Node, slices []*discoveryv1.EndpointSlice) []string {
	var withEndpoints map[string]bool
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		withEndpoints = map[string]bool{}
		for _, s := range slices {
			if s.Namespace != svc.Namespace || s.Labels[discoveryv1.LabelServiceName] != svc.Name {
				continue
			}
			for _, e := range s.Endpoints {
				ready := e.Conditions.Ready == nil || *e.Conditions.Ready
				if ready && e.NodeName != nil {
					withEndpoints[*e.NodeName] = true
				}
			}
		}
	}
	var ips []string
	for _, n := range nodes {
		if withEndpoints != nil && !withEndpoints[n.Name] {
			continue
		}
		ips = append(ips, nodeLBAddresses(n)...)
	}
	return ipv4Set(ips)
}

// updateLoadBalancers writes status.loadBalancer.ingress of every
// LoadBalancer Service without a loadBalancerClass. Every node's proxy
// does this; they all compute the same answer and write only when the
// status differs, so they agree rather than fight.
func (p *Proxier) updateLoadBalancers(ctx context.Context, services []*corev1.Service, epSlices []*discoveryv1.EndpointSlice, nodes []*corev1.Node) error {
	var errs []error
	for _, svc := range services {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.LoadBalancerClass != nil || !proxied(svc) {
			continue
		}
		want := lbIngress(svc, nodes, epSlices)
		var have []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			have = append(have, in.IP)
		}
		slices.Sort(have)
		if slices.Equal(have, want) {
			continue
		}
		up := svc.DeepCopy()
		up.Status.LoadBalancer.Ingress = nil
		vip := corev1.LoadBalancerIPModeVIP
		for _, ip := range want {
			up.Status.LoadBalancer.Ingress = append(up.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip, IPMode: &vip})
		}
		_, err := p.cfg.Client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, up, metav1.UpdateOptions{})
		switch {
		case err == nil:
			p.log.Info("load balancer ingress updated", "service", svc.Namespace+"/"+svc.Name, "ingress", want)
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			// Another node's proxy wrote first, or the Service is gone:
			// the watch brings the news and the next sync looks again.
			p.queueSync()
		default:
			errs = append(errs, fmt.Errorf("proxy: load balancer status of %s/%s: %w", svc.Namespace, svc.Name, err))
		}
	}
	return errors.Join(errs...)
}
