package e2e

import (
	"strings"
	"testing"
	"time"
)

const widgetCRDManifest = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [color]
            x-kubernetes-validations:
            - {rule: "!has(self.size) || self.size <= 10", message: "size must be at most 10"}
            properties:
              color: {type: string, enum: [red, blue]}
              replicas: {type: integer, minimum: 0, default: 1}
              size: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
`

// TestKubectlCustomResources drives a CRD's life with the real kubectl: a
// definition applied and established, custom objects applied, listed with
// their printer columns, short name and category, refused when invalid,
// scaled, and deleted with the definition.
func TestKubectlCustomResources(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts a server)")
	}
	c := startCluster(t)
	c.logTranscriptOnFailure(t)
	crd := c.writeFile(t, "crd.yaml", widgetCRDManifest)
	out := c.mustKubectl(t, "apply", "-f", crd)
	if !strings.Contains(out, "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created") {
		t.Fatalf("apply CRD: %s", out)
	}
	c.mustKubectl(t, "wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=30s")

	widget := c.writeFile(t, "widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: a\nspec:\n  color: red\n")
	// Discovery is cached by kubectl; the resource appears within seconds.
	if !waitFor(20*time.Second, func() bool {
		_, _, err := c.kubectlQuiet(10*time.Second, "apply", "-f", widget)
		return err == nil
	}) {
		t.Fatalf("apply widget never worked:\n%s", c.mustKubectl(t, "api-resources"))
	}

	out = c.mustKubectl(t, "get", "widgets")
	row, header := tableRow(out, "a"), tableHeader(out, "a")
	if column(header, row, "COLOR") != "red" || column(header, row, "REPLICAS") != "1" || column(header, row, "AGE") == "" {
		t.Errorf("kubectl get widgets: want COLOR red, REPLICAS 1 (the default) and AGE in\n%s", out)
	}
	if !waitFor(20*time.Second, func() bool {
		out, _, err := c.kubectlQuiet(10*time.Second, "explain", "widgets.spec")
		return err == nil && strings.Contains(out, "color") && strings.Contains(out, "replicas")
	}) {
		out, errOut, _ := c.kubectl("explain", "widgets.spec")
		t.Errorf("kubectl explain widgets.spec: want the schema's fields in\n%s%s", out, errOut)
	}
	if out := c.mustKubectl(t, "get", "wd", "a", "-o", "jsonpath={.spec.color}"); out != "red" {
		t.Errorf("kubectl get wd a: %q", out)
	}
	if out := c.mustKubectl(t, "get", "all"); !strings.Contains(out, "widget.example.com/a") {
		t.Errorf("kubectl get all: no widget in\n%s", out)
	}

	bad := c.writeFile(t, "bad.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  color: green\n  size: 20\n")
	errOut := c.kubectlFails(t, "apply", "-f", bad)
	if m := containsAll(errOut, `spec.color: Unsupported value: "green"`, "size must be at most 10"); m != nil {
		t.Errorf("apply of an invalid widget: missing %q in\n%s", m, errOut)
	}

	out = c.mustKubectl(t, "scale", "widget", "a", "--replicas=4")
	if !strings.Contains(out, "widget.example.com/a scaled") {
		t.Errorf("kubectl scale: %s", out)
	}
	if out := c.mustKubectl(t, "get", "widget", "a", "-o", "jsonpath={.spec.replicas}"); out != "4" {
		t.Errorf("replicas after scale: %q, want 4", out)
	}

	c.mustKubectl(t, "delete", "-f", crd, "--timeout=60s")
	if _, errOut, err := c.kubectl("get", "crd", "widgets.example.com"); err == nil || !strings.Contains(errOut, "NotFound") {
		t.Errorf("CRD still there after delete: %v %s", err, errOut)
	}
}
