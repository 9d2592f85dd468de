package server_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/config"
	"skiff/internal/encryption"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

// storedKey is what the secret's value in etcd is encrypted with.
func storedKey(t *testing.T, s *servertest.Server, ns, name string) string {
	t.Helper()
	cli, ctx := etcdClient(t, s)
	resp, err := cli.Get(ctx, "/registry/secrets/"+ns+"/"+name)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("read secret %s/%s from etcd: %v", ns, name, err)
	}
	if bytes.Contains(resp.Kvs[0].Value, []byte("plain-text-value")) {
		t.Fatalf("etcd holds the secret's value in plain text")
	}
	return encryption.KeyOf(resp.Kvs[0].Value)
}

func secretValue(t *testing.T, s *servertest.Server, name string) string {
	t.Helper()
	got, err := s.Client(t).CoreV1().Secrets("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get secret %s: %v", name, err)
	}
	return string(got.Data["v"])
}

// TestSecretsEncryptionHA: two servers share the key made at cluster init
// (the joining one gets it from the bootstrap data); a rotation makes a new
// key the write key on both without a restart and rewrites every secret,
// while both still read them.
func TestSecretsEncryptionHA(t *testing.T) {
	s1 := servertest.Start(t, "", clustered, servertest.FastLeaderElection, func(c *config.Server) { c.ClusterInit = true })
	s2 := servertest.Start(t, "", func(c *config.Server) {
		clustered(c)
		c.JoinURL = s1.URL()
		c.Token = s1.JoinToken(t)
		c.DisableScheduler, c.DisableControllerManager = true, true
	})
	ctx := context.Background()
	for _, s := range []*servertest.Server{s1, s2} {
		f := config.Layout{DataDir: s.DataDir}.EncryptionConfigFile()
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want a file of mode 0600", f, st, err)
		}
	}
	k1, _ := os.ReadFile(config.Layout{DataDir: s1.DataDir}.EncryptionConfigFile())
	k2, _ := os.ReadFile(config.Layout{DataDir: s2.DataDir}.EncryptionConfigFile())
	if !bytes.Equal(k1, k2) {
		t.Fatal("the servers have different encryption configurations")
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"v": []byte("plain-text-value")}}
	if _, err := s1.Client(t).CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	before := storedKey(t, s1, "default", "db")
	if !strings.HasPrefix(before, "aesgcm:") {
		t.Fatalf("secret stored under %q, want an aesgcm key", before)
	}
	if v := secretValue(t, s2, "db"); v != "plain-text-value" {
		t.Fatalf("s2 reads %q", v)
	}

	cli, _ := etcdClient(t, s1)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := server.RotateEncryptionKeys(rctx, cli, s1.DataDir, &out); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out.String())
	}
	after := storedKey(t, s1, "default", "db")
	if after == before || !strings.Contains(out.String(), strings.TrimPrefix(after, "aesgcm:")) {
		t.Fatalf("after rotation the secret is under %s (before %s); rotate said:\n%s", after, before, out.String())
	}
	// Both servers write with the new key, read either, and kept it.
	sec2 := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db2"}, Data: map[string][]byte{"v": []byte("plain-text-value-2")}}
	if _, err := s2.Client(t).CoreV1().Secrets("default").Create(ctx, sec2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if k := storedKey(t, s2, "default", "db2"); k != after {
		t.Fatalf("s2 wrote with %s after the rotation, want %s", k, after)
	}
	if v := secretValue(t, s1, "db2"); v != "plain-text-value-2" {
		t.Fatalf("s1 reads %q", v)
	}
	if v := secretValue(t, s2, "db"); v != "plain-text-value" {
		t.Fatalf("s2 reads %q", v)
	}
	k1, _ = os.ReadFile(config.Layout{DataDir: s1.DataDir}.EncryptionConfigFile())
	k2, _ = os.ReadFile(config.Layout{DataDir: s2.DataDir}.EncryptionConfigFile())
	if !bytes.Equal(k1, k2) || !bytes.Contains(k1, []byte(strings.TrimPrefix(before, "aesgcm:"))) {
		t.Fatal("after the rotation the servers' copies differ or lost the old key")
	}
	var status bytes.Buffer
	if err := server.EncryptionStatus(rctx, cli, s1.DataDir, "", &status); err != nil {
		t.Fatal(err)
	}
	// Every secret is under the new key, which is the write key.
	if !strings.Contains(status.String(), "Encryption Status: Enabled") ||
		!hasRow(status.String(), "secrets", after, after, "2") || strings.Contains(status.String(), before) {
		t.Errorf("status does not show 2 secrets under the new key %s only:\n%s", after, status.String())
	}
}

// hasRow reports whether a line of out has exactly the fields given.
func hasRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(fields, " ") {
			return true
		}
	}
	return false
}

// TestWrongEncryptionConfigStopsServer: a server given a configuration
// that cannot read the stored secrets does not start, says which key it
// lacks, and rewrites nothing; started with its own configuration again, it
// encrypts a secret stored in plain text (by an older server).
func TestWrongEncryptionConfigStopsServer(t *testing.T) {
	s := servertest.Start(t, "")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Data: map[string][]byte{"v": []byte("plain-text-value")}}
	if _, err := s.Client(t).CoreV1().Secrets("default").Create(context.Background(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	key := storedKey(t, s, "default", "db")
	// A secret stored in plain text, as by a server from before
	// encryption at rest: the next start encrypts it.
	cli, ctx := etcdClient(t, s)
	legacy := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"legacy","namespace":"default","uid":"0b8a3c1e-5c1d-4f3e-9b1a-2c3d4e5f6a7b","creationTimestamp":"2026-01-01T00:00:00Z"},"data":{"v":"cGxhaW4tbGVnYWN5"},"type":"Opaque"}`
	if _, err := cli.Put(ctx, "/registry/secrets/default/legacy", legacy); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config
	s.Stop(t)

	other, err := encryption.Generate(time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "encryption.yaml")
	if err := os.WriteFile(file, other, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.EncryptionProviderConfig = file
	srv, err := server.New(cfg, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("a server with another key started (or hung): %v", err)
	}
	if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "/registry/secrets/default/db") {
		t.Fatalf("error does not name the key %s and the secret: %v", key, err)
	}
	// Restarted with its own configuration, the server reads the secret.
	cfg.EncryptionProviderConfig = ""
	s = servertest.StartConfig(t, cfg)
	if v := secretValue(t, s, "db"); v != "plain-text-value" {
		t.Fatalf("after the refused start, the secret reads %q", v)
	}
	if k := storedKey(t, s, "default", "legacy"); k != key {
		t.Fatalf("the plain-text secret is stored under %q after a start, want %s", k, key)
	}
	if v := secretValue(t, s, "legacy"); v != "plain-legacy" {
		t.Fatalf("the formerly plain secret reads %q", v)
	}
}
