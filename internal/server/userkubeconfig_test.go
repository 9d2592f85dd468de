package server

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/pki"
)

func TestUserKubeconfig(t *testing.T) {
	dir := t.TempDir()
	layout := config.Layout{DataDir: dir}
	if _, err := UserKubeconfig(dir, "alice", nil); err == nil {
		t.Fatal("no server state, yet a kubeconfig")
	}
	ca, err := pki.EnsureCA(layout.TLSDir())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pki.Kubeconfig("default", "https://10.0.0.1:6443", ca.CertPEM, []byte("x"), []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(layout.AdminKubeconfig()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layout.AdminKubeconfig(), admin, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := UserKubeconfig(dir, " ", nil); err == nil {
		t.Fatal("empty user accepted")
	}
	data, err := UserKubeconfig(dir, "alice", []string{"dev", "ops"})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	ai := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	if kc.Clusters[kc.Contexts[kc.CurrentContext].Cluster].Server != "https://10.0.0.1:6443" {
		t.Fatal("server URL not the admin's")
	}
	block, _ := pem.Decode(ai.ClientCertificateData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || !slices.Equal(cert.Subject.Organization, []string{"dev", "ops"}) {
		t.Fatalf("subject %v", cert.Subject)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("not a client certificate of the cluster CA: %v", err)
	}
	if _, err := pki.ParseKeyPEM(ai.ClientKeyData); err != nil {
		t.Fatal(err)
	}
}
