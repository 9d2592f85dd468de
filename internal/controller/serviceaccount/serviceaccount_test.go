package serviceaccount

import (
	"context"
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"skiff/internal/controller"
)

func TestSync(t *testing.T) {
	active := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	served := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "served"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	dying := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dying"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	existing := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "served", Name: DefaultAccount}}
	tests := []struct {
		namespace   string
		wantCreated bool
	}{
		{"app", true},
		{"served", false},
		{"dying", false},
		{"gone", false},
	}
	for _, tt := range tests {
		t.Run(tt.namespace, func(t *testing.T) {
			objs := []runtime.Object{active, served, dying, existing}
			client := fake.NewClientset(objs...)
			f := informers.NewSharedInformerFactory(client, 0)
			c, err := New(&controller.Context{Client: client, Informers: f, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []runtime.Object{active, served, dying} {
				_ = f.Core().V1().Namespaces().Informer().GetIndexer().Add(o)
			}
			_ = f.Core().V1().ServiceAccounts().Informer().GetIndexer().Add(existing)
			client.ClearActions()
			if err := c.sync(context.Background(), tt.namespace); err != nil {
				t.Fatal(err)
			}
			created := false
			for _, a := range client.Actions() {
				if a.GetVerb() == "create" && a.GetResource().Resource == "serviceaccounts" && a.GetNamespace() == tt.namespace {
					created = true
				}
			}
			if created != tt.wantCreated {
				t.Fatalf("created = %v, actions %v", created, client.Actions())
			}
		})
	}
}
