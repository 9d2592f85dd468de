package registry

import (
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// basics gives a strategy the behaviour of a kind with no rules of its
// own; each kind embeds it and overrides what it has.
type basics struct{}

func (basics) PrepareForCreate(runtime.Object)                        {}
func (basics) PrepareForUpdate(obj, old runtime.Object)               {}
func (basics) Default(runtime.Object)                                 {}
func (basics) ValidateUpdate(obj, old runtime.Object) field.ErrorList { return nil }
func (basics) SelectableFields(runtime.Object) fields.Set             { return nil }
func (basics) TableColumns() []metav1.TableColumnDefinition           { return defaultColumns() }
func (basics) TableRow(obj runtime.Object, _ time.Time) []interface{} { return defaultRow(obj) }

// Subresource lists shared by several kinds.
var statusVerbs = []string{"get", "patch", "update"}

func statusSubresource() Subresource { return Subresource{Name: "status", Verbs: statusVerbs} }

func scaleSubresource() Subresource {
	return Subresource{Name: "scale", Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: statusVerbs}
}

// newScale builds the autoscaling/v1 Scale of a workload.
func newScale(m metav1.Object, specReplicas *int32, statusReplicas int32, sel *metav1.LabelSelector) *autoscalingv1.Scale {
	s := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Status: autoscalingv1.ScaleStatus{Replicas: statusReplicas},
	}
	if specReplicas != nil {
		s.Spec.Replicas = *specReplicas
	}
	if sel != nil {
		if ls, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			s.Status.Selector = ls.String()
		}
	}
	return s
}

// ValidateScale checks a Scale written to a scale subresource.
func ValidateScale(s *autoscalingv1.Scale) field.ErrorList { return validateScale(s) }
