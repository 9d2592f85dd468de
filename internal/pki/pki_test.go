package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func mustCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	return ca
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

func TestEnsureCAReloadsSameCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca1 := mustCA(t, dir)
	if !ca1.Cert.IsCA || !strings.HasPrefix(ca1.Cert.Subject.CommonName, "skiff-ca@") {
		t.Errorf("CA subject %q IsCA=%v", ca1.Cert.Subject.CommonName, ca1.Cert.IsCA)
	}
	if d := time.Until(ca1.Cert.NotAfter); d < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want about 10 years", d)
	}
	assertMode(t, filepath.Join(dir, "ca.key"), 0o600)

	ca2 := mustCA(t, dir)
	if !bytes.Equal(ca1.CertPEM, ca2.CertPEM) || !ca1.Cert.Equal(ca2.Cert) {
		t.Fatal("second EnsureCA created a new CA instead of loading the existing one")
	}
	if !keyMatches(ca2.Cert, ca2.Key) {
		t.Fatal("reloaded key does not match reloaded cert")
	}
	if _, err := ca1.Cert.Verify(x509.VerifyOptions{Roots: ca2.CertPool()}); err != nil {
		t.Errorf("CA does not verify against its own pool: %v", err)
	}
}

func TestEnsureCAMissingKeyIsAnError(t *testing.T) {
	dir := t.TempDir()
	mustCA(t, dir)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir); err == nil || !strings.Contains(err.Error(), "ca.key") {
		t.Fatalf("EnsureCA without key: err = %v, want an error naming ca.key", err)
	}
}

func TestServingCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	dns := []string{"localhost", "kubernetes.default.svc"}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.43.0.1")}
	certFile, keyFile, err := ca.EnsureServingCert(dir, "serving-kube-apiserver", dns, ips)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, keyFile, 0o600)
	c1 := readCert(t, certFile)
	for _, d := range dns {
		if !slices.Contains(c1.DNSNames, d) {
			t.Errorf("DNS SAN %s missing from %v", d, c1.DNSNames)
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c1.IPAddresses, ip.Equal) {
			t.Errorf("IP SAN %s missing from %v", ip, c1.IPAddresses)
		}
	}
	opts := x509.VerifyOptions{Roots: ca.CertPool(), DNSName: "kubernetes.default.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := c1.Verify(opts); err != nil {
		t.Errorf("serving cert does not verify: %v", err)
	}
	if d := time.Until(c1.NotAfter); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("serving cert valid for %v, want 1 year", d)
	}
	key1, _ := os.ReadFile(keyFile)

	// Same request again: nothing changes.
	if _, _, err := ca.EnsureServingCert(dir, "serving-kube-apiserver", dns, ips); err != nil {
		t.Fatal(err)
	}
	if c := readCert(t, certFile); !c.Equal(c1) {
		t.Error("unchanged request regenerated the certificate")
	}

	// A subset of what the cert has is still fine.
	if _, _, err := ca.EnsureServingCert(dir, "serving-kube-apiserver", dns[:1], nil); err != nil {
		t.Fatal(err)
	}
	if c := readCert(t, certFile); !c.Equal(c1) {
		t.Error("request for a subset of SANs regenerated the certificate")
	}

	// A new SAN regenerates, with the old key.
	ips2 := append(slices.Clone(ips), net.ParseIP("192.168.1.10"))
	if _, _, err := ca.EnsureServingCert(dir, "serving-kube-apiserver", append(dns, "skiff.local"), ips2); err != nil {
		t.Fatal(err)
	}
	c2 := readCert(t, certFile)
	if c2.Equal(c1) {
		t.Fatal("adding a SAN did not regenerate the certificate")
	}
	if !slices.Contains(c2.DNSNames, "skiff.local") || !slices.ContainsFunc(c2.IPAddresses, net.ParseIP("192.168.1.10").Equal) {
		t.Errorf("regenerated cert lacks new SANs: %v %v", c2.DNSNames, c2.IPAddresses)
	}
	if key2, _ := os.ReadFile(keyFile); !bytes.Equal(key1, key2) {
		t.Error("regeneration replaced the key; want it kept")
	}
}

