package apiserver

import (
	"bytes"
	"log/slog"
	"os"
	"testing"
	"time"

	"skiff/internal/pki"
)

func TestCertReloaderPicksUpRenewedPair(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "serving", []string{"a.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.get(nil)

	// Renewal: a new pair for another name replaces the files.
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.EnsureServingCert(dir, "serving", []string{"b.example"}, nil); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if same, _ := r.get(nil); !bytes.Equal(same.Certificate[0], first.Certificate[0]) {
		t.Fatal("the pair was reloaded before the check interval passed")
	}
	r.mu.Lock()
	r.lastCheck = time.Time{}
	r.mu.Unlock()
	renewed, _ := r.get(nil)
	if bytes.Equal(renewed.Certificate[0], first.Certificate[0]) {
		t.Fatal("the renewed pair was not picked up")
	}
}
