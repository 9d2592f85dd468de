package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tokenKubeconfig writes a kubeconfig for bearer token, verifying the
// server with the cluster CA that node n holds.
func (c *netCluster) tokenKubeconfig(t *testing.T, n *netNode, name, token string) string {
	t.Helper()
	ca := filepath.Join(n.dir, "data", "agent", "ca.crt")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://%s:6443", certificate-authority: %q}
users:
- name: u
  user: {token: %q}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`, c.nodes[0].ip, ca, token)
	p := filepath.Join(c.dir, name+".kubeconfig")
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthorization checks, on a three-node cluster in network
// namespaces, what a stolen node credential and a service account's
// token may and may not do under the default Node,RBAC mode.
func TestAuthorization(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped in -short mode (builds binaries and starts nodes)")
	}
	c := startNetCluster(t, "vxlan")
	n2 := c.nodes[1]
	nodeKubeconfig := filepath.Join(n2.dir, "data", "agent", "kubelet.kubeconfig")
	asNode := func(args ...string) (string, error) { return c.kubectlWith(n2, nodeKubeconfig, args...) }
	forbidden := func(t *testing.T, what string, out string, err error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: allowed, want Forbidden:\n%s", what, out)
			return
		}
		for _, w := range append([]string{"Forbidden", "forbidden"}, wants...) {
			if !strings.Contains(out, w) {
				t.Errorf("%s: want %q in the refusal:\n%s", what, w, out)
			}
		}
	}

	c.apply(`apiVersion: v1
kind: Namespace
metadata: {name: authz}
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated, namespace: authz}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Secret
metadata: {name: mounted, namespace: authz}
stringData: {password: swordfish}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: authz}
`)
	c.apply(strings.Replace(podManifest("user", "n2", "user", "sleep", "3600"), "metadata:\n", "metadata:\n  namespace: authz\n", 1) +
		"  volumes: [{name: s, secret: {secretName: mounted}}]\n")
	c.kubectl("-n", "authz", "wait", "--for=condition=Ready", "pod/user", "--timeout=120s")

	// The subtests fail themselves, not the cluster's test.
	mustKubectl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := c.kubectlQuiet(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustApply := func(t *testing.T, manifest string) {
		t.Helper()
		p := filepath.Join(c.dir, fmt.Sprintf("m%d.yaml", time.Now().UnixNano()))
		if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		mustKubectl(t, "apply", "-f", p)
	}

	t.Run("node-credential", func(t *testing.T) {
		out, err := asNode("-n", "authz", "get", "secret", "unrelated")
		forbidden(t, "the node reads a secret no pod of its uses", out, err, `User "system:node:n2"`, "secrets")
		if out, err := asNode("-n", "authz", "get", "secret", "mounted", "-o", "jsonpath={.metadata.name}"); err != nil || out != "mounted" {
			t.Errorf("the node may not read the secret of its own pod: %v\n%s", err, out)
		}
		out, err = asNode("label", "node", "n3", "stolen=yes")
		forbidden(t, "the node labels another node", out, err, "n3")
		out, err = asNode("label", "node", "n2", "node-restriction.kubernetes.io/trusted=yes")
		forbidden(t, "the node gives itself a node-restriction label", out, err, "node-restriction.kubernetes.io/trusted")
		out, err = asNode("label", "node", "n2", "node-role.kubernetes.io/control-plane=true")
		forbidden(t, "the node makes itself a control-plane node", out, err)
		out, err = asNode("-n", "authz", "delete", "pod", "user", "--dry-run=server")
		if err != nil {
			t.Errorf("the node may not delete its own pod: %v\n%s", err, out)
		}
		out, err = asNode("create", "namespace", "mine")
		forbidden(t, "the node creates a namespace", out, err)
		if got := mustKubectl(t, "get", "node", "n1", "-o", `jsonpath={.metadata.labels.node-role\.kubernetes\.io/control-plane}`); got != "true" {
			t.Errorf("the server's node has control-plane label %q, want true", got)
		}
	})

	t.Run("pod-on-agent", func(t *testing.T) {
		// A pod on an agent reaches the API with what the kubelet mounted,
		// as every in-cluster client does, and RBAC decides.
		mustKubectl(t, "-n", "authz", "create", "serviceaccount", "reader")
		mustApply(t, strings.Replace(podManifest("incluster", "n2", "incluster", "/testprog", "sleep", "3600"), "metadata:\n", "metadata:\n  namespace: authz\n", 1)+
			"  serviceAccountName: reader\n")
		mustKubectl(t, "-n", "authz", "wait", "--for=condition=Ready", "pod/incluster", "--timeout=120s")
		api := func(path string) (string, error) {
			return c.kubectlQuiet("-n", "authz", "exec", "incluster", "--", "/testprog", "api", path)
		}
		out, err := api("/api/v1/namespaces/NAMESPACE/pods")
		if err == nil || !strings.Contains(out, "status 403") || !strings.Contains(out, "system:serviceaccount:authz:reader") {
			t.Errorf("an unbound pod's token lists pods: %v\n%s", err, out)
		}
		mustKubectl(t, "-n", "authz", "create", "rolebinding", "reader-view", "--clusterrole=view", "--serviceaccount=authz:reader")
		if !waitFor(15*time.Second, func() bool { _, err := api("/api/v1/namespaces/NAMESPACE/pods"); return err == nil }) {
			out, _ := api("/api/v1/namespaces/NAMESPACE/pods")
			t.Errorf("the pod may not list pods once bound to view:\n%s", out)
		}
		if out, err := api("/api/v1/namespaces/NAMESPACE/secrets"); err == nil || !strings.Contains(out, "status 403") {
			t.Errorf("the pod lists secrets with view: %v\n%s", err, out)
		}
		if out, err := api("/api/v1/namespaces/default/pods"); err == nil || !strings.Contains(out, "status 403") {
			t.Errorf("the pod lists another namespace's pods: %v\n%s", err, out)
		}
	})

	t.Run("service-account", func(t *testing.T) {
		token := strings.TrimSpace(mustKubectl(t, "-n", "authz", "create", "token", "app"))
		kc := c.tokenKubeconfig(t, n2, "app", token)
		asApp := func(args ...string) (string, error) { return c.kubectlWith(n2, kc, args...) }

		out, err := asApp("-n", "authz", "get", "pods")
		forbidden(t, "an unbound service account lists pods", out, err, `User "system:serviceaccount:authz:app"`, `cannot list resource "pods"`)

		mustKubectl(t, "-n", "authz", "create", "rolebinding", "app-view", "--clusterrole=view", "--serviceaccount=authz:app")
		if !waitFor(10*time.Second, func() bool { _, err := asApp("-n", "authz", "get", "pods"); return err == nil }) {
			out, _ := asApp("-n", "authz", "get", "pods")
			t.Fatalf("the bound service account still may not list pods:\n%s", out)
		}
		out, err = asApp("-n", "default", "get", "pods")
		forbidden(t, "the service account lists pods of another namespace", out, err)
		out, err = asApp("-n", "authz", "get", "secrets")
		forbidden(t, "the view role reads secrets", out, err)

		list := mustKubectl(t, "-n", "authz", "auth", "can-i", "--list", "--as=system:serviceaccount:authz:app")
		if row := tableRow(list, "pods"); row == nil || !strings.Contains(strings.Join(row, " "), "[get list watch]") {
			t.Errorf("auth can-i --list: no pods row with [get list watch]:\n%s", list)
		}

		// A subject allowed to write roles still cannot grant what it
		// does not hold.
		mustApply(t, `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: role-writer, namespace: authz}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [create, get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app-role-writer, namespace: authz}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: role-writer}