func TestServingCertRegeneratedForNewCA(t *testing.T) {
	dir := t.TempDir()
	ca1 := mustCA(t, filepath.Join(dir, "ca1"))
	ca2 := mustCA(t, filepath.Join(dir, "ca2"))
	certFile, _, err := ca1.EnsureServingCert(dir, "s", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca2.EnsureServingCert(dir, "s", []string{"localhost"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := readCert(t, certFile).CheckSignatureFrom(ca2.Cert); err != nil {
		t.Errorf("cert not re-signed by the new CA: %v", err)
	}
}

func TestServingCertRenewedBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certFile, keyFile, err := ca.EnsureServingCert(dir, "s", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the cert with one that expires in 30 days, same key.
	keyPEM, _ := os.ReadFile(keyFile)
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	old := readCert(t, certFile)
	tmpl := *old
	tmpl.NotAfter = time.Now().Add(30 * 24 * time.Hour)
	der, err := x509.CreateCertificate(nil, &tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(certFile, pemCert(der), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.EnsureServingCert(dir, "s", []string{"localhost"}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(readCert(t, certFile).NotAfter); d < 300*24*time.Hour {
		t.Errorf("expiring cert not renewed: valid for %v", d)
	}
}

func TestClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certPEM, keyPEM, err := ca.EnsureClientCert(dir, "client-admin", "system:admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, filepath.Join(dir, "client-admin.key"), 0o600)
	c, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject.CommonName != "system:admin" || !slices.Equal(c.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("subject = %v", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify for client auth: %v", err)
	}
	if key, err := parseKey(keyPEM); err != nil || !keyMatches(c, key) {
		t.Errorf("returned key does not match cert (err %v)", err)
	}

	again, _, err := ca.EnsureClientCert(dir, "client-admin", "system:admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, certPEM) {
		t.Error("unchanged request regenerated the client cert")
	}

	changed, _, err := ca.EnsureClientCert(dir, "client-admin", "system:admin", []string{"system:masters", "ops"})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := parseCert(changed)
	if got := slices.Sorted(slices.Values(c2.Subject.Organization)); !slices.Equal(got, []string{"ops", "system:masters"}) {
		t.Errorf("after changing O: subject = %v", c2.Subject)
	}
	renamed, _, err := ca.EnsureClientCert(dir, "client-admin", "admin", []string{"system:masters", "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if c3, _ := parseCert(renamed); c3.Subject.CommonName != "admin" {
		t.Errorf("after changing CN: subject = %v", c3.Subject)
	}
}

func TestKubeconfig(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	certPEM, keyPEM, err := ca.EnsureClientCert(dir, "client-admin", "system:admin", []string{"system:masters"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := Kubeconfig("default", "https://127.0.0.1:6443", ca.CertPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		t.Fatalf("clientcmd.Load: %v\n%s", err, data)
	}
	if cfg.CurrentContext != "default" {
		t.Errorf("current context %q", cfg.CurrentContext)
	}
	cl, user, ctx := cfg.Clusters["default"], cfg.AuthInfos["default"], cfg.Contexts["default"]
	if cl == nil || user == nil || ctx == nil {
		t.Fatalf("missing entries: %+v", cfg)
	}
	if cl.Server != "https://127.0.0.1:6443" || !bytes.Equal(cl.CertificateAuthorityData, ca.CertPEM) {
		t.Errorf("cluster = %+v", cl)
	}
	if !bytes.Equal(user.ClientCertificateData, certPEM) || !bytes.Equal(user.ClientKeyData, keyPEM) {
		t.Error("user does not carry the client cert and key")
	}
	if ctx.Cluster != "default" || ctx.AuthInfo != "default" {
		t.Errorf("context = %+v", ctx)
	}
	rest, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		t.Fatalf("RESTConfigFromKubeConfig: %v", err)
	}
	if rest.Host != "https://127.0.0.1:6443" {
		t.Errorf("rest host %q", rest.Host)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, dir)
	path := filepath.Join(dir, "server", "token")
	tok, err := EnsureToken(path, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	hash, secret, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if hash != CAHash(ca.CertPEM) {
		t.Errorf("hash %s, want %s", hash, CAHash(ca.CertPEM))
	}
	if len(secret) != 64 {
		t.Errorf("secret %q: want 64 hex chars", secret)
	}
	if want := "K10" + hash + "::server:" + secret; tok != want {
		t.Errorf("token %q, want %q", tok, want)
	}
	again, err := EnsureToken(path, ca.CertPEM)
	if err != nil || again != tok {
		t.Errorf("second EnsureToken = %q, %v; want the same token", again, err)
	}

	// A bare secret in the file is kept, and completed with the CA hash.
	if err := os.WriteFile(path, []byte("mysecret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err = EnsureToken(path, ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, s, _ := ParseToken(tok); s != "mysecret" {
		t.Errorf("bare secret not kept: %q", tok)
	}
	assertMode(t, path, 0o600)
}

func TestParseToken(t *testing.T) {
	hash := CAHash([]byte("ca"))
	for _, tc := range []struct {
		in, hash, secret string
		bad              bool
	}{
		{in: "K10" + hash + "::server:abc", hash: hash, secret: "abc"},
		{in: "  K10" + hash + "::server:abc\n", hash: hash, secret: "abc"},
		{in: "K10" + hash + "::node:a:b", hash: hash, secret: "a:b"},
		{in: "justasecret", secret: "justasecret"},
		{in: "", bad: true},
		{in: "K10" + hash, bad: true},
		{in: "K10nothex::server:abc", bad: true},
		{in: "K10" + hash + "::server:", bad: true},
		{in: "K10" + hash + "::server", bad: true},
	} {
		h, s, err := ParseToken(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseToken(%q) = %q, %q; want error", tc.in, h, s)
			}
			continue
		}
		if err != nil || h != tc.hash || s != tc.secret {
			t.Errorf("ParseToken(%q) = %q, %q, %v; want %q, %q", tc.in, h, s, err, tc.hash, tc.secret)
		}
	}
}

func TestWriteFileAtomicMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "f")
	if err := WriteFileAtomic(path, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o644)
	if err := WriteFileAtomic(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("content %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestSignCSRDecidesTheSubject(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, "system:admin")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignClientCSR(csr, "system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:n1" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
		t.Fatalf("subject %v, want CN=system:node:n1 O=system:nodes", cert.Subject)
	}
	if !KeyMatches(cert, key) {
		t.Fatal("certificate is not for the CSR's key")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}

	servingPEM, err := ca.SignServingCSR(csr, "system:node:n1", nil, []string{"n1"}, []net.IP{net.IPv4(192, 0, 2, 1)})
	if err != nil {
		t.Fatal(err)
	}
	serving, _ := ParseCertPEM(servingPEM)
	if serving.VerifyHostname("n1") != nil || serving.VerifyHostname("192.0.2.1") != nil {
		t.Fatalf("serving certificate SANs %v %v", serving.DNSNames, serving.IPAddresses)
	}

	// A CSR whose signature does not hold proves nothing about the key.
	block, _ := pem.Decode(csr)
	block.Bytes[len(block.Bytes)-1] ^= 0xff
	if _, err := ca.SignClientCSR(pem.EncodeToMemory(block), "x", nil); err == nil {
		t.Fatal("a CSR with a broken signature was signed")
	}
	if _, err := ca.SignClientCSR([]byte("junk"), "x", nil); err == nil {
		t.Fatal("junk was signed")
	}
}
