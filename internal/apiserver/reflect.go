package apiserver

import (
	"reflect"

	"k8s.io/apimachinery/pkg/runtime"
)

// reflectField returns the named top-level field of a typed object.
func reflectField(obj runtime.Object, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName(name)
	return f, f.IsValid()
}
