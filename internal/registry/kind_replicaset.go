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

// replicaSetStrategy is apps/v1 replicasets.
type replicaSetStrategy struct{ basics }

func (replicaSetStrategy) Info() *Info {
	return &Info{
		Group: "apps", Version: "v1", Resource: "replicasets", Kind: "ReplicaSet", SingularName: "replicaset", Namespaced: true,
		ShortNames: []string{"rs"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource(), scaleSubresource()},
	}
}

func (replicaSetStrategy) New() runtime.Object     { return &appsv1.ReplicaSet{} }
func (replicaSetStrategy) NewList() runtime.Object { return &appsv1.ReplicaSetList{} }

func (replicaSetStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*appsv1.ReplicaSet)
	o.Status, o.Generation = appsv1.ReplicaSetStatus{}, 1
}

func (s replicaSetStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (replicaSetStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*appsv1.ReplicaSet).Status = src.(*appsv1.ReplicaSet).Status
}

func (replicaSetStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*appsv1.ReplicaSet).Spec, old.(*appsv1.ReplicaSet).Spec)
}

func (replicaSetStrategy) Default(obj runtime.Object) { defaultReplicaSet(obj.(*appsv1.ReplicaSet)) }

func (replicaSetStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateReplicaSet(obj.(*appsv1.ReplicaSet))
}

func (replicaSetStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	o := obj.(*appsv1.ReplicaSet)
	return validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.ReplicaSet).Spec.Selector)
}

func (replicaSetStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	o := obj.(*appsv1.ReplicaSet)
	return newScale(o, o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector), nil
}

func (replicaSetStrategy) SetReplicas(obj runtime.Object, n int32) error {
	obj.(*appsv1.ReplicaSet).Spec.Replicas = &n
	return nil
}

func (replicaSetStrategy) TableColumns() []metav1.TableColumnDefinition { return replicaSetColumns() }
func (replicaSetStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return replicaSetCells(obj.(*appsv1.ReplicaSet), now)
}
