package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"skiff/e2e/benchutil"
	"skiff/internal/etcd"
	skiffruntime "skiff/internal/kubelet/runtime"
	"skiff/internal/server"
)

// The tests of this file run a cluster of several servers, each in its own
// network namespace (see netCluster), and kill, restart and cut off
// servers while clients write through the others.

// nsDial returns a dial function whose sockets belong to the network
// namespace at path (/run/netns/NAME).
func nsDial(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return skiffruntime.DialInNetNS(ctx, path, network, addr)
	}
}

// haCluster is a netCluster with clients that reach each server's API from
// the switch namespace (an outside host), as client-go.
type haCluster struct {
	*netCluster
	base *rest.Config // the admin kubeconfig, without a host

	mu      sync.Mutex
	clients map[string]*kubernetes.Clientset
}

func newHACluster(c *netCluster) *haCluster {
	c.t.Helper()
	base, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.dir, "kubeconfig.yaml"))
	if err != nil {
		c.t.Fatal(err)
	}
	base.Dial = nsDial("/run/netns/" + c.sw)
	base.QPS, base.Burst = 1000, 1000
	base.Timeout = 5 * time.Second
	return &haCluster{netCluster: c, base: base, clients: map[string]*kubernetes.Clientset{}}
}

// restConfig is the admin client configuration for server n's API.
func (c *haCluster) restConfig(n *netNode) *rest.Config {
	rc := rest.CopyConfig(c.base)
	rc.Host = "https://" + n.ip + ":6443"
	return rc
}

// client is an admin client of server n's API (and only n's).
func (c *haCluster) client(n *netNode) *kubernetes.Clientset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[n.name]; ok {
		return cl
	}
	cl, err := kubernetes.NewForConfig(c.restConfig(n))
	if err != nil {
		c.t.Fatal(err)
	}
	c.clients[n.name] = cl
	return cl
}

func (c *haCluster) node(name string) *netNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (c *haCluster) nodeByIP(ip string) *netNode {
	for _, n := range c.nodes {
		if n.ip == ip {
			return n
		}
	}
	return nil
}

// servers are the server nodes, running or not.
func (c *haCluster) servers() []*netNode {
	var out []*netNode
	for _, n := range c.nodes {
		if n.server {
			out = append(out, n)
		}
	}
	return out
}

// others are the servers other than the ones given.
func (c *haCluster) others(not ...*netNode) []*netNode {
	var out []*netNode
	for _, n := range c.servers() {
		skip := false
		for _, x := range not {
			skip = skip || n == x
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}

// kill stops n with SIGKILL, as a crash would, and returns when it sent
// the signal.
func (c *haCluster) kill(n *netNode) time.Time {
	now := time.Now()
	if n.cmd == nil {
		return now
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	n.cmd = nil
	return now
}

// leaseHolder is the control-plane leader named by the Lease, read through
// the first of via that answers.
func (c *haCluster) leaseHolder(via []*netNode) (string, time.Time, error) {
	var errs []error
	for _, n := range via {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		l, err := c.client(n).CoordinationV1().Leases("kube-system").Get(ctx, "skiff-control-plane", metav1.GetOptions{})
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var renewed time.Time
		if l.Spec.RenewTime != nil {
			renewed = l.Spec.RenewTime.Time
		}
		return ptr.Deref(l.Spec.HolderIdentity, ""), renewed, nil
	}
	return "", time.Time{}, errors.Join(errs...)
}

// waitLeader waits for a control-plane leader other than the excluded
// servers and returns it. The Lease must have been renewed after the wait
// began: a Lease naming a server that was just killed or restarted is
// stale, and the real leader may not be elected yet.
func (c *haCluster) waitLeader(timeout time.Duration, via []*netNode, not ...*netNode) *netNode {
	c.t.Helper()
	var leader *netNode
	var last string
	t0 := time.Now()
	if !waitFor(timeout, func() bool {
		name, renewed, err := c.leaseHolder(via)
		last = fmt.Sprintf("%q renewed %v (err %v)", name, renewed, err)
		n := c.node(name)
		if err != nil || n == nil || !renewed.After(t0) {
			return false
		}
		for _, x := range not {
			if n == x {
				return false
			}
		}
		leader = n
		return true
	}) {
		c.t.Fatalf("no control-plane leader in %v (last lease: %s)", timeout, last)
	}
	return leader
}

// etcdClient is a client of n's etcd, which listens on loopback inside n's
// namespace and takes the etcd client certificate in n's data dir.
func (c *haCluster) etcdClient(n *netNode) (*clientv3.Client, error) {
	dial := nsDial("/run/netns/" + n.ns)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints:   []string{"https://127.0.0.1:2379"},
		TLS:         server.EtcdClientTLS(filepath.Join(n.dir, "data")),
		DialTimeout: 3 * time.Second,
		DialContext: dial,
	})
}

// etcdStatus is n's etcd member ID and the member ID of the raft leader it
// sees.
func (c *haCluster) etcdStatus(n *netNode) (member, leader uint64, err error) {
	cli, err := c.etcdClient(n)
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, "https://127.0.0.1:2379")
	if err != nil {
		return 0, 0, err
	}
	return st.Header.MemberId, st.Leader, nil
}

