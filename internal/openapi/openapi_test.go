package openapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/openapi"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/spec3"
	openapiproto "k8s.io/kube-openapi/pkg/util/proto"
	"k8s.io/kube-openapi/pkg/validation/spec"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"

	"skiff/internal/openapi/builtin"
)

var mainVerbs = metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}

func builtinLists() []*metav1.APIResourceList {
	sub := metav1.Verbs{"get", "patch", "update"}
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "configmaps", Namespaced: true, Kind: "ConfigMap", Verbs: mainVerbs},
			{Name: "namespaces", Kind: "Namespace", Verbs: mainVerbs},
			{Name: "namespaces/status", Kind: "Namespace", Verbs: sub},
			{Name: "pods", Namespaced: true, Kind: "Pod", Verbs: mainVerbs},
			{Name: "pods/status", Namespaced: true, Kind: "Pod", Verbs: sub},
			{Name: "pods/eviction", Namespaced: true, Group: "policy", Version: "v1", Kind: "Eviction", Verbs: metav1.Verbs{"create"}},
			{Name: "pods/log", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get"}},
			{Name: "pods/exec", Namespaced: true, Kind: "PodExecOptions", Verbs: metav1.Verbs{"create", "get"}},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Namespaced: true, Kind: "Deployment", Verbs: mainVerbs},
			{Name: "deployments/status", Namespaced: true, Kind: "Deployment", Verbs: sub},
			{Name: "deployments/scale", Namespaced: true, Group: "autoscaling", Version: "v1", Kind: "Scale", Verbs: sub},
		}},
		{GroupVersion: "authorization.k8s.io/v1", APIResources: []metav1.APIResource{
			{Name: "selfsubjectaccessreviews", Kind: "SelfSubjectAccessReview", Verbs: metav1.Verbs{"create"}},
		}},
	}
}

// fixture is a Service over a changeable served set, behind an HTTP server.
type fixture struct {
	svc *Service
	srv *httptest.Server

	mu    sync.Mutex
	lists []*metav1.APIResourceList
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, scheme.Scheme, builtinLists())
}

func newFixtureWith(t *testing.T, sch *runtime.Scheme, lists []*metav1.APIResourceList) *fixture {
	t.Helper()
	f := &fixture{lists: lists}
	svc, err := New(Config{
		Resources: func() []*metav1.APIResourceList {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.lists
		},
		Scheme: sch, Title: "skiff", Version: "v1.37.2",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	mux := http.NewServeMux()
	mux.HandleFunc("/openapi/v2", svc.ServeV2)
	mux.HandleFunc("/openapi/v3", svc.ServeV3)
	mux.HandleFunc("/openapi/v3/", svc.ServeV3)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) serve(lists []*metav1.APIResourceList) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = lists
}

func (f *fixture) get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func (f *fixture) restConfig() *rest.Config { return &rest.Config{Host: f.srv.URL} }

func (f *fixture) openapiClient(t *testing.T) openapi.Client {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(f.restConfig())
	if err != nil {
		t.Fatal(err)
	}
	return dc.OpenAPIV3()
}

func TestV2JSONDescribesServedKinds(t *testing.T) {
	f := newFixture(t)
	resp := f.get(t, "/openapi/v2", "Accept", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var sw spec.Swagger
	if err := json.Unmarshal(body(t, resp), &sw); err != nil {
		t.Fatal(err)
	}
	dep, ok := sw.Definitions["io.k8s.api.apps.v1.Deployment"]
	if !ok {
		t.Fatal("no Deployment definition")
	}
	var gvks []map[string]string
	if err := dep.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks); err != nil || len(gvks) != 1 || gvks[0]["kind"] != "Deployment" || gvks[0]["group"] != "apps" {
		t.Fatalf("Deployment's group-version-kind: %v (%v)", gvks, err)
	}
	if _, ok := sw.Definitions["io.k8s.api.apps.v1.DeploymentStrategy"]; !ok {
		t.Fatal("definitions referenced by Deployment are missing")
	}
	if _, ok := sw.Definitions["io.k8s.api.batch.v1.Job"]; ok {
		t.Fatal("a kind that is not served is described")
	}
	p, ok := sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
	if !ok || p.Patch == nil || p.Get == nil || p.Put == nil || p.Delete == nil {
		t.Fatalf("deployment item path: %+v", p)
	}
	if p.Patch.ID != "patchAppsV1NamespacedDeployment" || !hasParam(p.Patch.Parameters, "fieldValidation") {
		t.Fatalf("patch operation %q, parameters %+v", p.Patch.ID, p.Patch.Parameters)
	}
	for _, want := range []string{
		"/api/v1/namespaces/{namespace}/pods", "/api/v1/pods", "/api/v1/namespaces/{namespace}/pods/{name}/status",
		"/api/v1/namespaces/{namespace}/pods/{name}/eviction", "/api/v1/namespaces", "/api/v1/namespaces/{name}",
		"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
	} {
		if _, ok := sw.Paths.Paths[want]; !ok {
			t.Errorf("no path %s", want)
		}
	}
	for _, unwanted := range []string{"/api/v1/namespaces/{namespace}/pods/{name}/log", "/api/v1/namespaces/{namespace}/pods/{name}/exec"} {
		if _, ok := sw.Paths.Paths[unwanted]; ok {
			t.Errorf("path %s is described", unwanted)
		}
	}
	if scale := sw.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]; scale.Get == nil ||
		scale.Get.Extensions["x-kubernetes-group-version-kind"].(map[string]interface{})["kind"] != "Scale" {
		t.Errorf("scale operation: %+v", scale.Get)
	}
}

