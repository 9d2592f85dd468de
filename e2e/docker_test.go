package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/kubelet/kubelettest"
)

// The docker test builds an image from this repository's Dockerfile, with
// no registry: the runtime base is imported from this machine's own files.
const (
	dockerBuildTimeout = 15 * time.Minute // a cold static build of skiff is slow on 2 cores
	dockerReadyTimeout = 120 * time.Second
	dockerImageRef     = "skiff.test/prog:v1"
)

// requireDocker skips unless the test runs as root next to a Docker engine.
func requireDocker(t *testing.T) {
	t.Helper()
	kubelettest.RequireRoot(t)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("needs the docker CLI and a running Docker engine")
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Skipf("needs a running Docker engine (`docker version` failed: %v: %s)", err, bytes.TrimSpace(out))
	}
	for _, tool := range []string{"xtables-nft-multi", "xtables-legacy-multi", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s on this machine to make the image's base (apt-get install iptables libc-bin)", tool)
		}
	}
}

// docker runs the docker CLI and returns its trimmed standard output.
func docker(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerCluster runs a server and an agent as Docker containers on a
// user-defined network, from the Dockerfile's prebuilt target: a pod runs
// on the agent and logs through the API, and a pod on one node reaches a
// pod on the other, directly and through a Service's DNS name.
func TestDockerCluster(t *testing.T) {
	requireDocker(t)
	id := fmt.Sprintf("skiff-e2e-%d", os.Getpid())
	start := time.Now()

	// The image: a base made from this machine's files, plus a static skiff.
	ctxDir := t.TempDir()
	rootfs := filepath.Join(ctxDir, "rootfs.tar")
	if err := writeBaseRootfs(rootfs); err != nil {
		t.Fatalf("make the base image's root filesystem: %v", err)
	}
	base, image := id+"-base:latest", id+":latest"
	mustDocker(t, "import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", rootfs, base)
	t.Cleanup(func() { _, _ = docker(context.Background(), "rmi", "-f", image, base) })
	if err := os.Remove(rootfs); err != nil {
		t.Fatal(err)
	}
	buildStaticSkiff(t, filepath.Join(ctxDir, "skiff"))
	dockerfile, err := filepath.Abs("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mustDocker(t, "build", "-f", dockerfile, "--target", "prebuilt",
		"--build-arg", "BASE_IMAGE="+base, "--build-arg", "SKIFF_BINARY=skiff", "-t", image, ctxDir)
	if out := mustDocker(t, "run", "--rm", image, "version"); !strings.HasPrefix(out, "skiff version e2e-docker ") {
		t.Errorf("skiff version in the image: %q", out)
	}
	t.Logf("timing: image built in %v", time.Since(start).Round(time.Second))

	d := &dockerCluster{t: t, id: id, image: image, privileged: privilegedFlags(t, base)}
	mustDocker(t, "network", "create", id)
	t.Cleanup(func() { _, _ = docker(context.Background(), "network", "rm", id) })

	// The server, with its own agent (node s1).
	start = time.Now()
	s1 := d.run("s1", "server", "--node-name", "s1")
	var kubeconfig []byte
	d.waitUntil("the server to write its kubeconfig", func() bool {
		out, err := docker(context.Background(), "exec", s1, "cat", "/etc/skiff/skiff.yaml")
		kubeconfig = []byte(out)
		return err == nil && out != ""
	})
	s1IP := mustDocker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", s1)
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		t.Fatalf("the server's kubeconfig: %v", err)
	}
	// The kubeconfig names the server by loopback, as seen from inside its
	// container; this test reaches it on the Docker network. The serving
	// certificate covers the container's address.
	cfg.Host = "https://" + net.JoinHostPort(s1IP, "6443")
	cfg.Timeout = 15 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.waitUntil("/readyz", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	})
	t.Logf("timing: server ready at %s in %v", cfg.Host, time.Since(start).Round(time.Second))
	token := mustDocker(t, "exec", s1, "skiff", "token")

	// The agent (node a1), with the test image in its air-gap folder.
	start = time.Now()
	a1 := d.run("a1", "agent", "--server", cfg.Host, "--token", token, "--node-name", "a1")
	d.waitUntil("nodes s1 and a1 to be Ready", func() bool {
		return nodeReady(client, "s1") && nodeReady(client, "a1")
	})
	t.Logf("timing: agent a1 Ready in %v", time.Since(start).Round(time.Second))

	// A pod on the agent: running, with an address from the cluster CIDR,
	// and its log served through the API.
	start = time.Now()
	hello := d.runPod(client, "hello", "a1", "sh", "-c", "echo hello from $(hostname); exec sleep 3600")
	if _, cidr, _ := net.ParseCIDR("10.42.0.0/16"); !cidr.Contains(net.ParseIP(hello.Status.PodIP)) {
		t.Errorf("pod IP %q is not in the cluster CIDR %s", hello.Status.PodIP, cidr)
	}
	if logs := d.waitLog(client, "hello", "hello from hello\n"); logs != "hello from hello\n" {
		t.Errorf("pod log = %q, want %q", logs, "hello from hello\n")
	}
	t.Logf("timing: pod running on a1 with its log in %v", time.Since(start).Round(time.Second))

	// Pod to pod across the two containers (VXLAN over the Docker network),
	// and through a Service by its DNS name (iptables and cluster DNS inside
	// the containers).
	start = time.Now()
	web := d.runPod(client, "web", "s1", "/testprog", "serve", ":8080")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	// nc, not wget: busybox-static's wget crashes on some hosts (it
	// segfaults even against loopback here), nc does not.
	fetch := `until printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s | grep 'hello from'; do sleep 1; done`
	d.runPod(client, "client", "a1", "sh", "-c",
		fmt.Sprintf(fetch, web.Status.PodIP+" 8080")+"; "+
			fmt.Sprintf(fetch, "web.default.svc.cluster.local 80")+"; exec sleep 3600")
	d.waitLog(client, "client", "hello from web\nhello from web\n")
	t.Logf("timing: pod on a1 reached pod %s on s1 directly and through service web in %v", web.Status.PodIP, time.Since(start).Round(time.Second))

	// The image's iptables works in the container: skiff's chains are there.
	if out := mustDocker(t, "exec", a1, "iptables-save", "-t", "nat"); !strings.Contains(out, ":SKIFF-") {
		t.Errorf("no SKIFF- chains in a1's nat table:\n%s", out)
	}
}

