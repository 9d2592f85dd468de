package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/kubelettest"
	"skiff/internal/kubelet/runtime"
	"skiff/internal/pki"
	"skiff/internal/server/servertest"
)

func TestMain(m *testing.M) {
	if runtime.Reexec() {
		return
	}
	os.Exit(m.Run())
}

// node is a kubelet under test with its own data dir, against a real
// API server.
type node struct {
	t       *testing.T
	client  kubernetes.Interface
	cfg     Config
	image   string // the test image in the loopback registry
	cancel  context.CancelFunc
	done    chan error
	logDir  string
	dataDir string
}

func testLogger() *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startNode(t *testing.T) *node {
	t.Helper()
	kubelettest.RequireRoot(t)
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	reg := kubelettest.StartRegistry(t)
	ref := reg.Push(t, "test/prog:v1", kubelettest.Image(t))

	dataDir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dataDir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(filepath.Join(dataDir, "tls"), "kubelet", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	agent := config.DefaultAgent()
	agent.DataDir = dataDir
	agent.NodeName = "node-1"
	agent.NodeIP = net.IPv4(127, 0, 0, 1)
	agent.KubeletAddress = "127.0.0.1"
	agent.KubeletPort = servertest.FreePort(t)
	agent.PodLogDir = filepath.Join(dataDir, "pod-logs")
	agent.CgroupParent = fmt.Sprintf("/skiff-test-%d", os.Getpid())
	agent.SyncInterval = 2 * time.Second
	layout := config.Layout{DataDir: dataDir}
	store, err := images.Open(layout.ImagesDir(), images.Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(runtime.Config{Root: layout.ContainersDir(), CgroupParent: agent.CgroupParent, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{
		t:      t,
		client: srv.Client(t),
		cfg: Config{
			Agent: agent, RESTConfig: srv.RESTConfig(t), Runtime: rt, Images: store,
			Version: "v1.37.2+skiff-test", Logger: testLogger(),
			ServingCertFile: certFile, ServingKeyFile: keyFile, ClientCA: ca.CertPool(),
		},
		image:   ref,
		logDir:  agent.PodLogDir,
		dataDir: dataDir,
	}
	n.start()
	t.Cleanup(func() {
		n.stop()
		// Containers outlive the kubelet by design; the test removes them.
		ctx := context.Background()
		if list, err := rt.List(ctx); err == nil {
			for _, c := range list {
				_ = rt.Stop(ctx, c.ID, 0)
				_ = rt.Remove(ctx, c.ID)
				_ = rt.RemoveSandbox(ctx, c.PodUID)
			}
		}
		store.Close()
		kubelettest.RemoveCgroups(agent.CgroupParent)
	})
	servertest.Eventually(t, 30*time.Second, "node registers Ready", func() error {
		node, err := n.client.CoreV1().Nodes().Get(context.Background(), "node-1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not ready")
	})
	return n
}

func (n *node) start() {
	k, err := New(n.cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- k.Run(ctx) }()
}

func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	if err := <-n.done; err != nil && !errors.Is(err, context.Canceled) {
		n.t.Errorf("kubelet: %v", err)
	}
	n.cancel = nil
}

// pod creates a pod bound to the node with one container of the test image.
func (n *node) pod(name string, mutate func(*corev1.Pod)) *corev1.Pod {
	n.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      "node-1",
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers:                    []corev1.Container{{Name: "main", Image: n.image}},
		},
	}
	if mutate != nil {
		mutate(p)
	}
	created, err := n.client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		n.t.Fatalf("create pod %s: %v", name, err)
	}
	return created
}

// waitPod waits until ok accepts the pod, failing with the last status.
func (n *node) waitPod(name string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	n.t.Helper()
	var last *corev1.Pod
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p, err := n.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return p
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.t.Fatalf("pod %s: %s: not within %v; status: %s", name, what, timeout, statusSummary(last))
	return nil
}

