package registry

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceStrategy is core/v1 namespaces. A namespace being deleted is
// Terminating until the namespace controller has emptied it and removed
// its spec.finalizers through namespaces/<name>/finalize.
type namespaceStrategy struct{ basics }

func (namespaceStrategy) Info() *Info {
	return &Info{
		Version: "v1", Resource: "namespaces", Kind: "Namespace", SingularName: "namespace",
		ShortNames: []string{"ns"},
		Subresources: []Subresource{
			statusSubresource(),
			{Name: "finalize", Verbs: []string{"update"}},
		},
	}
}

func (namespaceStrategy) New() runtime.Object     { return &corev1.Namespace{} }
func (namespaceStrategy) NewList() runtime.Object { return &corev1.NamespaceList{} }

func (namespaceStrategy) PrepareForCreate(obj runtime.Object) {
	prepareNamespaceForCreate(obj.(*corev1.Namespace))
}

func (s namespaceStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }
func (namespaceStrategy) Default(obj runtime.Object)                 { defaultNamespace(obj.(*corev1.Namespace)) }
func (namespaceStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateNamespace(obj.(*corev1.Namespace))
}

func (namespaceStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.Namespace).Status = src.(*corev1.Namespace).Status
}

func (namespaceStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.Namespace).Spec, old.(*corev1.Namespace).Spec)
}

func (namespaceStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
}

func (namespaceStrategy) TableColumns() []metav1.TableColumnDefinition { return namespaceColumns() }
func (namespaceStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return namespaceCells(obj.(*corev1.Namespace), now)
}

// DeletionHeld: spec.finalizers hold a namespace as metadata.finalizers do.
func (namespaceStrategy) DeletionHeld(obj runtime.Object) bool {
	return len(obj.(*corev1.Namespace).Spec.Finalizers) > 0
}

func (namespaceStrategy) MarkDeleting(obj runtime.Object) {
	obj.(*corev1.Namespace).Status.Phase = corev1.NamespaceTerminating
}

// Action serves namespaces/<name>/finalize: it sets spec.finalizers.
func (namespaceStrategy) Action(sub string) (*Action, bool) {
	if sub != "finalize" {
		return nil, false
	}
	return &Action{
		Verb:     "update",
		NewBody:  func() runtime.Object { return &corev1.Namespace{} },
		BodyKind: corev1.SchemeGroupVersion.WithKind("Namespace"),
		Update: func(body, cur runtime.Object) (runtime.Object, error) {
			ns := cur.(*corev1.Namespace)
			ns.Spec.Finalizers = body.(*corev1.Namespace).Spec.Finalizers
			return ns, nil
		},
	}, true
}
