package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/server/servertest"
)

const rolloutManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        resources:
          requests: {cpu: 100m, memory: 64Mi}
`

const bigPodManifest = `apiVersion: v1
kind: Pod
metadata:
  name: big
spec:
  containers:
  - name: main
    image: busybox:1.36
    resources:
      requests: {cpu: "64"}
`

// TestControlPlaneWithKubectl drives the scheduler and controllers of a real
// `skiff server` with kubectl: rollout status, rollout undo, events and an
// unschedulable pod. There is no kubelet yet, so the test plays one for a
// fake node (pods it is given become Running and Ready).
func TestControlPlaneWithKubectl(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	c := startCluster(t, "--node-monitor-grace-period", "10m")
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	servertest.AddNode(t, client, "node1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	servertest.FakeKubelet(ctx, t, client, "node1")
	defer func() { t.Logf("kubectl transcript:\n%s", c.transcript.String()) }()

	manifest := c.writeFile(t, "web.yaml", rolloutManifest)
	c.mustKubectl(t, "apply", "-f", manifest)
	out := c.mustKubectl(t, "rollout", "status", "deploy/web", "--timeout=90s")
	if !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Fatalf("rollout status: %q", out)
	}
	out = c.mustKubectl(t, "get", "pods", "-o", "wide")
	if n := strings.Count(out, "Running"); n != 3 || !strings.Contains(out, "node1") {
		t.Fatalf("want 3 Running pods on node1:\n%s", out)
	}

	c.mustKubectl(t, "set", "image", "deploy/web", "web=nginx:1.28")
	out = c.mustKubectl(t, "rollout", "status", "deploy/web", "--timeout=90s")
	if !strings.Contains(out, "successfully rolled out") {
		t.Fatalf("rollout status after set image: %q", out)
	}
	out = c.mustKubectl(t, "rollout", "history", "deploy/web")
	if !strings.Contains(out, "REVISION") || !strings.Contains(out, "2") {
		t.Fatalf("rollout history: %q", out)
	}
	out = c.mustKubectl(t, "rollout", "undo", "deploy/web")
	if !strings.Contains(out, "deployment.apps/web rolled back") {
		t.Fatalf("rollout undo: %q", out)
	}
	c.mustKubectl(t, "rollout", "status", "deploy/web", "--timeout=90s")
	img := c.mustKubectl(t, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	if img != "nginx:1.27" {
		t.Fatalf("image after undo: %q, want nginx:1.27", img)
	}
	if !waitFor(30*time.Second, func() bool {
		out, _, _ := c.kubectl("get", "rs", "-l", "app=web")
		return strings.Count(out, "web-") == 2
	}) {
		out, _, _ := c.kubectl("get", "rs")
		t.Fatalf("want two replica sets (undo reuses the first):\n%s", out)
	}

	out = c.mustKubectl(t, "get", "events")
	for _, want := range []string{"ScalingReplicaSet", "SuccessfulCreate", "Scheduled"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get events lacks %s:\n%s", want, out)
		}
	}

	c.mustKubectl(t, "apply", "-f", c.writeFile(t, "big.yaml", bigPodManifest))
	var desc string
	if !waitFor(30*time.Second, func() bool {
		desc, _, _ = c.kubectl("describe", "pod", "big")
		return strings.Contains(desc, "FailedScheduling")
	}) {
		t.Fatalf("describe pod big shows no FailedScheduling:\n%s", desc)
	}
	if !strings.Contains(desc, "Insufficient cpu") || !strings.Contains(desc, "0/1 nodes are available") {
		t.Fatalf("FailedScheduling message: %s", desc)
	}
}
