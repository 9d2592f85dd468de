package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// endpointsStrategy is core/v1 endpoints.
type endpointsStrategy struct{ basics }

func (endpointsStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "endpoints", Kind: "Endpoints", SingularName: "endpoints", Namespaced: true,
		ShortNames: []string{"ep"},
	}
}

func (endpointsStrategy) New() runtime.Object     { return &corev1.Endpoints{} }
func (endpointsStrategy) NewList() runtime.Object { return &corev1.EndpointsList{} }

func (endpointsStrategy) Default(obj runtime.Object) { defaultEndpoints(obj.(*corev1.Endpoints)) }

func (endpointsStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateEndpoints(obj.(*corev1.Endpoints))
}

func (endpointsStrategy) TableColumns() []metav1.TableColumnDefinition { return endpointsColumns() }
func (endpointsStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return endpointsCells(obj.(*corev1.Endpoints), now)
}
