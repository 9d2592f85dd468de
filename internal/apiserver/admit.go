package apiserver

import (
	"context"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/admission"
)

// admit runs the admission chain on a write.
func (s *Server) admit(ctx context.Context, a *admission.Attributes) error {
	return s.admission.Admit(ctx, a)
}

// storeGetter reads cluster state for admission plugins from storage.
type storeGetter struct{ s *Server }

func (g storeGetter) Get(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) (runtime.Object, error) {
	res, ok := g.s.reg.Lookup(gvr.Group, gvr.Version, gvr.Resource)
	if !ok {
		return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	obj, err := g.s.store.GetRecent(ctx, key(res, namespace, name))
	if err != nil {
		return nil, storeErr(err, res.GroupResource(), name)
	}
	return obj, nil
}

func (g storeGetter) List(ctx context.Context, gvr schema.GroupVersionResource, namespace string) ([]runtime.Object, error) {
	res, ok := g.s.reg.Lookup(gvr.Group, gvr.Version, gvr.Resource)
	if !ok {
		return nil, nil
	}
	items, _, err := g.s.store.List(ctx, prefix(res, namespace), 0)
	if err != nil {
		return nil, storeErr(err, res.GroupResource(), "")
	}
	return items, nil
}

// firstServiceIP is the service CIDR's first usable address, the
// kubernetes service's.
func firstServiceIP(cidr *net.IPNet) net.IP {
	ip := make(net.IP, len(cidr.IP.To4()))
	copy(ip, cidr.IP.To4())
	for i := len(ip) - 1; i >= 0; i-- {
		ip[i]++
		if ip[i] != 0 {
			break
		}
	}
	return ip
}
