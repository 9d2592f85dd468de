package auth

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps internal/auth a library: it depends on no other skiff
// package, so the API server, admission and the kubelet can all use it.
func TestImports(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "skiff/internal/auth/...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "skiff/") && pkg != "skiff/internal/auth" && !strings.HasPrefix(pkg, "skiff/internal/auth/") {
			t.Errorf("internal/auth depends on %s", pkg)
		}
	}
}
