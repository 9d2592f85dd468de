// Command failoverbench measures control-plane failover: three `skiff
// server --disable-agent` processes form one cluster on loopback, then the
// server leading the control loops is killed with SIGKILL, ten times. For
// each kill it records when another server publishes itself as leader (the
// kube-system/skiff-control-plane Lease) and when a Deployment created right
// after the kill gets its ReplicaSet, i.e. when the new leader's controllers
// act. The killed server is restarted from its data before the next round.
// It prints a table and the servers' memory; it never fails on a timing.
//
//	go run ./e2e/failoverbench -kills 10
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"skiff/e2e/benchutil"
	"skiff/internal/etcd"
	skiffserver "skiff/internal/server"
)

func main() {
	kills := flag.Int("kills", 10, "how many times to kill the leader")
	ttl := flag.Duration("leader-elect-ttl", 0, "the servers' --leader-elect-ttl (0: skiff's default)")
	skiffBin := flag.String("skiff", "", "skiff binary (default: build it)")
	keep := flag.Bool("keep", false, "keep the temp dir for inspection")
	flag.Parse()
	if err := run(*kills, *ttl, *skiffBin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "failoverbench:", err)
		os.Exit(1)
	}
}

type server struct {
	name                         string
	dir                          string
	apiPort, clientPort, peerPrt int
	args                         []string
	cmd                          *exec.Cmd
	done                         chan error
	client                       kubernetes.Interface
}

func (s *server) start(bin string) error {
	logFile, err := os.OpenFile(filepath.Join(s.dir, "skiff.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait(); logFile.Close() }()
	return nil
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.kill()
	}
}

// ready waits for the server's /readyz.
func (s *server) ready(timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			return fmt.Errorf("%s exited: %v; see %s", s.name, err, filepath.Join(s.dir, "skiff.log"))
		default:
		}
		resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", s.apiPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v; see %s", s.name, timeout, filepath.Join(s.dir, "skiff.log"))
}

