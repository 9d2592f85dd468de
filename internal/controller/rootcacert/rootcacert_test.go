package rootcacert

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

const ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

func TestSync(t *testing.T) {
	ns := func(name string, phase corev1.NamespacePhase) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: phase}}
	}
	cm := func(namespace string, data map[string]string, annotated bool) *corev1.ConfigMap {
		c := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: ConfigMapName}, Data: data}
		if annotated {
			c.Annotations = map[string]string{descriptionAnnotation: description}
		}
		return c
	}
	tests := []struct {
		name     string
		objs     []runtime.Object
		wantVerb string // "" for no write
	}{
		{"new namespace", []runtime.Object{ns("app", corev1.NamespaceActive)}, "create"},
		{"up to date", []runtime.Object{ns("app", corev1.NamespaceActive), cm("app", map[string]string{DataKey: ca}, true)}, ""},
		{"tampered", []runtime.Object{ns("app", corev1.NamespaceActive), cm("app", map[string]string{DataKey: "evil", "x": "y"}, true)}, "update"},
		{"not annotated", []runtime.Object{ns("app", corev1.NamespaceActive), cm("app", map[string]string{DataKey: ca}, false)}, "update"},
		{"terminating", []runtime.Object{ns("app", corev1.NamespaceTerminating)}, ""},
		{"gone", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objs...)
			f := informers.NewSharedInformerFactory(client, 0)
			c, err := New(&controller.Context{Client: client, Informers: f, Logger: slog.New(slog.DiscardHandler)}, Config{CA: []byte(ca)})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range tt.objs {
				switch o := o.(type) {
				case *corev1.Namespace:
					_ = f.Core().V1().Namespaces().Informer().GetIndexer().Add(o)
				case *corev1.ConfigMap:
					_ = f.Core().V1().ConfigMaps().Informer().GetIndexer().Add(o)
				}
			}
			client.ClearActions()
			if err := c.sync(context.Background(), "app"); err != nil {
				t.Fatal(err)
			}
			var verbs []string
			for _, a := range client.Actions() {
				verbs = append(verbs, a.GetVerb())
			}
			if tt.wantVerb == "" && len(verbs) != 0 || tt.wantVerb != "" && (len(verbs) != 1 || verbs[0] != tt.wantVerb) {
				t.Fatalf("actions %v, want %q", verbs, tt.wantVerb)
			}
			if tt.wantVerb != "" {
				got, _ := client.CoreV1().ConfigMaps("app").Get(context.Background(), ConfigMapName, metav1.GetOptions{})
				if len(got.Data) != 1 || got.Data[DataKey] != ca || got.Annotations[descriptionAnnotation] == "" {
					t.Fatalf("config map %+v", got)
				}
			}
		})
	}
	if _, err := New(&controller.Context{Client: fake.NewClientset(), Informers: informers.NewSharedInformerFactory(fake.NewClientset(), 0)}, Config{}); err == nil {
		t.Fatal("no CA accepted")
	}
}
