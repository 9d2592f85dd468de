package openapi

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Media types of responses and of patch bodies.
var (
	produces      = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	listProduces  = append(slices.Clone(produces), "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
	bodyConsumes  = []string{"*/*"}
	patchConsumes = []string{
		"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml",
	}
)

func defRef(model string) spec.Ref { return spec.MustCreateRef("#/definitions/" + model) }

func refSchema(model string) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: defRef(model)}}
}

func queryParam(name, typ, description string) spec.Parameter {
	return spec.Parameter{
		ParamProps:   spec.ParamProps{Name: name, In: "query", Description: description},
		SimpleSchema: spec.SimpleSchema{Type: typ},
	}
}

func pathParam(name, description string) spec.Parameter {
	return spec.Parameter{
		ParamProps:   spec.ParamProps{Name: name, In: "path", Required: true, Description: description},
		SimpleSchema: spec.SimpleSchema{Type: "string"},
	}
}

func bodyParam(model string) spec.Parameter {
	return spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: true, Schema: refSchema(model)}}
}

// The query parameters of the operations, in upstream's names.
var (
	paramPretty          = queryParam("pretty", "string", "If 'true', the output is pretty printed.")
	paramDryRun          = queryParam("dryRun", "string", "When present, the change is checked but not persisted. The only valid value is All.")
	paramFieldManager    = queryParam("fieldManager", "string", "The name of the actor making the change.")
	paramFieldValidation = queryParam("fieldValidation", "string", "How to treat unknown and duplicate fields in the body: Ignore drops them, Warn (the default) drops them and answers a warning for each, Strict refuses the request.")
	paramForce           = queryParam("force", "boolean", "Take ownership of conflicting fields in an apply request.")
	paramGracePeriod     = queryParam("gracePeriodSeconds", "integer", "Seconds before the object is deleted; zero means at once.")
	paramPropagation     = queryParam("propagationPolicy", "string", "Whether and how dependents are garbage collected: Orphan, Background or Foreground.")
	paramOrphan          = queryParam("orphanDependents", "boolean", "Deprecated: use propagationPolicy.")
	listParams           = []spec.Parameter{
		queryParam("allowWatchBookmarks", "boolean", "Ask for BOOKMARK events in a watch."),
		queryParam("continue", "string", "The continue token of the previous page of a list."),
		queryParam("fieldSelector", "string", "Restrict the answer to objects whose fields match."),
		queryParam("labelSelector", "string", "Restrict the answer to objects whose labels match."),
		queryParam("limit", "integer", "The largest number of objects in one answer; the rest is paged with continue."),
		queryParam("resourceVersion", "string", "What version of the objects to answer (see the API concepts)."),
		queryParam("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
		queryParam("sendInitialEvents", "boolean", "Begin a watch with the current objects as ADDED events."),
		queryParam("timeoutSeconds", "integer", "End the call after this many seconds."),
		queryParam("watch", "boolean", "Stream changes (ADDED, MODIFIED, DELETED) instead of a list."),
	}
)

func responses(model string, codes ...int) *spec.Responses {
	r := &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}}
	for _, c := range codes {
		desc := "OK"
		switch c {
		case 201:
			desc = "Created"
		case 202:
			desc = "Accepted"
		}
		r.StatusCodeResponses[c] = spec.Response{ResponseProps: spec.ResponseProps{Description: desc, Schema: refSchema(model)}}
	}
	r.StatusCodeResponses[401] = spec.Response{ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}
	return r
}

// opBuilder makes the operations of one group-version.
type opBuilder struct {
	gv schema.GroupVersion
	// prefix is the group-version's URL path: /api/v1, /apis/apps/v1.
	prefix string
	// idPrefix names operations: CoreV1, AppsV1, RbacAuthorizationV1.
	idPrefix string
	tag      string
}