func hasParam(params []spec.Parameter, name string) bool {
	for _, p := range params {
		if p.Name == name && p.In == "query" {
			return true
		}
	}
	return false
}

// kubectl asks for the protobuf form and reads it with kube-openapi's proto
// models (validation and explain of old).
func TestV2ProtobufAsKubectlReadsIt(t *testing.T) {
	f := newFixture(t)
	resp := f.get(t, "/openapi/v2", "Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != mediaV2Proto {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(body(t, resp), &doc); err != nil {
		t.Fatal(err)
	}
	models, err := openapiproto.NewOpenAPIData(&doc)
	if err != nil {
		t.Fatal(err)
	}
	m := models.LookupModel("io.k8s.api.apps.v1.Deployment")
	if m == nil {
		t.Fatal("no Deployment model")
	}
	kind, ok := m.(*openapiproto.Kind)
	if !ok || kind.Fields["spec"] == nil {
		t.Fatalf("Deployment model %T has no spec", m)
	}
}

func TestETagsAndConditionalRequests(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/openapi/v2", "/openapi/v3", "/openapi/v3/apis/apps/v1"} {
		resp := f.get(t, path)
		body(t, resp)
		etag := resp.Header.Get("Etag")
		if resp.StatusCode != 200 || etag == "" {
			t.Fatalf("%s: status %d, etag %q", path, resp.StatusCode, etag)
		}
		again := f.get(t, path, "If-None-Match", etag)
		body(t, again)
		if again.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with If-None-Match: status %d, want 304", path, again.StatusCode)
		}
	}
	if resp := f.get(t, "/openapi/v2", "Accept", "text/html"); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("unacceptable media type: status %d", resp.StatusCode)
	}
}

type index struct {
	Paths map[string]struct {
		ServerRelativeURL string `json:"serverRelativeURL"`
	} `json:"paths"`
}

