package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/join"
	"skiff/internal/pki"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

// joinCode sends a join request with a bearer token and returns the code.
func joinCode(t *testing.T, s *servertest.Server, method, path, token string, body any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	client, err := rest.HTTPClientFor(&rest.Config{Host: s.URL(), TLSClientConfig: rest.TLSClientConfig{CAData: s.CA(t).CertPEM}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func nodeCerts(t *testing.T, name string) apiserver.NodeCertsRequest {
	t.Helper()
	key, _, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "x")
	if err != nil {
		t.Fatal(err)
	}
	return apiserver.NodeCertsRequest{NodeName: name, NodePassword: "pw", ClientCSR: string(csr), ServingCSR: string(csr), Addresses: []string{"192.0.2.8"}}
}

func rotateOn(t *testing.T, s *servertest.Server, role string) string {
	t.Helper()
	client, err := rest.HTTPClientFor(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(join.RotateTokenRequest{Role: role})
	resp, err := client.Post(s.URL()+join.TokensPath, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var r join.RotateTokenResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out, &r) != nil {
		t.Fatalf("rotate the %s token: %s %s", role, resp.Status, out)
	}
	return r.Token
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestJoinTokensHA: two servers share the agent token; a token rotated on
// one works at once on the other and the old one stops working there
// without a restart; the bootstrap data is re-sealed under a new server
// token, which a restarted server takes with --token; a joining server
// never evicts a voting member.
func TestJoinTokensHA(t *testing.T) {
	s1 := servertest.Start(t, "", clustered, servertest.NoControlPlane, func(c *config.Server) { c.ClusterInit = true })
	s2 := servertest.Start(t, "", func(c *config.Server) {
		clustered(c)
		c.JoinURL, c.Token = s1.URL(), s1.JoinToken(t)
		c.DisableScheduler, c.DisableControllerManager = true, true
	})
	if a1, a2 := s1.AgentToken(t), s2.AgentToken(t); a1 != a2 {
		t.Fatalf("agent tokens differ: %q on s1, %q on s2", a1, a2)
	}
	if fi, err := os.Stat(config.Layout{DataDir: s2.DataDir}.AgentTokenFile()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent-token file: %v %v, want mode 0600", fi, err)
	}

	// Adding a member with a voting member's name is refused; it stays.
	s2Member := memberName(t, s2.DataDir)
	if code := joinCode(t, s1, http.MethodPost, apiserver.EtcdMembersPath, s1.JoinToken(t),
		apiserver.EtcdMemberRequest{Name: s2Member, PeerURL: "https://192.0.2.44:2380"}); code != http.StatusConflict {
		t.Errorf("adding a member named like the voting member %s: %d, want 409", s2Member, code)
	}
	if m := etcdMembers(t, s1); !m[s2Member] || len(m) != 2 {
		t.Fatalf("members %v: want two voters, %s among them", m, s2Member)
	}

	oldAgent := s1.AgentToken(t)
	newAgent := rotateOn(t, s1, join.TokenRoleAgent)
	if code := joinCode(t, s2, http.MethodPost, apiserver.NodeCertsPath, newAgent, nodeCerts(t, "a1")); code != http.StatusOK {
		t.Fatalf("the new agent token on the other server: %d, want 200 at once", code)
	}
	servertest.Eventually(t, 20*time.Second, "the old agent token refused by the other server", func() error {
		if code := joinCode(t, s2, http.MethodPost, apiserver.NodeCertsPath, oldAgent, nodeCerts(t, "a2")); code != http.StatusUnauthorized {
			return fmt.Errorf("got %d", code)
		}
		return nil
	})
	servertest.Eventually(t, 20*time.Second, "the other server's agent-token file updated", func() error {
		if got := s2.AgentToken(t); got != newAgent {
			return fmt.Errorf("holds %q", got)
		}
		return nil
	})

	oldServer := s1.JoinToken(t)
	newServer := rotateOn(t, s1, join.TokenRoleServer)
	if code := joinCode(t, s2, http.MethodGet, apiserver.ServerBootstrapPath, newServer, nil); code != http.StatusOK {
		t.Fatalf("bootstrap data with the new server token on the other server: %d", code)
	}
	servertest.Eventually(t, 20*time.Second, "the old server token refused by the other server", func() error {
		if code := joinCode(t, s2, http.MethodGet, apiserver.ServerBootstrapPath, oldServer, nil); code != http.StatusUnauthorized {
			return fmt.Errorf("got %d", code)
		}
		return nil
	})
	// The other server restarts with the new token and takes it.
	cfg2 := s2.Config
	s2.Stop(t)
	cfg2.Token = newServer
	s2 = servertest.StartConfig(t, cfg2)
	servertest.Eventually(t, 20*time.Second, "s2's token file holds the new server token", func() error {
		if got := s2.JoinToken(t); got != newServer {
			return fmt.Errorf("holds %q", got)
		}
		return nil
	})
	// A server with the old token cannot join; the new one opens the
	// re-sealed bootstrap data (checked by the joining server itself).
	cfg := config.DefaultServer()
	cfg.DataDir = t.TempDir()
	cfg.BindAddress = "127.0.0.1"
	cfg.HTTPSPort, cfg.EtcdClientPort, cfg.EtcdPeerPort = servertest.FreePort(t), servertest.FreePort(t), servertest.FreePort(t)
	cfg.DisableAgent, cfg.KubeconfigPath, cfg.NodeName = true, "", "joiner"
	clustered(&cfg)
	cfg.JoinURL, cfg.Token = s2.URL(), oldServer
	srv, err := server.New(cfg, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Run(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("joining with the old server token: %v, want 401", err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Token = newServer
	cfg.DisableScheduler, cfg.DisableControllerManager = true, true
	s3 := servertest.StartConfig(t, cfg)
	if got := s3.AgentToken(t); got != newAgent {
		t.Errorf("the joined server's agent token %q, want %q", got, newAgent)
	}
}