func newOpBuilder(gv schema.GroupVersion) *opBuilder {
	b := &opBuilder{gv: gv}
	group := gv.Group
	if group == "" {
		b.prefix = "/api/" + gv.Version
		group = "core"
	} else {
		b.prefix = "/apis/" + gv.Group + "/" + gv.Version
	}
	group = strings.TrimSuffix(group, ".k8s.io")
	var id, tag strings.Builder
	for i, part := range strings.FieldsFunc(group, func(r rune) bool { return r == '.' || r == '-' }) {
		id.WriteString(strings.ToUpper(part[:1]) + part[1:])
		if i > 0 {
			tag.WriteByte('_')
		}
		tag.WriteString(part)
	}
	b.idPrefix = id.String() + strings.ToUpper(gv.Version[:1]) + gv.Version[1:]
	b.tag = tag.String() + "_" + gv.Version
	return b
}

func (b *opBuilder) op(id, action, description string, gvk schema.GroupVersionKind, params []spec.Parameter, resp *spec.Responses, produce []string) *spec.Operation {
	op := &spec.Operation{
		OperationProps: spec.OperationProps{
			ID: id, Description: description, Tags: []string{b.tag},
			Schemes: []string{"https"}, Produces: produce,
			Parameters: params, Responses: resp,
		},
		VendorExtensible: spec.VendorExtensible{Extensions: spec.Extensions{
			"x-kubernetes-action":             action,
			"x-kubernetes-group-version-kind": gvkExtension(gvk)[0],
		}},
	}
	switch action {
	case "post", "put":
		op.Consumes = bodyConsumes
	case "patch":
		op.Consumes = patchConsumes
	case "delete", "deletecollection":
		op.Consumes = bodyConsumes
	}
	return op
}

