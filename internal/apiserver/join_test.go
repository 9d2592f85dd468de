package apiserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/apiserver"
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
