package encryption

import (
	"context"
	"crypto/aes"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value"
	aestransformer "k8s.io/apiserver/pkg/storage/value/encrypt/aes"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/etcd"
)

const key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // "0123456789abcdef0123456789abcdef"

const twoResources = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, deployments.apps]
  providers:
  - secretbox:
      keys:
      - {name: sb1, secret: ` + key32 + `}
  - aescbc:
      keys:
      - {name: cbc1, secret: ` + key32 + `}
  - identity: {}
- resources: ["*.example.com"]
  providers:
  - aesgcm:
      keys:
      - {name: g1, secret: ` + key32 + `}
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(twoResources))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"/registry/secrets/default/a":            "secretbox:sb1",
		"/registry/apps/deployments/default/web": "secretbox:sb1",
		"/registry/example.com/widgets/x":        "aesgcm:g1",
		"/registry/configmaps/default/a":         "",
		"/registry/secretsx/default/a":           "",
	} {
		tr := c.TransformerFor(key)
		if want == "" {
			if tr != nil {
				t.Errorf("%s: a transformer, want none", key)
			}
			continue
		}
		if tr == nil {
			t.Fatalf("%s: no transformer", key)
		}
		out, err := tr.TransformToStorage(context.Background(), []byte(`{"kind":"Secret"}`), value.DefaultContext(key))
		if err != nil {
			t.Fatal(err)
		}
		if got := KeyOf(out); got != want {
			t.Errorf("%s: written with %s, want %s", key, got, want)
		}
	}
	for name, cfg := range map[string]string{
		"kms":        strings.Replace(twoResources, "  - identity: {}", "  - kms: {name: x, endpoint: unix:///x}", 1),
		"short key":  strings.Replace(twoResources, "{name: g1, secret: "+key32+"}", "{name: g1, secret: YWJj}", 1),
		"wrong kind": strings.Replace(twoResources, "kind: EncryptionConfiguration", "kind: Foo", 1),
		"wildcard":   strings.Replace(twoResources, `"*.example.com"`, `"*.*"`, 1),
		"unknown":    twoResources + "extra: 1\n",
	} {
		if _, err := Parse([]byte(cfg)); err == nil {
			t.Errorf("%s: parsed, want an error", name)
		}
	}
}

// TestUpstreamFormat: a value written by skiff's default configuration is
// read by upstream's AES-GCM transformer given the same key, the prefix
// and the etcd key as authenticated data, as a Kubernetes API server reads
// it.
func TestUpstreamFormat(t *testing.T) {
	data, err := Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	k := c.v1.Resources[0].Providers[0].AESGCM.Keys[0]
	const etcdKey = "/registry/secrets/default/db"
	plain := []byte(`{"kind":"Secret","data":{"p":"eA=="}}`)
	stored, err := c.TransformerFor(etcdKey).TransformToStorage(context.Background(), plain, value.DefaultContext(etcdKey))
	if err != nil {
		t.Fatal(err)
	}
	prefix := "k8s:enc:aesgcm:v1:" + k.Name + ":"
	if !strings.HasPrefix(string(stored), prefix) {
		t.Fatalf("stored value starts %q, want %q", stored[:min(len(stored), 40)], prefix)
	}
	secret, _ := base64.StdEncoding.DecodeString(k.Secret)
	block, err := aes.NewCipher(secret)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := aestransformer.NewGCMTransformer(block)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := gcm.TransformFromStorage(context.Background(), stored[len(prefix):], value.DefaultContext(etcdKey))
	if err != nil || string(got) != string(plain) {
		t.Fatalf("upstream read %q, %v", got, err)
	}
	// Another key's authenticated data does not open it: a value cannot
	// be moved to another object.
	if _, _, err := gcm.TransformFromStorage(context.Background(), stored[len(prefix):], value.DefaultContext("/registry/secrets/default/other")); err == nil {
		t.Fatal("read under another etcd key")
	}
}

