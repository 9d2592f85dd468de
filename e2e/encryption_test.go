package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/internal/etcd"
	"skiff/internal/server"
)

// skiffCommand runs the skiff binary with args and returns its output.
func (c *cluster) skiffCommand(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.skiffBin, args...)
	cmd.Env = c.env()
	out, err := cmd.CombinedOutput()
	c.record(append([]string{"(skiff)"}, args...), string(out), "", err)
	if err != nil {
		t.Fatalf("skiff %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// flagValue is the value of flag in the server's arguments.
func (c *cluster) flagValue(t *testing.T, flag string) string {
	t.Helper()
	for i, a := range c.args {
		if a == flag && i+1 < len(c.args) {
			return c.args[i+1]
		}
	}
	t.Fatalf("the server was started without %s", flag)
	return ""
}

// filesContaining lists the files under dir that contain any of needles.
func filesContaining(t *testing.T, dir string, needles ...[]byte) (hits []string, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(data, n) {
				hits = append(hits, fmt.Sprintf("%s (%q)", p, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return hits, files
}

// TestSecretsEncryptedAtRest: a Secret's value is found in no file of the
// server's data dir (etcd's database, WAL and snapshots included), neither
// as it is nor in base64, while kubectl reads it back; the same after
// `skiff secrets-encrypt rotate-keys`, whose new key `status` then shows
// and etcd's value carries.
func TestSecretsEncryptedAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: skipped with -short")
	}
	c := startCluster(t)
	c.logTranscriptOnFailure(t)
	dataDir := c.flagValue(t, "--data-dir")
	etcdPort := c.flagValue(t, "--etcd-client-port")
	admin := []string{"--data-dir", dataDir, "--etcd-client-port", etcdPort}

	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	value := "skiff-e2e-" + hex.EncodeToString(b)
	encoded := base64.StdEncoding.EncodeToString([]byte(value))
	c.mustKubectl(t, "create", "secret", "generic", "at-rest", "--from-literal=password="+value)

	readBack := func() {
		t.Helper()
		got := c.mustKubectl(t, "get", "secret", "at-rest", "-o", "jsonpath={.data.password}")
		if got != encoded {
			t.Fatalf("kubectl get secret: %q, want %q (base64 of %q)", got, encoded, value)
		}
	}
	etcdValue := func() []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: []string{"https://127.0.0.1:" + etcdPort},
			TLS: server.EtcdClientTLS(dataDir), DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		resp, err := cli.Get(ctx, "/registry/secrets/default/at-rest")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("read the secret's etcd value: %v", err)
		}
		return resp.Kvs[0].Value
	}
	checkDataDir := func(when string) {
		t.Helper()
		c.skiffCommand(t, append([]string{"etcd-snapshot", "save", "--node-name", "e2e", "--name", when}, admin...)...)
		snaps, err := filepath.Glob(filepath.Join(dataDir, "server", "db", "snapshots", when+"-*"))
		if err != nil || len(snaps) == 0 {
			t.Fatalf("%s: no snapshot %s-* in the data dir (%v)", when, when, err)
		}
		hits, files := filesContaining(t, dataDir, []byte(value), []byte(encoded))
		if len(hits) > 0 {
			t.Fatalf("%s: the secret's value is in %d file(s) of the data dir: %s", when, len(hits), strings.Join(hits, ", "))
		}
		// The walk saw etcd's files: the database and the WAL.
		for _, want := range []string{filepath.Join(dataDir, "server", "db", "etcd", "member", "snap", "db")} {
			if _, err := os.Stat(want); err != nil {
				t.Fatalf("%s: %v (searched %d files)", when, err, files)
			}
		}
		wals, _ := filepath.Glob(filepath.Join(dataDir, "server", "db", "etcd", "member", "wal", "*.wal"))
		if len(wals) == 0 {
			t.Fatalf("%s: no etcd WAL under the data dir", when)
		}
		t.Logf("%s: searched %d files of the data dir", when, files)
	}

	readBack()
	before := etcdValue()
	if !bytes.HasPrefix(before, []byte("k8s:enc:aesgcm:v1:")) {
		t.Fatalf("the secret's etcd value starts %q, want k8s:enc:aesgcm:v1:", before[:min(len(before), 40)])
	}
	oldKey := strings.Split(string(before), ":")[4]
	checkDataDir("before-rotation")
	status := c.skiffCommand(t, append([]string{"secrets-encrypt", "status"}, admin...)...)
	if !strings.Contains(status, "Encryption Status: Enabled") || !strings.Contains(status, "aesgcm:"+oldKey) {
		t.Fatalf("status does not show encryption with key %s:\n%s", oldKey, status)
	}

	out := c.skiffCommand(t, append([]string{"secrets-encrypt", "rotate-keys"}, admin...)...)
	t.Logf("rotate-keys:\n%s", out)
	after := etcdValue()
	newKey := strings.Split(string(after), ":")[4]
	if !bytes.HasPrefix(after, []byte("k8s:enc:aesgcm:v1:")) || newKey == oldKey {
		t.Fatalf("after rotate-keys the secret's etcd value starts %q; want aesgcm under a key other than %s", after[:min(len(after), 60)], oldKey)
	}
	readBack()
	checkDataDir("after-rotation")
	status = c.skiffCommand(t, append([]string{"secrets-encrypt", "status"}, admin...)...)
	var row []string
	for _, line := range strings.Split(status, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "secrets" {
			row = f
		}
	}
	if row == nil || row[1] != "aesgcm:"+newKey || row[2] != "aesgcm:"+newKey || strings.Contains(status, oldKey) {
		t.Fatalf("status after rotate-keys: want every secret under the new write key %s only:\n%s", newKey, status)
	}
}
