package servertest

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"skiff/internal/config"
	"skiff/internal/pki"
)

// URL is the server's API address, https://127.0.0.1:<port>.
func (s *Server) URL() string {
	host := s.Config.BindAddress
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(s.Config.HTTPSPort))
}

// JoinToken is the server token the server wrote,
// K10<CA hash>::server:<secret>.
func (s *Server) JoinToken(t testing.TB) string {
	t.Helper()
	return readToken(t, config.Layout{DataDir: s.DataDir}.TokenFile())
}

// AgentToken is the agent token the server wrote,
// K10<CA hash>::node:<secret>.
func (s *Server) AgentToken(t testing.TB) string {
	t.Helper()
	return readToken(t, config.Layout{DataDir: s.DataDir}.AgentTokenFile())
}

func readToken(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read join token: %v", err)
	}
	return strings.TrimSpace(string(data))
}

// CA is the cluster CA, with its key, for tests that sign certificates of
// their own (a fake kubelet's serving certificate, say).
func (s *Server) CA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.EnsureCA(config.Layout{DataDir: s.DataDir}.TLSDir())
	if err != nil {
		t.Fatalf("load cluster CA: %v", err)
	}
	return ca
}
