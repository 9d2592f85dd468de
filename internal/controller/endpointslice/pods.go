package endpointslice

import (
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podReady reports the pod's Ready condition.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// terminal: the pod has finished and will not run again.
func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// serviceFamily is the IP family a service's endpoints use: its first
// family, else that of its cluster IP, else "" (any).
func serviceFamily(svc *corev1.Service) corev1.IPFamily {
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

// podIP returns the pod's address of family ("" for its first), or "".
func podIP(p *corev1.Pod, family corev1.IPFamily) string {
	ips := make([]string, 0, len(p.Status.PodIPs)+1)
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		is4 := a.Unmap().Is4()
		if family == "" || (family == corev1.IPv4Protocol) == is4 {
			return s
		}
	}
	return ""
}

func protocolOr(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// findPort resolves a service port's targetPort on one pod: a number is
// used as is; a name is looked up among the pod's container ports (and its
// sidecar init containers') with the same protocol. False: the pod has no
// such port.
func findPort(p *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
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
		want := protocolOr(sp.Protocol)
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && protocolOr(cp.Protocol) == want {
					return cp.ContainerPort, true
				}
			}
		}
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			for _, cp := range c.Ports {
				if cp.Name == tp.StrVal && protocolOr(cp.Protocol) == want {
					return cp.ContainerPort, true
				}
			}
		}
	}
	return 0, false
}

// podChanged reports a pod change that can change its endpoints.
func podChanged(old, cur *corev1.Pod) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	return !reflect.DeepEqual(old.Labels, cur.Labels) ||
		old.Status.PodIP != cur.Status.PodIP ||
		!reflect.DeepEqual(old.Status.PodIPs, cur.Status.PodIPs) ||
		podReady(old) != podReady(cur) ||
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
