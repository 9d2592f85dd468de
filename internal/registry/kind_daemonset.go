package registry

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// daemonSetStrategy is apps/v1 daemonsets.
type daemonSetStrategy struct{ basics }

func (daemonSetStrategy) Info() *Info {
	return &Info{
		Group: "apps", Version: "v1", Resource: "daemonsets", Kind: "DaemonSet", SingularName: "daemonset", Namespaced: true,
		ShortNames: []string{"ds"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (daemonSetStrategy) New() runtime.Object     { return &appsv1.DaemonSet{} }
func (daemonSetStrategy) NewList() runtime.Object { return &appsv1.DaemonSetList{} }

func (daemonSetStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*appsv1.DaemonSet)
	o.Status, o.Generation = appsv1.DaemonSetStatus{}, 1
}

func (s daemonSetStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (daemonSetStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*appsv1.DaemonSet).Status = src.(*appsv1.DaemonSet).Status
}

func (daemonSetStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*appsv1.DaemonSet).Spec, old.(*appsv1.DaemonSet).Spec)
}

func (daemonSetStrategy) Default(obj runtime.Object) { defaultDaemonSet(obj.(*appsv1.DaemonSet)) }

func (daemonSetStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateDaemonSet(obj.(*appsv1.DaemonSet))
}

func (daemonSetStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	o := obj.(*appsv1.DaemonSet)
	return validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.DaemonSet).Spec.Selector)
}

func (daemonSetStrategy) TableColumns() []metav1.TableColumnDefinition { return daemonSetColumns() }
func (daemonSetStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return daemonSetCells(obj.(*appsv1.DaemonSet), now)
}
