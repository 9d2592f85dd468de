package apiserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// fieldValidation is how a write treats unknown and duplicate fields in its
// body, as the fieldValidation query parameter asks: Ignore drops them, Warn
// (the default) drops them and answers a Warning header for each, Strict
// refuses the request with 400 naming them. A nil *fieldValidation ignores.
type fieldValidation struct {
	directive string
	verb      string
	w         http.ResponseWriter

	// yamlProblems are the duplicate fields of a YAML body, found before
	// its conversion to JSON dropped them.
	yamlProblems []error

	mu sync.Mutex
	// warned dedupes warnings: an update may decode its body more than
	// once when it retries on a conflict.
	warned map[string]bool
}

// parseFieldValidation reads the fieldValidation parameter of a create,
// update or patch (nil for other verbs); an unknown value is refused with
// 422, as upstream validates its options.
func (q *request) parseFieldValidation() (*fieldValidation, error) {
	switch q.ri.verb {
	case "create", "update", "patch":
	default:
		return nil, nil
	}
	directive := q.query.Get("fieldValidation")
	switch directive {
	case "":
		directive = metav1.FieldValidationWarn
	case metav1.FieldValidationIgnore, metav1.FieldValidationWarn, metav1.FieldValidationStrict:
	default:
		kind := "CreateOptions"
		switch q.ri.verb {
		case "update":
			kind = "UpdateOptions"
		case "patch":
			kind = "PatchOptions"
		}
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", field.ErrorList{
			field.NotSupported(field.NewPath("fieldValidation"), directive,
				[]string{metav1.FieldValidationIgnore, metav1.FieldValidationStrict, metav1.FieldValidationWarn}),
		})
	}
	return &fieldValidation{directive: directive, verb: q.ri.verb, w: q.w}, nil
}

// decodeJSON decodes a JSON body into a typed object as upstream does
// (field names are case-sensitive, the whole body must be one value) and
// applies the field validation to its unknown and duplicate fields.
func (v *fieldValidation) decodeJSON(data []byte, into runtime.Object, kind string) error {
	if v == nil || v.directive == metav1.FieldValidationIgnore {
		if err := kjson.UnmarshalCaseSensitivePreserveInts(data, into); err != nil {
			return badRequest("the body of the request could not be decoded as %s: %v", kind, err)
		}
		return nil
	}
	strict, err := kjson.UnmarshalStrict(data, into)
	if err != nil {
		return badRequest("the body of the request could not be decoded as %s: %v", kind, err)
	}
	return v.report(append(slices.Clone(v.yamlProblems), strict...), into, kind)
}

// report applies the field validation to the problems found in a decoded
// body: a 400 under Strict, Warning headers under Warn.
func (v *fieldValidation) report(strict []error, into runtime.Object, kind string) error {
	if v == nil || v.directive == metav1.FieldValidationIgnore || len(strict) == 0 {
		return nil
	}
	if v.directive == metav1.FieldValidationStrict {
		msg := runtime.NewStrictDecodingError(strict).Error()
		if v.verb != "patch" {
			// Upstream says which kind the body could not be decoded as,
			// except for a patched object.
			gvk := into.GetObjectKind().GroupVersionKind()
			if gvk.Kind == "" {
				gvk.Kind = kind
			}
			msg = fmt.Sprintf("%s in version %q cannot be handled as a %s: %s", gvk.Kind, gvk.Version, kind, msg)
		}
		return apierrors.NewBadRequest(msg)
	}
	v.warn(strict)
	return nil
}

// unknownFieldReporter is a kind whose unknown fields decoding does not
// see (a custom resource: any JSON decodes into an unstructured object);
// it reports the fields its schema would prune.
type unknownFieldReporter interface {
	UnknownFields(obj runtime.Object) []string
}

// checkUnknownFields reports a custom object's fields that its schema does
// not declare, as upstream's field validation does for custom resources.
func (v *fieldValidation) checkUnknownFields(r unknownFieldReporter, into runtime.Object, kind string) error {
	if v == nil || v.directive == metav1.FieldValidationIgnore {
		return nil
	}
	var problems []error
	for _, p := range r.UnknownFields(into) {
		problems = append(problems, fmt.Errorf("unknown field %q", p))
	}
	return v.report(problems, into, kind)
}

// checkYAML notes the duplicate fields of a YAML body, which its conversion
// to JSON drops; decodeJSON reports them with the other problems.
func (v *fieldValidation) checkYAML(data []byte) {
	if v == nil || v.directive == metav1.FieldValidationIgnore {
		return
	}
	if _, err := yaml.YAMLToJSONStrict(data); err != nil {
		v.yamlProblems = []error{err}
	}
}

// warn adds a Warning header per problem, once each, as kubectl prints them
// ("Warning: unknown field \"spec.replicaz\"").
func (v *fieldValidation) warn(problems []error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.warned == nil {
		v.warned = map[string]bool{}
	}
	for _, p := range problems {
		// One line: a header cannot carry the newlines of YAML's errors.
		msg := strings.Join(strings.Fields(p.Error()), " ")
		if v.warned[msg] {
			continue
		}
		v.warned[msg] = true
		if h, err := utilnet.NewWarningHeader(299, "-", msg); err == nil {
			v.w.Header().Add("Warning", h)
		}
	}
}
