package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventStrategy is core/v1 events.
type eventStrategy struct{ basics }

func (eventStrategy) Info() *Info {
	return &Info{
		Group: "", Version: "v1", Resource: "events", Kind: "Event", SingularName: "event", Namespaced: true,
		ShortNames: []string{"ev"},
		Expires:    true,
	}
}

func (eventStrategy) New() runtime.Object     { return &corev1.Event{} }
func (eventStrategy) NewList() runtime.Object { return &corev1.EventList{} }

func (eventStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateCoreEvent(obj.(*corev1.Event))
}

func (eventStrategy) SelectableFields(obj runtime.Object) fields.Set {
	e := obj.(*corev1.Event)
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

func (eventStrategy) TableColumns() []metav1.TableColumnDefinition { return eventColumns() }
func (eventStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return coreEventCells(obj.(*corev1.Event), now)
}