func TestRotation(t *testing.T) {
	data, err := Generate(time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	stagedData, activeData, name, err := old.Rotation(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	staged, err := Parse(stagedData)
	if err != nil {
		t.Fatal(err)
	}
	active, err := Parse(activeData)
	if err != nil {
		t.Fatal(err)
	}
	const key = "/registry/secrets/ns/s"
	ctx := context.Background()
	write := func(c *Config) []byte {
		out, err := c.TransformerFor(key).TransformToStorage(ctx, []byte("{}"), value.DefaultContext(key))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	oldName := old.WriteKeys()[0].Write
	if got := KeyOf(write(staged)); got != oldName {
		t.Fatalf("staged writes with %s, want the old key %s", got, oldName)
	}
	if got := KeyOf(write(active)); got != "aesgcm:"+name {
		t.Fatalf("active writes with %s, want the new key %s", got, name)
	}
	// Staged reads the new key's values; active reads the old key's and
	// calls them stale.
	if _, _, err := staged.TransformerFor(key).TransformFromStorage(ctx, write(active), value.DefaultContext(key)); err != nil {
		t.Fatalf("staged cannot read the new key: %v", err)
	}
	if _, stale, err := active.TransformerFor(key).TransformFromStorage(ctx, write(old), value.DefaultContext(key)); err != nil || !stale {
		t.Fatalf("active reading the old key: stale %v, %v", stale, err)
	}
	if _, _, _, err := mustParse(t, strings.Replace(twoResources, "  - secretbox:\n      keys:\n      - {name: sb1, secret: "+key32+"}\n  - aescbc:\n      keys:\n      - {name: cbc1, secret: "+key32+"}\n", "", 1)).Rotation(time.Now()); err != nil {
		t.Fatalf("rotation of a configuration whose second resource encrypts: %v", err)
	}
	identityOnly := mustParse(t, "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n")
	if _, _, _, err := identityOnly.Rotation(time.Now()); !errors.Is(err, ErrNoEncryption) {
		t.Fatalf("rotation of identity only: %v, want ErrNoEncryption", err)
	}
}

func mustParse(t *testing.T, data string) *Config {
	t.Helper()
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCheckAndRewrite: plain values of an encrypted resource are
// rewritten encrypted; a configuration that cannot read a value stops
// before writing anything and names the value's key.
func TestCheckAndRewrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := etcd.Start(ctx, etcd.Config{DataDir: t.TempDir(), ListenAddress: "127.0.0.1", ClientPort: freePort(t), PeerPort: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cli := db.Client()
	for k, v := range map[string]string{
		"/registry/secrets/default/a":    `{"kind":"Secret","data":{"x":"c2VjcmV0LWE="}}`,
		"/registry/secrets/default/b":    `{"kind":"Secret"}`,
		"/registry/configmaps/default/c": `{"kind":"ConfigMap"}`,
	} {
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	data, err := Generate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data))
	n, err := CheckAndRewrite(ctx, cli, c)
	if err != nil || n != 2 {
		t.Fatalf("rewrote %d, %v; want the 2 secrets", n, err)
	}
	counts, err := Count(ctx, cli, c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counts["secrets"][c.WriteKeys()[0].Write], 2; got != want || len(counts["secrets"]) != 1 {
		t.Fatalf("counts %v: want 2 under %s", counts, c.WriteKeys()[0].Write)
	}
	resp, err := cli.Get(ctx, "/registry/configmaps/default/c")
	if err != nil || string(resp.Kvs[0].Value) != `{"kind":"ConfigMap"}` {
		t.Fatalf("configmap changed: %q %v", resp.Kvs[0].Value, err)
	}
	// Again: nothing is stale any more.
	if n, err := CheckAndRewrite(ctx, cli, c); err != nil || n != 0 {
		t.Fatalf("second pass rewrote %d, %v", n, err)
	}

	// Another cluster's key: unreadable, and nothing changes.
	other := mustParse(t, string(mustGenerate(t)))
	before, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	_, err = CheckAndRewrite(ctx, cli, other)
	var unreadable *UnreadableError
	if !errors.As(err, &unreadable) || len(unreadable.Values) != 2 || !strings.Contains(err.Error(), c.WriteKeys()[0].Write) {
		t.Fatalf("check with another key: %v, want both secrets unreadable, naming key %s", err, c.WriteKeys()[0].Write)
	}
	after, err := cli.Get(ctx, "/registry/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision {
		t.Fatalf("a failed check wrote: revision %d → %d", before.Header.Revision, after.Header.Revision)
	}
}

func mustGenerate(t *testing.T) []byte {
	t.Helper()
	data, err := Generate(time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return data
}