// makeEtcdLeader moves etcd's raft leadership to n, so that killing n
// loses both leaderships at once. It reports what it did.
func (c *haCluster) makeEtcdLeader(n *netNode) string {
	ids := map[uint64]*netNode{}
	var leaderID uint64
	for _, s := range c.servers() {
		if s.cmd == nil {
			continue
		}
		m, l, err := c.etcdStatus(s)
		if err != nil {
			return fmt.Sprintf("etcd status of %s: %v", s.name, err)
		}
		ids[m] = s
		leaderID = l
	}
	var target uint64
	for id, s := range ids {
		if s == n {
			target = id
		}
	}
	cur := ids[leaderID]
	if cur == nil || target == 0 {
		return fmt.Sprintf("cannot tell the etcd leader (leader id %x)", leaderID)
	}
	if cur == n {
		return n.name + " already led etcd"
	}
	cli, err := c.etcdClient(cur)
	if err != nil {
		return err.Error()
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.MoveLeader(ctx, target); err != nil {
		return fmt.Sprintf("move etcd leadership from %s to %s: %v", cur.name, n.name, err)
	}
	if _, l, err := c.etcdStatus(n); err != nil || l != target {
		return fmt.Sprintf("moved etcd leadership from %s to %s, but %s sees leader %x (%v)", cur.name, n.name, n.name, l, err)
	}
	return "moved etcd leadership from " + cur.name + " to " + n.name
}

// apiEndpoints are the addresses of default/kubernetes, the live API
// servers.
func (c *haCluster) apiEndpoints(via *netNode) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ep, err := c.client(via).CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		return nil
	}
	var ips []string
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			ips = append(ips, a.IP)
		}
	}
	return ips
}

func (c *haCluster) nodeReady(via *netNode, name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n, err := c.client(via).CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restart starts a killed server again from its data and waits until its
// API is ready and its kubelet has renewed its node lease and is Ready.
func (c *haCluster) restart(n *netNode) time.Duration {
	c.t.Helper()
	t0 := time.Now()
	c.start(n)
	if !waitFor(90*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := c.client(n).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
			return false
		}
		l, err := c.client(n).CoordinationV1().Leases("kube-node-lease").Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(t0) && c.nodeReady(n, n.name)
	}) {
		c.t.Fatalf("%s did not come back after a restart; log:\n%s", n.name, tail(n.logPath, 60))
	}
	return time.Since(t0)
}

// createCM creates ConfigMap name through server n, in one request:
// client-go would retry a 503 with Retry-After, and the test wants to see
// each answer.
func (c *haCluster) createCM(n *netNode, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"via": n.name}}
	return c.client(n).CoreV1().RESTClient().Post().Namespace("default").Resource("configmaps").
		Body(cm).MaxRetries(0).Do(ctx).Error()
}

// getCM reads ConfigMap name through server n, in one request.
func (c *haCluster) getCM(n *netNode, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.client(n).CoreV1().RESTClient().Get().Namespace("default").Resource("configmaps").
		Name(name).MaxRetries(0).Do(ctx).Error()
}

