package registry

import (
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// roleBindingStrategy is rbac.authorization.k8s.io/v1 rolebindings.
type roleBindingStrategy struct{ basics }

func (roleBindingStrategy) Info() *Info {
	return &Info{
		Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings", Kind: "RoleBinding",
		SingularName: "rolebinding", Namespaced: true,
	}
}

func (roleBindingStrategy) New() runtime.Object     { return &rbacv1.RoleBinding{} }
func (roleBindingStrategy) NewList() runtime.Object { return &rbacv1.RoleBindingList{} }

func (roleBindingStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*rbacv1.RoleBinding)
	errs := validateMeta(&o.ObjectMeta, true, apimachineryvalidation.ValidateNameFunc(rbacName))
	errs = append(errs, validateRoleRef(o.RoleRef, true, field.NewPath("roleRef"))...)
	errs = append(errs, validateSubjects(o.Subjects, false, field.NewPath("subjects"))...)
	return errs
}

// ValidateUpdate: a binding's roleRef may not change; delete and recreate
// it instead.
func (roleBindingStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	if obj.(*rbacv1.RoleBinding).RoleRef != old.(*rbacv1.RoleBinding).RoleRef {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), obj.(*rbacv1.RoleBinding).RoleRef, "cannot change roleRef")}
	}
	return nil
}

func (roleBindingStrategy) TableColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Role", "string", "The role the binding grants."),
		tableAgeColumn(),
		tableWideColumn("Users", "string", "Users in the binding."),
		tableWideColumn("Groups", "string", "Groups in the binding."),
		tableWideColumn("ServiceAccounts", "string", "Service accounts in the binding."),
	}
}

func (roleBindingStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	o := obj.(*rbacv1.RoleBinding)
	users, groups, sas := subjectCells(o.Subjects)
	return []interface{}{o.Name, roleRefCell(o.RoleRef), tableAge(o.CreationTimestamp, now), users, groups, sas}
}
