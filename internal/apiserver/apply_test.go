package apiserver_test

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/dynamic"

	"skiff/internal/server/servertest"
)

func managers(m metav1.Object) string {
	var out []string
	for _, e := range m.GetManagedFields() {
		out = append(out, fmt.Sprintf("%s/%s", e.Manager, e.Operation))
	}
	return strings.Join(out, ",")
}

func TestServerSideApply(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")

	// An apply creates the object and records its manager.
	cm, err := cms.Apply(ctx, corev1ac.ConfigMap("ssa", "default").WithData(map[string]string{"a": "1"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply create: %v", err)
	}
	if cm.Data["a"] != "1" || managers(cm) != "alice/Apply" {
		t.Fatalf("after apply: data %v managers %s", cm.Data, managers(cm))
	}
	// Another manager taking the same field conflicts, naming both.
	_, err = cms.Apply(ctx, corev1ac.ConfigMap("ssa", "default").WithData(map[string]string{"a": "2"}), metav1.ApplyOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "alice"`) || !strings.Contains(err.Error(), ".data.a") {
		t.Fatalf("conflicting apply: got %v, want 409 naming alice and .data.a", err)
	}
	// Force takes ownership.
	cm, err = cms.Apply(ctx, corev1ac.ConfigMap("ssa", "default").WithData(map[string]string{"a": "2"}), metav1.ApplyOptions{FieldManager: "bob", Force: true})
	if err != nil || cm.Data["a"] != "2" {
		t.Fatalf("forced apply: %v %v", err, cm)
	}
	// An ordinary update records its manager too.
	cm.Data["b"] = "3"
	cm, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if got := managers(cm); !strings.Contains(got, "bob/Apply") || !strings.Contains(got, "carol/Update") {
		t.Errorf("managers after update: %s", got)
	}
	// Alice re-applying without field a gives it up; bob keeps it.
	cm, err = cms.Apply(ctx, corev1ac.ConfigMap("ssa", "default").WithData(map[string]string{"c": "4"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil || cm.Data["a"] != "2" || cm.Data["c"] != "4" {
		t.Fatalf("alice's second apply: %v %v", err, cm)
	}
	// An apply needs a field manager.
	_, err = cms.Patch(ctx, "ssa", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"}}`), metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "fieldManager: Required value") {
		t.Errorf("apply without fieldManager: %v", err)
	}

	// A deployment: apply, then scale through another manager's apply.
	dep := appsv1ac.Deployment("web", "default").WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(2).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"app": "web"})).
		WithTemplate(corev1ac.PodTemplateSpec().WithLabels(map[string]string{"app": "web"}).
			WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("web").WithImage("nginx:1.27")))))
	d, err := c.AppsV1().Deployments("default").Apply(ctx, dep, metav1.ApplyOptions{FieldManager: "helm"})
	if err != nil {
		t.Fatalf("apply deployment: %v", err)
	}
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].ImagePullPolicy == "" {
		t.Errorf("applied deployment: replicas %d, defaults missing: %+v", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0])
	}
	dep.Spec.Template.Spec.Containers[0].WithImage("nginx:1.28")
	d, err = c.AppsV1().Deployments("default").Apply(ctx, dep, metav1.ApplyOptions{FieldManager: "helm"})
	if err != nil || d.Spec.Template.Spec.Containers[0].Image != "nginx:1.28" || d.Generation != 2 {
		t.Fatalf("re-apply: %v %+v", err, d)
	}

	// Custom resources: apply with the CRD's schema.
	dyn, err := dynamic.NewForConfig(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, widgetCRD()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	widgets := dyn.Resource(widgetGVR).Namespace("default")
	servertest.Eventually(t, 5e9, "widgets served", func() error {
		_, err := widgets.List(ctx, metav1.ListOptions{})
		return err
	})
	w, err := widgets.Apply(ctx, "w", widget("w", map[string]interface{}{"color": "red"}), metav1.ApplyOptions{FieldManager: "alice"})
	if err != nil {
		t.Fatalf("apply widget: %v", err)
	}
	if n, _, _ := unstructured.NestedInt64(w.Object, "spec", "replicas"); n != 1 || managers(w) != "alice/Apply" {
		t.Errorf("applied widget: replicas %d managers %s", n, managers(w))
	}
	_, err = widgets.Apply(ctx, "w", widget("w", map[string]interface{}{"color": "blue"}), metav1.ApplyOptions{FieldManager: "bob"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), ".spec.color") {
		t.Errorf("conflicting widget apply: %v", err)
	}
	_, err = widgets.Apply(ctx, "w", widget("w", map[string]interface{}{"color": "green"}), metav1.ApplyOptions{FieldManager: "alice"})
	if !apierrors.IsInvalid(err) {
		t.Errorf("invalid widget apply: got %v, want 422", err)
	}
}
