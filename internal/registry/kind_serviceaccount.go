package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// serviceAccountStrategy is core/v1 serviceaccounts.
type serviceAccountStrategy struct{ basics }

func (serviceAccountStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "serviceaccounts", Kind: "ServiceAccount", SingularName: "serviceaccount", Namespaced: true,
		ShortNames: []string{"sa"},
	}
}

func (serviceAccountStrategy) New() runtime.Object     { return &corev1.ServiceAccount{} }
func (serviceAccountStrategy) NewList() runtime.Object { return &corev1.ServiceAccountList{} }

func (serviceAccountStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateServiceAccount(obj.(*corev1.ServiceAccount))
}

func (serviceAccountStrategy) TableColumns() []metav1.TableColumnDefinition {
	return serviceAccountColumns()
}
func (serviceAccountStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return serviceAccountCells(obj.(*corev1.ServiceAccount), now)
}
