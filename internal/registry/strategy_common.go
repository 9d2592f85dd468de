package registry

// Small validation helpers shared by the kinds' strategies.

import (
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/validate/content"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateEnum requires v to be one of allowed: Required when empty,
// NotSupported when unknown.
func validateEnum[T ~string](v T, p *field.Path, allowed ...T) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	if !slices.Contains(allowed, v) {
		return field.ErrorList{field.NotSupported(p, v, allowed)}
	}
	return nil
}

// validateOptionalEnum is validateEnum for a field that may be left empty.
func validateOptionalEnum[T ~string](v T, p *field.Path, allowed ...T) field.ErrorList {
	if v == "" {
		return nil
	}
	return validateEnum(v, p, allowed...)
}

// validateNonNegative requires v >= 0.
func validateNonNegative[T ~int32 | ~int64](v T, p *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateNonnegativeField(int64(v), p)
}

// validateOptionalNonNegative requires *v >= 0 when v is set.
func validateOptionalNonNegative[T ~int32 | ~int64](v *T, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return validateNonNegative(*v, p)
}

// validatePositive requires v > 0.
func validatePositive[T ~int32 | ~int64](v T, p *field.Path) field.ErrorList {
	if v <= 0 {
		return field.ErrorList{field.Invalid(p, v, "must be greater than 0")}
	}
	return nil
}

// invalidEach turns the messages of a util/validation check into Invalid
// errors at p.
func invalidEach(p *field.Path, v interface{}, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, v, msg))
	}
	return errs
}

func validateDNSLabel(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, validation.IsDNS1123Label(v))
}

func validateDNSSubdomain(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, validation.IsDNS1123Subdomain(v))
}

func validateQualifiedName(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, content.IsLabelKey(v))
}

func validateLabelValue(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, content.IsLabelValue(v))
}

// validatePortNumOrName checks a port given as a number (1-65535) or as a
// named port (IANA_SVC_NAME).
func validatePortNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	switch port.Type {
	case intstr.Int:
		return invalidEach(p, port.IntValue(), validation.IsValidPortNum(port.IntValue()))
	case intstr.String:
		return invalidEach(p, port.StrVal, validation.IsValidPortName(port.StrVal))
	}
	return field.ErrorList{field.InternalError(p, fmt.Errorf("unknown IntOrString type %v", port.Type))}
}

// validateIntOrPercent checks a non-negative integer or a percentage ("25%").
func validateIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.String {
		if len(validation.IsValidPercent(v.StrVal)) != 0 {
			return field.ErrorList{field.Invalid(p, v.StrVal, "must be an integer or percentage (e.g '5%')")}
		}
		return nil
	}
	return validateNonNegative(v.IntVal, p)
}

// intOrPercentValue returns the integer or the percentage of v and whether
// it is a percentage; ok is false when v cannot be read.
func intOrPercentValue(v *intstr.IntOrString) (n int, percent, ok bool) {
	if v == nil {
		return 0, false, false
	}
	if v.Type == intstr.Int {
		return v.IntValue(), false, true
	}
	if len(validation.IsValidPercent(v.StrVal)) != 0 {
		return 0, true, false
	}
	var x int
	if _, err := fmt.Sscanf(strings.TrimSuffix(v.StrVal, "%"), "%d", &x); err != nil {
		return 0, true, false
	}
	return x, true, true
}

// validateNotMoreThan100Percent rejects a percentage over 100%.
func validateNotMoreThan100Percent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if n, percent, ok := intOrPercentValue(v); ok && percent && n > 100 {
		return field.ErrorList{field.Invalid(p, v.StrVal, "must not be greater than 100%")}
	}
	return nil
}

// isZeroIntOrPercent reports whether v is 0 or 0%.
func isZeroIntOrPercent(v *intstr.IntOrString) bool {
	n, _, ok := intOrPercentValue(v)
	return ok && n == 0
}

// validateSelectorForTemplate checks the selector of a controller of pods
// (apps/v1 or a manual Job selector): it is required, valid, not empty, and
// matches the labels of the pod template.
func validateSelectorForTemplate(sel *metav1.LabelSelector, templateLabels map[string]string, selPath, labelsPath *field.Path) field.ErrorList {
	if sel == nil {
		return field.ErrorList{field.Required(selPath, "")}
	}
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, selPath)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		return append(errs, field.Invalid(selPath, sel, "empty selector is invalid for this resource"))
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		if len(errs) == 0 {
			errs = append(errs, field.Invalid(selPath, sel, err.Error()))
		}
		return errs
	}
	if !s.Matches(labels.Set(templateLabels)) {
		errs = append(errs, field.Invalid(labelsPath, templateLabels, "`selector` does not match template `labels`"))
	}
	return errs
}

// validateSelectorUpdate makes an apps/v1 controller's selector immutable.
func validateSelectorUpdate(sel, old *metav1.LabelSelector) field.ErrorList {
	return apimachineryvalidation.ValidateImmutableField(sel, old, field.NewPath("spec", "selector"))
}

// setPointerFields returns the JSON names of the non-nil pointer fields of
// the struct *v: which "one of" members (volume sources, probe handlers, ...)
// an object sets.
func setPointerFields(v interface{}) []string {
	rv := reflect.ValueOf(v).Elem()
	var names []string
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// validateOneOf requires exactly one of the pointer fields of *v to be set.
// what names the member kind in the message ("volume type", "handler type").
func validateOneOf(v interface{}, p *field.Path, what string) field.ErrorList {
	set := setPointerFields(v)
	switch {
	case len(set) == 0:
		return field.ErrorList{field.Required(p, "must specify a "+what)}
	case len(set) > 1:
		return field.ErrorList{field.Forbidden(p.Child(set[1]), "may not specify more than 1 "+what)}
	}
	return nil
}

// validateRelativePath checks a path that must stay below a directory: not
// absolute, no ".." element.
func validateRelativePath(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(v) || strings.HasPrefix(v, "\\") {
		errs = append(errs, field.Invalid(p, v, "must be a relative path"))
	}
	errs = append(errs, validateNoBacksteps(v, p)...)
	return errs
}

// validateNoBacksteps rejects a path with a ".." element.
func validateNoBacksteps(v string, p *field.Path) field.ErrorList {
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, v, "must not contain '..'")}
		}
	}
	return nil
}

// validateFileMode checks a volume file mode (0 to 0777).
func validateFileMode(mode *int32, p *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(p, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}