// buildPaths returns the paths of one group-version's resources and the
// definitions they reference.
func buildPaths(gv schema.GroupVersion, resources []metav1.APIResource, k *kinds) (map[string]spec.PathItem, []string) {
	b := newOpBuilder(gv)
	paths := map[string]spec.PathItem{}
	roots := []string{deleteOptionsModel, statusModel, patchModel, watchEventModel}
	kindOf := map[string]string{}
	for _, r := range resources {
		if !strings.Contains(r.Name, "/") {
			kindOf[r.Name] = r.Kind
		}
	}
	for _, r := range resources {
		name, sub, isSub := strings.Cut(r.Name, "/")
		parentKind := kindOf[name]
		if parentKind == "" {
			continue
		}
		scope := ""
		collection := b.prefix + "/" + name
		if r.Namespaced {
			scope = "Namespaced"
			collection = b.prefix + "/namespaces/{namespace}/" + name
		}
		item := collection + "/{name}"
		gvk := gv.WithKind(r.Kind)
		if r.Group != "" || r.Version != "" {
			gvk = schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
		}
		verbs := func(v string) bool { return slices.Contains(r.Verbs, v) }
		common := []spec.Parameter{paramPretty}
		if r.Namespaced {
			common = append(common, pathParam("namespace", "The object's namespace."))
		}
		if isSub {
			// Streams and proxies (log, exec, attach, portforward, proxy)
			// are not described, as their bodies are not objects.
			if sub == "log" || strings.HasSuffix(r.Kind, "Options") {
				continue
			}
			model, ok := k.model(gvk, false)
			if !ok {
				continue
			}
			roots = append(roots, model)
			suffix := strings.ToUpper(sub[:1]) + sub[1:]
			id := b.idPrefix + scope + parentKind + suffix
			what := sub + " of the " + parentKind
			pi := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(common, pathParam("name", "The "+parentKind+"'s name."))}}
			if verbs("get") {
				pi.Get = b.op("read"+id, "get", "Read the "+what+".", gvk, nil, responses(model, 200), produces)
			}
			if verbs("update") {
				pi.Put = b.op("replace"+id, "put", "Replace the "+what+".", gvk,
					[]spec.Parameter{bodyParam(model), paramDryRun, paramFieldManager, paramFieldValidation}, responses(model, 200, 201), produces)
			}
			if verbs("patch") {
				pi.Patch = b.op("patch"+id, "patch", "Patch the "+what+".", gvk,
					[]spec.Parameter{bodyParam(patchModel), paramDryRun, paramFieldManager, paramFieldValidation, paramForce}, responses(model, 200, 201), produces)
			}
			if verbs("create") {
				pi.Post = b.op("create"+id, "post", "Create the "+what+".", gvk,
					[]spec.Parameter{bodyParam(model), paramDryRun, paramFieldManager, paramFieldValidation}, responses(model, 200, 201, 202), produces)
			}
			paths[item+"/"+sub] = pi
			continue
		}

		model, _ := k.model(gvk, true)
		roots = append(roots, model)
		listModel := ""
		if verbs("list") {
			if m, ok := k.model(gv.WithKind(r.Kind+"List"), false); ok {
				listModel = m
				roots = append(roots, listModel)
			}
		}
		id := b.idPrefix + scope + r.Kind
		coll := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: common}}
		if listModel != "" {
			coll.Get = b.op("list"+id, "list", "List or watch objects of kind "+r.Kind+".", gvk, listParams, responses(listModel, 200), listProduces)
		}
		if verbs("create") {
			coll.Post = b.op("create"+id, "post", "Create a "+r.Kind+".", gvk,
				[]spec.Parameter{bodyParam(model), paramDryRun, paramFieldManager, paramFieldValidation}, responses(model, 200, 201, 202), produces)
		}
		if verbs("deletecollection") {
			params := append([]spec.Parameter{bodyParam(deleteOptionsModel), paramDryRun, paramGracePeriod, paramOrphan, paramPropagation}, listParams...)
			coll.Delete = b.op("delete"+b.idPrefix+"Collection"+scope+r.Kind, "deletecollection", "Delete a collection of "+r.Kind+".", gvk, params, responses(statusModel, 200), produces)
		}
		if coll.Get != nil || coll.Post != nil || coll.Delete != nil {
			paths[collection] = coll
		}
		one := spec.PathItem{PathItemProps: spec.PathItemProps{Parameters: append(slices.Clone(common), pathParam("name", "The "+r.Kind+"'s name."))}}
		if verbs("get") {
			one.Get = b.op("read"+id, "get", "Read the specified "+r.Kind+".", gvk, nil, responses(model, 200), produces)
		}
		if verbs("update") {
			one.Put = b.op("replace"+id, "put", "Replace the specified "+r.Kind+".", gvk,
				[]spec.Parameter{bodyParam(model), paramDryRun, paramFieldManager, paramFieldValidation}, responses(model, 200, 201), produces)
		}
		if verbs("patch") {
			one.Patch = b.op("patch"+id, "patch", "Partially update the specified "+r.Kind+".", gvk,
				[]spec.Parameter{bodyParam(patchModel), paramDryRun, paramFieldManager, paramFieldValidation, paramForce}, responses(model, 200, 201), produces)
		}
		if verbs("delete") {
			one.Delete = b.op("delete"+id, "delete", "Delete a "+r.Kind+".", gvk,
				[]spec.Parameter{bodyParam(deleteOptionsModel), paramDryRun, paramGracePeriod, paramOrphan, paramPropagation}, responses(statusModel, 200, 202), produces)
		}
		if one.Get != nil || one.Put != nil || one.Patch != nil || one.Delete != nil {
			paths[item] = one
		}
		if r.Namespaced && listModel != "" {
			paths[b.prefix+"/"+name] = spec.PathItem{
				PathItemProps: spec.PathItemProps{
					Parameters: []spec.Parameter{paramPretty},
					Get:        b.op("list"+b.idPrefix+r.Kind+"ForAllNamespaces", "list", "List or watch objects of kind "+r.Kind+" in all namespaces.", gvk, listParams, responses(listModel, 200), listProduces),
				},
			}
		}
	}
	return paths, roots
}
