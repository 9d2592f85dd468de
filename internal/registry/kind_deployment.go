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

// deploymentStrategy is apps/v1 deployments.
type deploymentStrategy struct{ basics }

func (deploymentStrategy) Info() *Info {
	return &Info{
		Group: "apps", Version: "v1", Resource: "deployments", Kind: "Deployment", SingularName: "deployment", Namespaced: true,
		ShortNames: []string{"deploy"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource(), scaleSubresource()},
	}
}

func (deploymentStrategy) New() runtime.Object     { return &appsv1.Deployment{} }
func (deploymentStrategy) NewList() runtime.Object { return &appsv1.DeploymentList{} }

func (deploymentStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*appsv1.Deployment)
	o.Status, o.Generation = appsv1.DeploymentStatus{}, 1
}

func (s deploymentStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (deploymentStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*appsv1.Deployment).Status = src.(*appsv1.Deployment).Status
}

func (deploymentStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*appsv1.Deployment).Spec, old.(*appsv1.Deployment).Spec)
}

func (deploymentStrategy) Default(obj runtime.Object) { defaultDeployment(obj.(*appsv1.Deployment)) }

func (deploymentStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateDeployment(obj.(*appsv1.Deployment))
}

func (deploymentStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	o := obj.(*appsv1.Deployment)
	return validateSelectorUpdate(o.Spec.Selector, old.(*appsv1.Deployment).Spec.Selector)
}

func (deploymentStrategy) Scale(obj runtime.Object) (*autoscalingv1.Scale, error) {
	o := obj.(*appsv1.Deployment)
	return newScale(o, o.Spec.Replicas, o.Status.Replicas, o.Spec.Selector), nil
}

func (deploymentStrategy) SetReplicas(obj runtime.Object, n int32) error {
	obj.(*appsv1.Deployment).Spec.Replicas = &n
	return nil
}

func (deploymentStrategy) TableColumns() []metav1.TableColumnDefinition { return deploymentColumns() }
func (deploymentStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return deploymentCells(obj.(*appsv1.Deployment), now)
}