func statusSummary(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%s", p.Status.Phase, p.Status.Reason)
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v", cs.Name, cs.RestartCount, cs.Ready)
		if w := cs.State.Waiting; w != nil {
			fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
		}
		if r := cs.State.Running; r != nil {
			b.WriteString(" running")
		}
		if t := cs.State.Terminated; t != nil {
			fmt.Fprintf(&b, " terminated %s exit=%d %s", t.Reason, t.ExitCode, t.Message)
		}
		b.WriteString("]")
	}
	return b.String()
}

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == name {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == name {
			return &p.Status.ContainerStatuses[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// logOf reads a container's current log file (CRI format) from the node.
func (n *node) logOf(p *corev1.Pod, container string, attempt int) string {
	b, _ := os.ReadFile(filepath.Join(n.logDir, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), container, fmt.Sprintf("%d.log", attempt)))
	return string(b)
}

func (n *node) waitLog(p *corev1.Pod, container string, attempt int, want string) {
	n.t.Helper()
	servertest.Eventually(n.t, 30*time.Second, fmt.Sprintf("log of %s/%s contains %q", p.Name, container, want), func() error {
		if got := n.logOf(p, container, attempt); !strings.Contains(got, want) {
			return fmt.Errorf("log so far: %q", got)
		}
		return nil
	})
}

func (n *node) deletePod(name string) {
	n.t.Helper()
	if err := n.client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		n.t.Fatal(err)
	}
}

func (n *node) waitGone(name string, timeout time.Duration) {
	n.t.Helper()
	servertest.Eventually(n.t, timeout, "pod "+name+" deleted", func() error {
		_, err := n.client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func TestKubelet(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()

	t.Run("node", func(t *testing.T) {
		node, err := n.client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if node.Labels["kubernetes.io/hostname"] != "node-1" || node.Labels["kubernetes.io/os"] != "linux" {
			t.Errorf("labels = %v", node.Labels)
		}
		if node.Status.NodeInfo.ContainerRuntimeVersion != "skiff://v1.37.2+skiff-test" || node.Status.NodeInfo.KernelVersion == "" {
			t.Errorf("nodeInfo = %+v", node.Status.NodeInfo)
		}
		if node.Status.Capacity.Pods().Value() != 110 || node.Status.Allocatable.Memory().IsZero() {
			t.Errorf("capacity = %v allocatable = %v", node.Status.Capacity, node.Status.Allocatable)
		}
		if len(node.Status.Addresses) == 0 || node.Status.Addresses[0].Address != "127.0.0.1" {
			t.Errorf("addresses = %v", node.Status.Addresses)
		}
		if node.Status.DaemonEndpoints.KubeletEndpoint.Port != int32(n.cfg.Agent.KubeletPort) {
			t.Errorf("kubelet port = %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port)
		}
		// The heartbeat creates the lease just after the node turns Ready.
		servertest.Eventually(t, 30*time.Second, "node lease", func() error {
			lease, err := n.client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "node-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if lease.Spec.RenewTime == nil {
				return fmt.Errorf("lease %s has no renewTime", lease.Name)
			}
			return nil
		})
	})

	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		p := n.pod("web", func(p *corev1.Pod) {
			p.Spec.Containers[0].Args = []string{"/testprog", "serve", ":8080"}
			p.Spec.Containers[0].Command = nil
			p.Spec.Containers[0].Env = []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "GREETING", Value: "hi $(POD_NAME)"},
			}
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
				PeriodSeconds: 1,
			}
		})
		p = n.waitPod("web", 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodRunning && podReady(p)
		})
		cs := containerStatus(p, "main")
		if !strings.HasPrefix(cs.ContainerID, "skiff://") || cs.ImageID == "" || cs.State.Running == nil || cs.Started == nil || !*cs.Started {
			t.Errorf("container status = %+v", cs)
		}
		if p.Status.HostIP != "127.0.0.1" || p.Status.StartTime == nil {
			t.Errorf("hostIP %q startTime %v", p.Status.HostIP, p.Status.StartTime)
		}
		n.waitLog(p, "main", 0, "stdout F serving on :8080")

		id := strings.TrimPrefix(cs.ContainerID, "skiff://")
		var out strings.Builder
		code, err := n.cfg.Runtime.Exec(ctx, id, runtime.ExecOptions{Cmd: []string{"sh", "-c", "echo $GREETING $IMAGE_VAR; hostname"}, Stdout: &out, Stderr: &out})
		if err != nil || code != 0 {
			t.Fatalf("exec: %d %v %s", code, err, out.String())
		}
		if got := out.String(); got != "hi web from-image\nweb\n" {
			t.Errorf("exec output %q", got)
		}

		n.deletePod("web")
		n.waitGone("web", 60*time.Second)
		// Everything is released before the pod leaves the API.
		sandbox := filepath.Join(config.Layout{DataDir: n.dataDir}.ContainersDir(), "sandboxes", string(p.UID))
		if _, err := os.Stat(sandbox); !os.IsNotExist(err) {
			t.Errorf("sandbox %s still there once the pod is gone (%v)", sandbox, err)
		}
		servertest.Eventually(t, 30*time.Second, "containers removed", func() error {
			list, err := n.cfg.Runtime.List(ctx)
			if err != nil {
				return err
			}
			for _, c := range list {
				if c.PodUID == string(p.UID) {
					return fmt.Errorf("container %s still there (%s)", c.ID, c.Status)
				}
			}
			return nil
		})
	})

	t.Run("restart-policy", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		cases := []struct {
			policy    corev1.RestartPolicy
			exit      string
			phase     corev1.PodPhase
			restarted bool
		}{
			{corev1.RestartPolicyNever, "0", corev1.PodSucceeded, false},
			{corev1.RestartPolicyNever, "3", corev1.PodFailed, false},
			{corev1.RestartPolicyOnFailure, "0", corev1.PodSucceeded, false},
			{corev1.RestartPolicyOnFailure, "3", corev1.PodRunning, true},
			{corev1.RestartPolicyAlways, "0", corev1.PodRunning, true},
		}
		for _, tc := range cases {
			name := fmt.Sprintf("rp-%s-%s", strings.ToLower(string(tc.policy)), tc.exit)
			n.pod(name, func(p *corev1.Pod) {
				p.Spec.RestartPolicy = tc.policy
				p.Spec.Containers[0].Command = []string{"/testprog", "exit", tc.exit}
			})
		}
		for _, tc := range cases {
			name := fmt.Sprintf("rp-%s-%s", strings.ToLower(string(tc.policy)), tc.exit)
			p := n.waitPod(name, 90*time.Second, fmt.Sprintf("phase %s, restarted %v", tc.phase, tc.restarted), func(p *corev1.Pod) bool {
				cs := containerStatus(p, "main")
				if cs == nil || p.Status.Phase != tc.phase {
					return false
				}
				if tc.restarted {
					return cs.RestartCount >= 1 && cs.LastTerminationState.Terminated != nil
				}
				return cs.State.Terminated != nil
			})
			cs := containerStatus(p, "main")
			if !tc.restarted {
				term := cs.State.Terminated
				wantReason := "Completed"
				if tc.exit != "0" {
					wantReason = "Error"
				}
				if fmt.Sprint(term.ExitCode) != tc.exit || term.Reason != wantReason || cs.RestartCount != 0 {
					t.Errorf("%s: terminated = %+v restarts %d", name, term, cs.RestartCount)
				}
			}
			if !strings.Contains(n.logOf(p, "main", 0), "stderr F to stderr") {
				t.Errorf("%s: log %q lacks the stderr line", name, n.logOf(p, "main", 0))
			}
		}
	})

	t.Run("crashloop", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		n.pod("crash", func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/testprog", "exit", "1"} })
		p := n.waitPod("crash", 90*time.Second, "CrashLoopBackOff", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		cs := containerStatus(p, "main")
		if !strings.Contains(cs.State.Waiting.Message, "back-off 10s restarting failed container=main") {
			t.Errorf("waiting message %q", cs.State.Waiting.Message)
		}
		first := cs.LastTerminationState.Terminated
		if first == nil || first.ExitCode != 1 {
			t.Fatalf("last state = %+v", cs.LastTerminationState)
		}
		// The second restart waits out the back-off: compare the start of
		// attempt 2 with the exit of attempt 1, as the runtime recorded them.
		n.waitPod("crash", 90*time.Second, "restarted after back-off", func(p *corev1.Pod) bool {
			return containerStatus(p, "main").RestartCount >= 2
		})
		list, err := n.cfg.Runtime.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		starts, exits := map[int]time.Time{}, map[int]time.Time{}
		for _, c := range list {
			if c.PodUID == string(p.UID) {
				starts[attemptOf(c)], exits[attemptOf(c)] = c.StartedAt, c.FinishedAt
			}
		}
		if s2, ok := starts[2]; !ok || exits[1].IsZero() {
			t.Errorf("attempts 1 and 2 not both kept: starts %v exits %v", starts, exits)
		} else if gap := s2.Sub(exits[1]); gap < 9*time.Second {
			t.Errorf("attempt 2 started %v after attempt 1 exited; back-off is 10s", gap)
		}
		n.deletePod("crash")
	})

	t.Run("oom", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		n.pod("oom", func(p *corev1.Pod) {
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Spec.Containers[0].Command = []string{"/testprog", "alloc", "256"}
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}
		})
		p := n.waitPod("oom", 60*time.Second, "OOMKilled", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "main")
			return cs != nil && cs.State.Terminated != nil
		})
		if term := containerStatus(p, "main").State.Terminated; term.Reason != "OOMKilled" || term.ExitCode != 137 {
			t.Errorf("terminated = %+v, want OOMKilled with exit code 137", term)
		}
		if p.Status.Phase != corev1.PodFailed {
			t.Errorf("phase %s", p.Status.Phase)
		}
	})

	t.Run("probes", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		// Readiness follows /tmp/ready; liveness fails once /tmp/alive is gone.
		n.pod("probed", func(p *corev1.Pod) {
			p.Spec.Containers[0].Command = []string{"sh", "-c", "touch /tmp/alive; sleep 2; touch /tmp/ready; sleep 4; rm /tmp/ready; sleep 3; rm /tmp/alive; sleep 3600"}
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
				PeriodSeconds: 1, FailureThreshold: 1,
			}
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/alive"}}},
				PeriodSeconds: 1, FailureThreshold: 2,
			}
		})
		n.waitPod("probed", 60*time.Second, "Ready", podReady)
		n.waitPod("probed", 30*time.Second, "not Ready again", func(p *corev1.Pod) bool {
			return !podReady(p) && containerStatus(p, "main").RestartCount == 0
		})
		p := n.waitPod("probed", 60*time.Second, "restarted by liveness", func(p *corev1.Pod) bool {
			return containerStatus(p, "main").RestartCount >= 1
		})
		if term := containerStatus(p, "main").LastTerminationState.Terminated; term == nil || term.ExitCode != 137 {
			t.Errorf("last state after liveness kill = %+v", containerStatus(p, "main").LastTerminationState)
		}
		n.deletePod("probed")
	})

	t.Run("init-and-volumes", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		hostDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(hostDir, "file"), []byte("from-host"), 0o644); err != nil {
			t.Fatal(err)
		}
		pvDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(pvDir, "data"), []byte("from-pv"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := n.client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"key": "from-configmap"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, Data: map[string][]byte{"pw": []byte("from-secret")}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: pvDir}},
				ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: "claim"},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.client.CoreV1().PersistentVolumeClaims("default").Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "claim"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				VolumeName:  "pv1",
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// No volume binder runs here (no control plane): bind by hand.
		claim, _ := n.client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "claim", metav1.GetOptions{})
		claim.Status.Phase = corev1.ClaimBound
		if _, err := n.client.CoreV1().PersistentVolumeClaims("default").UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}

		p := n.pod("vols", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}},
				{Name: "pvc", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim"}}},
			}
			p.Spec.InitContainers = []corev1.Container{
				{Name: "first", Image: n.image, Command: []string{"sh", "-c", "echo one > /scratch/order"},
					VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}},
				{Name: "second", Image: n.image, Command: []string{"sh", "-c", "echo two >> /scratch/order"},
					VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}},
			}
			p.Spec.Containers[0].Command = []string{"sh", "-c", "cat /scratch/order /cm/key /sec/pw /host/file /pvc/data; echo; echo written > /pvc/out; sleep 3600"}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
				{Name: "scratch", MountPath: "/scratch"},
				{Name: "cm", MountPath: "/cm"},
				{Name: "sec", MountPath: "/sec"},
				{Name: "host", MountPath: "/host", ReadOnly: true},
				{Name: "pvc", MountPath: "/pvc"},
			}
		})
		p = n.waitPod("vols", 90*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		for _, name := range []string{"first", "second"} {
			if term := containerStatus(p, name).State.Terminated; term == nil || term.ExitCode != 0 {
				t.Errorf("init container %s: %+v", name, containerStatus(p, name).State)
			}
		}
		n.waitLog(p, "main", 0, "from-pv")
		log := n.logOf(p, "main", 0)
		for _, want := range []string{"F one", "F two", "from-configmap", "from-secret", "from-host"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		servertest.Eventually(t, 10*time.Second, "write through the PVC reaches the PV's directory", func() error {
			b, err := os.ReadFile(filepath.Join(pvDir, "out"))
			if err != nil || string(b) != "written\n" {
				return fmt.Errorf("%q %v", b, err)
			}
			return nil
		})
		n.deletePod("vols")
	})

	t.Run("missing-image", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		missing := strings.Replace(n.image, "test/prog:v1", "test/prog:nope", 1)
		n.pod("missing", func(p *corev1.Pod) { p.Spec.Containers[0].Image = missing })
		p := n.waitPod("missing", 60*time.Second, "ImagePullBackOff", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff"
		})
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s", p.Status.Phase)
		}
		if msg := containerStatus(p, "main").State.Waiting.Message; !strings.Contains(msg, "MANIFEST_UNKNOWN") {
			t.Errorf("waiting message %q lacks the registry's error", msg)
		}
		events, _ := n.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=missing"})
		found := false
		for _, e := range events.Items {
			if e.Reason == "Failed" && strings.Contains(e.Message, "MANIFEST_UNKNOWN") {
				found = true
			}
		}
		if !found {
			t.Errorf("no Failed event carrying the registry's message; events: %+v", events.Items)
		}
		n.deletePod("missing")
	})

	t.Run("imported-never-pull", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		tarPath := filepath.Join(t.TempDir(), "img.tar")
		kubelettest.SaveTarball(t, tarPath, "airgap.example/tools:1.0", kubelettest.Image(t))
		f, err := os.Open(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.cfg.Images.Import(ctx, f, nil)
		f.Close()
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		n.pod("airgap", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "airgap.example/tools:1.0"
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
			p.Spec.Containers[0].Command = []string{"sh", "-c", "echo air-gapped; sleep 3600"}
		})
		p := n.waitPod("airgap", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		n.waitLog(p, "main", 0, "air-gapped")

		n.pod("never-missing", func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "airgap.example/absent:1.0"
			p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
		})
		n.waitPod("never-missing", 30*time.Second, "ErrImageNeverPull", func(p *corev1.Pod) bool {
			cs := containerStatus(p, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImageNeverPull"
		})
		n.deletePod("airgap")
		n.deletePod("never-missing")
	})
}

