package layering

import (
	"os/exec"
	"strings"
	"testing"
)

// rules: packages matching a prefix must not depend on any of the listed
// packages (or their subpackages), directly or not.
var rules = []struct {
	from      string
	forbidden []string
	why       string
}{
	{"skiff/internal/kubelet", serverSide, "the agent reaches the cluster only through the API"},
	{"skiff/internal/proxy", serverSide, "the agent reaches the cluster only through the API"},
	{"skiff/internal/dns", serverSide, "the agent reaches the cluster only through the API"},
	{"skiff/internal/agent", serverSide, "the agent reaches the cluster only through the API"},
	{"skiff/internal/controller", []string{"skiff/internal/apiserver", "skiff/internal/storage", "skiff/internal/etcd", "skiff/internal/registry"}, "controllers are API clients"},
	{"skiff/internal/scheduler", []string{"skiff/internal/apiserver", "skiff/internal/storage", "skiff/internal/etcd", "skiff/internal/registry"}, "the scheduler is an API client"},
	{"skiff/internal/registry", []string{"skiff/internal/apiserver", "skiff/internal/server", "skiff/internal/admission"}, "strategies sit below the API server"},
	{"skiff/internal/admission", []string{"skiff/internal/apiserver", "skiff/internal/server"}, "admission plugins sit below the API server"},
	{"skiff/internal/storage", []string{"skiff/internal/apiserver", "skiff/internal/registry", "skiff/internal/server"}, "storage knows no kind and no handler"},
}

var serverSide = []string{
	"skiff/internal/apiserver", "skiff/internal/server", "skiff/internal/controller", "skiff/internal/scheduler",
	"skiff/internal/registry", "skiff/internal/admission", "skiff/internal/storage", "skiff/internal/etcd", "skiff/internal/leader",
}

func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}:{{join .Deps " "}}`, "skiff/...").Output()
	if err != nil {
		t.Skipf("go list is not available: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		if !strings.HasPrefix(pkg, "skiff/") {
			continue
		}
		for _, r := range rules {
			if pkg != r.from && !strings.HasPrefix(pkg, r.from+"/") {
				continue
			}
			for _, d := range strings.Fields(deps) {
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s imports %s: %s", pkg, d, r.why)
					}
				}
			}
		}
	}
}
