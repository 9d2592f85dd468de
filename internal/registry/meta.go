package registry

import (
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Metadata rules shared by every kind. Error paths are Kubernetes'
// ("metadata.name", "spec.containers[0].image"), so `kubectl` users see the
// messages they know.

var metadataPath = field.NewPath("metadata")

// validateMeta validates an object's metadata as Kubernetes' ValidateObjectMeta
// does, with the kind's name rule.
func validateMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apimachineryvalidation.ValidateNameFunc) field.ErrorList {
	return apimachineryvalidation.ValidateObjectMeta(m, namespaced, nameFn, metadataPath)
}

// ValidateObjectMetaAccessor validates the metadata of any object (custom
// resources' too) with the name rule of a DNS subdomain.
func ValidateObjectMetaAccessor(m metav1.Object, namespaced bool) field.ErrorList {
	return apimachineryvalidation.ValidateObjectMetaAccessor(m, namespaced, apimachineryvalidation.NameIsDNSSubdomain, metadataPath)
}

// validateMetaUpdate checks the metadata of an update. The system fields a
// client may leave out of an update (uid, creationTimestamp, generation,
// resourceVersion, deletion fields) are taken from the stored object first,
// as Kubernetes' API server does before validating; what remains checks that
// name and namespace do not change and that no finalizer is added to an
// object being deleted.
func validateMetaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	if m == nil || old == nil {
		return nil
	}
	n := m.DeepCopy()
	if n.UID == "" {
		n.UID = old.UID
	}
	if n.CreationTimestamp.IsZero() {
		n.CreationTimestamp = old.CreationTimestamp
	}
	if old.DeletionTimestamp != nil {
		n.DeletionTimestamp = old.DeletionTimestamp
	}
	if old.DeletionGracePeriodSeconds != nil {
		n.DeletionGracePeriodSeconds = old.DeletionGracePeriodSeconds
	}
	if n.Generation < old.Generation {
		n.Generation = old.Generation
	}
	if n.ResourceVersion == "" {
		// Concurrency is the storage's job (compare-and-swap on the
		// resourceVersion); an unconditional update is allowed.
		n.ResourceVersion = old.ResourceVersion
		if n.ResourceVersion == "" {
			n.ResourceVersion = "0"
		}
	}
	return apimachineryvalidation.ValidateObjectMetaUpdate(n, old, metadataPath)
}

// objectMetaOf returns obj's ObjectMeta (a copy for a custom object), or
// nil for a kind without one.
func objectMetaOf(obj runtime.Object) *metav1.ObjectMeta {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m
		}
	}
	return objectMetaFromAccessor(obj)
}
