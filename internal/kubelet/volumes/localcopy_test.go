package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestLocalCopiesSealed(t *testing.T) {
	dir := t.TempDir()
	c := newLocalCopies(dir)
	secret := map[string][]byte{"password": []byte("s3cret-value")}
	if err := c.put(kindSecret, "default", "db", secret); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(c.path(kindSecret, "default", "db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("s3cret-value")) {
		t.Fatal("the local copy holds the secret in the clear")
	}
	if st, err := os.Stat(filepath.Join(dir, localKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node-local key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	// Another process of the node (a restart) opens it with the same key.
	got, ok, err := newLocalCopies(dir).get(kindSecret, "default", "db")
	if err != nil || !ok || string(got["password"]) != "s3cret-value" {
		t.Fatalf("get after a restart: %q %v %v", got, ok, err)
	}
	// A copy moved to another object's name does not open.
	if err := os.MkdirAll(filepath.Dir(c.path(kindSecret, "default", "other")), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path(kindSecret, "default", "other"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.get(kindSecret, "default", "other"); err == nil {
		t.Error("a copy renamed to another secret opened")
	}
	// Another node's key does not open it either.
	if _, _, err := newLocalCopies(t.TempDir()).get(kindSecret, "default", "db"); err != nil {
		t.Logf("(another dir has no copy: %v)", err)
	}
	if _, ok, _ := c.get(kindConfigMap, "default", "db"); ok {
		t.Error("a secret's copy was returned for a configmap of the same name")
	}
	c.remove(kindSecret, "default", "db")
	if _, ok, _ := c.get(kindSecret, "default", "db"); ok {
		t.Error("a removed copy is still there")
	}
}

func TestUnreachable(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	refused := &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("get configmap %q: %w", "x", refused), true},
		{apierrors.NewServiceUnavailable("etcd is down"), true},
		{apierrors.NewNotFound(gr, "x"), false},
		{apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{errors.New(`configmap "x" not found`), false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("unreachable(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}
