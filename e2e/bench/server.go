package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// server is a `skiff server` process in a temp data dir on free loopback ports.
type server struct {
	bin        string
	dir        string
	kubeconfig string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{} // closed when the process has exited
	waitErr    error         // valid once exited is closed
}

// moduleRoot is the directory of skiff's go.mod, found by the go tool from
// the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the skiff module: run from the repository (or pass -skiff)")
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(strings.TrimSpace(string(data)), "module skiff\n") {
		return "", fmt.Errorf("%s is not skiff's go.mod: run from the repository (or pass -skiff)", gomod)
	}
	return filepath.Dir(gomod), nil
}

// build builds skiff from the module root into out.
func build(ctx context.Context, out string, ldflags string) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts skiff and returns once the process runs; wait for it
// with waitReady.
func startServer(bin, dir, authorizationMode string) (*server, error) {
	s := &server{
		bin:        bin,
		dir:        dir,
		kubeconfig: filepath.Join(dir, "kubeconfig.yaml"),
		logPath:    filepath.Join(dir, "skiff.log"),
		exited:     make(chan struct{}),
	}
	var ports [3]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ports[i] = p
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "server",
		"--data-dir", filepath.Join(dir, "data"),
		"--https-listen-port", strconv.Itoa(ports[0]),
		"--etcd-client-port", strconv.Itoa(ports[1]),
		"--etcd-peer-port", strconv.Itoa(ports[2]),
		"--bind-address", "127.0.0.1",
		"--write-kubeconfig", s.kubeconfig,
		"--disable-agent",
	)
	if authorizationMode != "" {
		s.cmd.Args = append(s.cmd.Args, "--authorization-mode", authorizationMode)
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C reaches only the bench, which then
	// stops the server with SIGTERM and cleans up.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SKIFF_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// restConfig is the admin's client configuration with no client-side rate limit.
func (s *server) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS = -1 // no client-side rate limiting
	cfg.Burst = 1 << 20
	cfg.Timeout = 60 * time.Second
	return cfg, nil
}

// waitReady waits until the kubeconfig exists and /readyz answers ok.
func (s *server) waitReady(ctx context.Context, timeout time.Duration) (kubernetes.Interface, *rest.Config, error) {
	deadline := time.Now().Add(timeout)
	last := "kubeconfig not written yet"
	for {
		select {
		case <-s.exited:
			return nil, nil, fmt.Errorf("skiff exited before it was ready: %v", s.waitErr)
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		default:
		}
		if _, err := os.Stat(s.kubeconfig); err == nil {
			cfg, err := s.restConfig()
			if err != nil {
				return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
			}
			c, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return nil, nil, err
			}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
			cancel()
			if err == nil && strings.TrimSpace(string(body)) == "ok" {
				return c, cfg, nil
			}
			last = fmt.Sprintf("/readyz: %v %s", err, body)
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("skiff not ready after %v; last: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits; after timeout it kills the process.
func (s *server) stop(timeout time.Duration) (time.Duration, error) {
	select {
	case <-s.exited:
		return 0, fmt.Errorf("skiff had already exited: %v", s.waitErr)
	default:
	}
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("send SIGTERM: %w", err)
	}
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return time.Since(start), fmt.Errorf("skiff exited with %v after SIGTERM", s.waitErr)
		}
		return time.Since(start), nil
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return time.Since(start), fmt.Errorf("skiff did not stop within %v of SIGTERM; killed it", timeout)
	}
}

// logTail returns the last n lines of the server's log.
func (s *server) logTail(n int) string {
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", s.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// memory is a process's resident set size and its peak, from /proc.
type memory struct {
	rss, peak int64 // bytes
}

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.peak
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("parse %s %q: %w", key, val, err)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return memory{}, err
	}
	if m.rss == 0 {
		return memory{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

// asUser binds user to cluster-admin with admin and returns clients that
// authenticate as user, with a certificate from skiff kubeconfig --user.
func (s *server) asUser(ctx context.Context, admin kubernetes.Interface, user string) (kubernetes.Interface, *rest.Config, error) {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		return nil, nil, fmt.Errorf("bind %s to cluster-admin: %w", user, err)
	}
	kc, err := exec.CommandContext(ctx, s.bin, "kubeconfig", "--data-dir", filepath.Join(s.dir, "data"), "--user", user).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("skiff kubeconfig --user %s: %w", user, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = -1, 1<<20, 60*time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	// The binding reaches the authorizer's informers a moment later.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return c, cfg, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%s is still refused: %w", user, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
