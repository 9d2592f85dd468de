package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helm is built from its Go modules, pinned in e2e/tools/helm3 and
// e2e/tools/helm4 (modules of their own, so that Helm's dependencies stay
// out of skiff's), the way kubectl is.
var (
	helmOnce sync.Once
	helmErr  error
)

func helmBinaries(t *testing.T) (helm3, helm4 string) {
	t.Helper()
	binaries(t) // the go tool is there, and binDir exists
	helm3, helm4 = filepath.Join(binDir, "helm3"), filepath.Join(binDir, "helm4")
	helmOnce.Do(func() {
		for _, b := range []struct{ dir, pkg, out string }{
			{"tools/helm3", "helm.sh/helm/v3/cmd/helm", helm3},
			{"tools/helm4", "helm.sh/helm/v4/cmd/helm", helm4},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*buildTimeout)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
			cmd.Dir = b.dir
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				helmErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if helmErr != nil {
		t.Fatalf("build helm: %v", helmErr)
	}
	return helm3, helm4
}

// writeChart writes a chart with a CRD in crds/ and a custom object and a
// ConfigMap in its templates.
func writeChart(t *testing.T, dir string) string {
	t.Helper()
	chart := filepath.Join(dir, "widgets")
	files := map[string]string{
		"Chart.yaml":              "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
		"values.yaml":             "color: red\n",
		"crds/widgets.yaml":       widgetCRDManifest,
		"templates/widget.yaml":   "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  color: {{ .Values.color }}\n",
		"templates/settings.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-settings\ndata:\n  color: {{ .Values.color | quote }}\n",
		"templates/rbac.yaml":     widgetRBACTemplate,
	}
	for name, content := range files {
		p := filepath.Join(chart, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return chart
}

// widgetRBACTemplate is what nearly every published chart has: a service
// account, a ClusterRole (here also aggregated into view) and its binding.
const widgetRBACTemplate = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Namespace }}-{{ .Release.Name }}-widgets
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Namespace }}-{{ .Release.Name }}-widgets
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ .Release.Namespace }}-{{ .Release.Name }}-widgets
subjects:
- kind: ServiceAccount
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
`

// TestHelmCharts installs, upgrades, rolls back and uninstalls a chart
// with a CRD and a custom object with Helm 3 and with Helm 4 (whose
// default is server-side apply).
func TestHelmCharts(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts a server)")
	}
	helm3, helm4 := helmBinaries(t)
	c := startCluster(t)
	chart := writeChart(t, c.dir)
	for _, h := range []struct{ name, bin string }{{"helm3", helm3}, {"helm4", helm4}} {
		t.Run(h.name, func(t *testing.T) {
			ns := h.name
			run := func(args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, h.bin, append(args, "--namespace", ns, "--kubeconfig", c.kubeconfig)...)
				cmd.Env = append(c.env(), "HELM_CACHE_HOME="+filepath.Join(c.home, h.name, "cache"),
					"HELM_CONFIG_HOME="+filepath.Join(c.home, h.name, "config"), "HELM_DATA_HOME="+filepath.Join(c.home, h.name, "data"))
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			color := func() string {
				t.Helper()
				return c.mustKubectl(t, "-n", ns, "get", "widget", "demo", "-o", "jsonpath={.spec.color}")
			}
			run("install", "demo", chart, "--create-namespace", "--wait")
			if got := color(); got != "red" {
				t.Fatalf("after install: color %q, want red", got)
			}
			// The chart's ClusterRoleBinding gives its service account
			// what the ClusterRole says, and no more.
			sa := "--as=system:serviceaccount:" + ns + ":demo"
			if out := c.mustKubectl(t, "auth", "can-i", "list", "widgets.example.com", sa); strings.TrimSpace(out) != "yes" {
				t.Errorf("the chart's service account may not list widgets: %q", out)
			}
			if out, _, _ := c.kubectl("auth", "can-i", "delete", "widgets.example.com", sa); strings.TrimSpace(out) != "no" {
				t.Errorf("the chart's service account may delete widgets: %q", out)
			}
			run("upgrade", "demo", chart, "--set", "color=blue", "--wait")
			if got := color(); got != "blue" {
				t.Errorf("after upgrade: color %q, want blue", got)
			}
			if got := c.mustKubectl(t, "-n", ns, "get", "configmap", "demo-settings", "-o", "jsonpath={.data.color}"); got != "blue" {
				t.Errorf("after upgrade: configmap color %q, want blue", got)
			}
			run("rollback", "demo", "1", "--wait")
			if got := color(); got != "red" {
				t.Errorf("after rollback: color %q, want red", got)
			}
			if out := run("list"); !strings.Contains(out, "demo") || !strings.Contains(out, "deployed") {
				t.Errorf("helm list:\n%s", out)
			}
			run("uninstall", "demo", "--wait")
			if _, errOut, err := c.kubectl("-n", ns, "get", "widget", "demo"); err == nil || !strings.Contains(errOut, "NotFound") {
				t.Errorf("widget still there after uninstall: %v %s", err, errOut)
			}
		})
	}
}
