package registry

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// leaseStrategy is coordination.k8s.io/v1 leases.
type leaseStrategy struct{ basics }

func (leaseStrategy) Info() *Info {
	return &Info{
		Group: "coordination.k8s.io", Version: "v1", Resource: "leases", Kind: "Lease", SingularName: "lease", Namespaced: true,
	}
}

func (leaseStrategy) New() runtime.Object     { return &coordinationv1.Lease{} }
func (leaseStrategy) NewList() runtime.Object { return &coordinationv1.LeaseList{} }

func (leaseStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*coordinationv1.Lease).Spec, old.(*coordinationv1.Lease).Spec)
}

func (leaseStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateLease(obj.(*coordinationv1.Lease))
}

func (leaseStrategy) TableColumns() []metav1.TableColumnDefinition { return leaseColumns() }
func (leaseStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return leaseCells(obj.(*coordinationv1.Lease), now)
}
