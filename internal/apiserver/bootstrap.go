package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"

	"skiff/internal/config"
	"skiff/internal/storage"
)

// systemNamespaces exist from the start, as in Kubernetes.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// bootstrap creates the namespaces and the default/kubernetes service that
// every cluster has, and, without Config.Etcd, points the service's
// endpoints at this server alone.
func (s *Server) bootstrap(ctx context.Context) error {
	for _, ns := range systemNamespaces {
		if err := s.ensure(ctx, "", "v1", "namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: firstServiceIP(s.cfg.ServiceCIDR).String(),
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(s.port()))}},
		},
	}
	if err := s.ensure(ctx, "", "v1", "services", svc); err != nil {
		return err
	}
	if err := s.ensureDNSService(ctx); err != nil {
		return err
	}
	if s.cfg.Etcd != nil {
		// Run starts the endpoint reconciler, which lists every live
		// server (apiserverlease.go).
		return nil
	}
	return s.writeAPIEndpoints(ctx, []string{s.advertiseIP().String()})
}

func (s *Server) port() int {
	if s.cfg.Listener != nil {
		if a, ok := s.cfg.Listener.Addr().(*net.TCPAddr); ok {
			return a.Port
		}
	}
	return s.cfg.Port
}

func (s *Server) ensure(ctx context.Context, group, version, resource string, obj runtime.Object) error {
	return s.ensureSpec(ctx, group, version, resource, obj, nil)
}

// ensureSpec creates obj through admission if absent; if present and
// update is set, it rewrites the stored object with update.
func (s *Server) ensureSpec(ctx context.Context, group, version, resource string, obj runtime.Object, update func(runtime.Object) runtime.Object) error {
	res, ok := s.reg.Lookup(group, version, resource)
	if !ok {
		return fmt.Errorf("no resource %s", resource)
	}
	obj.GetObjectKind().SetGroupVersionKind(res.GVK())
	m, _ := meta.Accessor(obj)
	k := key(res, m.GetNamespace(), m.GetName())
	if _, err := s.store.Get(ctx, k); err == nil {
		if update == nil {
			return nil
		}
		_, err := s.store.GuaranteedUpdate(ctx, k, func(cur runtime.Object) (runtime.Object, error) {
			next := update(cur.DeepCopyObject())
			if same, _ := equalEncoded(next, cur); same {
				return nil, nil
			}
			return next, nil
		})
		return err
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	// The server's own objects skip validation: the API endpoint may be a
	// loopback address when the server listens on loopback only.
	res.PrepareForCreate(obj)
	res.Default(obj)
	release := func() {}
	if a := res.Allocator(); a != nil {
		var err error
		if release, err = a.AllocateOnCreate(ctx, obj, false); err != nil {
			return err
		}
	}
	if _, err := s.store.Create(ctx, k, obj); err != nil {
		release()
		if errors.Is(err, storage.ErrExists) {
			return nil
		}
		return err
	}
	return nil
}

// ensureDNSService reserves the cluster DNS address as the kube-dns
// service that Kubernetes users look for; it has no selector and no
// endpoints.
func (s *Server) ensureDNSService(ctx context.Context) error {
	if s.cfg.ClusterDNS == nil {
		return nil
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system",
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", config.LabelNodeLocalDNS: "true"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: s.cfg.ClusterDNS.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
			},
		},
	}
	return s.ensure(ctx, "", "v1", "services", svc)
}
