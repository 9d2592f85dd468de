package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// persistentVolumeStrategy is core/v1 persistentvolumes.
type persistentVolumeStrategy struct{ basics }

func (persistentVolumeStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "persistentvolumes", Kind: "PersistentVolume", SingularName: "persistentvolume", Namespaced: false,
		ShortNames:   []string{"pv"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (persistentVolumeStrategy) New() runtime.Object     { return &corev1.PersistentVolume{} }
func (persistentVolumeStrategy) NewList() runtime.Object { return &corev1.PersistentVolumeList{} }

func (persistentVolumeStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*corev1.PersistentVolume)
	preparePersistentVolumeForCreate(o)
}

func (s persistentVolumeStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (persistentVolumeStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.PersistentVolume).Status = src.(*corev1.PersistentVolume).Status
}

func (persistentVolumeStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.PersistentVolume).Spec, old.(*corev1.PersistentVolume).Spec)
}

func (persistentVolumeStrategy) Default(obj runtime.Object) {
	defaultPersistentVolume(obj.(*corev1.PersistentVolume))
}

func (persistentVolumeStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validatePersistentVolume(obj.(*corev1.PersistentVolume))
}

func (persistentVolumeStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validatePersistentVolumeUpdate(obj.(*corev1.PersistentVolume), old.(*corev1.PersistentVolume))
}

func (persistentVolumeStrategy) TableColumns() []metav1.TableColumnDefinition {
	return persistentVolumeColumns()
}
func (persistentVolumeStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return persistentVolumeCells(obj.(*corev1.PersistentVolume), now)
}
