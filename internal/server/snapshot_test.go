package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/config"
	"skiff/internal/etcd"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

func createConfigMap(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}
	if _, err := c.CoreV1().ConfigMaps("default").Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap %s: %v", name, err)
	}
}

// configMapExists polls briefly: right after a restore, the first reads
// may race the API server's own start-up.
func configMapExists(t *testing.T, c kubernetes.Interface, name string) bool {
	t.Helper()
	var exists bool
	servertest.Eventually(t, 30*time.Second, "get configmap "+name, func() error {
		_, err := c.CoreV1().ConfigMaps("default").Get(context.Background(), name, metav1.GetOptions{})
		switch {
		case err == nil:
			exists = true
			return nil
		case apierrors.IsNotFound(err):
			exists = false
			return nil
		}
		return err
	})
	return exists
}

// saveSnapshot does what `skiff etcd-snapshot save` does: it asks the
// running server's etcd over its client port.
func saveSnapshot(t *testing.T, s *servertest.Server, dir string) etcd.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{
		Endpoints:   []string{"https://127.0.0.1:" + strconv.Itoa(s.Config.EtcdClientPort)},
		TLS:         server.EtcdClientTLS(s.DataDir),
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	snap, err := etcd.SaveSnapshot(ctx, cli, dir, etcd.SnapshotName("on-demand", s.Config.NodeName, time.Now()))
	if err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	return snap
}

func TestClusterResetRestoresSnapshot(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) {
		c.EtcdSnapshots.Schedule = "@every 1s"
		c.EtcdSnapshots.Retention = 2
	})
	layout := config.Layout{DataDir: s.DataDir}
	c := s.Client(t)
	createConfigMap(t, c, "before-a")
	createConfigMap(t, c, "before-b")
	snap := saveSnapshot(t, s, layout.SnapshotDir())
	if err := etcd.VerifySnapshot(snap.Path); err != nil {
		t.Fatalf("fresh snapshot does not verify: %v", err)
	}
	if err := c.CoreV1().ConfigMaps("default").Delete(context.Background(), "before-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	createConfigMap(t, c, "after")

	// The server takes its own scheduled snapshots too.
	servertest.Eventually(t, 60*time.Second, "a scheduled snapshot", func() error {
		list, err := etcd.ListSnapshots(layout.SnapshotDir())
		if err != nil {
			return err
		}
		for _, l := range list {
			if strings.HasPrefix(l.Name, "etcd-snapshot-"+s.Config.NodeName+"-") && l.Checksum == etcd.ChecksumOK {
				return nil
			}
		}
		return fmt.Errorf("none in %v", list)
	})
	s.Stop(t)

	cfg := s.Config
	cfg.HTTPSPort = servertest.FreePort(t)
	cfg.EtcdClientPort = servertest.FreePort(t)
	cfg.EtcdPeerPort = servertest.FreePort(t)
	cfg.EtcdSnapshots = config.EtcdSnapshots{Disable: true, ClusterReset: true, RestorePath: snap.Path}
	restored := servertest.StartConfig(t, cfg)
	c = restored.Client(t)
	if !configMapExists(t, c, "before-a") || !configMapExists(t, c, "before-b") {
		t.Fatal("objects in the snapshot are missing after the restore")
	}
	if configMapExists(t, c, "after") {
		t.Fatal("an object created after the snapshot survived the restore")
	}
	createConfigMap(t, c, "after-restore") // and the cluster takes writes
	old, _ := filepath.Glob(filepath.Join(layout.ServerDir(), "db", "etcd-old-*"))
	if len(old) != 1 {
		t.Fatalf("old etcd data dirs: %v, want one", old)
	}
	restored.Stop(t)

	// The same flags on the next start (left in a service unit) do not
	// restore the snapshot over newer data a second time.
	again := servertest.StartConfig(t, cfg)
	if !configMapExists(t, again.Client(t), "after-restore") {
		t.Fatal("a restart with the same restore flags restored the snapshot again and lost newer data")
	}
	again.Stop(t)

	// --cluster-reset alone keeps the data.
	cfg.EtcdSnapshots = config.EtcdSnapshots{Disable: true, ClusterReset: true}
	reset := servertest.StartConfig(t, cfg)
	if !configMapExists(t, reset.Client(t), "after-restore") {
		t.Fatal("--cluster-reset without a snapshot lost data")
	}
}

func TestClusterResetRefusesCorruptSnapshot(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	createConfigMap(t, s.Client(t), "keep")
	snap := saveSnapshot(t, s, t.TempDir())
	s.Stop(t)
	data, err := os.ReadFile(snap.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x55
	if err := os.WriteFile(snap.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := s.Config
	cfg.EtcdSnapshots = config.EtcdSnapshots{Disable: true, ClusterReset: true, RestorePath: snap.Path}
	srv, err := server.New(cfg, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = srv.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Run with a corrupt snapshot: %v, want a checksum mismatch", err)
	}
	// Nothing was touched: the server starts on its old data.
	cfg.EtcdSnapshots = config.EtcdSnapshots{Disable: true}
	again := servertest.StartConfig(t, cfg)
	if !configMapExists(t, again.Client(t), "keep") {
		t.Fatal("data lost after a refused restore")
	}
}
