package apiserver

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"skiff/internal/registry"
)

// request is one call on a resource.
type request struct {
	s *Server
	w http.ResponseWriter
	r *http.Request
	// query is r's URL query, parsed once.
	query url.Values
	ri    requestInfo
	res   *registry.Resource
	// fields is the write's field validation, set by readBody.
	fields *fieldValidation
}

func (q *request) fail(err error) { writeError(q.w, q.s.log, err) }

func (q *request) serve() {
	if q.res.Review {
		q.review()
		return
	}
	switch q.ri.subresource {
	case "":
	case "status":
		switch q.ri.verb {
		case "get":
			q.get()
		case "update", "patch":
			q.update()
		default:
			q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		}
		return
	case "scale":
		q.scale()
		return
	default:
		if a, ok := q.res.Action(q.ri.subresource); ok {
			q.action(a)
			return
		}
		q.fail(apierrors.NewNotFound(q.res.GroupResource(), q.ri.name+"/"+q.ri.subresource))
		return
	}
	switch q.ri.verb {
	case "get":
		q.get()
	case "list":
		q.list()
	case "watch":
		q.watch()
	case "create":
		if q.ri.name != "" {
			q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), "create with a name in the path"))
			return
		}
		q.create()
	case "update", "patch":
		q.update()
	case "delete":
		q.delete()
	case "deletecollection":
		q.deleteCollection()
	}
}

// key is where an object of res lives in etcd. The core group has no group
// segment: /registry/pods/default/web, /registry/apps/deployments/default/web.
func key(res *registry.Resource, namespace, name string) string {
	return prefix(res, namespace) + name
}

// prefix is the key prefix of res's objects in namespace ("" for all).
func prefix(res *registry.Resource, namespace string) string {
	p := path.Join("/registry", res.Group, res.Resource)
	if res.Namespaced && namespace != "" {
		p = path.Join(p, namespace)
	}
	return p + "/"
}

func badRequest(format string, args ...interface{}) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

func unsupportedMediaType(ct string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusUnsupportedMediaType,
		Reason:  metav1.StatusReasonUnsupportedMediaType,
		Message: fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got %q)", ct),
	}}
}

// protobufMediaType is what client-go sends for built-in kinds by default.
const protobufMediaType = "application/vnd.kubernetes.protobuf"

// body is a request body: JSON (YAML is converted) or Kubernetes protobuf.
type body struct {
	data     []byte
	protobuf bool
	fields   *fieldValidation
}

// readBody reads the request body, refusing media types skiff cannot decode.
func (q *request) readBody() (body, error) {
	if q.r.Body == nil {
		return body{}, badRequest("the request has no body")
	}
	fields, err := q.parseFieldValidation()
	if err != nil {
		return body{}, err
	}
	q.fields = fields
	data, err := io.ReadAll(q.r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return body{}, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
		}
		return body{}, badRequest("read body: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	switch ct {
	case "", "application/json", "*/*":
		return body{data: data, fields: fields}, nil
	case "application/yaml", "application/x-yaml", "text/yaml":
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return body{}, badRequest("the body is not valid YAML: %v", err)
		}
		fields.checkYAML(data)
		return body{data: j, fields: fields}, nil
	case protobufMediaType:
		return body{data: data, protobuf: true}, nil
	}
	if q.ri.verb == "patch" {
		// The patcher checks the patch type.
		return body{data: data, fields: fields}, nil
	}
	return body{}, unsupportedMediaType(ct)
}

// jsonBody reads a body that must be JSON (patches, options).
func (q *request) jsonBody() ([]byte, error) {
	b, err := q.readBody()
	if err != nil {
		return nil, err
	}
	if b.protobuf {
		return nil, unsupportedMediaType(protobufMediaType)
	}
	return b.data, nil
}