// TestKubeletStaticAndLifecycle covers static pods, hooks and deadlines.
func TestKubeletStaticAndLifecycle(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()

	t.Run("static-pod", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		dir := config.Layout{DataDir: n.dataDir}.PodManifestsDir()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: static-web
  namespace: kube-system
spec:
  containers:
  - name: main
    image: %s
    command: ["sh", "-c", "echo static; sleep 3600"]
`, n.image)
		path := filepath.Join(dir, "web.yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		var mirror *corev1.Pod
		servertest.Eventually(t, 60*time.Second, "mirror pod Running", func() error {
			p, err := n.client.CoreV1().Pods("kube-system").Get(ctx, "static-web-node-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("phase %s: %s", p.Status.Phase, statusSummary(p))
			}
			mirror = p
			return nil
		})
		if mirror.Annotations[annotationMirror] == "" || len(mirror.OwnerReferences) != 1 || mirror.OwnerReferences[0].Kind != "Node" {
			t.Errorf("mirror pod metadata: %v %v", mirror.Annotations, mirror.OwnerReferences)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		servertest.Eventually(t, 60*time.Second, "mirror pod and containers gone", func() error {
			if _, err := n.client.CoreV1().Pods("kube-system").Get(ctx, "static-web-node-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("mirror pod still there (%v)", err)
			}
			list, err := n.cfg.Runtime.List(ctx)
			if err != nil {
				return err
			}
			for _, c := range list {
				if c.Labels[labelPodName] == "static-web-node-1" {
					return fmt.Errorf("container %s still there", c.ID)
				}
			}
			return nil
		})
	})

	t.Run("hooks-and-graceful-stop", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		hostDir := t.TempDir()
		n.pod("hooks", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}}}
			c := &p.Spec.Containers[0]
			c.Command = []string{"/testprog", "term-log", "/out/sigterm"}
			c.VolumeMounts = []corev1.VolumeMount{{Name: "out", MountPath: "/out"}}
			c.Lifecycle = &corev1.Lifecycle{
				PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo started > /out/poststart"}}},
				PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo stopping > /out/prestop"}}},
			}
		})
		n.waitPod("hooks", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		servertest.Eventually(t, 10*time.Second, "postStart ran", func() error {
			_, err := os.Stat(filepath.Join(hostDir, "poststart"))
			return err
		})
		n.deletePod("hooks")
		n.waitGone("hooks", 60*time.Second)
		for _, f := range []string{"prestop", "sigterm"} {
			if _, err := os.Stat(filepath.Join(hostDir, f)); err != nil {
				t.Errorf("%s: %v (preStop runs, then SIGTERM)", f, err)
			}
		}
	})

	t.Run("active-deadline", func(t *testing.T) {
		t.Parallel()
		n := *n
		n.t = t
		n.pod("deadline", func(p *corev1.Pod) {
			p.Spec.ActiveDeadlineSeconds = ptr.To(int64(3))
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
		})
		p := n.waitPod("deadline", 60*time.Second, "Failed with DeadlineExceeded", func(p *corev1.Pod) bool {
			return p.Status.Phase == corev1.PodFailed
		})
		if p.Status.Reason != "DeadlineExceeded" {
			t.Errorf("reason %q, want DeadlineExceeded", p.Status.Reason)
		}
		if term := containerStatus(p, "main").State.Terminated; term == nil {
			t.Errorf("container not terminated: %s", statusSummary(p))
		}
	})
}

// TestKubeletRestartAdoptsContainers stops the kubelet while a pod runs and
// another container exits, then starts a new kubelet on the same data dir:
// the running container is adopted, not restarted, and the exit that
// happened while no kubelet ran shows in the status.
func TestKubeletRestartAdoptsContainers(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	n.pod("steady", func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"/testprog", "serve", ":8080"} })
	n.pod("short", func(p *corev1.Pod) {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Containers[0].Command = []string{"sh", "-c", "sleep 4; exit 7"}
	})
	steady := n.waitPod("steady", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	n.waitPod("short", 60*time.Second, "Running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	before := containerStatus(steady, "main").ContainerID

	n.stop()
	time.Sleep(6 * time.Second) // "short" exits while no kubelet runs
	n.start()

	p := n.waitPod("short", 60*time.Second, "Failed with exit code 7", func(p *corev1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.Phase == corev1.PodFailed && cs.State.Terminated != nil
	})
	if code := containerStatus(p, "main").State.Terminated.ExitCode; code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	time.Sleep(3 * time.Second)
	steady, err := n.client.CoreV1().Pods("default").Get(ctx, "steady", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := containerStatus(steady, "main")
	if cs.ContainerID != before || cs.RestartCount != 0 || cs.State.Running == nil {
		t.Errorf("after restart: %s (was %s)", statusSummary(steady), before)
	}
}
