package registry

// Services and their endpoints: Service, Endpoints (core/v1) and
// EndpointSlice (discovery/v1). Allocation of cluster IPs and node ports is
// the server's; here are the defaults, the checks of what clients send, and
// the immutability of allocated addresses.

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	maxClientIPAffinitySeconds = 86400
	maxEndpointSliceEndpoints  = 1000
	maxEndpointSlicePorts      = 100
	maxEndpointAddresses       = 100
)

var serviceProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// Defaults.

func defaultService(s *corev1.Service) {
	spec := &s.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	switch spec.SessionAffinity {
	case corev1.ServiceAffinityNone:
		spec.SessionAffinityConfig = nil
	case corev1.ServiceAffinityClientIP:
		if c := spec.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{
				TimeoutSeconds: new(int32(corev1.DefaultClientIPServiceAffinitySeconds)),
			}}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if externallyAccessible(s) && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil && spec.Type != corev1.ServiceTypeExternalName {
		spec.InternalTrafficPolicy = new(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		spec.AllocateLoadBalancerNodePorts = new(true)
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer {
		for i := range s.Status.LoadBalancer.Ingress {
			if in := &s.Status.LoadBalancer.Ingress[i]; in.IP != "" && in.IPMode == nil {
				in.IPMode = new(corev1.LoadBalancerIPModeVIP)
			}
		}
	}
	if spec.Type == corev1.ServiceTypeExternalName {
		return
	}

	// clusterIP and clusterIPs say the same; fill in whichever is missing.
	switch {
	case spec.ClusterIP != "" && len(spec.ClusterIPs) == 0:
		spec.ClusterIPs = []string{spec.ClusterIP}
	case spec.ClusterIP == "" && len(spec.ClusterIPs) > 0:
		spec.ClusterIP = spec.ClusterIPs[0]
	}
	// skiff's service network is single-stack: a family follows the
	// address when one is given, IPv4 otherwise. A headless Service without
	// selector may have endpoints of any family, as in Kubernetes.
	if spec.IPFamilyPolicy == nil {
		policy := corev1.IPFamilyPolicySingleStack
		switch {
		case spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0:
			policy = corev1.IPFamilyPolicyRequireDualStack
		case len(spec.IPFamilies) > 1 || len(spec.ClusterIPs) > 1:
			policy = corev1.IPFamilyPolicyPreferDualStack
		}
		spec.IPFamilyPolicy = &policy
	}
	if len(spec.IPFamilies) == 0 {
		for _, ip := range spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				spec.IPFamilies = append(spec.IPFamilies, ipFamilyOf(a))
			}
		}
		if len(spec.IPFamilies) == 0 {
			spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
	}
}

func ipFamilyOf(a netip.Addr) corev1.IPFamily {
	if a.Is4() || a.Is4In6() {
		return corev1.IPv4Protocol
	}
	return corev1.IPv6Protocol
}

// externallyAccessible: node ports, load balancers and external IPs make a
// Service reachable from outside the cluster.
func externallyAccessible(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeLoadBalancer || s.Spec.Type == corev1.ServiceTypeNodePort ||
		(s.Spec.Type == corev1.ServiceTypeClusterIP && len(s.Spec.ExternalIPs) > 0)
}

func defaultEndpoints(e *corev1.Endpoints) {
	for i := range e.Subsets {
		for j := range e.Subsets[i].Ports {
			if p := &e.Subsets[i].Ports[j]; p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
		}
	}
}

func defaultEndpointSlice(e *discoveryv1.EndpointSlice) {
	for i := range e.Ports {
		p := &e.Ports[i]
		if p.Name == nil {
			p.Name = new("")
		}
		if p.Protocol == nil {
			p.Protocol = new(corev1.ProtocolTCP)
		}
	}
}

// Validation.

func validateService(s *corev1.Service) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apimachineryvalidation.NameIsDNS1035Label)
	spec := field.NewPath("spec")
	t := s.Spec.Type
	errs = append(errs, validateEnum(t, spec.Child("type"), corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort,
		corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName)...)
	headless := s.Spec.ClusterIP == corev1.ClusterIPNone

	if t == corev1.ServiceTypeExternalName {
		if s.Spec.ClusterIP != "" {
			errs = append(errs, field.Forbidden(spec.Child("clusterIP"), "may not be set for ExternalName services"))
		}
		if len(s.Spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(spec.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(s.Spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(spec.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if s.Spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(spec.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		name := strings.TrimSuffix(s.Spec.ExternalName, ".")
		if name == "" {
			errs = append(errs, field.Required(spec.Child("externalName"), ""))
		} else {
			errs = append(errs, validateDNSSubdomain(name, spec.Child("externalName"))...)
		}
	} else {
		if len(s.Spec.Ports) == 0 && !headless {
			errs = append(errs, field.Required(spec.Child("ports"), ""))
		}
		errs = append(errs, validateClusterIPs(s, spec)...)
	}

	errs = append(errs, validateServicePorts(s, spec.Child("ports"))...)
	errs = append(errs, metav1validation.ValidateLabels(s.Spec.Selector, spec.Child("selector"))...)

	errs = append(errs, validateEnum(s.Spec.SessionAffinity, spec.Child("sessionAffinity"), corev1.ServiceAffinityNone, corev1.ServiceAffinityClientIP)...)
	cp := spec.Child("sessionAffinityConfig")
	switch c := s.Spec.SessionAffinityConfig; {
	case s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP:
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			errs = append(errs, field.Required(cp.Child("clientIP", "timeoutSeconds"), ""))
		} else if ts := *c.ClientIP.TimeoutSeconds; ts <= 0 || ts > maxClientIPAffinitySeconds {
			errs = append(errs, field.Invalid(cp.Child("clientIP", "timeoutSeconds"), ts, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
		}
	case c != nil:
		errs = append(errs, field.Forbidden(cp, fmt.Sprintf("must not be set when session affinity is %s", s.Spec.SessionAffinity)))
	}

	for i, ip := range s.Spec.ExternalIPs {
		errs = append(errs, validation.IsValidIPForLegacyField(spec.Child("externalIPs").Index(i), ip, false, nil)...)
	}

	ep := spec.Child("externalTrafficPolicy")
	if externallyAccessible(s) {
		errs = append(errs, validateEnum(s.Spec.ExternalTrafficPolicy, ep, corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal)...)
	} else if s.Spec.ExternalTrafficPolicy != "" {
		errs = append(errs, field.Invalid(ep, s.Spec.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
	}
	if p := s.Spec.InternalTrafficPolicy; p != nil {
		errs = append(errs, validateEnum(*p, spec.Child("internalTrafficPolicy"), corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal)...)
	} else if t == corev1.ServiceTypeClusterIP || t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer {
		errs = append(errs, field.Required(spec.Child("internalTrafficPolicy"), ""))
	}

	lb := t == corev1.ServiceTypeLoadBalancer
	if hc := s.Spec.HealthCheckNodePort; hc != 0 {
		hp := spec.Child("healthCheckNodePort")
		if !lb || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			errs = append(errs, field.Invalid(hp, hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
		} else {
			errs = append(errs, invalidEach(hp, hc, validation.IsValidPortNum(int(hc)))...)
		}
	}
	const lbOnly = "may only be used when `type` is 'LoadBalancer'"
	if s.Spec.AllocateLoadBalancerNodePorts != nil && !lb {
		errs = append(errs, field.Forbidden(spec.Child("allocateLoadBalancerNodePorts"), lbOnly))
	}
	if len(s.Spec.LoadBalancerSourceRanges) > 0 && !lb {
		errs = append(errs, field.Forbidden(spec.Child("loadBalancerSourceRanges"), lbOnly))
	}
	for i, r := range s.Spec.LoadBalancerSourceRanges {
		errs = append(errs, validation.IsValidCIDRForLegacyField(spec.Child("loadBalancerSourceRanges").Index(i), strings.TrimSpace(r), false, nil)...)
	}
	if c := s.Spec.LoadBalancerClass; c != nil {
		if !lb {
			errs = append(errs, field.Forbidden(spec.Child("loadBalancerClass"), lbOnly))
		}
		errs = append(errs, validateQualifiedName(*c, spec.Child("loadBalancerClass"))...)
	}
	if s.Spec.LoadBalancerIP != "" {
		if !lb {
			errs = append(errs, field.Forbidden(spec.Child("loadBalancerIP"), lbOnly))
		}
		errs = append(errs, validation.IsValidIPForLegacyField(spec.Child("loadBalancerIP"), s.Spec.LoadBalancerIP, false, nil)...)
	}
	if td := s.Spec.TrafficDistribution; td != nil {
		errs = append(errs, validateEnum(*td, spec.Child("trafficDistribution"),
			corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone, corev1.ServiceTrafficDistributionPreferSameNode)...)
	}
	return errs
}

// validateClusterIPs checks clusterIP, clusterIPs and the IP families of a
// Service that is not ExternalName. An empty clusterIP is allocated later.
func validateClusterIPs(s *corev1.Service, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	ips := s.Spec.ClusterIPs
	if s.Spec.ClusterIP != "" && len(ips) > 0 && ips[0] != s.Spec.ClusterIP {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs"), ips, "element [0] must match clusterIP"))
	}
	if s.Spec.ClusterIP != "" && len(ips) == 0 {
		ips = []string{s.Spec.ClusterIP}
	}
	ipsPath := spec.Child("clusterIPs")
	if len(ips) > 2 {
		errs = append(errs, field.Invalid(ipsPath, ips, "may only hold up to 2 values"))
	}
	var families []corev1.IPFamily
	for i, ip := range ips {
		p := ipsPath.Index(i)
		if ip == corev1.ClusterIPNone {
			if i != 0 || len(ips) != 1 {
				errs = append(errs, field.Invalid(p, ip, "'None' must be the first and only value"))
			}
			if s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				errs = append(errs, field.Invalid(p, ip, fmt.Sprintf("may not be set to 'None' for %s services", s.Spec.Type)))
			}
			continue
		}
		if ipErrs := validation.IsValidIPForLegacyField(p, ip, false, nil); len(ipErrs) > 0 {
			errs = append(errs, ipErrs...)
			continue
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		f := ipFamilyOf(a)
		if len(families) == 1 && families[0] == f {
			errs = append(errs, field.Invalid(p, ip, "may specify no more than one IP for each IP family"))
		}
		if i < len(s.Spec.IPFamilies) && s.Spec.IPFamilies[i] != f {
			errs = append(errs, field.Invalid(p, ip, fmt.Sprintf("expected an %s value as indicated by `ipFamilies[%d]`", s.Spec.IPFamilies[i], i)))
		}
		families = append(families, f)
	}

	fp := spec.Child("ipFamilies")
	if len(s.Spec.IPFamilies) > 2 {
		errs = append(errs, field.Invalid(fp, s.Spec.IPFamilies, "may only hold up to 2 values"))
	}
	seen := map[corev1.IPFamily]bool{}
	for i, f := range s.Spec.IPFamilies {
		errs = append(errs, validateEnum(f, fp.Index(i), corev1.IPv4Protocol, corev1.IPv6Protocol)...)
		if seen[f] {
			errs = append(errs, field.Duplicate(fp.Index(i), f))
		}
		seen[f] = true
	}
	if p := s.Spec.IPFamilyPolicy; p != nil {
		pp := spec.Child("ipFamilyPolicy")
		errs = append(errs, validateEnum(*p, pp, corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack)...)
		if *p == corev1.IPFamilyPolicySingleStack && (len(s.Spec.IPFamilies) > 1 || len(ips) > 1) {
			errs = append(errs, field.Invalid(pp, *p, "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"))
		}
	}
	return errs
}

func validateServicePorts(s *corev1.Service, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	portProtocols := map[string]bool{}
	nodePorts := map[string]bool{}
	nodePortsAllowed := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
	for i, port := range s.Spec.Ports {
		pp := p.Index(i)
		switch {
		case port.Name == "" && len(s.Spec.Ports) > 1:
			errs = append(errs, field.Required(pp.Child("name"), ""))
		case port.Name != "":
			errs = append(errs, validateDNSLabel(port.Name, pp.Child("name"))...)
			if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		errs = append(errs, invalidEach(pp.Child("port"), port.Port, validation.IsValidPortNum(int(port.Port)))...)
		errs = append(errs, validateEnum(port.Protocol, pp.Child("protocol"), serviceProtocols...)...)
		if s.Spec.Type != corev1.ServiceTypeExternalName {
			errs = append(errs, validatePortNumOrName(port.TargetPort, pp.Child("targetPort"))...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, validateQualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if portProtocols[key] {
			errs = append(errs, field.Duplicate(pp, key))
		}
		portProtocols[key] = true
		if port.NodePort != 0 {
			np := pp.Child("nodePort")
			if !nodePortsAllowed {
				errs = append(errs, field.Forbidden(np, fmt.Sprintf("may not be used when `type` is '%s'", s.Spec.Type)))
			}
			errs = append(errs, invalidEach(np, port.NodePort, validation.IsValidPortNum(int(port.NodePort)))...)
			nk := fmt.Sprintf("%d/%s", port.NodePort, port.Protocol)
			if nodePorts[nk] {
				errs = append(errs, field.Duplicate(np, port.NodePort))
			}
			nodePorts[nk] = true
		}
	}
	return errs
}

// validateServiceUpdate: allocated cluster IPs and the primary IP family
// stay while the Service needs them; only a change to or from ExternalName
// releases or allocates them.
func validateServiceUpdate(s, old *corev1.Service) field.ErrorList {
	if s.Spec.Type == corev1.ServiceTypeExternalName || old.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if old.Spec.ClusterIP != "" && s.Spec.ClusterIP != old.Spec.ClusterIP {
		errs = append(errs, field.Invalid(spec.Child("clusterIP"), s.Spec.ClusterIP, apimachineryvalidation.FieldImmutableErrorMsg))
	}
	if len(old.Spec.ClusterIPs) > 0 && (len(s.Spec.ClusterIPs) == 0 || s.Spec.ClusterIPs[0] != old.Spec.ClusterIPs[0]) {
		errs = append(errs, field.Invalid(spec.Child("clusterIPs").Index(0), s.Spec.ClusterIPs, "may not change once set"))
	}
	if len(old.Spec.IPFamilies) > 0 && len(s.Spec.IPFamilies) > 0 && s.Spec.IPFamilies[0] != old.Spec.IPFamilies[0] {
		errs = append(errs, field.Invalid(spec.Child("ipFamilies").Index(0), s.Spec.IPFamilies[0], "may not change once set"))
	}
	return errs
}

func validateEndpoints(e *corev1.Endpoints) field.ErrorList {
	errs := validateMeta(&e.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	for i, ss := range e.Subsets {
		sp := field.NewPath("subsets").Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(sp, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range ss.Addresses {
			errs = append(errs, validateEndpointAddress(a, sp.Child("addresses").Index(j))...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, validateEndpointAddress(a, sp.Child("notReadyAddresses").Index(j))...)
		}
		names := map[string]bool{}
		for j, port := range ss.Ports {
			pp := sp.Child("ports").Index(j)
			switch {
			case port.Name == "" && len(ss.Ports) > 1:
				errs = append(errs, field.Required(pp.Child("name"), ""))
			case port.Name != "":
				errs = append(errs, validateDNSLabel(port.Name, pp.Child("name"))...)
				if names[port.Name] {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				names[port.Name] = true
			}
			errs = append(errs, invalidEach(pp.Child("port"), port.Port, validation.IsValidPortNum(int(port.Port)))...)
			errs = append(errs, validateEnum(port.Protocol, pp.Child("protocol"), serviceProtocols...)...)
			if port.AppProtocol != nil {
				errs = append(errs, validateQualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
			}
		}
	}
	return errs
}

func validateEndpointAddress(a corev1.EndpointAddress, p *field.Path) field.ErrorList {
	errs := validateEndpointIP(a.IP, p.Child("ip"))
	if a.Hostname != "" {
		errs = append(errs, validateDNSLabel(a.Hostname, p.Child("hostname"))...)
	}
	if a.NodeName != nil {
		errs = append(errs, validateDNSSubdomain(*a.NodeName, p.Child("nodeName"))...)
	}
	return errs
}

// validateEndpointIP checks an endpoint's IP: a valid address that traffic
// can be sent to (not unspecified, loopback or link-local).
func validateEndpointIP(ip string, p *field.Path) field.ErrorList {
	if errs := validation.IsValidIPForLegacyField(p, ip, false, nil); len(errs) > 0 {
		return errs
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil // a legacy form netip rejects (leading zeros); accepted above
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return field.ErrorList{field.Invalid(p, ip, "may not be unspecified (0.0.0.0)")}
	case a.IsLoopback():
		return field.ErrorList{field.Invalid(p, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)")}
	case a.IsLinkLocalUnicast():
		return field.ErrorList{field.Invalid(p, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)")}
	case a.IsLinkLocalMulticast():
		return field.ErrorList{field.Invalid(p, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")}
	}
	return nil
}

func validateEndpointSlice(e *discoveryv1.EndpointSlice) field.ErrorList {
	errs := validateMeta(&e.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	errs = append(errs, validateEnum(e.AddressType, field.NewPath("addressType"),
		discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN)...)

	ep := field.NewPath("endpoints")
	if len(e.Endpoints) > maxEndpointSliceEndpoints {
		errs = append(errs, field.TooMany(ep, len(e.Endpoints), maxEndpointSliceEndpoints))
	}
	for i, end := range e.Endpoints {
		p := ep.Index(i)
		ap := p.Child("addresses")
		switch n := len(end.Addresses); {
		case n == 0:
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		case n > maxEndpointAddresses:
			errs = append(errs, field.TooMany(ap, n, maxEndpointAddresses))
		}
		for j, addr := range end.Addresses {
			errs = append(errs, validateEndpointSliceAddress(e.AddressType, addr, ap.Index(j))...)
		}
		if end.Hostname != nil {
			errs = append(errs, validateDNSLabel(*end.Hostname, p.Child("hostname"))...)
		}
		if end.NodeName != nil {
			errs = append(errs, validateDNSSubdomain(*end.NodeName, p.Child("nodeName"))...)
		}
		errs = append(errs, metav1validation.ValidateLabels(end.DeprecatedTopology, p.Child("deprecatedTopology"))...)
	}

	pp := field.NewPath("ports")
	if len(e.Ports) > maxEndpointSlicePorts {
		errs = append(errs, field.TooMany(pp, len(e.Ports), maxEndpointSlicePorts))
	}
	names := map[string]bool{}
	for i, port := range e.Ports {
		p := pp.Index(i)
		if port.Name != nil && *port.Name != "" {
			errs = append(errs, validateDNSLabel(*port.Name, p.Child("name"))...)
		}
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if names[name] {
			errs = append(errs, field.Duplicate(p.Child("name"), name))
		}
		names[name] = true
		if port.Protocol != nil {
			errs = append(errs, validateEnum(*port.Protocol, p.Child("protocol"), serviceProtocols...)...)
		} else {
			errs = append(errs, field.Required(p.Child("protocol"), ""))
		}
		if port.Port != nil && (*port.Port < 0 || *port.Port > 65535) {
			errs = append(errs, field.Invalid(p.Child("port"), *port.Port, validation.InclusiveRangeError(0, 65535)))
		}
		if port.AppProtocol != nil {
			errs = append(errs, validateQualifiedName(*port.AppProtocol, p.Child("appProtocol"))...)
		}
	}
	return errs
}

func validateEndpointSliceAddress(t discoveryv1.AddressType, addr string, p *field.Path) field.ErrorList {
	switch t {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
		errs := validateEndpointIP(addr, p)
		if len(errs) > 0 {
			return errs
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			if is4 := a.Unmap().Is4(); is4 != (t == discoveryv1.AddressTypeIPv4) {
				return field.ErrorList{field.Invalid(p, addr, fmt.Sprintf("must be an %s address", t))}
			}
		}
	case discoveryv1.AddressTypeFQDN:
		return validation.IsFullyQualifiedDomainName(p, addr)
	}
	return nil
}
