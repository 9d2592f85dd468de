package registry

import (
	"context"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceStrategy is core/v1 services. Besides the rules in
// strategy_service.go it claims each service's cluster IP and node ports
// from the cluster-wide allocators (one etcd key each), as Kubernetes'
// service REST storage does.
type serviceStrategy struct {
	basics
	ips   IPAllocator
	ports PortAllocator
}

func (serviceStrategy) Info() *Info {
	return &Info{
		Version: "v1", Resource: "services", Kind: "Service", SingularName: "service", Namespaced: true,
		ShortNames: []string{"svc"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (serviceStrategy) New() runtime.Object     { return &corev1.Service{} }
func (serviceStrategy) NewList() runtime.Object { return &corev1.ServiceList{} }

func (serviceStrategy) PrepareForCreate(obj runtime.Object) {
	obj.(*corev1.Service).Status = corev1.ServiceStatus{}
}

// PrepareForUpdate keeps the status, and the cluster IP and node ports
// when an update leaves them empty, as Kubernetes does (kubectl apply omits
// them); node ports go when the type no longer uses them.
func (s serviceStrategy) PrepareForUpdate(obj, cur runtime.Object) {
	s.CopyStatus(obj, cur)
	svc, old := obj.(*corev1.Service), cur.(*corev1.Service)
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

func (serviceStrategy) Default(obj runtime.Object) { defaultService(obj.(*corev1.Service)) }
func (serviceStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateService(obj.(*corev1.Service))
}

func (serviceStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateServiceUpdate(obj.(*corev1.Service), old.(*corev1.Service))
}

func (serviceStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.Service).Status = src.(*corev1.Service).Status
}

func (serviceStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.Service).Spec, old.(*corev1.Service).Spec)
}

func (serviceStrategy) TableColumns() []metav1.TableColumnDefinition { return serviceColumns() }
func (serviceStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return serviceCells(obj.(*corev1.Service), now)
}

func wantsNodePorts(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

func invalidService(svc *corev1.Service, err *field.Error) error {
	return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, field.ErrorList{err})
}

// undo collects the releases of what an admission allocated, to run if the
// write then fails.
type undo []func()

func (u undo) run() {
	for _, f := range u {
		f()
	}
}

// AllocateOnCreate gives a new service its cluster IP and node ports.
func (s serviceStrategy) AllocateOnCreate(ctx context.Context, obj runtime.Object, dryRun bool) (func(), error) {
	svc := obj.(*corev1.Service)
	if s.ips == nil || s.ports == nil {
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
func (s serviceStrategy) allocatePorts(ctx context.Context, svc, old *corev1.Service, dryRun bool, u *undo) error {
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
			if !s.ports.Contains(int(*p)) {
				return invalidService(svc, field.Invalid(path, *p, fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", s.ports)))
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

// AllocateOnUpdate claims what an updated service newly needs and frees
// what it no longer uses.
func (s serviceStrategy) AllocateOnUpdate(ctx context.Context, obj, cur runtime.Object, dryRun bool) error {
	if s.ips == nil || s.ports == nil {
		return nil
	}
	svc, old := obj.(*corev1.Service), cur.(*corev1.Service)
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

// ReleaseOnDelete frees a deleted service's IP and ports.
func (s serviceStrategy) ReleaseOnDelete(ctx context.Context, obj runtime.Object) error {
	if s.ips == nil || s.ports == nil {
		return nil
	}
	svc := obj.(*corev1.Service)
	owner := string(svc.UID)
	var firstErr error
	if svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if err := s.ips.Release(ctx, svc.Spec.ClusterIP, owner); err != nil {
			firstErr = fmt.Errorf("release service IP %s of %s/%s: %w", svc.Spec.ClusterIP, svc.Namespace, svc.Name, err)
		}
	}
	for _, p := range append(svc.Spec.Ports, corev1.ServicePort{NodePort: svc.Spec.HealthCheckNodePort}) {
		if p.NodePort != 0 {
			if err := s.ports.Release(ctx, int(p.NodePort), owner); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("release node port %d of %s/%s: %w", p.NodePort, svc.Namespace, svc.Name, err)
			}
		}
	}
	return firstErr
}
