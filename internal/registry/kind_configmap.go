package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// configMapStrategy is core/v1 configmaps.
type configMapStrategy struct{ basics }

func (configMapStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "configmaps", Kind: "ConfigMap", SingularName: "configmap", Namespaced: true,
		ShortNames: []string{"cm"},
	}
}

func (configMapStrategy) New() runtime.Object     { return &corev1.ConfigMap{} }
func (configMapStrategy) NewList() runtime.Object { return &corev1.ConfigMapList{} }

func (configMapStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateConfigMap(obj.(*corev1.ConfigMap))
}

func (configMapStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateConfigMapUpdate(obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap))
}

func (configMapStrategy) TableColumns() []metav1.TableColumnDefinition { return configMapColumns() }
func (configMapStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return configMapCells(obj.(*corev1.ConfigMap), now)
}
