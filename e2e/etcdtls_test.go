package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"skiff/internal/config"
	"skiff/internal/pki"
	"skiff/internal/server"
)

// TestEtcdMutualTLS starts a real server and knocks on its etcd ports as
// other local users would: plain HTTP, HTTPS without a certificate, with a
// certificate of another CA and with one of the cluster CA (what agents
// and users hold) are all refused at once with a TLS error; the etcd
// client certificate in the data dir is let in, and the server keeps
// working.
func TestEtcdMutualTLS(t *testing.T) {
	c := startCluster(t)
	dataDir := filepath.Join(c.dir, "data")
	clientPort, peerPort := argValue(t, c.args, "--etcd-client-port"), argValue(t, c.args, "--etcd-peer-port")
	clientURL := "https://127.0.0.1:" + clientPort + "/version"
	peerURL := "https://127.0.0.1:" + peerPort + "/version"

	etcdTLS := server.EtcdClientTLS(dataDir)
	clusterTLS := config.Layout{DataDir: dataDir}.TLSDir()
	adminCert, adminKey := filepath.Join(clusterTLS, "client-admin.crt"), filepath.Join(clusterTLS, "client-admin.key")
	otherCA, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	if _, _, err := otherCA.EnsureClientCert(otherDir, "intruder", "skiff-etcd-client", nil); err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey := filepath.Join(otherDir, "intruder.crt"), filepath.Join(otherDir, "intruder.key")

	if _, err := exec.LookPath("curl"); err == nil {
		refused := []struct {
			what string
			args []string
		}{
			{"plain HTTP on the client port", []string{"http://127.0.0.1:" + clientPort + "/version"}},
			{"HTTPS without a client certificate on the client port", []string{"-k", clientURL}},
			{"a certificate of another CA on the client port", []string{"-k", "--cert", otherCert, "--key", otherKey, clientURL}},
			{"a cluster-CA certificate on the client port", []string{"-k", "--cert", adminCert, "--key", adminKey, clientURL}},
			{"HTTPS without a client certificate on the peer port", []string{"-k", peerURL}},
			{"a cluster-CA certificate on the peer port", []string{"-k", "--cert", adminCert, "--key", adminKey, peerURL}},
		}
		for _, r := range refused {
			out, took, err := curl(r.args...)
			if err == nil {
				t.Errorf("curl with %s: succeeded, want refused; answer %q", r.what, out)
			} else if took > 5*time.Second {
				t.Errorf("curl with %s: refused only after %v, want at once", r.what, took)
			} else {
				t.Logf("curl with %s: refused in %v: %s", r.what, took.Round(time.Millisecond), strings.TrimSpace(out))
			}
		}
		out, _, err := curl("--cacert", etcdTLS.CAFile, "--cert", etcdTLS.CertFile, "--key", etcdTLS.KeyFile, clientURL)
		if err != nil || !strings.Contains(out, "etcdserver") {
			t.Errorf("curl with the etcd client certificate: %v: %s; want etcd's version", err, out)
		}
	} else {
		t.Log("no curl on PATH; checking with Go's TLS client only")
	}

	// The same with Go's client, which tells a TLS refusal from the rest.
	etcdCA, err := os.ReadFile(etcdTLS.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(etcdCA)
	get := func(url string, certFile, keyFile string) (string, error) {
		tc := &tls.Config{RootCAs: roots}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return "", err
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), fmt.Errorf("status %s", resp.Status)
		}
		return string(b), err
	}
	for _, r := range []struct {
		what, url, cert, key string
	}{
		{"no client certificate", clientURL, "", ""},
		{"a certificate of another CA", clientURL, otherCert, otherKey},
		{"a cluster-CA certificate", clientURL, adminCert, adminKey},
		{"no client certificate, peer port", peerURL, "", ""},
		{"a cluster-CA certificate, peer port", peerURL, adminCert, adminKey},
	} {
		_, err := get(r.url, r.cert, r.key)
		if err == nil {
			t.Errorf("%s: etcd answered, want a TLS refusal", r.what)
			continue
		}
		if isTimeout(err) {
			t.Errorf("%s: %v; want a TLS refusal, not a hang", r.what, err)
			continue
		}
		// The server refuses in a TLS alert: "certificate required" (TLS
		// 1.3, no certificate) or "bad certificate"/"unknown certificate
		// authority" (a certificate it does not trust).
		if msg := err.Error(); !strings.Contains(msg, "tls:") && !strings.Contains(msg, "certificate") {
			t.Errorf("%s: %v; want a TLS error", r.what, err)
		}
	}
	if out, err := get(clientURL, etcdTLS.CertFile, etcdTLS.KeyFile); err != nil || !strings.Contains(out, "etcdserver") {
		t.Errorf("the etcd client certificate: %v: %s; want etcd's version", err, out)
	}
	// Plain HTTP reaches the TLS listener and is told to use HTTPS; it
	// never gets etcd's answer.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + clientPort + "/version"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "etcdserver") {
			t.Errorf("plain HTTP on the client port: %s %q; want no etcd answer", resp.Status, b)
		}
	} else if isTimeout(err) {
		t.Errorf("plain HTTP on the client port: %v; want an answer at once", err)
	}

	// Local tools use the client certificate: a snapshot is taken over
	// the TLS port.
	snapDir := t.TempDir()
	snap := exec.Command(c.skiffBin, "etcd-snapshot", "save", "--data-dir", dataDir, "--dir", snapDir,
		"--etcd-client-port", clientPort, "--node-name", "e2e")
	if out, err := snap.CombinedOutput(); err != nil {
		t.Errorf("skiff etcd-snapshot save: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "saved snapshot") {
		t.Errorf("skiff etcd-snapshot save said %q", out)
	}

	// And the server, which talks to etcd in-process, works.
	if out, errOut, err := c.kubectl("create", "configmap", "after-tls", "--from-literal=k=v"); err != nil {
		t.Fatalf("kubectl create configmap: %v: %s%s", err, out, errOut)
	}
	if out, errOut, err := c.kubectl("get", "configmap", "after-tls", "-o", "jsonpath={.data.k}"); err != nil || out != "v" {
		t.Fatalf("kubectl get configmap: %v: %q%s", err, out, errOut)
	}
}

// argValue is the value given to flag in args.
func argValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no %s in %v", flag, args)
	return ""
}

// curl runs curl with a deadline well above a TLS refusal's time; -f makes
// an HTTP error status a failure too.
func curl(args ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sSf", "--max-time", "15"}, args...)...).CombinedOutput()
	return string(out), time.Since(start), err
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) && te.Timeout()
}
