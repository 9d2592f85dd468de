package apiserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/config"
)

// Allocations are one etcd key per taken IP or port, created only if absent
// (a transaction), so concurrent creates never get the same one. The key's
// value is the owning service's uid: a release never frees another's.
const (
	serviceIPPrefix   = "/registry/ranges/serviceips/"
	nodePortKeyPrefix = "/registry/ranges/servicenodeports/"
)

type ipAllocator struct {
	client *clientv3.Client
	cidr   *net.IPNet
	base   uint32
	size   uint32
}

func newIPAllocator(c *clientv3.Client, cidr *net.IPNet) (*ipAllocator, error) {
	ip4 := cidr.IP.To4()
	ones, bits := cidr.Mask.Size()
	if ip4 == nil || bits != 32 {
		return nil, fmt.Errorf("service CIDR %s: only IPv4 is supported", cidr)
	}
	if ones > 29 {
		return nil, fmt.Errorf("service CIDR %s: too small, use at least a /29", cidr)
	}
	return &ipAllocator{client: c, cidr: cidr, base: binary.BigEndian.Uint32(ip4), size: 1 << (32 - ones)}, nil
}

func (a *ipAllocator) ipAt(offset uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, a.base+offset)
	return ip
}

// FirstIP is the service CIDR's first usable address (the API service's).
func (a *ipAllocator) FirstIP() net.IP { return a.ipAt(1) }

// take claims key for owner if free; it reports whether it did.
func take(ctx context.Context, c *clientv3.Client, key, owner string) (bool, error) {
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	// Already ours (a retried create): still ours.
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) > 0 && string(kvs[0].Value) == owner, nil
}

// release frees key if owner holds it.
func release(ctx context.Context, c *clientv3.Client, key, owner string) error {
	_, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", owner)).
		Then(clientv3.OpDelete(key)).
		Commit()
	return err
}

// Allocate claims ip for owner, or any free address when ip is nil.
// Dynamic allocation prefers the upper part of the range so that the low
// addresses stay free for services that ask for one (DNS at .10).
func (a *ipAllocator) Allocate(ctx context.Context, ip net.IP, owner string) (net.IP, error) {
	if ip != nil {
		if !a.cidr.Contains(ip) || ip.Equal(a.ipAt(0)) || ip.Equal(a.ipAt(a.size-1)) {
			return nil, fmt.Errorf("provided IP is not in the valid range. The range of valid IPs is %s", a.cidr)
		}
		ok, err := take(ctx, a.client, serviceIPPrefix+ip.String(), owner)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("provided IP is already allocated")
		}
		return ip, nil
	}
	usable := a.size - 2
	low := min(max(16, usable/16), 256)
	if low >= usable {
		low = 0
	}
	// Upper band first, from a random start; then the lower band.
	for _, band := range [][2]uint32{{low + 1, usable}, {1, low}} {
		n := band[1] - band[0] + 1
		if band[1] < band[0] {
			continue
		}
		start := rand.Uint32N(n)
		for i := uint32(0); i < n; i++ {
			candidate := a.ipAt(band[0] + (start+i)%n)
			ok, err := take(ctx, a.client, serviceIPPrefix+candidate.String(), owner)
			if err != nil {
				return nil, err
			}
			if ok {
				return candidate, nil
			}
		}
	}
	return nil, fmt.Errorf("range is full: no service IP left in %s", a.cidr)
}

func (a *ipAllocator) Release(ctx context.Context, ip, owner string) error {
	return release(ctx, a.client, serviceIPPrefix+ip, owner)
}

type portAllocator struct {
	client *clientv3.Client
	rng    config.PortRange
}

func newPortAllocator(c *clientv3.Client, r config.PortRange) *portAllocator {
	return &portAllocator{client: c, rng: r}
}

// Allocate claims port for owner, or any free port when port is 0.
func (a *portAllocator) Allocate(ctx context.Context, port int, owner string) (int, error) {
	if port != 0 {
		if !a.rng.Contains(port) {
			return 0, fmt.Errorf("provided port is not in the valid range. The range of valid ports is %s", a.rng)
		}
		ok, err := take(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(port), owner)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("provided port is already allocated")
		}
		return port, nil
	}
	start := rand.IntN(a.rng.Size)
	for i := 0; i < a.rng.Size; i++ {
		p := a.rng.Base + (start+i)%a.rng.Size
		ok, err := take(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(p), owner)
		if err != nil {
			return 0, err
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("range is full: no node port left in %s", a.rng)
}

func (a *portAllocator) Release(ctx context.Context, port int, owner string) error {
	return release(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(port), owner)
}

// undo collects the releases of what an admission allocated, to run if the
// write then fails.
type undo []func()

func (u undo) run() {
	for _, f := range u {
		f()
	}
}

func wantsNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// allocateOnCreate gives a new service its cluster IP and node ports. The
// returned func releases them (when the write fails).
func (s *Server) allocateOnCreate(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return func() {}, nil
	}
	var u undo
	fail := func(err error) (func(), error) { u.run(); return nil, err }
	owner := string(svc.UID)
	if needsClusterIP(svc) && !dryRun {
		var want net.IP
		if svc.Spec.ClusterIP != "" {
			want = net.ParseIP(svc.Spec.ClusterIP)
		}
		ip, err := s.ips.Allocate(ctx, want, owner)
		if err != nil {
			return fail(invalidService(svc, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP, err.Error())))
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
		u = append(u, func() { _ = s.ips.Release(context.Background(), ip.String(), owner) })
	} else if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	}
	if err := s.allocatePorts(ctx, svc, nil, dryRun, &u); err != nil {
		return fail(err)
	}
	return u.run, nil
}

