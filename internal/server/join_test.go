package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

// etcdClient connects to the server's etcd; both end with the test.
func etcdClient(t *testing.T, s *servertest.Server) (*clientv3.Client, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", s.Config.EtcdClientPort)},
		TLS:       server.EtcdClientTLS(s.DataDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli, ctx
}

// etcdMembers lists the members seen by the server's etcd: name → voter.
func etcdMembers(t *testing.T, s *servertest.Server) map[string]bool {
	t.Helper()
	cli, ctx := etcdClient(t, s)
	resp, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatalf("etcd member list: %v", err)
	}
	out := map[string]bool{}
	for _, m := range resp.Members {
		out[m.Name] = !m.IsLearner
	}
	return out
}

// memberName is the etcd member name the server keeps in its data dir.
func memberName(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(config.Layout{DataDir: dataDir}.EtcdMemberNameFile())
	if err != nil {
		t.Fatalf("etcd member name: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func etcdKeyExists(t *testing.T, s *servertest.Server, key string) bool {
	t.Helper()
	cli, ctx := etcdClient(t, s)
	resp, err := cli.Get(ctx, key, clientv3.WithCountOnly())
	return err == nil && resp.Count > 0
}

func clustered(c *config.Server) {
	c.AdvertiseIPs = []net.IP{net.IPv4(127, 0, 0, 1)}
}

// TestServersJoin is three servers forming one cluster: the second and
// third join the first with its token, become voting etcd members, serve
// the same data, rejoin from their own data after a restart, and a
// deleted server's node takes its etcd member with it.
func TestServersJoin(t *testing.T) {
	s1 := servertest.Start(t, "", clustered, servertest.FastLeaderElection, func(c *config.Server) { c.ClusterInit = true })
	join := func(c *config.Server) {
		clustered(c)
		c.JoinURL = s1.URL()
		c.Token = s1.JoinToken(t)
		c.DisableScheduler, c.DisableControllerManager = true, true
	}
	s2 := servertest.Start(t, "", join)
	s3 := servertest.Start(t, "", join)

	members := etcdMembers(t, s1)
	for _, s := range []*servertest.Server{s1, s2, s3} {
		name := memberName(t, s.DataDir)
		if !strings.HasPrefix(name, s.Config.NodeName+"-") || !members[name] {
			t.Fatalf("etcd members %v: want three voters named after the servers' nodes with a suffix; %s is not one", members, name)
		}
	}
	if len(members) != 3 {
		t.Fatalf("etcd members %v: want three voters", members)
	}
	// The etcd CA is the first server's, handed over in the bootstrap
	// data, and is not the cluster CA.
	readCA := func(dir string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	etcdCA := readCA(config.Layout{DataDir: s1.DataDir}.EtcdTLSDir())
	if etcdCA == readCA(config.Layout{DataDir: s1.DataDir}.TLSDir()) {
		t.Error("the etcd CA is the cluster CA")
	}
	for _, s := range []*servertest.Server{s2, s3} {
		if readCA(config.Layout{DataDir: s.DataDir}.EtcdTLSDir()) != etcdCA {
			t.Errorf("%s has another etcd CA than the first server", s.Config.NodeName)
		}
	}
	s3Member := memberName(t, s3.DataDir)

	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "written-on-s1"}, Data: map[string]string{"k": "v"}}
	if _, err := s1.Client(t).CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := s3.Client(t).CoreV1().ConfigMaps("default").Get(ctx, "written-on-s1", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("read through the third server: %v %v", got, err)
	}

	// A restart rejoins from the data dir, without being added again.
	cfg2 := s2.Config
	s2Member := memberName(t, s2.DataDir)
	s2.Stop(t)
	s2 = servertest.StartConfig(t, cfg2)
	if m := etcdMembers(t, s2); len(m) != 3 || !m[s2Member] {
		t.Fatalf("after restarting s2, members %v: want three, %s among them", m, s2Member)
	}

	// Deleting a dead server's node removes its member, even when the node
	// goes while no server leads (only s1 runs the control loops): the
	// next leader notices.
	servertest.AddNode(t, s1.Client(t), s3.Config.NodeName, servertest.WithLabels(map[string]string{config.LabelControlPlane: "true"}),
		func(n *corev1.Node) { n.Annotations = map[string]string{server.AnnotationEtcdMember: s3Member} })
	servertest.Eventually(t, 30*time.Second, "the leader records that s3 has a node", func() error {
		if !etcdKeyExists(t, s1, "/skiff/server-nodes/"+s3.Config.NodeName) {
			return fmt.Errorf("no record")
		}
		return nil
	})
	cfg1 := s1.Config
	s1.Stop(t)
	if err := s2.Client(t).CoreV1().Nodes().Delete(ctx, s3.Config.NodeName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s3.Stop(t)
	s1 = servertest.StartConfig(t, cfg1)
	servertest.Eventually(t, 30*time.Second, "s3's etcd member removed", func() error {
		if m := etcdMembers(t, s1); len(m) != 2 || m[s3Member] {
			return fmt.Errorf("members %v", m)
		}
		return nil
	})
	if _, err := s2.Client(t).CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-removal"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("write with two members left: %v", err)
	}
}

// TestJoinRefusals: a server that was not started with --cluster-init takes
// no other servers, and a wrong token is refused at once, each with a
// message that says what to do.
func TestJoinRefusals(t *testing.T) {
	plain := servertest.Start(t, "", servertest.NoControlPlane)
	joinErr := func(url, token string) error {
		cfg := config.DefaultServer()
		cfg.DataDir = t.TempDir()
		cfg.BindAddress = "127.0.0.1"
		cfg.HTTPSPort, cfg.EtcdClientPort, cfg.EtcdPeerPort = servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
		cfg.DisableAgent, cfg.KubeconfigPath, cfg.NodeName = true, "", "joiner"
		clustered(&cfg)
		cfg.JoinURL, cfg.Token = url, token
		srv, err := server.New(cfg, nil, "test")
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return srv.Run(ctx)
	}
	err := joinErr(plain.URL(), plain.JoinToken(t))
	if err == nil || !strings.Contains(err.Error(), "--cluster-init") {
		t.Errorf("joining a server without --cluster-init: %v", err)
	}
	tok := plain.JoinToken(t)
	bad := tok[:strings.LastIndex(tok, ":")+1] + "wrong"
	if err := joinErr(plain.URL(), bad); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("joining with a wrong secret: %v", err)
	}
}

