package apiserver

import (
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// patchFunc applies a patch to an object's JSON.
type patchFunc func(original []byte, dataStruct runtime.Object) ([]byte, error)

// patcher returns the function applying body by the request's patch type.
func (q *request) patcher(body []byte) (patchFunc, error) {
	ct, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	switch types.PatchType(ct) {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return nil, badRequest("invalid JSON patch: %v", err)
		}
		for i, op := range p {
			switch op.Kind() {
			case "add", "remove", "replace", "move", "copy", "test":
			default:
				return nil, badRequest("invalid JSON patch: operation %d: unknown op %q (want add, remove, replace, move, copy or test)", i, op.Kind())
			}
		}
		return func(orig []byte, _ runtime.Object) ([]byte, error) {
			out, err := applyJSONPatch(p, orig)
			if err != nil {
				return nil, patchFailed(err)
			}
			return out, nil
		}, nil
	case types.MergePatchType:
		if err := checkJSONObject(body); err != nil {
			return nil, err
		}
		return func(orig []byte, _ runtime.Object) ([]byte, error) {
			out, err := jsonpatch.MergePatch(orig, body)
			if err != nil {
				return nil, patchFailed(err)
			}
			return out, nil
		}, nil
	case types.StrategicMergePatchType:
		if _, custom := q.res.New().(*unstructured.Unstructured); custom {
			// Custom resources have no Go type to take merge keys from.
			return nil, &apierrors.StatusError{ErrStatus: metav1.Status{
				Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
				Reason:  metav1.StatusReasonUnsupportedMediaType,
				Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", types.JSONPatchType, types.MergePatchType, types.ApplyYAMLPatchType),
			}}
		}
		if err := checkJSONObject(body); err != nil {
			return nil, err
		}
		return func(orig []byte, dataStruct runtime.Object) ([]byte, error) {
			out, err := strategicpatch.StrategicMergePatch(orig, body, dataStruct)
			if err != nil {
				return nil, patchFailed(err)
			}
			return out, nil
		}, nil
	}
	return nil, &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the patch content type %q is not supported: use application/json-patch+json, application/merge-patch+json or application/strategic-merge-patch+json", ct),
	}}
}

// applyJSONPatch applies p, turning a panic inside the JSON patch library
// (it has crashed on some malformed operations) into an error.
func applyJSONPatch(p jsonpatch.Patch, orig []byte) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, fmt.Errorf("the patch could not be applied: %v", v)
		}
	}()
	return p.Apply(orig)
}

func checkJSONObject(body []byte) error {
	var m map[string]interface{}
	if err := strictUnmarshal(body, &m); err != nil {
		return badRequest("the patch is not a JSON object: %v", err)
	}
	return nil
}

func patchFailed(err error) error {
	return apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "patch", schema.GroupResource{}, "", err.Error(), 0, false)
}

// applyPatch patches the stored object cur and decodes the result as the
// resource's kind.
func (q *request) applyPatch(patch patchFunc, cur runtime.Object) (runtime.Object, error) {
	orig, err := encodeObject(cur)
	if err != nil {
		return nil, err
	}
	patched, err := patch(orig, q.res.New())
	if err != nil {
		return nil, err
	}
	obj := q.res.New()
	if err := q.s.decodeInto(body{data: patched, fields: q.fields}, obj, q.res.GVK()); err != nil {
		return nil, err
	}
	return obj, nil
}
