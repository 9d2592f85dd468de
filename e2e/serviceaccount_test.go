package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/kubelet/kubelettest"
)

// TestServiceAccountInPod runs a pod with the default service account on a
// server with Node,RBAC authorization: the kubelet mounts a bound token
// that the API accepts, the account may do nothing until a RoleBinding
// grants it view, and kubectl logs and exec (the API server's calls to the
// kubelet, authorized by the kubelet with SubjectAccessReviews) work.
func TestServiceAccountInPod(t *testing.T) {
	c, image := startNodeWith(t, "--authorization-mode", "Node,RBAC")
	c.logTranscriptOnFailure(t)
	image = inClusterImage(t, image)
	port := argValue(t, c.args, "--https-listen-port")

	// The service account controller and the root CA publisher run once
	// the server leads.
	c.waitExists(t, "serviceaccount/default", 60*time.Second)
	c.waitExists(t, "configmap/kube-root-ca.crt", 60*time.Second)

	// Pods stay on loopback here (no pod network, no service proxy): the
	// client reaches the API on the host's network, where the kubernetes
	// service's address does not route, so it is pointed at the server.
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: sa-client
spec:
  hostNetwork: true
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "echo client started; exec /testprog sleep 3600"]
    env:
    - name: KUBERNETES_SERVICE_HOST
      value: 127.0.0.1
    - name: KUBERNETES_SERVICE_PORT
      value: "%s"
`, image, port)
	c.mustKubectl(t, "apply", "-f", c.writeFile(t, "sa-client.yaml", manifest))
	c.mustKubectl(t, "wait", "--for=condition=Ready", "pod/sa-client", "--timeout=120s")

	spec := c.mustKubectl(t, "get", "pod", "sa-client", "-o", "jsonpath={.spec.serviceAccountName} {.spec.volumes[*].name}")
	if !strings.HasPrefix(spec, "default kube-api-access-") {
		t.Errorf("pod spec: service account and volumes = %q, want default and kube-api-access-*", spec)
	}

	// kubectl logs goes through the kubelet's authorization.
	var logs string
	if !waitFor(30*time.Second, func() bool {
		logs, _, _ = c.kubectlQuiet(commandTimeout, "logs", "sa-client")
		return strings.Contains(logs, "client started")
	}) {
		t.Errorf("kubectl logs sa-client = %q", logs)
	}

	// So does kubectl exec; the volume holds the token, the CA and the
	// namespace.
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount"
	out := c.mustKubectl(t, "exec", "sa-client", "--", "sh", "-c",
		"test -s "+dir+"/token && test -s "+dir+"/ca.crt && cat "+dir+"/namespace")
	if out != "default" {
		t.Errorf("namespace file = %q, want default", out)
	}
	// The kubernetes service's variables are set (service links or not).
	if out := c.mustKubectl(t, "exec", "sa-client", "--", "sh", "-c", "echo $KUBERNETES_SERVICE_PORT_HTTPS"); strings.TrimSpace(out) != "443" {
		t.Errorf("KUBERNETES_SERVICE_PORT_HTTPS = %q, want 443", out)
	}

	// The kubelet's API asks the API server who may use it: another node's
	// certificate and the pod's own token are refused, naming the user.
	kubelet := "https://127.0.0.1:" + argValue(t, c.args, "--kubelet-port") + "/containerLogs/default/sa-client/app"
	otherNode := c.userConfig(t, "system:node:other-node", "system:nodes")
	token := c.mustKubectl(t, "exec", "sa-client", "--", "cat", dir+"/token")
	for _, tt := range []struct {
		name   string
		cfg    *rest.Config
		status int
		body   string
	}{
		{"no credential", &rest.Config{}, http.StatusUnauthorized, "Unauthorized"},
		{"another node", otherNode, http.StatusForbidden, "Forbidden (user=system:node:other-node, verb=get, resource=nodes, subresource=proxy)"},
		{"the pod's token", &rest.Config{BearerToken: token}, http.StatusForbidden, "Forbidden (user=system:serviceaccount:default:default, verb=get, resource=nodes, subresource=proxy)"},
	} {
		status, body := kubeletGet(t, tt.cfg, kubelet)
		if status != tt.status || body != tt.body {
			t.Errorf("kubelet API, %s: %d %q, want %d %q", tt.name, status, body, tt.status, tt.body)
		}
	}

	// The token authenticates: the account is known, and forbidden to
	// list pods.
	out, _, err := c.kubectl("exec", "sa-client", "--", "/incluster")
	if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, "system:serviceaccount:default:default") {
		t.Fatalf("in-cluster list before any binding: %v\n%s", err, out)
	}

	c.mustKubectl(t, "create", "rolebinding", "default-view", "--clusterrole=view", "--serviceaccount=default:default")
	if !waitFor(30*time.Second, func() bool {
		out, _, err = c.kubectlQuiet(commandTimeout, "exec", "sa-client", "--", "/incluster")
		return err == nil && strings.HasPrefix(out, "allowed:")
	}) {
		t.Errorf("in-cluster list after the binding: %v\n%s", err, out)
	}
}

// inClusterImage adds /incluster (e2e/incluster) to the test image and
// pushes it to the same registry.
func inClusterImage(t *testing.T, base string) string {
	t.Helper()
	host, _, _ := strings.Cut(base, "/")
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go tool is needed to build the in-cluster client")
	}
	bin := filepath.Join(t.TempDir(), "incluster")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "skiff/e2e/incluster")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the in-cluster client: %v\n%s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "incluster", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(kubelettest.Image(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	reg := &kubelettest.Registry{Host: host}
	return reg.Push(t, "e2e/incluster:v1", img)
}

// userConfig is a client config with a certificate of the cluster CA for
// user in groups (skiff kubeconfig --user).
func (c *cluster) userConfig(t *testing.T, user string, groups ...string) *rest.Config {
	t.Helper()
	args := []string{"kubeconfig", "--data-dir", argValue(t, c.args, "--data-dir"), "--user", user}
	for _, g := range groups {
		args = append(args, "--group", g)
	}
	out, err := exec.Command(c.skiffBin, args...).Output()
	if err != nil {
		t.Fatalf("skiff %s: %v", strings.Join(args, " "), err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// kubeletGet calls a kubelet's API with cfg's credentials, not checking
// the kubelet's serving certificate (what is tested is who it lets in).
func kubeletGet(t *testing.T, cfg *rest.Config, url string) (int, string) {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.TLSClientConfig.CAData, cfg.TLSClientConfig.CAFile = nil, ""
	cfg.TLSClientConfig.Insecure = true
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: commandTimeout}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
