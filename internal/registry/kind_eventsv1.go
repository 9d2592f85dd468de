package registry

import (
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventsV1Strategy is events.k8s.io/v1 events.
type eventsV1Strategy struct{ basics }

func (eventsV1Strategy) Info() *Info {
	return &Info{
		Group: "events.k8s.io", Version: "v1", Resource: "events", Kind: "Event", SingularName: "event", Namespaced: true,
		ShortNames: []string{"ev"},
		Expires:    true,
	}
}

func (eventsV1Strategy) New() runtime.Object     { return &eventsv1.Event{} }
func (eventsV1Strategy) NewList() runtime.Object { return &eventsv1.EventList{} }

func (eventsV1Strategy) Validate(obj runtime.Object) field.ErrorList {
	return validateEventsV1Event(obj.(*eventsv1.Event))
}

func (eventsV1Strategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateEventsV1EventUpdate(obj.(*eventsv1.Event), old.(*eventsv1.Event))
}

func (eventsV1Strategy) TableColumns() []metav1.TableColumnDefinition { return eventColumns() }
func (eventsV1Strategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return eventsV1Cells(obj.(*eventsv1.Event), now)
}