func run(kills int, ttl time.Duration, bin string, keep bool) error {
	dir, err := os.MkdirTemp("", "skiff-failoverbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("temp dir:", dir)
	}
	if bin == "" {
		bin = filepath.Join(dir, "skiff")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build skiff (run from the repository root): %w", err)
		}
	}
	servers := make([]*server, 3)
	for i := range servers {
		s := &server{name: fmt.Sprintf("s%d", i+1), dir: filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			apiPort: benchutil.FreePort(), clientPort: benchutil.FreePort(), peerPrt: benchutil.FreePort()}
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return err
		}
		s.args = []string{"server", "--disable-agent", "--data-dir", filepath.Join(s.dir, "data"), "--node-name", s.name,
			"--node-ip", "127.0.0.1", "--bind-address", "127.0.0.1", "--https-listen-port", strconv.Itoa(s.apiPort),
			"--etcd-client-port", strconv.Itoa(s.clientPort), "--etcd-peer-port", strconv.Itoa(s.peerPrt),
			"--write-kubeconfig", filepath.Join(s.dir, "kubeconfig.yaml"), "--etcd-disable-snapshots"}
		if ttl > 0 {
			s.args = append(s.args, "--leader-elect-ttl", ttl.String())
		}
		servers[i] = s
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	s1 := servers[0]
	s1.args = append(s1.args, "--cluster-init")
	if err := s1.start(bin); err != nil {
		return err
	}
	if err := s1.ready(60 * time.Second); err != nil {
		return err
	}
	token, err := os.ReadFile(filepath.Join(s1.dir, "data", "server", "token"))
	if err != nil {
		return err
	}
	for _, s := range servers[1:] {
		s.args = append(s.args, "--server", fmt.Sprintf("https://127.0.0.1:%d", s1.apiPort), "--token", strings.TrimSpace(string(token)))
		if err := s.start(bin); err != nil {
			return err
		}
		if err := s.ready(90 * time.Second); err != nil {
			return err
		}
	}
	for _, s := range servers {
		rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(s.dir, "kubeconfig.yaml"))
		if err != nil {
			return err
		}
		rc.Timeout = 2 * time.Second
		if s.client, err = kubernetes.NewForConfig(rc); err != nil {
			return err
		}
	}
	fmt.Println("three servers up; memory with 3 members:")
	for _, s := range servers {
		fmt.Printf("  %s  RSS %s\n", s.name, benchutil.MiB(rss(s.cmd.Process.Pid)))
	}

	type round struct {
		victim        string
		etcdLeader    bool
		elected, acts time.Duration
	}
	var rounds []round
	for k := 0; k < kills; k++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		leader, err := waitLeader(ctx, servers, "")
		if err != nil {
			cancel()
			return err
		}
		victim := servers[leader]
		var alive []*server
		for _, s := range servers {
			if s != victim {
				alive = append(alive, s)
			}
		}
		wasEtcdLeader := isEtcdLeader(ctx, victim)
		victim.kill()
		t0 := time.Now()
		// The new leader acts when a Deployment created after the kill
		// gets its ReplicaSet from the deployment controller.
		probe := fmt.Sprintf("probe-%d", k)
		actsc := make(chan time.Duration, 1)
		go func() {
			if err := createDeployment(ctx, alive, probe); err != nil {
				actsc <- -1
				return
			}
			for ctx.Err() == nil {
				for _, s := range alive {
					rs, err := s.client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + probe})
					if err == nil && len(rs.Items) > 0 {
						actsc <- time.Since(t0)
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
			actsc <- -1
		}()
		if _, err := waitLeader(ctx, alive, victim.name); err != nil {
			cancel()
			return err
		}
		elected := time.Since(t0)
		acts := <-actsc
		rounds = append(rounds, round{victim.name, wasEtcdLeader, elected, acts})
		fmt.Printf("kill %2d: %s (etcd leader too: %v): new leader after %v, controllers act after %v\n",
			k+1, victim.name, wasEtcdLeader, elected.Round(time.Millisecond), acts.Round(time.Millisecond))
		cancel()
		if err := victim.start(bin); err != nil {
			return err
		}
		if err := victim.ready(90 * time.Second); err != nil {
			return err
		}
		time.Sleep(2 * time.Second) // let it catch up before the next kill
	}
	var elected, acts []time.Duration
	for _, r := range rounds {
		elected = append(elected, r.elected)
		acts = append(acts, r.acts)
	}
	fmt.Println()
	fmt.Printf("%-40s %10s %10s\n", "leader failover ("+strconv.Itoa(len(rounds))+" kills -9)", "p50", "worst")
	fmt.Printf("%-40s %10v %10v\n", "new leader holds the lease", pct(elected, 0.5), pct(elected, 1))
	fmt.Printf("%-40s %10v %10v\n", "its controllers act (ReplicaSet made)", pct(acts, 0.5), pct(acts, 1))
	fmt.Println("memory with 3 members after the run:")
	for _, s := range servers {
		fmt.Printf("  %s  RSS %s\n", s.name, benchutil.MiB(rss(s.cmd.Process.Pid)))
	}
	return nil
}

// waitLeader returns the index in servers of the control-plane leader
// named in the Lease, once it is not notName and was renewed recently.
func waitLeader(ctx context.Context, servers []*server, notName string) (int, error) {
	for {
		for _, s := range servers {
			l, err := s.client.CoordinationV1().Leases("kube-system").Get(ctx, "skiff-control-plane", metav1.GetOptions{})
			if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == notName {
				continue
			}
			for i, c := range servers {
				if c.name == *l.Spec.HolderIdentity {
					return i, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, errors.New("no control-plane leader in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func isEtcdLeader(ctx context.Context, s *server) bool {
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints:   []string{fmt.Sprintf("https://127.0.0.1:%d", s.clientPort)},
		TLS:         skiffserver.EtcdClientTLS(filepath.Join(s.dir, "data")),
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		return false
	}
	defer cli.Close()
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	return err == nil && st.Leader == st.Header.MemberId
}

func createDeployment(ctx context.Context, servers []*server, name string) error {
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "skiff.test/none:1"}}},
			},
		},
	}
	for i := 0; ctx.Err() == nil; i++ {
		_, err := servers[i%len(servers)].client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}

func rss(pid int) int64 {
	r, _ := benchutil.Memory(pid)
	return r
}

func pct(d []time.Duration, p float64) time.Duration {
	return benchutil.Percentile(d, p).Round(time.Millisecond)
}