subjects: [{kind: ServiceAccount, name: app, namespace: authz}]
`)
		if !waitFor(10*time.Second, func() bool {
			out, _ := asApp("-n", "authz", "auth", "can-i", "create", "roles.rbac.authorization.k8s.io")
			return strings.TrimSpace(out) == "yes"
		}) {
			t.Fatal("the role-writer binding never took effect")
		}
		out, err = asApp("-n", "authz", "create", "role", "secret-reader", "--verb=get", "--resource=secrets")
		forbidden(t, "a role granting more than its creator holds", out, err, "attempting to grant RBAC permissions not currently held")
		if out, err := asApp("-n", "authz", "create", "role", "pod-reader", "--verb=get", "--resource=pods"); err != nil {
			t.Errorf("a role within what its creator holds was refused: %v\n%s", err, out)
		}

		// A token bound to a pod dies with it.
		mustApply(t, strings.Replace(podManifest("holder", "n3", "holder", "sleep", "3600"), "metadata:\n", "metadata:\n  namespace: authz\n", 1)+
			"  serviceAccountName: app\n")
		uid := mustKubectl(t, "-n", "authz", "get", "pod", "holder", "-o", "jsonpath={.metadata.uid}")
		bound := strings.TrimSpace(mustKubectl(t, "-n", "authz", "create", "token", "app",
			"--bound-object-kind=Pod", "--bound-object-name=holder", "--bound-object-uid="+uid))
		bkc := c.tokenKubeconfig(t, n2, "bound", bound)
		if out, err := c.kubectlWith(n2, bkc, "-n", "authz", "get", "pods"); err != nil {
			t.Fatalf("a token bound to a live pod was refused: %v\n%s", err, out)
		}
		mustKubectl(t, "-n", "authz", "delete", "pod", "holder", "--grace-period=0", "--force")
		if !waitFor(15*time.Second, func() bool {
			out, err := c.kubectlWith(n2, bkc, "-n", "authz", "get", "pods")
			return err != nil && strings.Contains(out, "Unauthorized")
		}) {
			t.Error("a token bound to a deleted pod is still accepted")
		}

		// Forged, foreign-audience and garbage tokens get a bare 401.
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWT", token)
		}
		sig := []byte(parts[2])
		sig[len(sig)/2] ^= 1
		audience := strings.TrimSpace(mustKubectl(t, "-n", "authz", "create", "token", "app", "--audience=https://vault.example"))
		for name, bad := range map[string]string{
			"forged":         parts[0] + "." + parts[1] + "." + string(sig),
			"wrong-audience": audience,
			"garbage":        "not-a-token",
		} {
			out, err := c.kubectlWith(n2, c.tokenKubeconfig(t, n2, name, bad), "-n", "authz", "get", "pods")
			if err == nil || !strings.Contains(out, "Unauthorized") {
				t.Errorf("%s token: want Unauthorized, got %v\n%s", name, err, out)
			}
			if strings.Contains(out, "signature") || strings.Contains(out, "audience") {
				t.Errorf("%s token: the refusal says why, which helps an attacker:\n%s", name, out)
			}
		}
	})
}
