package registry

import (
	"time"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// storageClassStrategy is storage.k8s.io/v1 storageclasses.
type storageClassStrategy struct{ basics }

func (storageClassStrategy) Info() *Info {
	return &Info{
		Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses", Kind: "StorageClass", SingularName: "storageclass", Namespaced: false,
		ShortNames: []string{"sc"},
	}
}

func (storageClassStrategy) New() runtime.Object     { return &storagev1.StorageClass{} }
func (storageClassStrategy) NewList() runtime.Object { return &storagev1.StorageClassList{} }

func (storageClassStrategy) Default(obj runtime.Object) {
	defaultStorageClass(obj.(*storagev1.StorageClass))
}

func (storageClassStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateStorageClass(obj.(*storagev1.StorageClass))
}

func (storageClassStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateStorageClassUpdate(obj.(*storagev1.StorageClass), old.(*storagev1.StorageClass))
}

func (storageClassStrategy) TableColumns() []metav1.TableColumnDefinition {
	return storageClassColumns()
}
func (storageClassStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return storageClassCells(obj.(*storagev1.StorageClass), now)
}
