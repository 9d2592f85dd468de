package registry

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// cronJobStrategy is batch/v1 cronjobs.
type cronJobStrategy struct{ basics }

func (cronJobStrategy) Info() *Info {
	return &Info{
		Group: "batch", Version: "v1", Resource: "cronjobs", Kind: "CronJob", SingularName: "cronjob", Namespaced: true,
		ShortNames: []string{"cj"}, Categories: []string{"all"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (cronJobStrategy) New() runtime.Object     { return &batchv1.CronJob{} }
func (cronJobStrategy) NewList() runtime.Object { return &batchv1.CronJobList{} }

func (cronJobStrategy) PrepareForCreate(obj runtime.Object) {
	o := obj.(*batchv1.CronJob)
	o.Status, o.Generation = batchv1.CronJobStatus{}, 1
}

func (s cronJobStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (cronJobStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*batchv1.CronJob).Status = src.(*batchv1.CronJob).Status
}

func (cronJobStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*batchv1.CronJob).Spec, old.(*batchv1.CronJob).Spec)
}

func (cronJobStrategy) Default(obj runtime.Object) { defaultCronJob(obj.(*batchv1.CronJob)) }

func (cronJobStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateCronJob(obj.(*batchv1.CronJob))
}

func (cronJobStrategy) TableColumns() []metav1.TableColumnDefinition { return cronJobColumns() }
func (cronJobStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return cronJobCells(obj.(*batchv1.CronJob), now)
}
