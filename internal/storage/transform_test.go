package storage

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"skiff/internal/encryption"
)

// configMapsEncrypted encrypts configmaps (and reads plain ones).
const configMapsEncrypted = `apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [configmaps]
  providers:
  - aesgcm:
      keys:
      - name: k1
        secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
  - identity: {}
`

// TestTransformedValues: with a transformer for a prefix, etcd holds only
// encrypted values there, and every way of reading (get, lists from etcd
// and from the watch cache, pages, watches from etcd and from the cache,
// update and delete answers) gives the plain object; values stored before
// are still read.
func TestTransformedValues(t *testing.T) {
	cfg, err := encryption.Parse([]byte(configMapsEncrypted))
	if err != nil {
		t.Fatal(err)
	}
	plainStore := testStore(t, 64)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Written before encryption was on.
	if _, err := plainStore.Create(ctx, cmPrefix+"default/old", configMap("default", "old", "old-value")); err != nil {
		t.Fatal(err)
	}
	s := NewWithTransformers(plainStore.client, clientgoscheme.Scheme, encryption.NewKeeper(cfg))
	const secretValue = "s3cr3t-value"
	key := cmPrefix + "default/new"
	created, err := s.Create(ctx, key, configMap("default", "new", secretValue))
	if err != nil {
		t.Fatal(err)
	}
	if v := created.(*corev1.ConfigMap).Data["v"]; v != secretValue {
		t.Fatalf("create answered %q", v)
	}
	raw, err := s.client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	stored := string(raw.Kvs[0].Value)
	if !strings.HasPrefix(stored, "k8s:enc:aesgcm:v1:k1:") || strings.Contains(stored, secretValue) {
		t.Fatalf("etcd holds %q: want an aesgcm value of key k1 without the plain text", stored)
	}

	// The cache of the store with transformers.
	cctx, stop := context.WithCancel(context.Background())
	done := s.StartWatchCache(cctx, []string{cmPrefix})
	defer func() { stop(); <-done }()
	if err := s.WaitWatchCache(ctx); err != nil {
		t.Fatal(err)
	}

	want := map[string]string{"old": "old-value", "new": secretValue}
	checkObjects := func(what string, objs []*corev1.ConfigMap) {
		t.Helper()
		got := map[string]string{}
		for _, o := range objs {
			got[o.Name] = o.Data["v"]
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q (all: %v)", what, k, got[k], v, got)
			}
		}
	}
	got, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.(*corev1.ConfigMap).Data["v"]; v != secretValue {
		t.Fatalf("get: %q", v)
	}
	createdRev, err := strconv.ParseInt(created.(*corev1.ConfigMap).ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []int64{0, createdRev} {
		objs, _, err := s.List(ctx, cmPrefix, rev)
		if err != nil {
			t.Fatal(err)
		}
		var cms []*corev1.ConfigMap
		for _, o := range objs {
			cms = append(cms, o.(*corev1.ConfigMap))
		}
		checkObjects("list", cms)
		raws, _, err := s.ListRaw(ctx, cmPrefix, rev)
		if err != nil {
			t.Fatal(err)
		}
		cms = nil
		for _, r := range raws {
			o, err := s.Decode(r.Data, r.Revision)
			if err != nil {
				t.Fatalf("list raw: %v", err)
			}
			cms = append(cms, o.(*corev1.ConfigMap))
		}
		checkObjects("list raw", cms)
		page, err := s.ListPage(ctx, cmPrefix, "", rev, 10)
		if err != nil {
			t.Fatal(err)
		}
		cms = nil
		for _, r := range page.Items {
			o, err := s.Decode(r.Data, r.Revision)
			if err != nil {
				t.Fatalf("page: %v", err)
			}
			cms = append(cms, o.(*corev1.ConfigMap))
		}
		checkObjects("page", cms)
	}

	// Watches: from the cache, and from etcd (a store without a cache).
	etcdOnly := NewWithTransformers(plainStore.client, clientgoscheme.Scheme, encryption.NewKeeper(cfg))
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	rev1, err := s.CurrentRevision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watches := map[string]<-chan Event{"cache": s.Watch(wctx, cmPrefix, rev1), "etcd": etcdOnly.Watch(wctx, cmPrefix, rev1)}
	updated := configMap("default", "new", secretValue+"-2")
	if _, err := s.Update(ctx, key, updated, 0); err != nil {
		t.Fatal(err)
	}
	deleted, err := s.Delete(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v := deleted.(*corev1.ConfigMap).Data["v"]; v != secretValue+"-2" {
		t.Fatalf("delete answered %q", v)
	}
	for name, ch := range watches {
		var seen []string
		for len(seen) < 2 {
			select {
			case e := <-ch:
				if e.Type == watch.Bookmark {
					continue
				}
				if e.Err != nil {
					t.Fatalf("%s watch: %v", name, e.Err)
				}
				seen = append(seen, string(e.Type)+"="+e.Object.(*corev1.ConfigMap).Data["v"]+"<"+e.PrevObject.(*corev1.ConfigMap).Data["v"])
			case <-time.After(10 * time.Second):
				t.Fatalf("%s watch: saw only %v", name, seen)
			}
		}
		wantSeen := "MODIFIED=" + secretValue + "-2<" + secretValue + " DELETED=" + secretValue + "-2<" + secretValue + "-2"
		if strings.Join(seen, " ") != wantSeen {
			t.Errorf("%s watch: %v, want %s", name, seen, wantSeen)
		}
	}
}
