package apiserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"skiff/internal/apiserver"
	"skiff/internal/config"
	"skiff/internal/join"
	"skiff/internal/pki"
	"skiff/internal/server/servertest"
)

// joinClient trusts the cluster CA and presents no client certificate, as
// a joining node.
func joinClient(t *testing.T, s *servertest.Server) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CA(t).CertPool()},
	}}
}

func TestCACertsIsAnonymousAndMatchesTheToken(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	resp, err := joinClient(t, s).Get(s.URL() + apiserver.CACertsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /cacerts: %s %s", resp.Status, data)
	}
	hash, _, err := pki.ParseToken(s.JoinToken(t))
	if err != nil {
		t.Fatal(err)
	}
	if pki.CAHash(data) != hash {
		t.Fatal("the CA served at /cacerts does not match the join token's hash")
	}
}

func TestNodeCerts(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	token := s.JoinToken(t)
	_, secret, _ := pki.ParseToken(token)
	key, _, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The CSR asks to be an admin; the server must not care what it asks.
	csr, err := pki.NewCSR(key, "system:admin")
	if err != nil {
		t.Fatal(err)
	}
	post := func(auth string, body apiserver.NodeCertsRequest) (int, []byte) {
		t.Helper()
		data, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, s.URL()+apiserver.NodeCertsPath, bytes.NewReader(data))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := joinClient(t, s).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	good := apiserver.NodeCertsRequest{NodeName: "node-a", NodePassword: "pw-a", ClientCSR: string(csr), ServingCSR: string(csr), Addresses: []string{"192.0.2.1"}}

	for _, auth := range []string{token, secret} {
		code, out := post(auth, good)
		if code != http.StatusOK {
			t.Fatalf("node-certs: %d %s", code, out)
		}
		var res apiserver.NodeCertsResponse
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		client, err := pki.ParseCertPEM([]byte(res.ClientCert))
		if err != nil {
			t.Fatal(err)
		}
		if client.Subject.CommonName != "system:node:node-a" || !slices.Equal(client.Subject.Organization, []string{"system:nodes"}) {
			t.Fatalf("client certificate subject %v, want CN=system:node:node-a O=system:nodes", client.Subject)
		}
		if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Fatalf("client certificate usages %v", client.ExtKeyUsage)
		}
		serving, err := pki.ParseCertPEM([]byte(res.ServingCert))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"node-a", "192.0.2.1", "127.0.0.1", "localhost"} {
			if err := serving.VerifyHostname(h); err != nil {
				t.Errorf("serving certificate: %v", err)
			}
		}
	}

	for _, tc := range []struct {
		name, auth string
		body       apiserver.NodeCertsRequest
		code       int
		want       string
	}{
		{"no token", "", good, 401, "Unauthorized"},
		{"wrong secret", "nope", good, 401, "Unauthorized"},
		{"bad node name", secret, apiserver.NodeCertsRequest{NodeName: "Node_A", NodePassword: "pw", ClientCSR: good.ClientCSR, ServingCSR: good.ServingCSR}, 400, "nodeName"},
		{"bad address", secret, apiserver.NodeCertsRequest{NodeName: "n", NodePassword: "pw", ClientCSR: good.ClientCSR, ServingCSR: good.ServingCSR, Addresses: []string{"10.0.0.300"}}, 400, "addresses[0]"},
		{"bad hostname", secret, apiserver.NodeCertsRequest{NodeName: "n", NodePassword: "pw", ClientCSR: good.ClientCSR, ServingCSR: good.ServingCSR, Hostnames: []string{"a b"}}, 400, "hostnames[0]"},
		{"no node password", secret, apiserver.NodeCertsRequest{NodeName: "n", ClientCSR: good.ClientCSR, ServingCSR: good.ServingCSR}, 400, "nodePassword"},
		{"name taken by another machine", secret, apiserver.NodeCertsRequest{NodeName: "node-a", NodePassword: "pw-other", ClientCSR: good.ClientCSR, ServingCSR: good.ServingCSR}, 403, "kube-system/node-a.node-password.skiff"},
		{"bad CSR", secret, apiserver.NodeCertsRequest{NodeName: "n", NodePassword: "pw", ClientCSR: "junk", ServingCSR: good.ServingCSR}, 400, "clientCSR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := post(tc.auth, tc.body)
			var st metav1.Status
			if err := json.Unmarshal(out, &st); err != nil || st.Kind != "Status" {
				t.Fatalf("answer is not a Status: %s", out)
			}
			if code != tc.code || !strings.Contains(st.Message, tc.want) {
				t.Fatalf("got %d %q, want %d and a message naming %q", code, st.Message, tc.code, tc.want)
			}
		})
	}
}

