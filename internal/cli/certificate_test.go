package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/internal/pki"
)

func TestCheckCertificates(t *testing.T) {
	dir := t.TempDir()
	tls := filepath.Join(dir, "server", "tls")
	ca, err := pki.EnsureCA(tls)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.EnsureServingCert(tls, "serving-kube-apiserver", []string{"kubernetes"}, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := checkCertificates(&out, dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server/tls/ca.crt", "server/tls/serving-kube-apiserver.crt", "ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("want %q in\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := checkCertificates(&out, dir, time.Now().Add(20*365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "EXPIRED") {
		t.Errorf("twenty years on, nothing is expired:\n%s", out.String())
	}
	if err := checkCertificates(&out, t.TempDir(), time.Now()); err == nil {
		t.Error("an empty data dir: no error")
	}
}
