package e2e

import (
	"strings"
	"testing"
)

const ssaConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: %s
`

// TestKubectlServerSideApply: `kubectl apply --server-side` creates and
// changes an object, a second manager conflicts until it forces, and
// `kubectl diff --server-side` shows what an apply would change.
func TestKubectlServerSideApply(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts a server)")
	}
	c := startCluster(t)
	c.logTranscriptOnFailure(t)
	red := c.writeFile(t, "red.yaml", strings.Replace(ssaConfigMap, "%s", "red", 1))
	blue := c.writeFile(t, "blue.yaml", strings.Replace(ssaConfigMap, "%s", "blue", 1))

	if out := c.mustKubectl(t, "apply", "--server-side", "-f", red); !strings.Contains(out, "configmap/settings serverside-applied") {
		t.Fatalf("apply --server-side: %s", out)
	}
	out := c.mustKubectl(t, "get", "configmap", "settings", "-o", "yaml", "--show-managed-fields")
	if m := containsAll(out, "manager: kubectl", "operation: Apply", "f:color: {}"); m != nil {
		t.Errorf("managed fields: missing %q in\n%s", m, out)
	}
	errOut := c.kubectlFails(t, "apply", "--server-side", "--field-manager=other", "-f", blue)
	if m := containsAll(errOut, "Apply failed with 1 conflict", `conflict with "kubectl"`, ".data.color"); m != nil {
		t.Errorf("conflicting apply: missing %q in\n%s", m, errOut)
	}
	diff, _, _ := c.kubectl("diff", "--server-side", "--field-manager=other", "--force-conflicts", "-f", blue)
	if m := containsAll(diff, "-  color: red", "+  color: blue"); m != nil {
		t.Errorf("kubectl diff --server-side: missing %q in\n%s", m, diff)
	}
	c.mustKubectl(t, "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", blue)
	if out := c.mustKubectl(t, "get", "configmap", "settings", "-o", "jsonpath={.data.color}"); out != "blue" {
		t.Errorf("after --force-conflicts: color %q, want blue", out)
	}
}