// logSize and logSince read a node's log from an offset: what it logged
// after a point of the test.
func logSize(n *netNode) int64 {
	st, err := os.Stat(n.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

func logSince(n *netNode, off int64) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// deployment is a Deployment of sleeping test-image pods kept off the
// nodes in avoid.
func deployment(name string, replicas int32, avoid ...string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	spec := corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To(int64(1)),
		Containers: []corev1.Container{{Name: "main", Image: "skiff.test/prog:v1", ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{"sleep", "3600"}}},
	}
	if len(avoid) > 0 {
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpNotIn, Values: avoid}},
			}}},
		}}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
}

// readyPods are the names of app's pods that are Ready, with their nodes.
func (c *haCluster) readyPods(via *netNode, app string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pods, err := c.client(via).CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				out[p.Name] = p.Spec.NodeName
			}
		}
	}
	return out, nil
}

// TestHA runs three servers (s1 started with --cluster-init, s2 and s3
// joined to it, each with its agent) and one agent a1, each in its own
// network namespace, and takes servers away in turn: a kill of the
// leader, a network partition, a kill of the server an agent talks to,
// and the removal of a server.
func TestHA(t *testing.T) {
	start := time.Now()
	c := newHACluster(startNetNodes(t, "a", "host-gw", []netNodeSpec{
		{name: "s1", server: true, args: []string{"--cluster-init"}},
		{name: "s2", server: true},
		{name: "s3", server: true},
		{name: "a1"},
	}))
	s1, s2, s3, a1 := c.node("s1"), c.node("s2"), c.node("s3"), c.node("a1")
	t.Logf("cluster of 3 servers and 1 agent up in %s", secs(time.Since(start)))

	t.Run("writes-through-each-server", func(t *testing.T) {
		for _, s := range c.servers() {
			if err := c.createCM(s, "via-"+s.name, 10*time.Second); err != nil {
				t.Errorf("create a ConfigMap through %s: %v", s.name, err)
			}
		}
		for _, r := range c.servers() {
			for _, s := range c.servers() {
				if err := c.getCM(r, "via-"+s.name); err != nil {
					t.Errorf("read via-%s through %s: %v", s.name, r.name, err)
				}
			}
		}
		var rss []string
		for _, s := range c.servers() {
			r, _ := benchutil.Memory(s.cmd.Process.Pid)
			rss = append(rss, s.name+"="+benchutil.MiB(r))
		}
		t.Logf("RSS with 3 members (server and its agent, one process each): %s", strings.Join(rss, " "))
		if !waitFor(30*time.Second, func() bool { return len(c.apiEndpoints(s1)) == 3 }) {
			t.Errorf("default/kubernetes lists %v, want the 3 servers' IPs", c.apiEndpoints(s1))
		}
	})

	t.Run("leader-kill", func(t *testing.T) {
		leader := c.waitLeader(30*time.Second, c.servers())
		t.Logf("control-plane leader: %s; %s", leader.name, c.makeEtcdLeader(leader))
		alive := c.others(leader)
		// The probe Deployment is scaled from 0 to 1 after the kill: its
		// pod appears once the new leader's controllers act.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := c.client(alive[0]).AppsV1().Deployments("default").Create(ctx, deployment("probe", 0, leader.name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}

		// A steady write load through the two other servers.
		type ack struct {
			name string
			via  string
		}
		var (
			mu       sync.Mutex
			acked    []ack
			failures = map[string]int{}
			examples = map[string]string{}
			attempts int
		)
		stopLoad := make(chan struct{})
		var load sync.WaitGroup
		for g := 0; g < 4; g++ {
			load.Add(1)
			go func() {
				defer load.Done()
				tick := time.NewTicker(80 * time.Millisecond) // 4 × 12.5/s = 50 writes/s
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					case <-tick.C:
					}
					via := alive[(g+i)%len(alive)]
					name := fmt.Sprintf("load-%d-%d", g, i)
					err := c.createCM(via, name, 5*time.Second)
					mu.Lock()
					attempts++
					if err == nil {
						acked = append(acked, ack{name, via.name})
					} else {
						class := fmt.Sprintf("%s: %s", via.name, errClass(err))
						failures[class]++
						if examples[class] == "" {
							examples[class] = err.Error()
						}
					}
					mu.Unlock()
				}
			}()
		}
		defer func() {
			select {
			case <-stopLoad:
			default:
				close(stopLoad)
			}
			load.Wait()
		}()

		// A Deployment whose rollout spans the kill.
		if _, err := c.client(alive[0]).AppsV1().Deployments("default").Create(ctx, deployment("steady", 3, leader.name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)

		t0 := c.kill(leader)
		t.Logf("killed %s (kill -9)", leader.name)

		scaled := make(chan time.Duration, 1)
		go func() {
			for ctx.Err() == nil {
				for _, s := range alive {
					sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
					_, err := c.client(s).AppsV1().Deployments("default").UpdateScale(sctx, "probe",
						&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"}, Spec: autoscalingv1.ScaleSpec{Replicas: 1}},
						metav1.UpdateOptions{})
					scancel()
					if err == nil {
						scaled <- time.Since(t0)
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		var elected, acts time.Duration
		var newLeader *netNode
		if !waitFor(60*time.Second, func() bool {
			if newLeader == nil {
				name, _, err := c.leaseHolder(alive)
				if n := c.node(name); err == nil && n != nil && n != leader {
					newLeader, elected = n, time.Since(t0)
				}
			}
			if acts == 0 {
				lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
				pods, err := c.client(alive[0]).CoreV1().Pods("default").List(lctx, metav1.ListOptions{LabelSelector: "app=probe"})
				lcancel()
				if err == nil && len(pods.Items) > 0 {
					acts = time.Since(t0)
				}
			}
			return newLeader != nil && acts > 0
		}) {
			t.Fatalf("after the kill of %s: new leader %v after %v, probe pod created after %v (0: never)", leader.name, newLeader, elected, acts)
		}
		var scaledAfter time.Duration
		select {
		case scaledAfter = <-scaled:
		default:
		}
		t.Logf("leader failover: %s (new lease holder %s), controllers act %s (probe Deployment scaled at %s, its pod created)",
			secs(elected), newLeader.name, secs(acts), secs(scaledAfter))
		if acts > 30*time.Second {
			t.Errorf("the new leader's controllers acted %s after the kill; want well under 30s", secs(acts))
		}

		// Some more load with the new leader, then check every
		// acknowledged create.
		time.Sleep(3 * time.Second)
		close(stopLoad)
		load.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("write load: %d creates attempted in %s, %d acknowledged; failures: %v",
			attempts, secs(time.Since(t0)+2*time.Second), len(acked), failures)
		for class, e := range examples {
			t.Logf("  %s, e.g.: %s", class, e)
		}
		have := map[string]bool{}
		lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
		cms, err := c.client(alive[1]).CoreV1().ConfigMaps("default").List(lctx, metav1.ListOptions{})
		lcancel()
		if err != nil {
			t.Fatalf("list ConfigMaps through %s: %v", alive[1].name, err)
		}
		for _, cm := range cms.Items {
			have[cm.Name] = true
		}
		lost := 0
		for _, a := range acked {
			if !have[a.name] {
				lost++
				if lost <= 10 {
					t.Errorf("acknowledged create of %s (through %s) is lost", a.name, a.via)
				}
			}
		}
		if lost > 0 {
			t.Errorf("%d of %d acknowledged creates lost", lost, len(acked))
		}
		if len(acked) == 0 {
			t.Errorf("no create was acknowledged")
		}

		// The Deployment created before the kill converges.
		var ready map[string]string
		if !waitFor(60*time.Second, func() bool {
			ready, _ = c.readyPods(alive[0], "steady")
			return len(ready) == 3
		}) {
			t.Errorf("Deployment steady (created before the kill): ready pods %v, want 3", ready)
		}
		for pod, node := range ready {
			if node == leader.name {
				t.Errorf("pod %s Ready on the killed node %s", pod, node)
			}
		}
		t.Logf("Deployment created before the kill converged %s after it: %v", secs(time.Since(t0)), ready)

		back := c.restart(leader)
		if !waitFor(30*time.Second, func() bool { return len(c.apiEndpoints(alive[0])) == 3 }) {
			t.Errorf("after %s restarted, default/kubernetes lists %v, want 3 servers", leader.name, c.apiEndpoints(alive[0]))
		}
		t.Logf("%s rejoined after a restart from its data in %s", leader.name, secs(back))
	})

	t.Run("partition", func(t *testing.T) {
		leader := c.waitLeader(30*time.Second, c.servers())
		// Cut off a server that does not lead (the last such).
		var cut *netNode
		for _, s := range c.servers() {
			if s != leader {
				cut = s
			}
		}
		rest := c.others(cut)
		var rules [][]string
		for _, o := range rest {
			rules = append(rules, []string{"INPUT", "-s", o.ip, "-j", "DROP"}, []string{"OUTPUT", "-d", o.ip, "-j", "DROP"})
		}
		heal := func() {
			for _, r := range rules {
				_, _ = inNS(cut.ns, append([]string{"iptables", "-D"}, r...)...)
			}
		}
		for _, r := range rules {
			if out, err := inNS(cut.ns, append([]string{"iptables", "-I"}, r...)...); err != nil {
				heal()
				t.Fatalf("iptables in %s: %v %s", cut.ns, err, out)
			}
		}
		t0 := time.Now()
		healed := false
		defer func() {
			if !healed {
				heal()
			}
		}()
		t.Logf("cut %s off from %s and %s", cut.name, rest[0].name, rest[1].name)

		var last error
		ok503 := waitFor(20*time.Second, func() bool {
			last = c.createCM(cut, fmt.Sprintf("part-cut-%d", time.Now().UnixNano()), 3*time.Second)
			var st apierrors.APIStatus
			return errors.As(last, &st) && st.Status().Code == 503 && strings.Contains(st.Status().Message, "cut off from the etcd majority")
		})
		if ok503 {
			t.Logf("partition: %s answers writes with 503 \"cut off from the etcd majority\" %s after the cut", cut.name, secs(time.Since(t0)))
		} else {
			t.Errorf("%s cut off for 20s: a create answers %v; want 503 with \"cut off from the etcd majority\"", cut.name, last)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, rerr := c.client(cut).Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if rerr == nil {
			t.Errorf("%s cut off: /readyz answers OK", cut.name)
		}
		if err := c.getCM(cut, "via-s1"); err == nil {
			t.Errorf("%s cut off: a read answers OK; want 503", cut.name)
		}
		for i, o := range rest {
			if err := c.createCM(o, fmt.Sprintf("part-during-%d", i), 10*time.Second); err != nil {
				t.Errorf("during the partition, create through %s: %v", o.name, err)
			}
		}
		if name, _, err := c.leaseHolder(rest); err != nil || name == cut.name {
			t.Errorf("during the partition the leader lease names %q (%v); want one of the majority", name, err)
		}

		heal()
		healed = true
		t1 := time.Now()
		if !waitFor(30*time.Second, func() bool {
			last = c.createCM(cut, fmt.Sprintf("part-after-%d", time.Now().UnixNano()), 3*time.Second)
			return last == nil
		}) {
			t.Fatalf("30s after the partition healed %s still refuses writes: %v", cut.name, last)
		}
		t.Logf("partition healed: %s accepts writes again after %s", cut.name, secs(time.Since(t1)))
		for i := range rest {
			if err := c.getCM(cut, fmt.Sprintf("part-during-%d", i)); err != nil {
				t.Errorf("after healing, %s does not see part-during-%d: %v", cut.name, i, err)
			}
		}
	})

	t.Run("agent-failover", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "on-a1"},
			Spec: corev1.PodSpec{NodeName: "a1", TerminationGracePeriodSeconds: ptr.To(int64(1)),
				Containers: []corev1.Container{{Name: "main", Image: "skiff.test/prog:v1", ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "3600"}}}},
		}
		if _, err := c.client(s2).CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		podState := func(via *netNode) (ready bool, restarts int32, containerID string) {
			pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
			defer pcancel()
			p, err := c.client(via).CoreV1().Pods("default").Get(pctx, "on-a1", metav1.GetOptions{})
			if err != nil {
				return false, -1, ""
			}
			for _, cs := range p.Status.ContainerStatuses {
				return cs.Ready, cs.RestartCount, cs.ContainerID
			}
			return false, -1, ""
		}
		var containerID string
		if !waitFor(60*time.Second, func() bool {
			var ready bool
			ready, _, containerID = podState(s2)
			return ready
		}) {
			t.Fatalf("pod on-a1 not Ready")
		}

		moves := regexp.MustCompile(`time=(\S+) .*msg="API connections now go to a new server".* server=([0-9.]+):6443`)
		found := moves.FindAllStringSubmatch(logSince(a1, 0), -1)
		if len(found) == 0 {
			t.Fatalf("a1 never logged \"API connections now go to a new server\"; log:\n%s", tail(a1.logPath, 40))
		}
		victim := c.nodeByIP(found[len(found)-1][2])
		if victim == nil || !victim.server {
			t.Fatalf("a1's load balancer uses %s, not a server of the test", found[len(found)-1][2])
		}
		alive := c.others(victim)
		off := logSize(a1)
		t0 := c.kill(victim)
		t.Logf("killed %s, the server a1's load balancer used", victim.name)

		var moved, renewed time.Duration
		var movedTo string // set once a1 moved
		if !waitFor(60*time.Second, func() bool {
			if movedTo == "" {
				if m := moves.FindStringSubmatch(logSince(a1, off)); m != nil && m[2] != victim.ip {
					// The log line's own time: the move is quicker than a poll.
					moved, movedTo = time.Since(t0), m[2]
					if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
						moved = at.Sub(t0)
					}
				}
			}
			if renewed == 0 {
				lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
				l, err := c.client(alive[0]).CoordinationV1().Leases("kube-node-lease").Get(lctx, "a1", metav1.GetOptions{})
				lcancel()
				if err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(t0) {
					renewed = time.Since(t0)
				}
			}
			return movedTo != "" && renewed > 0
		}) {
			t.Errorf("after the kill of %s: a1 moved to another server %q after %v, renewed its node lease after %v (empty, 0: never); a1 log:\n%s",
				victim.name, movedTo, moved, renewed, tail(a1.logPath, 30))
		} else {
			t.Logf("agent failover: %s (a1's API connections now go to %s), node lease renewed %s after the kill", secs(moved), movedTo, secs(renewed))
		}
		ready, restarts, id := podState(alive[0])
		if !ready || restarts != 0 || id != containerID {
			t.Errorf("pod on-a1 after the failover: ready %v, restartCount %d, container %s (was %s); want it running undisturbed", ready, restarts, id, containerID)
		}
		back := c.restart(victim)
		t.Logf("%s back after %s", victim.name, secs(back))
	})

	t.Run("delete-node-removes-member", func(t *testing.T) {
		remaining := []*netNode{s1, s2}
		offs := map[*netNode]int64{s1: logSize(s1), s2: logSize(s2)}
		c.kill(s3)
		// The member is removed by the control-plane leader; if s3 led,
		// one of s1 and s2 takes over first.
		leader := c.waitLeader(60*time.Second, remaining, s3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.client(leader).CoreV1().Nodes().Delete(ctx, "s3", metav1.DeleteOptions{}); err != nil {
			t.Fatalf("kubectl delete node s3: %v", err)
		}
		t0 := time.Now()
		removed := regexp.MustCompile(`msg="removed etcd member".* name=s3\b`)
		var by *netNode
		if !waitFor(30*time.Second, func() bool {
			for _, s := range remaining {
				if removed.MatchString(logSince(s, offs[s])) {
					by = s
					return true
				}
			}
			return false
		}) {
			t.Errorf("30s after `kubectl delete node s3` neither s1 nor s2 logged \"removed etcd member\" name=s3; leader %s log:\n%s",
				leader.name, tail(leader.logPath, 30))
		} else {
			t.Logf("delete node s3: %s removed its etcd member after %s", by.name, secs(time.Since(t0)))
		}
		for _, s := range remaining {
			if err := c.createCM(s, "after-remove-via-"+s.name, 10*time.Second); err != nil {
				t.Errorf("with s3 removed, create through %s: %v", s.name, err)
			}
		}
		// s3's pods stay bound to a node that is gone until the pod
		// garbage collector's quarantine ends; an admin removes them at
		// once, and so does the test, so that its cleanup does not wait.
		pods, err := c.client(leader).CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=s3"})
		if err == nil {
			for _, p := range pods.Items {
				_ = c.client(leader).CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
			}
		}
	})
	t.Logf("TestHA took %s", secs(time.Since(start)))
}

// errClass shortens a client error for a tally.
func errClass(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return fmt.Sprintf("%d %s", st.Status().Code, st.Status().Reason)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout"):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[len(s)-60:]
	}
	return s
}
