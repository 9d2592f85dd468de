package registry

import (
	"reflect"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The tests drive each kind's strategy through these helpers, which find
// the strategy by the object's Go type (test objects carry no TypeMeta).

var testStrategies = sync.OnceValue(func() map[reflect.Type]*Resource {
	reg, err := New()
	if err != nil {
		panic(err)
	}
	m := map[reflect.Type]*Resource{}
	for _, r := range reg.All() {
		m[reflect.TypeOf(r.Strategy.New())] = r
	}
	return m
})

func resourceOf(obj runtime.Object) *Resource { return testStrategies()[reflect.TypeOf(obj)] }

func defaultObject(obj runtime.Object, opts Options) {
	if r := resourceOf(obj); r != nil {
		if p, ok := r.Strategy.(podStrategy); ok {
			p.opts = opts
			p.Default(obj)
			return
		}
		r.Default(obj)
	}
}

func prepareForCreate(obj runtime.Object) {
	if r := resourceOf(obj); r != nil {
		r.PrepareForCreate(obj)
	}
}

func validateObject(obj runtime.Object) field.ErrorList {
	if s, ok := obj.(*autoscalingv1.Scale); ok {
		return validateScale(s)
	}
	if r := resourceOf(obj); r != nil {
		return r.Validate(obj)
	}
	return nil
}

// validateObjectUpdate is what an update checks beyond validateObject.
func validateObjectUpdate(obj, old runtime.Object) field.ErrorList {
	errs := validateMetaUpdate(objectMetaOf(obj), objectMetaOf(old))
	if r := resourceOf(obj); r != nil && reflect.TypeOf(obj) == reflect.TypeOf(old) {
		errs = append(errs, r.Strategy.ValidateUpdate(obj, old)...)
	}
	return errs
}

func tableRowAt(obj runtime.Object, now time.Time) []interface{} {
	return resourceOf(obj).Strategy.TableRow(obj, now)
}

func tableColumns(gr schema.GroupResource) []metav1.TableColumnDefinition {
	for _, r := range testStrategies() {
		if r.GroupResource() == gr {
			return r.TableColumns()
		}
	}
	return nil
}
