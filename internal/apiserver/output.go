package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// outputKind is the form a client asked for in its Accept header.
type outputKind int

const (
	outputObject outputKind = iota
	outputTable
	outputPartialMetadata
)

type output struct {
	kind outputKind
	// metaVersion is meta.k8s.io's version for tables and partial metadata.
	metaVersion string
	yaml        bool
}

// negotiate picks the first form in the Accept header that skiff serves.
func negotiate(accept string) (output, error) {
	if strings.TrimSpace(accept) == "" {
		return output{}, nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "application/json", "*/*", "application/*", "application/yaml":
		default:
			continue
		}
		out := output{yaml: mt == "application/yaml"}
		switch params["as"] {
		case "":
			return out, nil
		case "Table":
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			out.kind, out.metaVersion = outputTable, params["v"]
			return out, nil
		case "PartialObjectMetadata", "PartialObjectMetadataList":
			if params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1") {
				continue
			}
			out.kind, out.metaVersion = outputPartialMetadata, params["v"]
			return out, nil
		}
	}
	return output{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "",
		fmt.Sprintf("only application/json and application/yaml (with as=Table or as=PartialObjectMetadata) are served; Accept was %q", accept), 0, false)
}

// respond writes obj (an object or a list) in the negotiated form.
func (q *request) respond(code int, obj runtime.Object) {
	out, err := negotiate(q.r.Header.Get("Accept"))
	if err != nil {
		q.fail(err)
		return
	}
	body, err := q.convert(obj, out)
	if err != nil {
		q.fail(err)
		return
	}
	data, err := encodeObject(body)
	if err != nil {
		q.fail(err)
		return
	}
	ct := "application/json"
	if out.yaml {
		if data, err = yaml.JSONToYAML(data); err != nil {
			q.fail(err)
			return
		}
		ct = "application/yaml"
	}
	q.w.Header().Set("Content-Type", ct)
	q.w.WriteHeader(code)
	_, _ = q.w.Write(data)
}

// convert turns obj into the form the client asked for.
func (q *request) convert(obj runtime.Object, out output) (runtime.Object, error) {
	obj = toServedVersion(q.res, obj)
	switch out.kind {
	case outputTable:
		return q.toTable(obj, out.metaVersion)
	case outputPartialMetadata:
		return toPartialMetadata(obj, out.metaVersion)
	}
	return obj, nil
}

func partialOf(obj runtime.Object, version string) (*metav1.PartialObjectMetadata, error) {
	p := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/" + version}}
	if acc, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := acc.GetObjectMeta().(*metav1.ObjectMeta); ok {
			p.ObjectMeta = *om.DeepCopy()
			return p, nil
		}
	}
	// A custom object: copy its metadata through JSON.
	u, ok := obj.(runtime.Unstructured)
	if !ok {
		return nil, fmt.Errorf("%T has no ObjectMeta", obj)
	}
	md, found := u.UnstructuredContent()["metadata"]
	if !found {
		return p, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(map[string]interface{}{"metadata": md}, p); err != nil {
		return nil, fmt.Errorf("metadata of %T: %w", obj, err)
	}
	p.TypeMeta = metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/" + version}
	return p, nil
}

func toPartialMetadata(obj runtime.Object, version string) (runtime.Object, error) {
	if !meta.IsListType(obj) {
		return partialOf(obj, version)
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return nil, err
	}
	list := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadataList", APIVersion: "meta.k8s.io/" + version}}
	la, _ := meta.ListAccessor(obj)
	list.ResourceVersion = la.GetResourceVersion()
	list.Continue, list.RemainingItemCount = la.GetContinue(), la.GetRemainingItemCount()
	for _, it := range items {
		p, err := partialOf(it, version)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, *p)
	}
	return list, nil
}

// toTable renders obj (an object or a list) as a Table with the resource's
// columns. Each row carries the object as asked by includeObject: None,
// Metadata (the default) or Object.
func (q *request) toTable(obj runtime.Object, version string) (*metav1.Table, error) {
	t := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/" + version},
		ColumnDefinitions: q.res.TableColumns(),
	}
	items := []runtime.Object{obj}
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
		la, _ := meta.ListAccessor(obj)
		t.ResourceVersion = la.GetResourceVersion()
		t.Continue, t.RemainingItemCount = la.GetContinue(), la.GetRemainingItemCount()
	} else if m, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
	include := metav1.IncludeObjectPolicy(q.query.Get("includeObject"))
	t.Rows = make([]metav1.TableRow, 0, len(items))
	for _, it := range items {
		row := metav1.TableRow{Cells: q.res.TableRow(it)}
		switch include {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			raw, err := encodeObject(it)
			if err != nil {
				return nil, err
			}
			row.Object = runtime.RawExtension{Raw: raw}
		default:
			p, err := partialOf(it, version)
			if err != nil {
				return nil, err
			}
			raw, err := encodeObject(p)
			if err != nil {
				return nil, err
			}
			row.Object = runtime.RawExtension{Raw: raw}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}
