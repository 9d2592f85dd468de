package apiserver_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"skiff/internal/server/servertest"
)

var (
	crdGVR    = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgetGVR = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
)

// widgetCRD is a namespaced CRD with a schema that exercises validation,
// defaulting, pruning, a CEL rule, status and scale.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	min1 := float64(0)
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: "widgets.example.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "example.com",
			Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "widgets", Singular: "widget", Kind: "Widget", ShortNames: []string{"wd"}, Categories: []string{"all"},
			},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{
					Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
					Scale: &apiextensionsv1.CustomResourceSubresourceScale{
						SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas",
					},
				},
				AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
					{Name: "Color", Type: "string", JSONPath: ".spec.color"},
					{Name: "Replicas", Type: "integer", JSONPath: ".spec.replicas"},
				},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {
							Type:     "object",
							Required: []string{"color"},
							Properties: map[string]apiextensionsv1.JSONSchemaProps{
								"color":    {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"red"`)}, {Raw: []byte(`"blue"`)}}},
								"replicas": {Type: "integer", Minimum: &min1, Default: &apiextensionsv1.JSON{Raw: []byte(`1`)}},
								"size":     {Type: "integer"},
								"maxSize":  {Type: "integer"},
							},
							XValidations: apiextensionsv1.ValidationRules{{
								Rule: "!has(self.size) || !has(self.maxSize) || self.size <= self.maxSize", Message: "size must not exceed maxSize",
							}},
						},
						"status": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"replicas": {Type: "integer"},
						}},
					},
				}},
			}},
		},
	}
}

func toUnstructured(t *testing.T, obj interface{}) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

func widget(name string, spec map[string]interface{}) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]interface{}{"name": name},
		"spec":     spec,
	}}
}

func TestCustomResources(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	ctx := ctxT(t)
	dyn, err := dynamic.NewForConfig(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	crd, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, widgetCRD()), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	if !strings.Contains(fmt.Sprint(conds), "Established") {
		t.Errorf("conditions %v: want Established", conds)
	}
	disc := s.Client(t).Discovery()
	servertest.Eventually(t, 5*time.Second, "widgets in discovery", func() error {
		list, err := disc.ServerResourcesForGroupVersion("example.com/v1")
		if err != nil {
			return err
		}
		for _, r := range list.APIResources {
			if r.Name == "widgets" && r.Kind == "Widget" && r.Namespaced && strings.Join(r.ShortNames, ",") == "wd" {
				return nil
			}
		}
		return fmt.Errorf("discovery says %+v", list.APIResources)
	})

	widgets := dyn.Resource(widgetGVR).Namespace("default")
	t.Run("defaulting-and-pruning", func(t *testing.T) {
		w, err := widgets.Create(ctx, widget("a", map[string]interface{}{"color": "red", "unknown": "x"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, _, _ := unstructured.NestedInt64(w.Object, "spec", "replicas"); n != 1 {
			t.Errorf("spec.replicas = %d, want the default 1", n)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(w.Object, "spec", "unknown"); found {
			t.Errorf("spec.unknown was kept: %v", w.Object["spec"])
		}
		if w.GetGeneration() != 1 {
			t.Errorf("generation %d, want 1", w.GetGeneration())
		}
		_, err = widgets.Create(ctx, widget("strict", map[string]interface{}{"color": "red", "colr": "x"}), metav1.CreateOptions{FieldValidation: "Strict"})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.colr"`) {
			t.Errorf("Strict with an unknown field: got %v, want 400 naming spec.colr", err)
		}
	})
	t.Run("validation", func(t *testing.T) {
		_, err := widgets.Create(ctx, widget("bad", map[string]interface{}{"color": "green", "replicas": -1}), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.color") || !strings.Contains(err.Error(), "spec.replicas") {
			t.Fatalf("got %v, want 422 naming spec.color and spec.replicas", err)
		}
		_, err = widgets.Create(ctx, widget("bad", map[string]interface{}{"replicas": 2}), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.color: Required value") {
			t.Fatalf("got %v, want spec.color required", err)
		}
		_, err = widgets.Create(ctx, widget("bad", map[string]interface{}{"color": "red", "size": 5, "maxSize": 3}), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "size must not exceed maxSize") {
			t.Fatalf("got %v, want the CEL rule's message", err)
		}
		if _, err := widgets.Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("a refused object was stored: %v", err)
		}
	})
	t.Run("status-and-scale", func(t *testing.T) {
		w, err := widgets.Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(w.Object, int64(3), "status", "replicas")
		_ = unstructured.SetNestedField(w.Object, "blue", "spec", "color")
		w, err = widgets.UpdateStatus(ctx, w, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c, _, _ := unstructured.NestedString(w.Object, "spec", "color"); c != "red" {
			t.Errorf("a status write changed spec.color to %q", c)
		}
		if n, _, _ := unstructured.NestedInt64(w.Object, "status", "replicas"); n != 3 {
			t.Errorf("status.replicas = %d, want 3", n)
		}
		patch := []byte(`{"spec":{"replicas":5}}`)
		sc, err := widgets.Patch(ctx, "a", types.MergePatchType, patch, metav1.PatchOptions{}, "scale")
		if err != nil {
			t.Fatal(err)
		}
		if n, _, _ := unstructured.NestedInt64(sc.Object, "spec", "replicas"); n != 5 {
			t.Errorf("scale spec.replicas = %d, want 5", n)
		}
		if n, _, _ := unstructured.NestedInt64(sc.Object, "status", "replicas"); n != 3 {
			t.Errorf("scale status.replicas = %d, want 3", n)
		}
		w, _ = widgets.Get(ctx, "a", metav1.GetOptions{})
		if n, _, _ := unstructured.NestedInt64(w.Object, "spec", "replicas"); n != 5 || w.GetGeneration() != 2 {
			t.Errorf("after scale: replicas %d generation %d, want 5 and 2", n, w.GetGeneration())
		}
	})
	t.Run("table", func(t *testing.T) {
		raw, err := s.Client(t).CoreV1().RESTClient().Get().AbsPath("/apis/example.com/v1/namespaces/default/widgets").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var table metav1.Table
		if err := json.Unmarshal(raw, &table); err != nil {
			t.Fatal(err)
		}
		if len(table.ColumnDefinitions) != 3 || table.ColumnDefinitions[1].Name != "Color" || len(table.Rows) != 1 ||
			fmt.Sprint(table.Rows[0].Cells) != "[a red 5]" {
			t.Errorf("table %+v rows %+v", table.ColumnDefinitions, table.Rows)
		}
	})
	t.Run("defaults-on-read-and-versions", func(t *testing.T) {
		cur, err := dyn.Resource(crdGVR).Get(ctx, "widgets.example.com", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		def := widgetCRD()
		def.ResourceVersion = cur.GetResourceVersion()
		spec := def.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		spec.Properties["shape"] = apiextensionsv1.JSONSchemaProps{Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"round"`)}}
		def.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		v2 := *def.Spec.Versions[0].DeepCopy()
		v2.Name, v2.Storage = "v2", false
		def.Spec.Versions = append(def.Spec.Versions, v2)
		if _, err := dyn.Resource(crdGVR).Update(ctx, toUnstructured(t, def), metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 5*time.Second, "the new default on read, and v2 served", func() error {
			w, err := widgets.Get(ctx, "a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if shape, _, _ := unstructured.NestedString(w.Object, "spec", "shape"); shape != "round" {
				return fmt.Errorf("spec.shape = %q, want the new default", shape)
			}
			w2, err := dyn.Resource(schema.GroupVersionResource{Group: "example.com", Version: "v2", Resource: "widgets"}).Namespace("default").Get(ctx, "a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if w2.GetAPIVersion() != "example.com/v2" {
				return fmt.Errorf("through v2: apiVersion %s", w2.GetAPIVersion())
			}
			return nil
		})
	})
	t.Run("patch-and-watch", func(t *testing.T) {
		if _, err := widgets.Patch(ctx, "a", types.StrategicMergePatchType, []byte(`{"spec":{"color":"blue"}}`), metav1.PatchOptions{}); !apierrors.IsUnsupportedMediaType(err) {
			t.Errorf("strategic merge patch: got %v, want 415", err)
		}
		w, err := widgets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=a"})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if _, err := widgets.Patch(ctx, "a", types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/color","value":"blue"}]`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-w.ResultChan():
				u := ev.Object.(*unstructured.Unstructured)
				if c, _, _ := unstructured.NestedString(u.Object, "spec", "color"); c == "blue" {
					return
				}
			case <-deadline:
				t.Fatal("no watch event with color blue")
			}
		}
	})
	t.Run("bad-crds", func(t *testing.T) {
		clash := widgetCRD()
		clash.Name, clash.Spec.Group = "pods.core.example", "core.example"
		clash.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "pods", Kind: "Pod"}
		if _, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, clash), metav1.CreateOptions{}); err != nil {
			t.Fatalf("a CRD in another group with a built-in's plural must be accepted: %v", err)
		}
		dup := widgetCRD()
		dup.Name = "gadgets.example.com"
		dup.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Kind: "Widget"}
		_, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, dup), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.names.kind") {
			t.Errorf("kind clash: got %v, want 422 naming spec.names.kind", err)
		}
		badCEL := widgetCRD()
		badCEL.Name = "things.example.com"
		badCEL.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "things", Kind: "Thing"}
		badCEL.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].XValidations[0].Rule = "self.nosuchfield >"
		_, err = dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, badCEL), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "x-kubernetes-validations") {
			t.Errorf("bad CEL rule: got %v, want 422 naming x-kubernetes-validations", err)
		}
		nonStructural := widgetCRD()
		nonStructural.Name = "blobs.example.com"
		nonStructural.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "blobs", Kind: "Blob"}
		spec := nonStructural.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		spec.Type = ""
		nonStructural.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
		_, err = dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, nonStructural), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "type") {
			t.Errorf("non-structural schema: got %v, want 422", err)
		}
		for _, name := range []string{"gadgets.example.com", "things.example.com", "blobs.example.com"} {
			if _, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused CRD %s was stored: %v", name, err)
			}
		}
	})
	t.Run("delete-crd-deletes-objects", func(t *testing.T) {
		if err := dyn.Resource(crdGVR).Delete(ctx, "widgets.example.com", metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 20*time.Second, "CRD gone", func() error {
			if _, err := dyn.Resource(crdGVR).Get(ctx, "widgets.example.com", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("CRD still there: %v", err)
			}
			return nil
		})
		servertest.Eventually(t, 5*time.Second, "widgets gone from discovery", func() error {
			_, err := s.Client(t).Discovery().ServerResourcesForGroupVersion("example.com/v1")
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("discovery: %v", err)
		})
		// A new CRD of the same name starts empty.
		if _, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, widgetCRD()), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 5*time.Second, "widgets served again, empty", func() error {
			list, err := widgets.List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			if len(list.Items) != 0 {
				return fmt.Errorf("%d old widgets came back", len(list.Items))
			}
			return nil
		})
	})
}

// TestAggregatedDiscovery: client-go's discovery (which asks for the
// aggregated documents first) sees built-in and custom resources with their
// subresources.
func TestAggregatedDiscovery(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	ctx := ctxT(t)
	raw, err := s.Client(t).CoreV1().RESTClient().Get().AbsPath("/apis").
		SetHeader("Accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"kind":"APIGroupDiscoveryList"`) || !strings.Contains(string(raw), `"resource":"deployments"`) ||
		!strings.Contains(string(raw), `"subresource":"scale"`) {
		t.Fatalf("aggregated /apis: %.600s", raw)
	}
	dyn, err := dynamic.NewForConfig(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(crdGVR).Create(ctx, toUnstructured(t, widgetCRD()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 5*time.Second, "widgets in discovery", func() error {
		_, lists, err := s.Client(t).Discovery().ServerGroupsAndResources()
		if err != nil {
			return err
		}
		for _, l := range lists {
			for _, r := range l.APIResources {
				if l.GroupVersion == "example.com/v1" && r.Name == "widgets/scale" {
					return nil
				}
			}
		}
		return fmt.Errorf("no widgets/scale in discovery")
	})
}