// runPod creates a pod running command on node from the test image, and
// waits until it runs.
func (d *dockerCluster) runPod(client kubernetes.Interface, name, node string, command ...string) *corev1.Pod {
	t := d.t
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name:            name,
				Image:           dockerImageRef,
				ImagePullPolicy: corev1.PullNever,
				Command:         command,
			}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	var got *corev1.Pod
	d.waitUntil("pod "+name+" to run", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		got = p
		return err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
	})
	return got
}

// waitLog waits until the pod's log, read through the API, has want in
// it (or, on timeout, fails the test) and returns the log.
func (d *dockerCluster) waitLog(client kubernetes.Interface, pod, want string) string {
	d.t.Helper()
	var logs string
	d.waitUntil("pod "+pod+" to log "+strconv.Quote(want), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := client.CoreV1().Pods("default").GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			logs = "(" + err.Error() + ")"
			return false
		}
		logs = string(b)
		return strings.Contains(logs, want)
	}, func() string { return "its log: " + logs })
	return logs
}

// dockerCluster is a set of skiff containers on one Docker network.
type dockerCluster struct {
	t          *testing.T
	id, image  string
	privileged []string // docker flags giving a container what skiff needs
	containers []string
}

// privilegedFlags returns --privileged, or, where the Docker engine itself
// lacks a capability (some sandboxes drop CAP_SYS_RESOURCE, and
// --privileged then fails with "unable to apply caps"), the parts of
// --privileged skiff needs: every other capability, no seccomp or AppArmor
// profile, writable /proc/sys, all devices, and the cgroup tree read-write.
func privilegedFlags(t *testing.T, image string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := docker(ctx, "run", "--rm", "--privileged", "--entrypoint", "/bin/sh", image, "-c", "true")
	if err == nil {
		return []string{"--privileged"}
	}
	if !strings.Contains(err.Error(), "apply caps") {
		t.Fatalf("run a privileged container: %v", err)
	}
	flags := []string{"--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
		"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup"}
	if _, err := docker(ctx, append(append([]string{"run", "--rm"}, flags...), "--entrypoint", "/bin/sh", image, "-c", "true")...); err != nil {
		t.Skipf("this Docker engine cannot run privileged containers (%v), nor with all but CAP_SYS_RESOURCE", err)
	}
	t.Logf("--privileged fails on this Docker engine (it lacks a capability); using %s", strings.Join(flags, " "))
	return flags
}

