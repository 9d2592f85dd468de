package apiserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"skiff/internal/server/servertest"
)

func warnings(res rest.Result) []string {
	var out []string
	for _, w := range res.Warnings() {
		out = append(out, w.Text)
	}
	return out
}

func TestFieldValidation(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t).(*kubernetes.Clientset)
	rc := c.AppsV1().RESTClient()
	ctx := ctxT(t)
	typo := func(name string) []byte {
		d := deployment(name, 1)
		data, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(strings.Replace(string(data), `"spec":{`, `"spec":{"replicaz":3,`, 1))
	}
	create := func(name, directive string, body []byte) rest.Result {
		r := rc.Post().Namespace("default").Resource("deployments").SetHeader("Content-Type", "application/json").Body(body)
		if directive != "" {
			r = r.Param("fieldValidation", directive)
		}
		return r.Do(ctx)
	}

	// Warn, the default: created, with a warning naming the field.
	res := create("warn", "", typo("warn"))
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	if w := warnings(res); len(w) != 1 || w[0] != `unknown field "spec.replicaz"` {
		t.Fatalf("warnings %q", w)
	}
	// Strict: refused, naming the field, and nothing is created.
	res = create("strict", "Strict", typo("strict"))
	var code int
	res.StatusCode(&code)
	if err := res.Error(); code != http.StatusBadRequest || !apierrors.IsBadRequest(err) ||
		err.Error() != `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz"` {
		t.Fatalf("strict: %d %v", code, err)
	}
	if _, err := c.AppsV1().Deployments("default").Get(ctx, "strict", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused object exists: %v", err)
	}
	// Ignore: created, silently.
	res = create("ignore", "Ignore", typo("ignore"))
	if err := res.Error(); err != nil || len(res.Warnings()) != 0 {
		t.Fatalf("ignore: %v %q", err, warnings(res))
	}
	// Duplicate fields are reported too.
	res = create("dup", "", []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"dup","name":"dup"},`+
		`"spec":{"selector":{"matchLabels":{"app":"d"}},"template":{"metadata":{"labels":{"app":"d"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`))
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	if w := warnings(res); len(w) != 1 || w[0] != `duplicate field "metadata.name"` {
		t.Fatalf("duplicate warnings %q", w)
	}
	// So are those of a YAML body.
	yamlBody := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: dupyaml\n  name: dupyaml\nspec:\n  selector:\n    matchLabels: {app: d}\n" +
		"  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers: [{name: c, image: i}]\n"
	res = rc.Post().Namespace("default").Resource("deployments").SetHeader("Content-Type", "application/yaml").Param("fieldValidation", "Strict").Body([]byte(yamlBody)).Do(ctx)
	if err := res.Error(); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `strict decoding error: `) || !strings.Contains(err.Error(), `"name" already set in map`) {
		t.Fatalf("yaml duplicate, strict: %v", err)
	}
	res = rc.Post().Namespace("default").Resource("deployments").SetHeader("Content-Type", "application/yaml").Body([]byte(yamlBody)).Do(ctx)
	if w := warnings(res); res.Error() != nil || len(w) != 1 || !strings.Contains(w[0], `"name" already set in map`) {
		t.Fatalf("yaml duplicate, warn: %v %q", res.Error(), w)
	}
	// An unknown directive is refused.
	res = create("bad", "Loud", typo("bad"))
	if err := res.Error(); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `Unsupported value: "Loud"`) {
		t.Fatalf("bad directive: %v", err)
	}

	// Patches: the patched object is checked.
	patch := func(directive string, pt types.PatchType, body string) rest.Result {
		r := rc.Patch(pt).Namespace("default").Resource("deployments").Name("warn").Body([]byte(body))
		if directive != "" {
			r = r.Param("fieldValidation", directive)
		}
		return r.Do(ctx)
	}
	for _, pt := range []types.PatchType{types.MergePatchType, types.StrategicMergePatchType} {
		res = patch("Strict", pt, `{"spec":{"paused":true,"minReadySecondz":1}}`)
		if err := res.Error(); !apierrors.IsBadRequest(err) || err.Error() != `strict decoding error: unknown field "spec.minReadySecondz"` {
			t.Fatalf("%s strict: %v", pt, err)
		}
		res = patch("", pt, `{"spec":{"minReadySecondz":1}}`)
		if w := warnings(res); res.Error() != nil || len(w) != 1 || w[0] != `unknown field "spec.minReadySecondz"` {
			t.Fatalf("%s warn: %v %q", pt, res.Error(), w)
		}
	}
	res = patch("Strict", types.JSONPatchType, `[{"op":"add","path":"/spec/paused2","value":true}]`)
	if err := res.Error(); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.paused2"`) {
		t.Fatalf("json patch strict: %v", err)
	}

	// Updates.
	cur, err := c.AppsV1().Deployments("default").Get(ctx, "warn", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(cur)
	data = []byte(strings.Replace(string(data), `"spec":{`, `"spec":{"replicaz":3,`, 1))
	res = rc.Put().Namespace("default").Resource("deployments").Name("warn").Param("fieldValidation", "Strict").Body(data).Do(ctx)
	if err := res.Error(); !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.replicaz"`) {
		t.Fatalf("update strict: %v", err)
	}
	res = rc.Put().Namespace("default").Resource("deployments").Name("warn").Body(data).Do(ctx)
	if w := warnings(res); res.Error() != nil || len(w) != 1 {
		t.Fatalf("update warn: %v %q", res.Error(), w)
	}
}
