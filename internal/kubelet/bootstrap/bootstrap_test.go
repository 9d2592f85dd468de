package bootstrap_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/kubelet/bootstrap"
	"skiff/internal/pki"
	"skiff/internal/server/servertest"
)

func joinConfig(s *servertest.Server, t *testing.T, dir string) bootstrap.Config {
	return bootstrap.Config{
		ServerURL: s.URL(),
		Token:     s.JoinToken(t),
		NodeName:  "node-1",
		Addresses: []net.IP{net.ParseIP("192.0.2.10")},
		Hostnames: []string{"Node-1.Example.test", ""},
		Dir:       dir,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestJoinGivesANodeIdentity(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	dir := filepath.Join(t.TempDir(), "agent")
	res, err := bootstrap.Join(ctxT(t), joinConfig(s, t, dir))
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	c, err := kubernetes.NewForConfig(res.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().Nodes().List(ctxT(t), metav1.ListOptions{}); err != nil {
		t.Fatalf("list nodes as the node: %v", err)
	}
	review, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctxT(t), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("self subject review: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:node:node-1" || !slices.Contains(u.Groups, "system:nodes") {
		t.Fatalf("node identity is %q in %v, want system:node:node-1 in system:nodes", u.Username, u.Groups)
	}
	if slices.Contains(review.Status.UserInfo.Groups, "system:masters") {
		t.Fatalf("the node is a cluster admin: %v", review.Status.UserInfo.Groups)
	}

	// The serving certificate covers what the API server dials.
	serving := readCert(t, res.ServingCertFile)
	for _, h := range []string{"node-1", "node-1.example.test", "192.0.2.10", "127.0.0.1", "localhost"} {
		if err := serving.VerifyHostname(h); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	if !slices.Contains(serving.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("serving certificate usages %v lack server auth", serving.ExtKeyUsage)
	}
	client := readCert(t, res.ClientCertFile)
	if !slices.Contains(client.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("client certificate usages %v lack client auth", client.ExtKeyUsage)
	}
	if d := time.Until(client.NotAfter); d < 360*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("client certificate valid for %v, want a year", d)
	}
	for _, f := range []string{res.ClientKeyFile, res.ServingKeyFile, res.Kubeconfig} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
	}
	if filepath.Dir(res.Kubeconfig) != dir || filepath.Base(res.Kubeconfig) != "kubelet.kubeconfig" {
		t.Errorf("kubeconfig at %s, want %s/kubelet.kubeconfig", res.Kubeconfig, dir)
	}
}

func TestJoinReusesCertificatesWithoutTheServer(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	dir := t.TempDir()
	cfg := joinConfig(s, t, dir)
	first, err := bootstrap.Join(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	before, _ := os.ReadFile(first.ClientCertFile)
	s.Stop(t)

	second, err := bootstrap.Join(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("second join with the server down: %v", err)
	}
	after, _ := os.ReadFile(second.ClientCertFile)
	if string(before) != string(after) {
		t.Fatal("the second join replaced the client certificate")
	}
	if second.RESTConfig == nil || second.RESTConfig.Host != s.URL() {
		t.Fatalf("second join has no usable client config: %+v", second.RESTConfig)
	}

	// A new address needs a new serving certificate, so the server.
	cfg.Addresses = append(cfg.Addresses, net.ParseIP("192.0.2.11"))
	if _, err := bootstrap.Join(ctxT(t), cfg); err == nil {
		t.Fatal("join for a new address succeeded with the server down")
	}
}

func TestJoinWithANewAddressGetsANewServingCertificate(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	cfg := joinConfig(s, t, t.TempDir())
	if _, err := bootstrap.Join(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Addresses = []net.IP{net.ParseIP("192.0.2.99")}
	res, err := bootstrap.Join(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := readCert(t, res.ServingCertFile).VerifyHostname("192.0.2.99"); err != nil {
		t.Fatalf("serving certificate after the address changed: %v", err)
	}
}

func TestANodeNameBelongsToItsFirstMachine(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	first := joinConfig(s, t, t.TempDir())
	if _, err := bootstrap.Join(ctxT(t), first); err != nil {
		t.Fatal(err)
	}
	// Another machine with the token cannot take the name.
	_, err := bootstrap.Join(ctxT(t), joinConfig(s, t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "node-1.node-password.skiff") {
		t.Fatalf("a second machine joined as node-1, or the error does not say how to free the name: %v", err)
	}
	// The first machine can always get new certificates, say after its
	// certificates were lost.
	if err := os.Remove(filepath.Join(first.Dir, "client-kubelet.crt")); err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Join(ctxT(t), first); err != nil {
		t.Fatalf("rejoin of the first machine: %v", err)
	}
}

func TestJoinErrors(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	token := s.JoinToken(t)
	_, secret, err := pki.ParseToken(token)
	if err != nil {
		t.Fatal(err)
	}
	wrongHash := "K10" + strings.Repeat("ab", 32) + "::server:" + secret
	wrongSecret := token[:strings.LastIndex(token, ":")+1] + "not-the-secret"

	for _, tc := range []struct {
		name   string
		change func(*bootstrap.Config)
		want   string
	}{
		{"wrong CA hash", func(c *bootstrap.Config) { c.Token = wrongHash }, "does not match the token: wrong token or a man in the middle"},
		{"wrong secret", func(c *bootstrap.Config) { c.Token = wrongSecret }, "401"},
		{"bare secret", func(c *bootstrap.Config) { c.Token = secret }, "token has no CA hash"},
		{"unreachable server", func(c *bootstrap.Config) { c.ServerURL = "https://127.0.0.1:1" }, "connection refused"},
		{"bad node name", func(c *bootstrap.Config) { c.NodeName = "Not_A_Name" }, "nodeName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := joinConfig(s, t, t.TempDir())
			tc.change(&cfg)
			_, err := bootstrap.Join(ctxT(t), cfg)
			if err == nil {
				t.Fatal("join succeeded")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(cfg.Dir, "client-kubelet.crt")); statErr == nil {
				t.Fatal("a failed join left a client certificate behind")
			}
		})
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestJoinWithTheAgentToken: the agent token gets a node its identity and
// a serving certificate for its own names and addresses only.
func TestJoinWithTheAgentToken(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	cfg := joinConfig(s, t, filepath.Join(t.TempDir(), "agent"))
	cfg.Token = s.AgentToken(t)
	res, err := bootstrap.Join(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("join with the agent token: %v", err)
	}
	if cn := readCert(t, res.ClientCertFile).Subject.CommonName; cn != "system:node:node-1" {
		t.Fatalf("client certificate for %q, want system:node:node-1", cn)
	}
	serving := readCert(t, res.ServingCertFile)
	for _, h := range []string{"node-1", "node-1.example.test", "192.0.2.10"} {
		if err := serving.VerifyHostname(h); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	for _, h := range []string{"127.0.0.1", "localhost"} {
		if serving.VerifyHostname(h) == nil {
			t.Errorf("the serving certificate of a node joined with the agent token covers %s", h)
		}
	}

	cfg = joinConfig(s, t, filepath.Join(t.TempDir(), "agent"))
	cfg.Token, cfg.NodeName = s.AgentToken(t), "node-2"
	cfg.Hostnames = []string{"kubernetes.default.svc"}
	if _, err := bootstrap.Join(ctxT(t), cfg); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "hostnames[0]") {
		t.Fatalf("join asking for kubernetes.default.svc: %v, want 403 naming hostnames[0]", err)
	}
}
