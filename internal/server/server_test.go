package server_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/internal/config"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

func TestSecondServerOnSameDataDirFailsClearly(t *testing.T) {
	s := servertest.Start(t, "")
	cfg := s.Config
	cfg.HTTPSPort = servertest.FreePort(t)
	cfg.EtcdClientPort = servertest.FreePort(t)
	cfg.EtcdPeerPort = servertest.FreePort(t)
	second, err := server.New(cfg, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = second.Run(ctx)
	if err == nil {
		t.Fatal("a second server on the same data dir started")
	}
	if ctx.Err() != nil {
		t.Fatalf("the second server hung for %v instead of failing", time.Since(start))
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("error does not say the data dir is in use: %v", err)
	}
}

func TestKubeconfigAndServingCertificate(t *testing.T) {
	s := servertest.Start(t, "", func(c *config.Server) { c.TLSSANs = []string{"skiff.example.test", "192.0.2.7"} })
	info, err := os.Stat(s.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig mode %v, want 0600", info.Mode().Perm())
	}
	printed, err := server.ReadKubeconfig(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	written, _ := os.ReadFile(s.KubeconfigPath)
	if string(printed) != string(written) {
		t.Fatalf("`skiff kubeconfig` differs from the written kubeconfig")
	}
	pemData, err := os.ReadFile(filepath.Join(config.Layout{DataDir: s.DataDir}.TLSDir(), "serving-kube-apiserver.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "skiff.example.test"} {
		if cert.VerifyHostname(name) != nil {
			t.Errorf("serving certificate does not cover %s", name)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.43.0.1", "192.0.2.7"} {
		if cert.VerifyHostname(ip) != nil {
			t.Errorf("serving certificate does not cover %s", ip)
		}
	}
}
