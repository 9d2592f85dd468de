package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// The custom-resource case: the same create, watch, get and list phases
// as the pods', on objects of a CRD with a structural schema (validation,
// a default, a CEL rule), beside the ConfigMap-sized built-in figures.

var (
	benchCRDGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	benchCRGVR  = schema.GroupVersionResource{Group: "bench.skiff.dev", Version: "v1", Resource: "items"}
)

func benchCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: "items.bench.skiff.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "bench.skiff.dev", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "items", Singular: "item", Kind: "Item"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": {
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"index":  {Type: "integer", Minimum: ptrFloat(0)},
							"color":  {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"red"`)}},
							"labels": {Type: "object", AdditionalProperties: &apiextensionsv1.JSONSchemaPropsOrBool{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}},
						},
						XValidations: apiextensionsv1.ValidationRules{{Rule: "self.index >= 0"}},
					}},
				}},
			}},
		},
	}
}

func ptrFloat(f float64) *float64 { return &f }

func benchItem(i int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "bench.skiff.dev/v1", "kind": "Item",
		"metadata": map[string]interface{}{"name": benchName(i), "labels": map[string]interface{}{"app": "bench", "shard": strconv.Itoa(i % 16)}},
		"spec":     map[string]interface{}{"index": int64(i), "labels": map[string]interface{}{"a": "b"}},
	}}
}

// loadCustom creates the CRD, then n custom objects, with the phases of load.
func loadCustom(ctx context.Context, cfg *rest.Config, o options) ([]result, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	crd, err := runtime.DefaultUnstructuredConverter.ToUnstructured(benchCRD())
	if err != nil {
		return nil, err
	}
	if _, err := dyn.Resource(benchCRDGVR).Create(ctx, &unstructured.Unstructured{Object: crd}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create CRD: %w", err)
	}
	items := dyn.Resource(benchCRGVR).Namespace(namespace)
	var initial *unstructured.UnstructuredList
	for deadline := time.Now().Add(10 * time.Second); ; {
		if initial, err = items.List(ctx, metav1.ListOptions{}); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("the custom resource was not served within 10 s: %w", err)
	}
	w, err := items.Watch(ctx, metav1.ListOptions{ResourceVersion: initial.GetResourceVersion()})
	if err != nil {
		return nil, fmt.Errorf("watch items: %w", err)
	}
	n := o.custom
	starts := make([]atomic.Int64, n)
	delivery := make([]time.Duration, 0, n)
	var seen atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		got := make([]bool, n)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			i, ok := benchIndex(u.GetName())
			if !ok || i >= n || got[i] {
				continue
			}
			got[i] = true
			delivery = append(delivery, time.Since(time.Unix(0, starts[i].Load())))
			if seen.Add(1) == int64(n) {
				return
			}
		}
	}()
	create := parallel(ctx, n, o.workers, func(ctx context.Context, i int) error {
		starts[i].Store(time.Now().UnixNano())
		_, err := items.Create(ctx, benchItem(i), metav1.CreateOptions{})
		return err
	})
	create.name = "create custom object"
	var errs []error
	select {
	case <-watchDone:
	case <-time.After(deliveryGrace):
		errs = append(errs, fmt.Errorf("the watch delivered %d of %d custom objects", seen.Load(), n))
	}
	w.Stop()
	<-watchDone
	deliv := result{name: "watch delivery (custom)", latencies: delivery, note: "create call start → ADDED event"}
	get := parallel(ctx, n, o.workers, func(ctx context.Context, i int) error {
		_, err := items.Get(ctx, benchName(i), metav1.GetOptions{})
		return err
	})
	get.name = "get custom object"
	list := result{name: "list custom objects"}
	listStart := time.Now()
	for i := 0; i < o.lists && ctx.Err() == nil; i++ {
		t0 := time.Now()
		l, err := items.List(ctx, metav1.ListOptions{})
		if err != nil {
			list.errors++
			list.note = err.Error()
			continue
		}
		list.latencies = append(list.latencies, time.Since(t0))
		list.note = fmt.Sprintf("%d items per list", len(l.Items))
	}
	list.wall = time.Since(listStart)
	results := []result{create, deliv, get, list}
	for _, r := range results {
		if r.errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d errors (%s)", r.name, r.errors, r.note))
		}
	}
	return results, errors.Join(errs...)
}
