package registry

import (
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// endpointSliceStrategy is discovery.k8s.io/v1 endpointslices.
type endpointSliceStrategy struct{ basics }

func (endpointSliceStrategy) Info() *Info {
	return &Info{
		Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices", Kind: "EndpointSlice", SingularName: "endpointslice", Namespaced: true,
	}
}

func (endpointSliceStrategy) New() runtime.Object     { return &discoveryv1.EndpointSlice{} }
func (endpointSliceStrategy) NewList() runtime.Object { return &discoveryv1.EndpointSliceList{} }

func (endpointSliceStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*discoveryv1.EndpointSlice)
	o.Generation = 1
}

func (endpointSliceStrategy) SpecChanged(obj, old runtime.Object) bool {
	o, p := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	return !equality.Semantic.DeepEqual([]interface{}{o.AddressType, o.Endpoints, o.Ports}, []interface{}{p.AddressType, p.Endpoints, p.Ports})
}

func (endpointSliceStrategy) Default(obj runtime.Object) {
	defaultEndpointSlice(obj.(*discoveryv1.EndpointSlice))
}

func (endpointSliceStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
}

func (endpointSliceStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	o := obj.(*discoveryv1.EndpointSlice)
	return apimachineryvalidation.ValidateImmutableField(o.AddressType, old.(*discoveryv1.EndpointSlice).AddressType, field.NewPath("addressType"))
}

func (endpointSliceStrategy) TableColumns() []metav1.TableColumnDefinition {
	return endpointSliceColumns()
}
func (endpointSliceStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return endpointSliceCells(obj.(*discoveryv1.EndpointSlice), now)
}