// TestRestoreThenServersRejoin: a snapshot of a two-server cluster is
// restored into a new one-member cluster on a wiped first server; the
// second server, wiped too, joins it again and sees every object.
func TestRestoreThenServersRejoin(t *testing.T) {
	s1 := servertest.Start(t, "", clustered, servertest.NoControlPlane, func(c *config.Server) {
		c.ClusterInit = true
		c.EtcdSnapshots.Disable = true
	})
	join := func(c *config.Server) {
		clustered(c)
		c.JoinURL, c.Token = s1.URL(), s1.JoinToken(t)
		c.DisableScheduler, c.DisableControllerManager = true, true
		c.EtcdSnapshots.Disable = true
	}
	s2 := servertest.Start(t, "", join)
	createConfigMap(t, s2.Client(t), "before-a")
	createConfigMap(t, s1.Client(t), "before-b")
	snap := saveSnapshot(t, s1, t.TempDir())
	cfg1, cfg2 := s1.Config, s2.Config
	s2.Stop(t)
	s1.Stop(t)

	layout := config.Layout{DataDir: cfg1.DataDir}
	if err := os.RemoveAll(layout.EtcdDir()); err != nil {
		t.Fatal(err)
	}
	cfg1.EtcdSnapshots = config.EtcdSnapshots{Disable: true, ClusterReset: true, RestorePath: snap.Path}
	restored := servertest.StartConfig(t, cfg1)
	if m := etcdMembers(t, restored); len(m) != 1 {
		t.Fatalf("after the restore, members %v: want only the restored server", m)
	}
	if !configMapExists(t, restored.Client(t), "before-a") || !configMapExists(t, restored.Client(t), "before-b") {
		t.Fatal("objects in the snapshot are missing after the restore")
	}

	// The second server's data belongs to the old cluster: wiped, it
	// joins the restored one.
	if err := os.RemoveAll(cfg2.DataDir); err != nil {
		t.Fatal(err)
	}
	cfg2.JoinURL = restored.URL()
	cfg2.HTTPSPort, cfg2.EtcdClientPort, cfg2.EtcdPeerPort = servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
	rejoined := servertest.StartConfig(t, cfg2)
	if m := etcdMembers(t, restored); len(m) != 2 || !m[memberName(t, cfg2.DataDir)] {
		t.Fatalf("after the second server rejoined, members %v", m)
	}
	if !configMapExists(t, rejoined.Client(t), "before-a") {
		t.Fatal("the rejoined server does not see the restored objects")
	}
}

// TestServersShareNodeName: two servers with the same node name (cloned
// machines with one host name) form one cluster, as two members with
// distinct names; a server whose etcd data predates kept member names goes
// on with the name it had, its node name.
func TestServersShareNodeName(t *testing.T) {
	same := func(c *config.Server) { c.NodeName = "raspberrypi" }
	s1 := servertest.Start(t, "", clustered, same, servertest.NoControlPlane, func(c *config.Server) { c.ClusterInit = true })
	s2 := servertest.Start(t, "", clustered, same, servertest.NoControlPlane, func(c *config.Server) {
		c.JoinURL, c.Token = s1.URL(), s1.JoinToken(t)
	})
	m1, m2 := memberName(t, s1.DataDir), memberName(t, s2.DataDir)
	if m1 == m2 || !strings.HasPrefix(m1, "raspberrypi-") || !strings.HasPrefix(m2, "raspberrypi-") {
		t.Fatalf("member names %q and %q: want raspberrypi-<suffix>, distinct", m1, m2)
	}
	if m := etcdMembers(t, s1); len(m) != 2 || !m[m1] || !m[m2] {
		t.Fatalf("etcd members %v: want two voters, %s and %s", m, m1, m2)
	}
	createConfigMap(t, s2.Client(t), "shared-name")
	if !configMapExists(t, s1.Client(t), "shared-name") {
		t.Fatal("the first server does not see what the second wrote")
	}

	// An upgrade: data from before member names were kept.
	cfg := s2.Config
	s2.Stop(t)
	if err := os.Remove(config.Layout{DataDir: cfg.DataDir}.EtcdMemberNameFile()); err != nil {
		t.Fatal(err)
	}
	cfg.NodeName = "old-" + strings.TrimPrefix(m2, "raspberrypi-")
	s2 = servertest.StartConfig(t, cfg)
	if got := memberName(t, cfg.DataDir); got != cfg.NodeName {
		t.Fatalf("after an upgrade, the kept member name is %q; want the node name %q", got, cfg.NodeName)
	}
	servertest.Eventually(t, 30*time.Second, "the upgraded member named after its node", func() error {
		if m := etcdMembers(t, s1); len(m) != 2 || !m[cfg.NodeName] {
			return fmt.Errorf("members %v", m)
		}
		return nil
	})
}