// allocatePorts gives each port of a NodePort or LoadBalancer service a node
// port, keeping those old (the stored service) already had.
func (s *Server) allocatePorts(ctx context.Context, svc, old *corev1.Service, dryRun bool, u *undo) error {
	owner := string(svc.UID)
	held := map[int32]bool{}
	if old != nil {
		for _, p := range old.Spec.Ports {
			held[p.NodePort] = p.NodePort != 0
		}
		held[old.Spec.HealthCheckNodePort] = old.Spec.HealthCheckNodePort != 0
	}
	claim := func(p *int32, path *field.Path) error {
		if held[*p] || dryRun && *p == 0 {
			return nil
		}
		if dryRun {
			if !s.ports.rng.Contains(int(*p)) {
				return invalidService(svc, field.Invalid(path, *p, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", s.ports.rng)))
			}
			return nil
		}
		port, err := s.ports.Allocate(ctx, int(*p), owner)
		if err != nil {
			return invalidService(svc, field.Invalid(path, *p, err.Error()))
		}
		*p = int32(port)
		held[*p] = true
		*u = append(*u, func() { _ = s.ports.Release(context.Background(), port, owner) })
		return nil
	}
	if !wantsNodePorts(svc.Spec.Type) {
		return nil
	}
	for i := range svc.Spec.Ports {
		if err := claim(&svc.Spec.Ports[i].NodePort, field.NewPath("spec", "ports").Index(i).Child("nodePort")); err != nil {
			return err
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		if err := claim(&svc.Spec.HealthCheckNodePort, field.NewPath("spec", "healthCheckNodePort")); err != nil {
			return err
		}
	}
	return nil
}

func invalidService(svc *corev1.Service, err *field.Error) error {
	return invalidKind("", "Service", svc.Name, field.ErrorList{err})
}

// carryOverAllocations keeps a service's cluster IP and node ports when an
// update leaves them empty, as Kubernetes does (kubectl apply omits them),
// and drops node ports when the type no longer uses them.
func carryOverAllocations(obj, cur runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	old := cur.(*corev1.Service)
	if svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP == "" && old.Spec.Type != corev1.ServiceTypeExternalName {
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
	}
	if len(svc.Spec.ClusterIPs) == 0 && svc.Spec.ClusterIP != "" {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if wantsNodePorts(svc.Spec.Type) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
		if svc.Spec.HealthCheckNodePort == 0 && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			svc.Spec.HealthCheckNodePort = old.Spec.HealthCheckNodePort
		}
	} else {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
		svc.Spec.HealthCheckNodePort = 0
	}
}

// allocateOnUpdate claims what an updated service newly needs and frees
// what it no longer uses.
func (s *Server) allocateOnUpdate(ctx context.Context, obj, cur runtime.Object, dryRun bool) error {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil
	}
	old := cur.(*corev1.Service)
	var u undo
	if needsClusterIP(svc) && svc.Spec.ClusterIP == "" && !dryRun {
		ip, err := s.ips.Allocate(ctx, nil, string(svc.UID))
		if err != nil {
			return invalidService(svc, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), "", err.Error()))
		}
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip.String(), []string{ip.String()}
		u = append(u, func() { _ = s.ips.Release(context.Background(), ip.String(), string(svc.UID)) })
	}
	if err := s.allocatePorts(ctx, svc, old, dryRun, &u); err != nil {
		u.run()
		return err
	}
	if dryRun {
		return nil
	}
	// Free what the old service held and the new one does not.
	inUse := map[int32]bool{svc.Spec.HealthCheckNodePort: true}
	for _, p := range svc.Spec.Ports {
		inUse[p.NodePort] = true
	}
	for _, p := range append(old.Spec.Ports, corev1.ServicePort{NodePort: old.Spec.HealthCheckNodePort}) {
		if p.NodePort != 0 && !inUse[p.NodePort] {
			_ = s.ports.Release(ctx, int(p.NodePort), string(old.UID))
		}
	}
	if old.Spec.ClusterIP != "" && old.Spec.ClusterIP != corev1.ClusterIPNone && old.Spec.ClusterIP != svc.Spec.ClusterIP {
		_ = s.ips.Release(ctx, old.Spec.ClusterIP, string(old.UID))
	}
	return nil
}

// releaseOnDelete frees a deleted service's IP and ports.
func (s *Server) releaseOnDelete(ctx context.Context, obj runtime.Object) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	owner := string(svc.UID)
	if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if err := s.ips.Release(ctx, svc.Spec.ClusterIP, owner); err != nil {
			s.log.Warn("release service IP", "service", svc.Namespace+"/"+svc.Name, "ip", svc.Spec.ClusterIP, "err", err)
		}
	}
	for _, p := range append(svc.Spec.Ports, corev1.ServicePort{NodePort: svc.Spec.HealthCheckNodePort}) {
		if p.NodePort != 0 {
			if err := s.ports.Release(ctx, int(p.NodePort), owner); err != nil {
				s.log.Warn("release node port", "service", svc.Namespace+"/"+svc.Name, "port", p.NodePort, "err", err)
			}
		}
	}
}
