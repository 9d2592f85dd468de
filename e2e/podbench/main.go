// Command podbench measures pod startup on one node: `skiff server
// --disable-agent` and `skiff agent` run as separate processes (so the
// agent's memory is its own), the test image is cached on the node, then N
// pods are created and timed from create to Running as seen through a
// watch. It prints a table; it never fails on a timing. Needs root.
//
//	go run ./e2e/podbench -pods 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"skiff/e2e/benchutil"
	"skiff/internal/kubelet/kubelettest"
	"skiff/internal/kubelet/runtime"
)

func main() {
	pods := flag.Int("pods", 100, "pods to start")
	parallel := flag.Int("parallel", 10, "concurrent pod creations")
	qps := flag.Float64("qps", 0, "pod creations per second (0: as fast as -parallel allows, a burst)")
	podNetwork := flag.String("pod-network", "none", "the agent's --pod-network; anything but none changes the network namespace podbench runs in, so run it in a fresh one: ip netns add pb; ip netns exec pb ip link set lo up; nsenter --net=/run/netns/pb go run ./e2e/podbench -pod-network host-gw")
	skiffBin := flag.String("skiff", "", "skiff binary (default: build it)")
	keep := flag.Bool("keep", false, "keep the temp dir for inspection")
	flag.Parse()
	if err := run(*pods, *parallel, *qps, *podNetwork, *skiffBin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "podbench:", err)
		os.Exit(1)
	}
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func start(bin, logPath string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logFile.Close() }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// shims returns the pids of the shim processes under root.
func shims(root string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 2 && args[1] == "shim" && strings.Contains(string(b), root) {
			var pid int
			fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func run(n, parallel int, qps float64, podNetwork, skiffBin string, keep bool) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containers, namespaces, cgroups)")
	}
	dir, err := os.MkdirTemp("", "podbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	if skiffBin == "" {
		skiffBin = filepath.Join(dir, "skiff")
		fmt.Fprintln(os.Stderr, "building skiff ...")
		if out, err := exec.Command("go", "build", "-o", skiffBin, "skiff").CombinedOutput(); err != nil {
			return fmt.Errorf("build skiff: %v\n%s", err, out)
		}
	}
	reg, stopReg := kubelettest.NewRegistry()
	defer stopReg()
	img, err := kubelettest.BuildImage()
	if err != nil {
		return err
	}
	image, err := reg.Upload("bench/prog:v1", img)
	if err != nil {
		return err
	}

	apiPort := benchutil.FreePort()
	kubeconfig := filepath.Join(dir, "admin.yaml")
	server, err := start(skiffBin, filepath.Join(dir, "server.log"), "server", "--disable-agent",
		"--data-dir", filepath.Join(dir, "server"), "--bind-address", "127.0.0.1",
		"--https-listen-port", fmt.Sprint(apiPort), "--etcd-client-port", fmt.Sprint(benchutil.FreePort()),
		"--etcd-peer-port", fmt.Sprint(benchutil.FreePort()), "--write-kubeconfig", kubeconfig)
	if err != nil {
		return err
	}
	defer server.stop()
	ctx := context.Background()
	var client kubernetes.Interface
	if err := poll(60*time.Second, func() error {
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return err
		}
		rc.QPS, rc.Burst = 500, 1000
		if client, err = kubernetes.NewForConfig(rc); err != nil {
			return err
		}
		_, err = client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return fmt.Errorf("server not ready: %w (log: %s)", err, filepath.Join(dir, "server.log"))
	}
	token, err := os.ReadFile(filepath.Join(dir, "server", "server", "token"))
	if err != nil {
		return err
	}
	agentDir := filepath.Join(dir, "agent")
	cgroupParent := fmt.Sprintf("/skiff-podbench-%d", os.Getpid())
	agentStart := time.Now()
	agent, err := start(skiffBin, filepath.Join(dir, "agent.log"), "agent",
		"--server", fmt.Sprintf("https://127.0.0.1:%d", apiPort), "--token", strings.TrimSpace(string(token)),
		"--data-dir", agentDir, "--node-name", "bench-node", "--node-ip", "127.0.0.1",
		"--kubelet-address", "127.0.0.1", "--kubelet-port", fmt.Sprint(benchutil.FreePort()),
		"--pod-log-dir", filepath.Join(dir, "pod-logs"), "--cgroup-parent", cgroupParent,
		"--pod-network", podNetwork)
	if err != nil {
		return err
	}
	defer kubelettest.RemoveCgroups(cgroupParent)
	defer agent.stop()
	if err := poll(60*time.Second, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, "bench-node", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return errors.New("not ready")
	}); err != nil {
		return fmt.Errorf("node not ready: %w (log: %s)", err, filepath.Join(dir, "agent.log"))
	}
	nodeReady := time.Since(agentStart)
	// Containers outlive the agent by design: whatever happens, delete the
	// pods while the agent still runs.
	defer func() {
		_ = client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(1))}, metav1.ListOptions{})
		_ = poll(2*time.Minute, func() error {
			l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			if err != nil || len(l.Items) > 0 {
				return errors.New("pods left")
			}
			return nil
		})
	}()

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "bench"}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To(int64(1)),
				Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"/testprog", "sleep", "3600"}}},
			},
		}
	}
	// Cache the image on the node with one pod first.
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod("warmup"), metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := poll(120*time.Second, func() error {
		p, err := client.CoreV1().Pods("default").Get(ctx, "warmup", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("warmup pod not running yet")
		}
		return nil
	}); err != nil {
		return err
	}
	_ = client.CoreV1().Pods("default").Delete(ctx, "warmup", metav1.DeleteOptions{})
	time.Sleep(5 * time.Second)
	idleRSS, idlePSS := benchutil.Memory(agent.cmd.Process.Pid)

	// Watch, then create N pods; latency = create call start → Running seen.
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Time{}
	allRunning := make(chan struct{})
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p := ev.Object.(*corev1.Pod)
			if p.Status.Phase != corev1.PodRunning || p.Name == "warmup" {
				continue
			}
			mu.Lock()
			if _, ok := running[p.Name]; !ok {
				running[p.Name] = time.Now()
				if len(running) == n {
					close(allRunning)
				}
			}
			mu.Unlock()
		}
	}()
	begin := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bench-%03d", i)
		if qps > 0 {
			time.Sleep(time.Until(begin.Add(time.Duration(float64(i) / qps * float64(time.Second)))))
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod(name), metav1.CreateOptions{}); err != nil {
				fmt.Fprintln(os.Stderr, "create:", err)
			}
		}()
	}
	wg.Wait()
	select {
	case <-allRunning:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("only %d of %d pods running after 10 minutes (log: %s)", len(running), n, filepath.Join(dir, "agent.log"))
	}
	total := time.Since(begin)
	w.Stop()
	var startup []time.Duration
	for name, t := range running {
		startup = append(startup, t.Sub(created[name]))
	}
	time.Sleep(5 * time.Second)
	loadedRSS, loadedPSS := benchutil.Memory(agent.cmd.Process.Pid)
	var shimRSS, shimPSS int64
	shimPids := shims(agentDir)
	for _, pid := range shimPids {
		r, p := benchutil.Memory(pid)
		shimRSS += r
		shimPSS += p
	}

	// Container create-to-start, as the runtime recorded it.
	rt, err := runtime.New(runtime.Config{Root: filepath.Join(agentDir, "agent", "containers")})
	if err != nil {
		return err
	}
	states, err := rt.List(ctx)
	if err != nil {
		return err
	}
	var createToStart []time.Duration
	for _, st := range states {
		if !st.StartedAt.IsZero() && !st.CreatedAt.IsZero() {
			createToStart = append(createToStart, st.StartedAt.Sub(st.CreatedAt))
		}
	}

	delBegin := time.Now()
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=bench"}); err != nil {
		return err
	}
	_ = poll(5*time.Minute, func() error {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
		if err != nil || len(l.Items) > 0 {
			return errors.New("pods left")
		}
		return nil
	})
	delTotal := time.Since(delBegin)

	rate := "as fast as possible"
	if qps > 0 {
		rate = fmt.Sprintf("%.1f pods/s", qps)
	}
	fmt.Printf("\npodbench: %d pods, one node, image cached, created %s (%d concurrent creates), pod network %s\n\n", n, rate, parallel, podNetwork)
	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| agent start → node Ready | %v |\n", nodeReady.Round(time.Millisecond))
	fmt.Printf("| pod startup (create → Running via watch) p50 | %v |\n", benchutil.Percentile(startup, 0.50).Round(time.Millisecond))
	fmt.Printf("| pod startup p99 | %v |\n", benchutil.Percentile(startup, 0.99).Round(time.Millisecond))
	fmt.Printf("| pod startup max | %v |\n", benchutil.Percentile(startup, 1).Round(time.Millisecond))
	fmt.Printf("| all %d pods Running after | %v |\n", n, total.Round(time.Millisecond))
	fmt.Printf("| container create → start p50 (runtime) | %v |\n", benchutil.Percentile(createToStart, 0.50).Round(time.Millisecond))
	fmt.Printf("| container create → start p99 (runtime) | %v |\n", benchutil.Percentile(createToStart, 0.99).Round(time.Millisecond))
	fmt.Printf("| agent RSS idle (PSS) | %s (%s) |\n", benchutil.MiB(idleRSS), benchutil.MiB(idlePSS))
	fmt.Printf("| agent RSS with %d pods (PSS) | %s (%s) |\n", n, benchutil.MiB(loadedRSS), benchutil.MiB(loadedPSS))
	fmt.Printf("| %d shims: RSS sum, PSS sum | %s, %s |\n", len(shimPids), benchutil.MiB(shimRSS), benchutil.MiB(shimPSS))
	fmt.Printf("| delete %d pods (grace 1 s) until gone | %v |\n", n, delTotal.Round(time.Millisecond))
	return nil
}

func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
