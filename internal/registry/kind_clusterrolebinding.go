package registry

import (
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clusterRoleBindingStrategy is rbac.authorization.k8s.io/v1 clusterrolebindings.
type clusterRoleBindingStrategy struct{ basics }

func (clusterRoleBindingStrategy) Info() *Info {
	return &Info{
		Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings", Kind: "ClusterRoleBinding",
		SingularName: "clusterrolebinding", Namespaced: false,
	}
}

func (clusterRoleBindingStrategy) New() runtime.Object     { return &rbacv1.ClusterRoleBinding{} }
func (clusterRoleBindingStrategy) NewList() runtime.Object { return &rbacv1.ClusterRoleBindingList{} }

func (clusterRoleBindingStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*rbacv1.ClusterRoleBinding)
	errs := validateMeta(&o.ObjectMeta, false, apimachineryvalidation.ValidateNameFunc(rbacName))
	errs = append(errs, validateRoleRef(o.RoleRef, false, field.NewPath("roleRef"))...)
	errs = append(errs, validateSubjects(o.Subjects, true, field.NewPath("subjects"))...)
	return errs
}

// ValidateUpdate: a binding's roleRef may not change; delete and recreate
// it instead.
func (clusterRoleBindingStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	if obj.(*rbacv1.ClusterRoleBinding).RoleRef != old.(*rbacv1.ClusterRoleBinding).RoleRef {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), obj.(*rbacv1.ClusterRoleBinding).RoleRef, "cannot change roleRef")}
	}
	return nil
}

func (clusterRoleBindingStrategy) TableColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Role", "string", "The role the binding grants."),
		tableAgeColumn(),
		tableWideColumn("Users", "string", "Users in the binding."),
		tableWideColumn("Groups", "string", "Groups in the binding."),
		tableWideColumn("ServiceAccounts", "string", "Service accounts in the binding."),
	}
}

func (clusterRoleBindingStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	o := obj.(*rbacv1.ClusterRoleBinding)
	users, groups, sas := subjectCells(o.Subjects)
	return []interface{}{o.Name, roleRefCell(o.RoleRef), tableAge(o.CreationTimestamp, now), users, groups, sas}
}