// decodeInto decodes a body into a typed object of kind gvk, refusing another kind.
func (s *Server) decodeInto(b body, into runtime.Object, gvk schema.GroupVersionKind) error {
	if b.protobuf {
		_, got, err := s.protobuf.Decode(b.data, &gvk, into)
		if err != nil {
			return badRequest("the body of the request could not be decoded as a protobuf %s: %v", gvk.Kind, err)
		}
		if got != nil && (got.Kind != "" && got.Kind != gvk.Kind || got.Version != "" && got.GroupVersion() != gvk.GroupVersion()) {
			return badRequest("the body of the request was a %s, but %s was expected", got.String(), gvk.String())
		}
	} else if err := b.fields.decodeJSON(b.data, into, gvk.Kind); err != nil {
		return err
	} else if res, ok := s.reg.ForKind(gvk); ok {
		if r, ok := res.Strategy.(unknownFieldReporter); ok {
			if err := b.fields.checkUnknownFields(r, into, gvk.Kind); err != nil {
				return err
			}
		}
	}
	got := into.GetObjectKind().GroupVersionKind()
	if got.Kind != "" && got.Kind != gvk.Kind || got.Version != "" && got.GroupVersion() != gvk.GroupVersion() {
		return badRequest("the body of the request was a %s, but %s was expected", got.String(), gvk.String())
	}
	into.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}

// decodeBody decodes the request body as an object of the resource's kind.
func (q *request) decodeBody() (runtime.Object, error) {
	b, err := q.readBody()
	if err != nil {
		return nil, err
	}
	obj := q.res.New()
	if err := q.s.decodeInto(b, obj, q.res.GVK()); err != nil {
		return nil, err
	}
	return obj, nil
}

// selectors parses labelSelector and fieldSelector, checking field keys
// against what the resource supports.
func (q *request) selectors() (labels.Selector, fields.Selector, error) {
	ls, err := labels.Parse(q.query.Get("labelSelector"))
	if err != nil {
		return nil, nil, badRequest("unable to parse labelSelector: %v", err)
	}
	fs, err := fields.ParseSelector(q.query.Get("fieldSelector"))
	if err != nil {
		return nil, nil, badRequest("unable to parse fieldSelector: %v", err)
	}
	for _, req := range fs.Requirements() {
		if !q.res.SupportsField(req.Field) {
			return nil, nil, badRequest("field label not supported: %s", req.Field)
		}
	}
	return ls, fs, nil
}

// matcher returns whether an object passes the request's selectors.
func (q *request) matcher() (func(runtime.Object) bool, error) {
	ls, fs, err := q.selectors()
	if err != nil {
		return nil, err
	}
	// A watch on a named object (.../pods/web?watch=true) sees that object only.
	name := q.ri.name
	return func(obj runtime.Object) bool {
		m, err := meta.Accessor(obj)
		if err != nil {
			return false
		}
		if name != "" && m.GetName() != name {
			return false
		}
		if !ls.Empty() && !ls.Matches(labels.Set(m.GetLabels())) {
			return false
		}
		return fs.Empty() || fs.Matches(q.res.Fields(obj))
	}, nil
}

func (q *request) dryRun() bool { return len(q.query["dryRun"]) > 0 }

// deleteOptions reads DeleteOptions from the body or the query.
func (q *request) deleteOptions() (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	if q.r.Body != nil && q.r.ContentLength != 0 {
		b, err := q.readBody()
		if err != nil {
			return nil, err
		}
		if b.protobuf {
			if _, _, err := q.s.protobuf.Decode(b.data, nil, opts); err != nil {
				return nil, badRequest("the body of the request could not be decoded as DeleteOptions: %v", err)
			}
		} else if len(strings.TrimSpace(string(b.data))) > 0 {
			if err := strictUnmarshal(b.data, opts); err != nil {
				return nil, badRequest("the body of the request could not be decoded as DeleteOptions: %v", err)
			}
		}
	}
	query := q.query
	if v := query.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, badRequest("gracePeriodSeconds: %v", err)
		}
		opts.GracePeriodSeconds = &n
	}
	if v := query.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if len(query["dryRun"]) > 0 {
		opts.DryRun = query["dryRun"]
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "DeleteOptions"}, "",
				field.ErrorList{field.NotSupported(field.NewPath("propagationPolicy"), string(*p), []string{"Background", "Foreground", "Orphan"})})
		}
	}
	return opts, nil
}

func invalid(res *registry.Resource, name string, errs field.ErrorList) error {
	return invalidKind(res.Group, res.Kind, name, errs)
}

func invalidKind(group, kind, name string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: group, Kind: kind}, name, errs)
}