func (f *fixture) index(t *testing.T) index {
	t.Helper()
	var idx index
	if err := json.Unmarshal(body(t, f.get(t, "/openapi/v3")), &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestV3IndexAndHashedDocuments(t *testing.T) {
	f := newFixture(t)
	idx := f.index(t)
	for _, gv := range []string{"api/v1", "apis/apps/v1", "apis/authorization.k8s.io/v1"} {
		if !strings.HasPrefix(idx.Paths[gv].ServerRelativeURL, "/openapi/v3/"+gv+"?hash=") {
			t.Fatalf("index entry of %s: %q", gv, idx.Paths[gv].ServerRelativeURL)
		}
	}
	u := idx.Paths["apis/apps/v1"].ServerRelativeURL
	resp := f.get(t, u)
	data := body(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("%s: status %d, cache control %q", u, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var o spec3.OpenAPI
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Components.Schemas["io.k8s.api.apps.v1.Deployment"]; !ok {
		t.Fatal("no Deployment schema in apps/v1")
	}
	if _, ok := o.Components.Schemas["io.k8s.api.core.v1.ConfigMap"]; ok {
		t.Fatal("apps/v1 describes a core kind")
	}
	if o.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments"].Post.RequestBody == nil {
		t.Fatal("create has no request body")
	}

	stale := f.get(t, "/openapi/v3/apis/apps/v1?hash=0123")
	body(t, stale)
	if stale.StatusCode != http.StatusMovedPermanently || stale.Header.Get("Location") != u {
		t.Fatalf("stale hash: status %d, location %q", stale.StatusCode, stale.Header.Get("Location"))
	}
	if resp := f.get(t, "/openapi/v3/apis/batch/v1"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unserved group-version: status %d", resp.StatusCode)
	}
	pb := f.get(t, u, "Accept", mediaV3Proto)
	if body(t, pb); pb.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("v3 protobuf: status %d, want 406", pb.StatusCode)
	}
}

// kubectl decides whether the server validates fields (and so whether
// --validate=strict is sent as fieldValidation=Strict) from the v3 document.
func TestKubectlSeesServerSideFieldValidation(t *testing.T) {
	f := newFixture(t)
	v := resource.NewQueryParamVerifierV3(nil, f.openapiClient(t), resource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Version: "v1", Kind: "Pod"},
		{Version: "v1", Kind: "Namespace"},
	} {
		if err := v.HasSupport(gvk); err != nil {
			t.Errorf("%s: %v", gvk, err)
		}
	}
}

func explain(t *testing.T, f *fixture, gvr schema.GroupVersionResource, path ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := explainv2.PrintModelDescription(path, &out, f.openapiClient(t), gvr, false, 0, "plaintext"); err != nil {
		t.Fatalf("explain %s %v: %v", gvr, path, err)
	}
	return out.String()
}

func TestKubectlExplain(t *testing.T) {
	f := newFixture(t)
	out := explain(t, f, schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "spec", "strategy")
	for _, want := range []string{"KIND:       Deployment", "FIELD: strategy <DeploymentStrategy>", "rollingUpdate", "type"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain deployment.spec.strategy lacks %q:\n%s", want, out)
		}
	}
}

func cronTabs(withList bool) *metav1.APIResourceList {
	verbs := mainVerbs
	if !withList {
		verbs = metav1.Verbs{"get"}
	}
	return &metav1.APIResourceList{GroupVersion: "stable.example.com/v1", APIResources: []metav1.APIResource{
		{Name: "crontabs", Namespaced: true, Kind: "CronTab", Verbs: verbs},
	}}
}

func TestCustomSchemas(t *testing.T) {
	f := newFixture(t)
	before := f.index(t)
	gvk := schema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}
	f.serve(append(builtinLists(), cronTabs(true)))
	f.svc.AddSchema(gvk, &spec.Schema{SchemaProps: spec.SchemaProps{
		Type: spec.StringOrArray{"object"},
		Properties: map[string]spec.Schema{
			"spec": {SchemaProps: spec.SchemaProps{
				Type:        spec.StringOrArray{"object"},
				Description: "The desired state of the cron tab.",
				Properties: map[string]spec.Schema{
					"cronSpec": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"string"}, Description: "When to run."}},
					"replicas": {SchemaProps: spec.SchemaProps{Type: spec.StringOrArray{"integer"}, Nullable: true}},
				},
			}},
		},
	}})
	after := f.index(t)
	if before.Paths["apis/apps/v1"] != after.Paths["apis/apps/v1"] {
		t.Error("an unchanged group-version changed its hash")
	}
	if after.Paths["apis/stable.example.com/v1"].ServerRelativeURL == "" {
		t.Fatal("the custom group-version is not in the index")
	}
	out := explain(t, f, schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}, "spec")
	if !strings.Contains(out, "cronSpec") || !strings.Contains(out, "When to run.") {
		t.Fatalf("explain crontab.spec:\n%s", out)
	}
	v := resource.NewQueryParamVerifierV3(nil, f.openapiClient(t), resource.QueryParamFieldValidation)
	if err := v.HasSupport(gvk); err != nil {
		t.Fatalf("field validation of the custom kind: %v", err)
	}

	var sw spec.Swagger
	if err := json.Unmarshal(body(t, f.get(t, "/openapi/v2")), &sw); err != nil {
		t.Fatal(err)
	}
	ct, ok := sw.Definitions["com.example.stable.v1.CronTab"]
	metaRef := ct.Properties["metadata"].Ref
	if !ok || metaRef.String() != "#/definitions/"+objectMetaModel {
		t.Fatalf("custom definition in v2: %+v", ct)
	}
	if ct.Properties["spec"].Properties["replicas"].Nullable {
		t.Error("v2 says nullable")
	}
	if _, ok := sw.Definitions["com.example.stable.v1.CronTabList"]; !ok {
		t.Error("no list definition of the custom kind")
	}

	f.svc.RemoveSchema(gvk)
	out = explain(t, f, schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"})
	if strings.Contains(out, "cronSpec") {
		t.Fatalf("explain still shows the removed schema:\n%s", out)
	}
	f.serve(builtinLists())
	if _, ok := f.index(t).Paths["apis/stable.example.com/v1"]; ok {
		t.Fatal("a group-version no longer served is in the index")
	}
}

