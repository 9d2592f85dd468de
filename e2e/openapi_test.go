package e2e

import (
	"strings"
	"testing"
)

// typoManifest is a Deployment with a misspelt field, as users write them.
const typoManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicaz: 3
  selector:
    matchLabels:
      app: typo
  template:
    metadata:
      labels:
        app: typo
    spec:
      containers:
      - name: web
        image: nginx:1.27
`

// TestKubectlExplainAndFieldValidation checks what kubectl reads from the
// OpenAPI documents (explain; whether the server validates fields) and what
// it prints for a misspelt field: an error with --validate=strict, a
// warning by default.
func TestKubectlExplainAndFieldValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts a server)")
	}
	c := startCluster(t)
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		t.Logf("kubectl transcript:\n%s", c.transcript.String())
	})

	t.Run("explain", func(t *testing.T) {
		out := c.mustKubectl(t, "explain", "deployment.spec.strategy")
		if m := containsAll(out, "GROUP:      apps", "KIND:       Deployment", "VERSION:    v1",
			"FIELD: strategy <DeploymentStrategy>", "rollingUpdate\t<RollingUpdateDeployment>", "type\t<string>"); m != nil {
			t.Errorf("kubectl explain deployment.spec.strategy: missing %q in\n%s", m, out)
		}
		out = c.mustKubectl(t, "explain", "pods.spec.containers.image")
		if m := containsAll(out, "KIND:       Pod", "FIELD: image <string>"); m != nil {
			t.Errorf("kubectl explain pods.spec.containers.image: missing %q in\n%s", m, out)
		}
	})

	t.Run("strict", func(t *testing.T) {
		f := c.writeFile(t, "strict.yaml", strings.ReplaceAll(typoManifest, "%s", "strict"))
		errOut := c.kubectlFails(t, "create", "--validate=strict", "-f", f)
		if m := containsAll(errOut, "BadRequest", `strict decoding error: unknown field "spec.replicaz"`); m != nil {
			t.Errorf("kubectl create --validate=strict: missing %q in\n%s", m, errOut)
		}
		errOut = c.kubectlFails(t, "get", "deploy", "strict")
		if !strings.Contains(errOut, "NotFound") {
			t.Errorf("a refused deployment exists:\n%s", errOut)
		}
		errOut = c.kubectlFails(t, "apply", "--validate=strict", "-f", f)
		if !strings.Contains(errOut, `unknown field "spec.replicaz"`) {
			t.Errorf("kubectl apply --validate=strict: missing the field in\n%s", errOut)
		}
	})

	t.Run("warn", func(t *testing.T) {
		// kubectl validates strictly unless told otherwise, as upstream.
		f := c.writeFile(t, "warn.yaml", strings.ReplaceAll(typoManifest, "%s", "warn"))
		errOut := c.kubectlFails(t, "create", "-f", f)
		if !strings.Contains(errOut, `strict decoding error: unknown field "spec.replicaz"`) {
			t.Errorf("kubectl create (strict by default): missing the field in\n%s", errOut)
		}
		out, errOut, err := c.kubectl("create", "--validate=warn", "-f", f)
		if err != nil {
			t.Fatalf("kubectl create --validate=warn: %v\n%s%s", err, out, errOut)
		}
		if !strings.Contains(out, "deployment.apps/warn created") {
			t.Errorf("kubectl create --validate=warn: not created:\n%s", out)
		}
		if !strings.Contains(errOut, `Warning: unknown field "spec.replicaz"`) {
			t.Errorf("kubectl create --validate=warn: no warning in\n%s", errOut)
		}
		// apply creates, then patches: both warn.
		f = c.writeFile(t, "warn-apply.yaml", strings.ReplaceAll(typoManifest, "%s", "warn-apply"))
		for _, want := range []string{"created", "configured"} {
			out, errOut, err = c.kubectl("apply", "--validate=warn", "-f", f)
			if err != nil || !strings.Contains(out, "deployment.apps/warn-apply "+want) || !strings.Contains(errOut, `Warning: unknown field "spec.replicaz"`) {
				t.Errorf("kubectl apply --validate=warn (%s): %v, no warning in\n%s%s", want, err, out, errOut)
			}
			f = c.writeFile(t, "warn-apply.yaml", strings.ReplaceAll(strings.ReplaceAll(typoManifest, "%s", "warn-apply"), "nginx:1.27", "nginx:1.28"))
		}
		out, errOut, err = c.kubectl("create", "--validate=false", "-f", c.writeFile(t, "ignore.yaml", strings.ReplaceAll(typoManifest, "%s", "ignore")))
		if err != nil || strings.Contains(errOut, "Warning:") {
			t.Errorf("kubectl create --validate=false: %v, want no warning:\n%s%s", err, out, errOut)
		}
	})
}
