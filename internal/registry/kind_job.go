package registry

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// jobStrategy is batch/v1 jobs.
type jobStrategy struct{ basics }

func (jobStrategy) Info() *Info {
	return &Info{
		Group: "batch", Version: "v1", Resource: "jobs", Kind: "Job", SingularName: "job", Namespaced: true,
		Categories:   []string{"all"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (jobStrategy) New() runtime.Object     { return &batchv1.Job{} }
func (jobStrategy) NewList() runtime.Object { return &batchv1.JobList{} }

func (jobStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*batchv1.Job)
	o.Status, o.Generation = batchv1.JobStatus{}, 1
}

func (s jobStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (jobStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*batchv1.Job).Status = src.(*batchv1.Job).Status
}

func (jobStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*batchv1.Job).Spec, old.(*batchv1.Job).Spec)
}

func (jobStrategy) Default(obj runtime.Object) { defaultJob(obj.(*batchv1.Job)) }

func (jobStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateJob(obj.(*batchv1.Job))
}

func (jobStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateJobUpdate(obj.(*batchv1.Job), old.(*batchv1.Job))
}

func (jobStrategy) SelectableFields(obj runtime.Object) fields.Set {
	j := obj.(*batchv1.Job)
	s := "0"
	if j.Status.Succeeded > 0 {
		s = fmt.Sprint(j.Status.Succeeded)
	}
	return fields.Set{"status.successful": s}
}

func (jobStrategy) TableColumns() []metav1.TableColumnDefinition { return jobColumns() }
func (jobStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return jobCells(obj.(*batchv1.Job), now)
}