func TestServedSetChangesTheDocuments(t *testing.T) {
	f := newFixture(t)
	before := f.get(t, "/openapi/v2")
	body(t, before)
	f.serve(append(builtinLists(), &metav1.APIResourceList{GroupVersion: "batch/v1", APIResources: []metav1.APIResource{
		{Name: "jobs", Namespaced: true, Kind: "Job", Verbs: mainVerbs},
	}}))
	after := f.get(t, "/openapi/v2")
	data := body(t, after)
	var sw spec.Swagger
	if err := json.Unmarshal(data, &sw); err != nil {
		t.Fatalf("%v: %.300s", err, data)
	}
	if before.Header.Get("Etag") == after.Header.Get("Etag") {
		t.Fatal("the ETag did not change")
	}
	if _, ok := sw.Definitions["io.k8s.api.batch.v1.Job"]; !ok {
		t.Fatal("a newly served kind is not described")
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct{ accept, want string }{
		{"", mediaJSON},
		{"application/json", mediaJSON},
		{"*/*", mediaJSON},
		{mediaV2Proto, mediaV2Proto},
		{"application/com.github.proto-openapi.spec.v2@v1.0+protobuf", mediaV2Proto},
		{"application/json;q=0.5, " + mediaV2Proto, mediaV2Proto},
		{mediaV2Proto + ";q=0.1, application/json", mediaJSON},
		{"text/html", ""},
	} {
		if got := negotiate(tc.accept, mediaV2Proto); got != tc.want {
			t.Errorf("negotiate(%q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}

// The generated set is closed: every definition a generated one refers to
// is generated too (a missing package in generate.go breaks the documents).
func TestGeneratedDefinitionsAreClosed(t *testing.T) {
	defs, err := builtinDefinitions(true, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{}
	for name, d := range defs {
		for _, dep := range d.Dependencies {
			if _, ok := defs[dep]; !ok {
				missing[dep] = true
				t.Errorf("%s refers to %s, which is not generated", name, dep)
			}
		}
	}
}

// The embedded definitions are those of the committed generated code: go
// generate was run after the last change to either.
func TestEmbeddedDefinitionsAreUpToDate(t *testing.T) {
	fresh, err := EncodeBuiltin(builtin.GetOpenAPIDefinitions)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(fresh))
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := builtinJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("builtin/definitions.json.gz is stale: run go generate ./internal/openapi")
	}
}

// CustomResourceDefinitions are described from apiextensions' own types.
func TestExplainCustomResourceDefinition(t *testing.T) {
	sch := runtime.NewScheme()
	if err := scheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	lists := append(builtinLists(), &metav1.APIResourceList{GroupVersion: "apiextensions.k8s.io/v1", APIResources: []metav1.APIResource{
		{Name: "customresourcedefinitions", Kind: "CustomResourceDefinition", Verbs: mainVerbs},
		{Name: "customresourcedefinitions/status", Kind: "CustomResourceDefinition", Verbs: metav1.Verbs{"get", "patch", "update"}},
	}})
	f := newFixtureWith(t, sch, lists)
	out := explain(t, f, schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}, "spec", "versions", "schema")
	if !strings.Contains(out, "openAPIV3Schema\t<JSONSchemaProps>") {
		t.Fatalf("explain crd.spec.versions.schema:\n%s", out)
	}
}

// Every server of a cluster builds the same bytes, so a hash from one
// server's index names the same document on another.
func TestDocumentsAreDeterministic(t *testing.T) {
	a, b := newFixture(t), newFixture(t)
	for _, path := range []string{"/openapi/v2", "/openapi/v3", "/openapi/v3/api/v1", "/openapi/v3/apis/apps/v1"} {
		ra, rb := a.get(t, path), b.get(t, path)
		da, db := body(t, ra), body(t, rb)
		if !bytes.Equal(da, db) || ra.Header.Get("Etag") != rb.Header.Get("Etag") {
			t.Errorf("%s differs between two builds", path)
		}
	}
}
