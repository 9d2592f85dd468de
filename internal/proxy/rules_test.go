package proxy

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
)

func ruleConfig() RuleConfig {
	_, cidr, _ := net.ParseCIDR("10.42.0.0/16")
	return RuleConfig{NodeName: "n1", NodeIPs: []net.IP{net.ParseIP("192.168.1.10")}, ClusterCIDR: cidr}
}

func svc(name, clusterIP string, opts ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

type sliceEP struct {
	ip, node string
	ready    bool
	term     bool
}

func slice(svcName, name string, port int32, eps ...sliceEP) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: &proto, Port: &port}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e.ip}, NodeName: ptr.To(e.node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready), Terminating: ptr.To(e.term)}})
	}
	return s
}

func ready(ip, node string) sliceEP { return sliceEP{ip: ip, node: node, ready: true} }

func TestBuildRulesSkipsWhatIsNotProxied(t *testing.T) {
	services := []*corev1.Service{
		svc("dns", "10.43.0.10", func(s *corev1.Service) { s.Labels = map[string]string{config.LabelNodeLocalDNS: "true"} }),
		svc("headless", corev1.ClusterIPNone),
		svc("ext", "", func(s *corev1.Service) {
			s.Spec.Type, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "example.com"
		}),
		svc("other", "10.43.0.12", func(s *corev1.Service) {
			s.Labels = map[string]string{"service.kubernetes.io/service-proxy-name": "foo"}
		}),
	}
	slices := []*discoveryv1.EndpointSlice{
		slice("dns", "dns-1", 53, ready("10.42.0.5", "n1")),
		slice("headless", "headless-1", 80, ready("10.42.0.6", "n1")),
	}
	out := string(BuildRules(ruleConfig(), services, slices))
	for _, name := range []string{"ns/dns", "ns/headless", "ns/ext", "ns/other", "SKIFF-SVC-", "SKIFF-SEP-"} {
		if strings.Contains(out, name) {
			t.Errorf("rules mention %s:\n%s", name, out)
		}
	}
}

func TestBuildRulesOnlyReadyEndpoints(t *testing.T) {
	services := []*corev1.Service{svc("web", "10.43.0.20")}
	slices := []*discoveryv1.EndpointSlice{
		slice("web", "web-1", 8080, ready("10.42.0.5", "n1"), sliceEP{ip: "10.42.0.6", node: "n1"},
			sliceEP{ip: "10.42.0.7", node: "n1", ready: false, term: true}),
		// The same endpoint in a second slice (mid-update) counts once.
		slice("web", "web-2", 8080, ready("10.42.1.8", "n2"), ready("10.42.0.5", "n1")),
	}
	out := string(BuildRules(ruleConfig(), services, slices))
	for _, want := range []string{"--to-destination 10.42.0.5:8080", "--to-destination 10.42.1.8:8080", "--probability 0.5000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	for _, bad := range []string{"10.42.0.6", "10.42.0.7", "REJECT"} {
		if strings.Contains(out, bad) {
			t.Errorf("unexpected %q in:\n%s", bad, out)
		}
	}
	if n := strings.Count(out, "-j DNAT"); n != 2 {
		t.Errorf("%d DNAT rules, want 2:\n%s", n, out)
	}
}