// joinCall sends body (nil for none) to a join endpoint with the bearer
// token auth ("" for none) and returns the code and the Status message.
func joinCall(t *testing.T, s *servertest.Server, method, path, auth string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, s.URL()+path, rd)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := joinClient(t, s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var st metav1.Status
	_ = json.Unmarshal(out, &st)
	return resp.StatusCode, st.Message
}

// nodeCertsRequest is a well-formed request for node name with fresh CSRs.
func nodeCertsRequest(t *testing.T, name string) apiserver.NodeCertsRequest {
	t.Helper()
	key, _, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "system:node:"+name)
	if err != nil {
		t.Fatal(err)
	}
	return apiserver.NodeCertsRequest{NodeName: name, NodePassword: "pw-" + name, ClientCSR: string(csr), ServingCSR: string(csr), Addresses: []string{"192.0.2.7"}}
}

// TestAgentToken: the agent token gets node certificates and nothing a
// server gets: not the bootstrap data, not an etcd membership.
func TestAgentToken(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) {
		c.ClusterInit = true
		c.AdvertiseIPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	})
	agent, server := s.AgentToken(t), s.JoinToken(t)
	if !strings.Contains(agent, "::node:") || !strings.Contains(server, "::server:") || agent == server {
		t.Fatalf("tokens %q and %q: want a server token (::server:) and another, agent token (::node:)", server, agent)
	}
	if code, msg := joinCall(t, s, http.MethodPost, apiserver.NodeCertsPath, agent, nodeCertsRequest(t, "agent-a")); code != http.StatusOK {
		t.Fatalf("node-certs with the agent token: %d %s", code, msg)
	}
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, apiserver.ServerBootstrapPath, nil},
		{http.MethodPost, apiserver.EtcdMembersPath, apiserver.EtcdMemberRequest{Name: "intruder", PeerURL: "https://192.0.2.9:2380"}},
	} {
		code, msg := joinCall(t, s, tc.method, tc.path, agent, tc.body)
		if code != http.StatusForbidden || !strings.Contains(msg, "agent token joins agents only") {
			t.Errorf("%s %s with the agent token: %d %q, want 403 saying the agent token joins agents only", tc.method, tc.path, code, msg)
		}
	}
	// The server stores its bootstrap data a moment after it serves.
	servertest.Eventually(t, 30*time.Second, "server-bootstrap with the server token", func() error {
		if code, msg := joinCall(t, s, http.MethodGet, apiserver.ServerBootstrapPath, server, nil); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, msg)
		}
		return nil
	})
	if code, _ := joinCall(t, s, http.MethodGet, apiserver.ServerBootstrapPath, "", nil); code != http.StatusUnauthorized {
		t.Errorf("server-bootstrap without a token: %d, want 401", code)
	}
}

// TestNodeCertNames: a node certificate never names the API server or a
// service, and with the agent token not a server nor loopback either;
// each refusal names the field.
func TestNodeCertNames(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.TLSSANs = []string{"api.example.test", "198.51.100.5"} })
	agent, server := s.AgentToken(t), s.JoinToken(t)
	with := func(name string, f func(*apiserver.NodeCertsRequest)) apiserver.NodeCertsRequest {
		r := nodeCertsRequest(t, name)
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name, token string
		req         apiserver.NodeCertsRequest
		want        string // "" for allowed
	}{
		{"kubernetes.default.svc", agent, with("n1", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"kubernetes.default.svc"} }), "hostnames[0]"},
		{"kubernetes.default.svc, server token", server, with("n2", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"kubernetes.default.svc"} }), "hostnames[0]"},
		{"kubernetes as node name", agent, with("kubernetes", func(*apiserver.NodeCertsRequest) {}), "nodeName"},
		{"a service's name", agent, with("n3", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"ok", "web.prod.svc"} }), "hostnames[1]"},
		{"in the cluster domain", agent, with("n4", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"web.prod.svc.cluster.local"} }), "hostnames[0]"},
		{"the kubernetes service IP", agent, with("n5", func(r *apiserver.NodeCertsRequest) { r.Addresses = []string{"10.43.0.1"} }), "addresses[0]"},
		{"the cluster DNS IP", server, with("n6", func(r *apiserver.NodeCertsRequest) { r.Addresses = []string{"192.0.2.7", "10.43.0.10"} }), "addresses[1]"},
		{"loopback", agent, with("n7", func(r *apiserver.NodeCertsRequest) { r.Addresses = []string{"127.0.0.1"} }), "addresses[0]"},
		{"localhost", agent, with("n8", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"localhost"} }), "hostnames[0]"},
		{"a server's --tls-san name", agent, with("n9", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"api.example.test"} }), "hostnames[0]"},
		{"a server's --tls-san address", agent, with("n10", func(r *apiserver.NodeCertsRequest) { r.Addresses = []string{"198.51.100.5"} }), "addresses[0]"},
		{"a server's node name", agent, with("n11", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{s.Config.NodeName} }), "hostnames[0]"},
		{"a server's name, server token", server, with("n12", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"api.example.test"} }), ""},
		{"own names and addresses", agent, with("n13", func(r *apiserver.NodeCertsRequest) { r.Hostnames = []string{"n13.lan"} }), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := joinCall(t, s, http.MethodPost, apiserver.NodeCertsPath, tc.token, tc.req)
			switch {
			case tc.want == "" && code != http.StatusOK:
				t.Fatalf("got %d %q, want 200", code, msg)
			case tc.want != "" && (code != http.StatusForbidden || !strings.Contains(msg, tc.want)):
				t.Fatalf("got %d %q, want 403 naming %s", code, msg, tc.want)
			}
		})
	}
}

