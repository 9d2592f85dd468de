package apiserver_test

import (
	"encoding/json"
	"strings"
	"testing"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/server/servertest"
)

// The documents describe every kind the server serves.
func TestOpenAPIDescribesServedKinds(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t).(*kubernetes.Clientset)
	ctx := ctxT(t)
	rc := c.CoreV1().RESTClient()

	raw, err := rc.Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var doc openapi_v2.Document
	if err := proto.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	defs := map[string]bool{}
	for _, d := range doc.GetDefinitions().GetAdditionalProperties() {
		defs[d.GetName()] = true
	}

	lists, err := c.Discovery().ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	raw, err = rc.Get().AbsPath("/openapi/v3").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	for _, l := range lists {
		p := "apis/" + l.GroupVersion
		if l.GroupVersion == "v1" {
			p = "api/v1"
		}
		entry, ok := idx.Paths[p]
		if !ok {
			t.Errorf("the v3 index lacks %s", p)
			continue
		}
		u, q, _ := strings.Cut(entry.ServerRelativeURL, "?")
		body, err := rc.Get().AbsPath(u).Param("hash", strings.TrimPrefix(q, "hash=")).DoRaw(ctx)
		if err != nil {
			t.Fatalf("%s: %v", entry.ServerRelativeURL, err)
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			want := `"kind":"` + r.Kind + `"`
			if !strings.Contains(string(body), want) {
				t.Errorf("%s does not describe %s", p, r.Kind)
			}
		}
	}
	for _, want := range []string{"io.k8s.api.apps.v1.Deployment", "io.k8s.api.core.v1.Pod", "io.k8s.api.coordination.v1.Lease"} {
		if !defs[want] {
			t.Errorf("v2 lacks %s", want)
		}
	}
}