func TestBuildRulesNoEndpointsRejects(t *testing.T) {
	services := []*corev1.Service{svc("web", "10.43.0.20", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = 30080
	})}
	out := string(BuildRules(ruleConfig(), services, nil))
	for _, want := range []string{
		"-A SKIFF-PROXY-FILTER -m comment --comment \"ns/web:http has no endpoints\" -d 10.43.0.20/32 -p tcp -m tcp --dport 80 -j REJECT",
		"-d 192.168.1.10/32 -p tcp -m tcp --dport 30080 -j REJECT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestBuildRulesDeletesStaleChains(t *testing.T) {
	cfg := ruleConfig()
	services := []*corev1.Service{svc("web", "10.43.0.20")}
	slices := []*discoveryv1.EndpointSlice{slice("web", "web-1", 8080, ready("10.42.0.5", "n1"))}
	cfg.ExistingChains = []string{"SKIFF-SVC-OLDOLDOLDOLDOLD", "SKIFF-SEP-OLD", "SKIFF-HOSTPORTS", "SKIFF-POSTROUTING", "SKIFF-SERVICES", "KUBE-SVC-X"}
	out := string(BuildRules(cfg, services, slices))
	for _, want := range []string{"-X SKIFF-SVC-OLDOLDOLDOLDOLD\n", "-X SKIFF-SEP-OLD\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// Chains of the pod network and of others are never touched.
	for _, bad := range []string{"SKIFF-HOSTPORTS", "SKIFF-POSTROUTING ", "KUBE-SVC-X", "-X SKIFF-SERVICES"} {
		if strings.Contains(out, bad) {
			t.Errorf("ruleset touches %q:\n%s", bad, out)
		}
	}
	// A chain still in use is not deleted.
	cfg.ExistingChains = []string{chainName(prefixSvc, "ns/web:http/tcp")}
	if out := string(BuildRules(cfg, services, slices)); strings.Contains(out, "-X ") {
		t.Errorf("live chain deleted:\n%s", out)
	}
}

func TestBuildRulesAffinityAndPolicies(t *testing.T) {
	services := []*corev1.Service{svc("web", "10.43.0.20", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = 30080
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60))}}
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.1.11"}}
	})}
	slices := []*discoveryv1.EndpointSlice{slice("web", "web-1", 8080, ready("10.42.0.5", "n1"), ready("10.42.1.5", "n2"))}
	out := string(BuildRules(ruleConfig(), services, slices))
	svcChain, localChain := chainName(prefixSvc, "ns/web:http/tcp"), chainName(prefixLocal, "ns/web:http/tcp")
	for _, want := range []string{
		"--rcheck --seconds 60 --reap",
		"--set --rsource -j DNAT",
		"-d 192.168.1.10/32 -p tcp -m tcp --dport 80 -j SKIFF-EXT-", // the node's own address (ServiceLB)
		"-d 192.168.1.11/32 -p tcp -m tcp --dport 80 -j SKIFF-EXT-", // the status ingress
		"-s 10.42.0.0/16 -j " + svcChain,
		"-j " + localChain + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// The local chain holds only this node's endpoint.
	var local []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A "+localChain+" ") && !strings.Contains(l, "--rcheck") {
			local = append(local, l)
		}
	}
	if len(local) != 1 || !strings.Contains(local[0], "10.42.0.5:8080") {
		t.Errorf("local chain %v, want one rule for 10.42.0.5:8080", local)
	}
}

func TestBuildRulesIsDeterministic(t *testing.T) {
	services, slices := scaleInput(50, 5)
	want := BuildRules(ruleConfig(), services, slices)
	for range 5 {
		rand.Shuffle(len(services), func(i, j int) { services[i], services[j] = services[j], services[i] })
		rand.Shuffle(len(slices), func(i, j int) { slices[i], slices[j] = slices[j], slices[i] })
		if got := BuildRules(ruleConfig(), services, slices); string(got) != string(want) {
			t.Fatal("the same services in another order give other rules")
		}
	}
	for _, l := range strings.Split(string(want), "\n") {
		if strings.HasPrefix(l, ":") {
			if name, _, _ := strings.Cut(l[1:], " "); len(name) > 28 {
				t.Errorf("chain name %q is longer than iptables allows", name)
			}
		}
	}
}

// scaleInput makes n ClusterIP services with m endpoints each.
func scaleInput(n, m int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var services []*corev1.Service
	var slices []*discoveryv1.EndpointSlice
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		services = append(services, svc(name, fmt.Sprintf("10.43.%d.%d", i/250, i%250+1)))
		var eps []sliceEP
		for j := range m {
			k := i*m + j
			eps = append(eps, ready(fmt.Sprintf("10.42.%d.%d", k/250, k%250+2), "n1"))
		}
		slices = append(slices, slice(name, name+"-1", 8080, eps...))
	}
	return services, slices
}

func BenchmarkBuildRules1000x10(b *testing.B) {
	services, slices := scaleInput(1000, 10)
	cfg := ruleConfig()
	for b.Loop() {
		BuildRules(cfg, services, slices)
	}
}
