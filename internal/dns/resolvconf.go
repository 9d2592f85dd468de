package dns

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Limits of the glibc resolver: more nameservers are ignored by it and a too
// long search list makes lookups fail, so they are cut here like the kubelet does.
const (
	maxNameservers   = 3
	maxSearches      = 32
	maxSearchListLen = 2048
)

// ResolvConf returns the /etc/resolv.conf for a pod, as the kubelet writes it,
// from its dnsPolicy and dnsConfig:
//   - ClusterFirst (the default): the cluster DNS server, the search list
//     "<ns>.svc.<domain> svc.<domain> <domain>" followed by the host's, and
//     "options ndots:5". A hostNetwork pod gets Default instead, and so does
//     every pod when clusterDNS is nil (no cluster DNS configured).
//   - ClusterFirstWithHostNet: ClusterFirst, even for hostNetwork pods.
//   - Default: the host's nameservers, search list and options.
//   - None: only what dnsConfig says.
//
// dnsConfig's nameservers and searches are appended (without duplicates) and
// its options override options of the same name.
func ResolvConf(pod *corev1.Pod, clusterDNS net.IP, domain string, hostResolvConf []byte) ([]byte, error) {
	domain = strings.Trim(domain, ".")
	host := parseResolvConf(hostResolvConf)
	var rc resolvConf
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	if (policy == corev1.DNSClusterFirst || policy == corev1.DNSClusterFirstWithHostNet) && clusterDNS == nil {
		policy = corev1.DNSDefault
	}
	switch policy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		rc.nameservers = []string{clusterDNS.String()}
		rc.searches = []string{pod.Namespace + ".svc." + domain, "svc." + domain, domain}
		rc.searches = appendUnique(rc.searches, host.searches...)
		rc.options = []string{"ndots:5"}
	case corev1.DNSDefault:
		rc = host
	case corev1.DNSNone:
		if pod.Spec.DNSConfig == nil {
			return nil, fmt.Errorf("resolv.conf for pod %s/%s: dnsPolicy None needs a dnsConfig", pod.Namespace, pod.Name)
		}
	default:
		return nil, fmt.Errorf("resolv.conf for pod %s/%s: unknown dnsPolicy %q", pod.Namespace, pod.Name, policy)
	}

	if dc := pod.Spec.DNSConfig; dc != nil {
		for _, ns := range dc.Nameservers {
			if net.ParseIP(ns) == nil {
				return nil, fmt.Errorf("resolv.conf for pod %s/%s: dnsConfig nameserver %q is not an IP address", pod.Namespace, pod.Name, ns)
			}
		}
		rc.nameservers = appendUnique(rc.nameservers, dc.Nameservers...)
		rc.searches = appendUnique(rc.searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			rc.options = mergeOption(rc.options, opt)
		}
	}

	if len(rc.nameservers) > maxNameservers {
		rc.nameservers = rc.nameservers[:maxNameservers]
	}
	rc.searches = limitSearches(rc.searches)

	var b bytes.Buffer
	for _, ns := range rc.nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(rc.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(rc.searches, " "))
	}
	if len(rc.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(rc.options, " "))
	}
	return b.Bytes(), nil
}

func appendUnique(l []string, add ...string) []string {
	out := append([]string(nil), l...)
	for _, s := range add {
		s = strings.TrimSuffix(s, ".")
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// mergeOption sets opt ("name" or "name:value") in opts, replacing an option
// of the same name.
func mergeOption(opts []string, opt string) []string {
	name, _, _ := strings.Cut(opt, ":")
	out := make([]string, 0, len(opts)+1)
	replaced := false
	for _, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			if !replaced {
				out = append(out, opt)
				replaced = true
			}
			continue
		}
		out = append(out, o)
	}
	if !replaced {
		out = append(out, opt)
	}
	return out
}

func limitSearches(s []string) []string {
	if len(s) > maxSearches {
		s = s[:maxSearches]
	}
	total := 0
	for i, d := range s {
		total += len(d) + 1
		if total > maxSearchListLen {
			return s[:i]
		}
	}
	return s
}