// TestJoinTokensAreNotAPICredentials: neither token, whole or its secret,
// authenticates to the API, whatever the authorization mode.
func TestJoinTokensAreNotAPICredentials(t *testing.T) {
	for _, mode := range []string{config.AuthorizationNodeRBAC, config.AuthorizationAlwaysAllow} {
		t.Run(mode, func(t *testing.T) {
			s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.AuthorizationMode = mode })
			for _, tok := range []string{s.JoinToken(t), s.AgentToken(t)} {
				_, secret, _ := pki.ParseToken(tok)
				for _, bearer := range []string{tok, secret} {
					for _, c := range []struct{ method, path string }{
						{http.MethodGet, "/api/v1/namespaces/kube-system/secrets"},
						{http.MethodGet, "/api/v1/nodes"},
						{http.MethodGet, "/apis"},
						// The node-password pins that keep a node's name its own.
						{http.MethodDelete, "/api/v1/namespaces/kube-system/secrets/" + apiserver.NodePasswordSecret("node-a")},
					} {
						method, path := c.method, c.path
						req, _ := http.NewRequest(method, s.URL()+path, nil)
						req.Header.Set("Authorization", "Bearer "+bearer)
						resp, err := joinClient(t, s).Do(req)
						if err != nil {
							t.Fatal(err)
						}
						resp.Body.Close()
						if resp.StatusCode != http.StatusUnauthorized {
							t.Errorf("%s %s with a join token as bearer: %d, want 401", method, path, resp.StatusCode)
						}
					}
				}
			}
		})
	}
}

// rotate asks the server, as its admin, for a new token of role.
func rotate(t *testing.T, s *servertest.Server, role string) (int, string) {
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
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, r.Token
	}
	return resp.StatusCode, string(out)
}

// TestRotateTokens: a rotated token works at once, the old one is refused,
// the token file has the new one, and only an admin may rotate.
func TestRotateTokens(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	for _, role := range []string{join.TokenRoleAgent, join.TokenRoleServer} {
		t.Run(role, func(t *testing.T) {
			old := s.AgentToken(t)
			if role == join.TokenRoleServer {
				old = s.JoinToken(t)
			}
			code, tok := rotate(t, s, role)
			if code != http.StatusOK {
				t.Fatalf("rotate: %d %s", code, tok)
			}
			file := s.AgentToken(t)
			if role == join.TokenRoleServer {
				file = s.JoinToken(t)
			}
			if tok == old || file != tok {
				t.Fatalf("rotated to %q; the token file holds %q, the old token was %q", tok, file, old)
			}
			if code, msg := joinCall(t, s, http.MethodPost, apiserver.NodeCertsPath, old, nodeCertsRequest(t, "old-"+role)); code != http.StatusUnauthorized {
				t.Errorf("node-certs with the old token: %d %s, want 401", code, msg)
			}
			if code, msg := joinCall(t, s, http.MethodPost, apiserver.NodeCertsPath, tok, nodeCertsRequest(t, "new-"+role)); code != http.StatusOK {
				t.Errorf("node-certs with the new token: %d %s", code, msg)
			}
		})
	}
	// A join token is not an admin.
	code, msg := joinCall(t, s, http.MethodPost, join.TokensPath, s.JoinToken(t), join.RotateTokenRequest{Role: join.TokenRoleAgent})
	if code != http.StatusForbidden {
		t.Errorf("rotate with the server token as bearer: %d %s, want 403", code, msg)
	}
}
