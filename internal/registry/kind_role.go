package registry

import (
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// roleStrategy is rbac.authorization.k8s.io/v1 roles.
type roleStrategy struct{ basics }

func (roleStrategy) Info() *Info {
	return &Info{
		Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles", Kind: "Role",
		SingularName: "role", Namespaced: true,
	}
}

func (roleStrategy) New() runtime.Object     { return &rbacv1.Role{} }
func (roleStrategy) NewList() runtime.Object { return &rbacv1.RoleList{} }

func (roleStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*rbacv1.Role)
	errs := validateMeta(&o.ObjectMeta, true, apimachineryvalidation.ValidateNameFunc(rbacName))
	errs = append(errs, validatePolicyRules(o.Rules, true, field.NewPath("rules"))...)
	return errs
}

func (roleStrategy) TableColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{tableNameColumn(), tableColumn("Created At", "date", "Time the object was created.")}
}

func (roleStrategy) TableRow(obj runtime.Object, _ time.Time) []interface{} {
	o := obj.(*rbacv1.Role)
	return []interface{}{o.Name, o.CreationTimestamp.UTC().Format(time.RFC3339)}
}
