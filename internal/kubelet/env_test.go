package kubelet

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestServiceEnvAPIServer(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	svc := func(ns, name, ip string, port int32) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}}
	}
	for _, s := range []*corev1.Service{svc("default", "kubernetes", "10.43.0.1", 443), svc("default", "web", "10.43.0.20", 80), svc("app", "db", "10.43.0.30", 5432)} {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	k := &Kubelet{services: corelisters.NewServiceLister(idx)}
	off := false
	for _, tt := range []struct {
		ns      string
		links   *bool
		present []string
		absent  []string
	}{
		{"default", nil, []string{"KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"}, nil},
		{"default", &off, []string{"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_PORT_443_TCP_ADDR"}, []string{"WEB_SERVICE_HOST"}},
		{"app", nil, []string{"KUBERNETES_SERVICE_HOST", "DB_SERVICE_HOST"}, []string{"WEB_SERVICE_HOST"}},
		{"app", &off, []string{"KUBERNETES_SERVICE_HOST"}, []string{"DB_SERVICE_HOST"}},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: tt.ns, Name: "p"}, Spec: corev1.PodSpec{EnableServiceLinks: tt.links}}
		env := k.serviceEnv(pod)
		for _, name := range tt.present {
			if _, ok := env[name]; !ok {
				t.Errorf("ns %s, links %v: %s missing", tt.ns, tt.links, name)
			}
		}
		for _, name := range tt.absent {
			if _, ok := env[name]; ok {
				t.Errorf("ns %s, links %v: %s set", tt.ns, tt.links, name)
			}
		}
		if env["KUBERNETES_SERVICE_HOST"] != "10.43.0.1" || env["KUBERNETES_SERVICE_PORT"] != "443" {
			t.Errorf("ns %s, links %v: KUBERNETES_SERVICE_HOST/PORT = %q/%q", tt.ns, tt.links, env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"])
		}
	}
}
