package registry

import (
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clusterRoleStrategy is rbac.authorization.k8s.io/v1 clusterroles.
type clusterRoleStrategy struct{ basics }

func (clusterRoleStrategy) Info() *Info {
	return &Info{
		Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles", Kind: "ClusterRole",
		SingularName: "clusterrole", Namespaced: false,
	}
}

func (clusterRoleStrategy) New() runtime.Object     { return &rbacv1.ClusterRole{} }
func (clusterRoleStrategy) NewList() runtime.Object { return &rbacv1.ClusterRoleList{} }

func (clusterRoleStrategy) Validate(obj runtime.Object) field.ErrorList {
	o := obj.(*rbacv1.ClusterRole)
	errs := validateMeta(&o.ObjectMeta, false, apimachineryvalidation.ValidateNameFunc(rbacName))
	errs = append(errs, validatePolicyRules(o.Rules, false, field.NewPath("rules"))...)
	errs = append(errs, validateAggregationRule(o.AggregationRule, field.NewPath("aggregationRule"))...)
	return errs
}

func (clusterRoleStrategy) TableColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{tableNameColumn(), tableColumn("Created At", "date", "Time the object was created.")}
}

func (clusterRoleStrategy) TableRow(obj runtime.Object, _ time.Time) []interface{} {
	o := obj.(*rbacv1.ClusterRole)
	return []interface{}{o.Name, o.CreationTimestamp.UTC().Format(time.RFC3339)}
}
