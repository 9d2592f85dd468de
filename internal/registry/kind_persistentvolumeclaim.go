package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// persistentVolumeClaimStrategy is core/v1 persistentvolumeclaims.
type persistentVolumeClaimStrategy struct{ basics }

func (persistentVolumeClaimStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "persistentvolumeclaims", Kind: "PersistentVolumeClaim", SingularName: "persistentvolumeclaim", Namespaced: true,
		ShortNames:   []string{"pvc"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (persistentVolumeClaimStrategy) New() runtime.Object { return &corev1.PersistentVolumeClaim{} }
func (persistentVolumeClaimStrategy) NewList() runtime.Object {
	return &corev1.PersistentVolumeClaimList{}
}

func (persistentVolumeClaimStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*corev1.PersistentVolumeClaim)
	o.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
}

func (s persistentVolumeClaimStrategy) PrepareForUpdate(obj, old runtime.Object) {
	s.CopyStatus(obj, old)
}

func (persistentVolumeClaimStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.PersistentVolumeClaim).Status = src.(*corev1.PersistentVolumeClaim).Status
}

func (persistentVolumeClaimStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.PersistentVolumeClaim).Spec, old.(*corev1.PersistentVolumeClaim).Spec)
}

func (persistentVolumeClaimStrategy) Default(obj runtime.Object) {
	defaultPersistentVolumeClaim(obj.(*corev1.PersistentVolumeClaim))
}

func (persistentVolumeClaimStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validatePersistentVolumeClaim(obj.(*corev1.PersistentVolumeClaim))
}

func (persistentVolumeClaimStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validatePersistentVolumeClaimUpdate(obj.(*corev1.PersistentVolumeClaim), old.(*corev1.PersistentVolumeClaim))
}

func (persistentVolumeClaimStrategy) TableColumns() []metav1.TableColumnDefinition {
	return persistentVolumeClaimColumns()
}
func (persistentVolumeClaimStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return persistentVolumeClaimCells(obj.(*corev1.PersistentVolumeClaim), now)
}