// run starts a skiff container (server or agent) named after node, with
// the flags skiff needs in a container and the test image in its air-gap
// folder, copied in before it starts.
func (d *dockerCluster) run(node string, args ...string) string {
	t := d.t
	t.Helper()
	name := d.id + "-" + node
	// Each node gets its own cgroup parent: with the host's cgroup
	// namespace, nodes on one machine would otherwise share /skiff.
	cgroupParent := "/" + name
	flags := []string{"create", "--name", name, "--hostname", node, "--network", d.id, "--cgroupns=host"}
	flags = append(flags, d.privileged...)
	if _, err := os.Stat("/lib/modules"); err == nil {
		flags = append(flags, "-v", "/lib/modules:/lib/modules:ro")
	}
	flags = append(flags, d.image)
	flags = append(flags, args...)
	flags = append(flags, "--cgroup-parent", cgroupParent)
	mustDocker(t, flags...)
	d.containers = append(d.containers, name)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "60", name).CombinedOutput()
			t.Logf("docker logs %s (tail):\n%s", name, out)
		}
		// -v removes the anonymous /var/lib/skiff volume. The pods die
		// with the container: they live in its PID namespace.
		_, _ = docker(context.Background(), "rm", "-f", "-v", name)
		kubelettest.RemoveCgroups(cgroupParent)
	})
	dir := t.TempDir()
	importDir := filepath.Join(dir, "agent", "images", "import")
	if err := os.MkdirAll(importDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubelettest.SaveTarball(t, filepath.Join(importDir, "prog.tar"), dockerImageRef, kubelettest.Image(t))
	mustDocker(t, "cp", filepath.Join(dir, "agent"), name+":/var/lib/skiff/")
	mustDocker(t, "start", name)
	return name
}

