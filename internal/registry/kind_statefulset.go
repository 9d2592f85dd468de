package registry

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// statefulSetStrategy is apps/v1 statefulsets.
type statefulSetStrategy struct{ basics }

func (statefulSetStrategy) Info() *Info {
	return &Info{
		Group: "apps", Version: "v1", Resource: "statefulsets", Kind: "StatefulSet", SingularName: "statefulset", Namespaced: true,
		ShortNames: []string{"sts"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource(), scaleSubresource()},
	}
}

func (statefulSetStrategy) New() runtime.Object     { return &appsv1.StatefulSet{} }
func (statefulSetStrategy) NewList() runtime.Object { return &appsv1.StatefulSetList{} }

func (statefulSetStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*appsv1.StatefulSet)
	o.Status, o.Generation = appsv1.StatefulSetStatus{}, 1
}

func (s statefulSetStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (statefulSetStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*appsv1.StatefulSet).Status = src.(*appsv1.StatefulSet).Status
}

func (statefulSetStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*appsv1.StatefulSet).Spec, old.(*appsv1.StatefulSet).Spec)
}

func (statefulSetStrategy) Default(obj runtime.Object) { defaultStatefulSet(obj.(*appsv1.StatefulSet)) }

func (statefulSetStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateStatefulSet(obj.(*appsv1.StatefulSet))
}

func (statefulSetStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateStatefulSetUpdate(obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet))
}

func (statefulSetStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	o := obj.(*appsv1.StatefulSet)
	return newScale(o, o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector), nil
}

func (statefulSetStrategy) SetReplicas(obj runtime.Object, n int32) error {
	obj.(*appsv1.StatefulSet).Spec.Replicas = &n
	return nil
}

func (statefulSetStrategy) TableColumns() []metav1.TableColumnDefinition { return statefulSetColumns() }
func (statefulSetStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return statefulSetCells(obj.(*appsv1.StatefulSet), now)
}
