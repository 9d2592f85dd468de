// Package servicepods holds what the endpoints and endpointslice
// controllers share about a Service's pods: which pods serve, at which
// address and port, and which pod changes can change a Service's endpoints.
package servicepods

import (
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Ready reports the pod's Ready condition.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Terminal: the pod has finished and will not run again.
func Terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// ServiceFamily is the IP family a service's endpoints use: its first
// family, else that of its cluster IP, else "" (any).
func ServiceFamily(svc *corev1.Service) corev1.IPFamily {
	if len(svc.Spec.IPFamilies) > 0 {
		return svc.Spec.IPFamilies[0]
	}
	if a, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
		if a.Unmap().Is4() {
			return corev1.IPv4Protocol
		}
		return corev1.IPv6Protocol
	}
	return ""
}

// IP returns the pod's address of family ("" for its first), or "".
func IP(p *corev1.Pod, family corev1.IPFamily) string {
	if len(p.Status.PodIPs) == 0 {
		return ipOfFamily(p.Status.PodIP, family)
	}
	for _, ip := range p.Status.PodIPs {
		if s := ipOfFamily(ip.IP, family); s != "" {
			return s
		}
	}
	return ""
}

// ipOfFamily returns s if it is an address of family ("" for any), else "".
func ipOfFamily(s string, family corev1.IPFamily) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ""
	}
	if family == "" || (family == corev1.IPv4Protocol) == a.Unmap().Is4() {
		return s
	}
	return ""
}

// Protocol is p, or TCP if p is empty (the API default).
func Protocol(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// FindPort resolves a service port's targetPort on one pod: a number is
// used as is; a name is looked up among the pod's container ports (and its
// sidecar init containers') with the same protocol. False: the pod has no
// such port.
func FindPort(p *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	switch tp.Type {
	case intstr.Int:
		if tp.IntVal == 0 {
			return sp.Port, true
		}
		return tp.IntVal, true
	case intstr.String:
		if tp.StrVal == "" {
			return sp.Port, true
		}
		want := Protocol(sp.Protocol)
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && Protocol(cp.Protocol) == want {
					return cp.ContainerPort, true
				}
			}
		}
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && Protocol(cp.Protocol) == want {
					return cp.ContainerPort, true
				}
			}
		}
	}
	return 0, false
}

// Changed reports a pod change that can change its endpoints.
func Changed(old, cur *corev1.Pod) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	return !reflect.DeepEqual(old.Labels, cur.Labels) ||
		old.Status.PodIP != cur.Status.PodIP ||
		!reflect.DeepEqual(old.Status.PodIPs, cur.Status.PodIPs) ||
		Ready(old) != Ready(cur) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		old.Status.Phase != cur.Status.Phase ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname ||
		old.Spec.Subdomain != cur.Spec.Subdomain ||
		!reflect.DeepEqual(containerPorts(old), containerPorts(cur))
}

func containerPorts(p *corev1.Pod) [][]corev1.ContainerPort {
	var out [][]corev1.ContainerPort
	for _, c := range p.Spec.Containers {
		out = append(out, c.Ports)
	}
	for _, c := range p.Spec.InitContainers {
		out = append(out, c.Ports)
	}
	return out
}

// PodHandler returns informer handlers for pods that enqueue in q the
// services (from services) selecting a pod when it is added or deleted,
// or changed in a way that can change its endpoints; when its labels
// changed, the services that selected it before are enqueued too.
func PodHandler(services corelisters.ServiceLister, q controller.Queue) cache.ResourceEventHandlerFuncs {
	// enqueue adds the services of namespace ns that select any of the
	// label sets.
	enqueue := func(ns string, sets ...labels.Set) {
		svcs, err := services.Services(ns).List(labels.Everything())
		if err != nil {
			return
		}
		for _, s := range svcs {
			if len(s.Spec.Selector) == 0 {
				continue
			}
			sel := labels.SelectorFromValidatedSet(s.Spec.Selector)
			for _, set := range sets {
				if sel.Matches(set) {
					controller.Enqueue(q, s)
					break
				}
			}
		}
	}
	onPod := func(obj interface{}) {
		if p, ok := controller.ObjectOf[*corev1.Pod](obj); ok {
			enqueue(p.Namespace, p.Labels)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: onPod,
		UpdateFunc: func(old, cur interface{}) {
			o, ok1 := old.(*corev1.Pod)
			n, ok2 := cur.(*corev1.Pod)
			if !ok1 || !ok2 || !Changed(o, n) {
				return
			}
			if reflect.DeepEqual(o.Labels, n.Labels) {
				enqueue(n.Namespace, n.Labels)
			} else {
				enqueue(n.Namespace, n.Labels, o.Labels)
			}
		},
		DeleteFunc: onPod,
	}
}