// waitUntil polls cond until it holds, failing the test on timeout or
// as soon as one of the containers has exited.
func (d *dockerCluster) waitUntil(what string, cond func() bool, details ...func() string) {
	d.t.Helper()
	deadline := time.Now().Add(dockerReadyTimeout)
	for i := 0; ; i++ {
		if cond() {
			return
		}
		if i%10 == 9 {
			for _, c := range d.containers {
				if state, _ := docker(context.Background(), "inspect", "-f", "{{.State.Status}}", c); state != "running" {
					d.t.Fatalf("waiting for %s: container %s is %s", what, c, state)
				}
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s", dockerReadyTimeout, what)
			for _, f := range details {
				msg += "; " + f()
			}
			d.t.Fatal(msg)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func nodeReady(client kubernetes.Interface, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// buildStaticSkiff builds skiff as scripts/build.sh does (static, cgo, the
// osusergo and netgo tags), so that it runs in an image without a C library
// of its own.
func buildStaticSkiff(t *testing.T, out string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH; it is needed to build skiff")
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "osusergo,netgo",
		"-ldflags", "-s -w -extldflags -static -X skiff/internal/cli.Version=e2e-docker", "-o", out, ".")
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build of skiff: %v\n%s", err, b)
	}
}

// writeBaseRootfs writes a root filesystem tarball for the image's base:
// the iptables binaries (nft and legacy), their extensions and shared
// libraries, CA certificates and a static busybox for a shell, all copied
// from this machine, so no base image has to be pulled.
func writeBaseRootfs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rw := &rootfsWriter{tw: tar.NewWriter(f), dirs: map[string]bool{}}

	var elfs []string // files whose shared libraries are needed
	for _, bin := range []string{"xtables-nft-multi", "xtables-legacy-multi"} {
		p, err := exec.LookPath(bin)
		if err != nil {
			return err
		}
		if err := rw.copyFile(p, "/usr/sbin/"+bin, 0o755); err != nil {
			return err
		}
		elfs = append(elfs, p)
	}
	// The names skiff runs, pointing where Debian's alternatives point by
	// default (nft), plus the explicit -nft and -legacy names.
	for _, v := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			links := map[string]string{
				v + suffix:             "xtables-nft-multi",
				v + "-nft" + suffix:    "xtables-nft-multi",
				v + "-legacy" + suffix: "xtables-legacy-multi",
			}
			for name, target := range links {
				if err := rw.symlink("/usr/sbin/"+name, target); err != nil {
					return err
				}
			}
		}
	}
	// iptables' extensions (-m comment, -j MASQUERADE, ...), loaded from the
	// directory compiled into the binaries.
	mods, _ := filepath.Glob("/usr/lib/*/xtables/*.so")
	if len(mods) == 0 {
		mods, _ = filepath.Glob("/usr/lib*/xtables/*.so")
	}
	if len(mods) == 0 {
		return fmt.Errorf("no iptables extensions found under /usr/lib/*/xtables")
	}
	for _, m := range mods {
		if err := rw.copyFile(m, m, 0o644); err != nil {
			return err
		}
	}
	elfs = append(elfs, mods...)
	libs, err := sharedLibraries(elfs)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := rw.copyFile(l, l, 0o755); err != nil {
			return err
		}
	}

	bb := "/bin/busybox"
	if err := rw.copyFile(bb, "/bin/busybox", 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "cat", "ls", "mkdir", "rm", "cp", "mv", "ln", "ps", "grep", "tail", "head", "sleep", "env", "echo", "mount", "df", "du", "find", "ip", "wget", "vi"} {
		if err := rw.symlink("/bin/"+a, "busybox"); err != nil {
			return err
		}
	}
	for _, p := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/protocols", "/etc/services", "/etc/ethertypes"} {
		if _, err := os.Stat(p); err == nil {
			if err := rw.copyFile(p, p, 0o644); err != nil {
				return err
			}
		}
	}
	for name, body := range map[string]string{
		"/etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
		"/etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"/etc/nsswitch.conf": "hosts: files dns\n",
	} {
		if err := rw.file(name, []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, dir := range []string{"/tmp", "/root", "/run", "/var/lib", "/var/log", "/usr/local/bin"} {
		mode := int64(0o755)
		if dir == "/tmp" {
			mode = 0o1777
		}
		if err := rw.dir(dir, mode); err != nil {
			return err
		}
	}
	if err := rw.tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// sharedLibraries lists the libraries (and the dynamic loader) that ldd
// says these ELF files need, by the paths the loader finds them at.
func sharedLibraries(files []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		b, err := exec.Command("ldd", f).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", f, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
			// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
			for _, field := range strings.Fields(sc.Text()) {
				if strings.HasPrefix(field, "/") && !seen[field] {
					seen[field] = true
					out = append(out, field)
				}
			}
		}
	}
	return out, nil
}

// rootfsWriter writes a tar of a root filesystem, adding parent
// directories as needed.
type rootfsWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
}

func (w *rootfsWriter) dir(name string, mode int64) error {
	name = strings.Trim(name, "/")
	if name == "" || name == "." || w.dirs[name] {
		return nil
	}
	if err := w.dir(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	w.dirs[name] = true
	return w.tw.WriteHeader(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode})
}

func (w *rootfsWriter) file(name string, body []byte, mode int64) error {
	name = strings.Trim(name, "/")
	if err := w.dir(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	if err := w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body))}); err != nil {
		return err
	}
	_, err := w.tw.Write(body)
	return err
}

// copyFile adds the file at src (following symlinks) as name.
func (w *rootfsWriter) copyFile(src, name string, mode int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	return w.file(name, body, mode)
}

func (w *rootfsWriter) symlink(name, target string) error {
	name = strings.Trim(name, "/")
	if err := w.dir(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return w.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
}
