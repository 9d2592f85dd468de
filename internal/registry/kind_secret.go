package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// secretStrategy is core/v1 secrets.
type secretStrategy struct{ basics }

func (secretStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "secrets", Kind: "Secret", SingularName: "secret", Namespaced: true,
	}
}

func (secretStrategy) New() runtime.Object     { return &corev1.Secret{} }
func (secretStrategy) NewList() runtime.Object { return &corev1.SecretList{} }

func (secretStrategy) Default(obj runtime.Object) { defaultSecret(obj.(*corev1.Secret)) }

func (secretStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateSecret(obj.(*corev1.Secret))
}

func (secretStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateSecretUpdate(obj.(*corev1.Secret), old.(*corev1.Secret))
}

func (secretStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
}

func (secretStrategy) TableColumns() []metav1.TableColumnDefinition { return secretColumns() }
func (secretStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return secretCells(obj.(*corev1.Secret), now)
}
