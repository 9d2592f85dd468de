package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// CRDCleanupFinalizer holds a deleted CustomResourceDefinition until the
// API server has deleted its objects.
const CRDCleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"

// crdStrategy is apiextensions.k8s.io/v1 CustomResourceDefinitions. Every
// API server serves the versions of each stored definition (see
// NewCustomResource); a definition whose names clash with a served
// resource is refused, so an accepted one is at once NamesAccepted and
// Established.
type crdStrategy struct {
	basics
	// served looks up what the API serves, to refuse clashing names.
	served func() []*Resource
}

func (crdStrategy) Info() *Info {
	return &Info{
		Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions",
		Kind: "CustomResourceDefinition", SingularName: "customresourcedefinition",
		ShortNames: []string{"crd", "crds"}, Categories: []string{"api-extensions"},
		Subresources: []Subresource{statusSubresource()},
	}
}

func (crdStrategy) New() runtime.Object { return &apiextensionsv1.CustomResourceDefinition{} }
func (crdStrategy) NewList() runtime.Object {
	return &apiextensionsv1.CustomResourceDefinitionList{}
}

func (s crdStrategy) PrepareForCreate(obj runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	crd.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
	crd.Generation = 1
	if !slices.Contains(crd.Finalizers, CRDCleanupFinalizer) {
		crd.Finalizers = append(crd.Finalizers, CRDCleanupFinalizer)
	}
	acceptCRD(crd)
}

// PrepareForUpdate keeps the status but follows the names and the storage
// version of the new spec.
func (s crdStrategy) PrepareForUpdate(obj, old runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	crd.Status = *old.(*apiextensionsv1.CustomResourceDefinition).Status.DeepCopy()
	acceptCRD(crd)
}

// acceptCRD records the accepted names, the established conditions and the
// stored versions.
func acceptCRD(crd *apiextensionsv1.CustomResourceDefinition) {
	crd.Status.AcceptedNames = crd.Spec.Names
	now := metav1.Now()
	for _, c := range []apiextensionsv1.CustomResourceDefinitionCondition{
		{Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionTrue, Reason: "NoConflicts", Message: "no conflicts found"},
		{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue, Reason: "InitialNamesAccepted", Message: "the initial names have been accepted"},
	} {
		found := false
		for i := range crd.Status.Conditions {
			if crd.Status.Conditions[i].Type == c.Type {
				found = true
				if crd.Status.Conditions[i].Status != c.Status {
					c.LastTransitionTime = now
					crd.Status.Conditions[i] = c
				}
			}
		}
		if !found {
			c.LastTransitionTime = now
			crd.Status.Conditions = append(crd.Status.Conditions, c)
		}
	}
	for _, v := range crd.Spec.Versions {
		if v.Storage && !slices.Contains(crd.Status.StoredVersions, v.Name) {
			crd.Status.StoredVersions = append(crd.Status.StoredVersions, v.Name)
		}
	}
}

func (crdStrategy) Default(obj runtime.Object) {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	apiextensionsv1.SetObjectDefaults_CustomResourceDefinition(crd)
	if crd.Spec.Names.Singular == "" {
		crd.Spec.Names.Singular = strings.ToLower(crd.Spec.Names.Kind)
	}
}

func (crdStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*apiextensionsv1.CustomResourceDefinition).Status = src.(*apiextensionsv1.CustomResourceDefinition).Status
}

func (crdStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*apiextensionsv1.CustomResourceDefinition).Spec,
		old.(*apiextensionsv1.CustomResourceDefinition).Spec)
}

func toInternalCRD(crd *apiextensionsv1.CustomResourceDefinition) (*apiextensions.CustomResourceDefinition, error) {
	out := &apiextensions.CustomResourceDefinition{}
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(crd, out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// Validate runs Kubernetes' own CRD validation (names, structural schema,
// CEL rules compiled with their cost), then refuses names another
// resource already serves, and checks that every version can be served.
func (s crdStrategy) Validate(obj runtime.Object) field.ErrorList {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	internal, err := toInternalCRD(crd)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), internal)
	if len(errs) > 0 {
		return errs
	}
	errs = append(errs, s.validateNames(crd)...)
	for i, v := range crd.Spec.Versions {
		if _, err := NewCustomResource(crd, v.Name); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "versions").Index(i), v.Name, err.Error()))
		}
	}
	return errs
}

// validateNames refuses a plural or kind that another resource of the
// group serves (built-in or another definition's).
func (s crdStrategy) validateNames(crd *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	if s.served == nil {
		return nil
	}
	names := field.NewPath("spec", "names")
	var errs field.ErrorList
	for _, r := range s.served() {
		if r.Group != crd.Spec.Group {
			continue
		}
		if cr, ok := r.Strategy.(*customResourceStrategy); ok && cr.crdName == crd.Name {
			continue
		}
		if r.Resource == crd.Spec.Names.Plural {
			errs = append(errs, field.Invalid(names.Child("plural"), crd.Spec.Names.Plural,
				fmt.Sprintf("%q is already in use by %s", crd.Spec.Names.Plural, r.GroupResource())))
		}
		if r.Kind == crd.Spec.Names.Kind {
			errs = append(errs, field.Invalid(names.Child("kind"), crd.Spec.Names.Kind,
				fmt.Sprintf("%q is already in use by %s", crd.Spec.Names.Kind, r.GroupResource())))
		}
	}
	return errs
}

func (crdStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	n, err := toInternalCRD(obj.(*apiextensionsv1.CustomResourceDefinition))
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	o, err := toInternalCRD(old.(*apiextensionsv1.CustomResourceDefinition))
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), "", err.Error())}
	}
	return apiextensionsvalidation.ValidateCustomResourceDefinitionUpdate(context.Background(), n, o)
}
