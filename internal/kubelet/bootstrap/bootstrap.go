// Package bootstrap joins an agent to a cluster: with the join token it gets
// the cluster CA, checks it against the hash pinned in the token, and has
// the server sign the node's client and serving certificates. The keys
// never leave the node. Certificates are kept in the agent's directory and
// reused on restart, so an agent whose server is unreachable still starts.
package bootstrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/join"
	"skiff/internal/pki"
)

// Config says which cluster to join and as which node.
type Config struct {
	// ServerURL is the API server, https://host:6443.
	ServerURL string
	// Token is a join token: the agent token, K10<CA hash>::node:<secret>,
	// or the server token, K10<CA hash>::server:<secret>.
	Token string
	// NodeName is the node's name; its client certificate is for the user
	// system:node:<NodeName>.
	NodeName string
	// Addresses and Hostnames are what the kubelet's serving certificate
	// covers besides NodeName, localhost and 127.0.0.1: the API server
	// dials the kubelet at one of them.
	Addresses []net.IP
	Hostnames []string
	// Dir is where the certificates and the kubeconfig are kept
	// (<data-dir>/agent).
	Dir    string
	Logger *slog.Logger
}

// Result is the node's credentials on disk, and a client configuration
// that uses them.
type Result struct {
	// Kubeconfig is the path of the node's kubeconfig (mode 0600).
	Kubeconfig string
	RESTConfig *rest.Config
	// ProxyRESTConfig and DNSRESTConfig are RESTConfig with the service
	// proxy's and the cluster DNS's own certificates (users
	// system:kube-proxy and system:kube-dns).
	ProxyRESTConfig, DNSRESTConfig *rest.Config

	CAFile                          string
	ServingCertFile, ServingKeyFile string
	ClientCertFile, ClientKeyFile   string
	ProxyCertFile, ProxyKeyFile     string
	DNSCertFile, DNSKeyFile         string
}

// File names in Config.Dir.
const (
	caFile          = "ca.crt"
	clientName      = "client-kubelet"
	servingName     = "serving-kubelet"
	proxyName       = "client-kube-proxy"
	dnsName         = "client-kube-dns"
	kubeconfigFile  = "kubelet.kubeconfig"
	passwordFile    = "node-password"
	keyMode         = 0o600
	certMode        = 0o644
	kubeconfigMode  = 0o600
	minRemaining    = 30 * 24 * time.Hour
	requestTimeout  = 30 * time.Second
	maxResponseSize = 1 << 20
)

// Join returns the node's credentials: those in cfg.Dir when they are still
// good (valid for more than 30 days, for this node name and addresses, from
// the CA the token pins), without contacting the server; otherwise new ones
// from the server.
func Join(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.ServerURL == "" || cfg.Token == "" || cfg.NodeName == "" || cfg.Dir == "" {
		return nil, errors.New("join: server URL, token, node name and directory are required")
	}
	if !strings.HasPrefix(cfg.ServerURL, "https://") {
		return nil, fmt.Errorf("join: server URL %q must start with https://", cfg.ServerURL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Host names are case-insensitive but certificate SANs and the server's
	// validation want them lower case; os.Hostname often is not.
	var hostnames []string
	for _, h := range cfg.Hostnames {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" && h != cfg.NodeName && !slices.Contains(hostnames, h) {
			hostnames = append(hostnames, h)
		}
	}
	cfg.Hostnames = hostnames
	log := cfg.Logger.With("component", "bootstrap")
	caHash, _, err := pki.ParseToken(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if caHash == "" {
		return nil, errors.New("join: token has no CA hash: use the full agent token (K10<hash>::node:<secret>) that `skiff token --agent` prints on a server, so the server's identity can be checked")
	}
	res := files(cfg.Dir)
	if reason := current(cfg, caHash, res); reason == "" {
		log.Info("reusing node certificates", "dir", cfg.Dir, "node", cfg.NodeName)
	} else {
		log.Info("requesting node certificates", "server", cfg.ServerURL, "node", cfg.NodeName, "reason", reason)
		if err := requestCerts(ctx, cfg, caHash, res); err != nil {
			return nil, fmt.Errorf("join %s: %w", cfg.ServerURL, err)
		}
	}
	if err := writeKubeconfig(cfg, res); err != nil {
		return nil, err
	}
	return res, nil
}

func files(dir string) *Result {
	return &Result{
		Kubeconfig:      filepath.Join(dir, kubeconfigFile),
		CAFile:          filepath.Join(dir, caFile),
		ServingCertFile: filepath.Join(dir, servingName+".crt"),
		ServingKeyFile:  filepath.Join(dir, servingName+".key"),
		ClientCertFile:  filepath.Join(dir, clientName+".crt"),
		ClientKeyFile:   filepath.Join(dir, clientName+".key"),
		ProxyCertFile:   filepath.Join(dir, proxyName+".crt"),
		ProxyKeyFile:    filepath.Join(dir, proxyName+".key"),
		DNSCertFile:     filepath.Join(dir, dnsName+".crt"),
		DNSKeyFile:      filepath.Join(dir, dnsName+".key"),
	}
}

// current says why the stored certificates cannot be reused, or "" when
// they can.
func current(cfg Config, caHash string, res *Result) string {
	caPEM, err := os.ReadFile(res.CAFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "no certificates yet"
	}
	if err != nil {
		return err.Error()
	}
	if pki.CAHash(caPEM) != caHash {
		return "the stored CA is not the one the token pins"
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Sprintf("%s: %v", res.CAFile, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client, err := loadLeaf(res.ClientCertFile, res.ClientKeyFile, roots, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err.Error()
	}
	if client.Subject.CommonName != "system:node:"+cfg.NodeName {
		return "the client certificate is for " + client.Subject.CommonName
	}
	for _, c := range []struct{ cert, key, user string }{
		{res.ProxyCertFile, res.ProxyKeyFile, join.ProxyUser},
		{res.DNSCertFile, res.DNSKeyFile, join.DNSUser},
	} {
		cert, err := loadLeaf(c.cert, c.key, roots, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return err.Error()
		}
		if cert.Subject.CommonName != c.user {
			return c.cert + " is for " + cert.Subject.CommonName
		}
	}
	serving, err := loadLeaf(res.ServingCertFile, res.ServingKeyFile, roots, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return err.Error()
	}
	for _, name := range append([]string{cfg.NodeName}, cfg.Hostnames...) {
		if !slices.Contains(serving.DNSNames, name) {
			return "the serving certificate does not cover " + name
		}
	}
	for _, ip := range cfg.Addresses {
		if !slices.ContainsFunc(serving.IPAddresses, ip.Equal) {
			return "the serving certificate does not cover " + ip.String()
		}
	}
	return ""
}

// loadLeaf loads a certificate and its key and checks that they match,
// that roots signed it for usage, and that it is good for 30 more days.
func loadLeaf(certFile, keyFile string, roots *x509.CertPool, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	if !pki.KeyMatches(cert, key) {
		return nil, fmt.Errorf("%s does not match %s", keyFile, certFile)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if time.Until(cert.NotAfter) < minRemaining {
		return nil, fmt.Errorf("%s expires at %s", certFile, cert.NotAfter.Format(time.RFC3339))
	}
	return cert, nil
}

// requestCerts fetches and checks the CA, then has it sign new keys.
func requestCerts(ctx context.Context, cfg Config, caHash string, res *Result) error {
	caPEM, err := FetchCA(ctx, cfg.ServerURL, caHash)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("CA certificate from the server: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	clientKey, clientKeyPEM, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	servingKey, servingKeyPEM, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	proxyKey, proxyKeyPEM, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	dnsKey, dnsKeyPEM, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	cn := "system:node:" + cfg.NodeName
	clientCSR, err := pki.NewCSR(clientKey, cn)
	if err != nil {
		return err
	}
	servingCSR, err := pki.NewCSR(servingKey, cn)
	if err != nil {
		return err
	}
	proxyCSR, err := pki.NewCSR(proxyKey, join.ProxyUser)
	if err != nil {
		return err
	}
	dnsCSR, err := pki.NewCSR(dnsKey, join.DNSUser)
	if err != nil {
		return err
	}
	password, err := nodePassword(filepath.Join(cfg.Dir, passwordFile))
	if err != nil {
		return err
	}
	body := join.NodeCertsRequest{
		NodePassword: password,
		NodeName:     cfg.NodeName,
		ClientCSR:    string(clientCSR),
		ServingCSR:   string(servingCSR),
		ProxyCSR:     string(proxyCSR),
		DNSCSR:       string(dnsCSR),
		Hostnames:    cfg.Hostnames,
	}
	for _, ip := range cfg.Addresses {
		body.Addresses = append(body.Addresses, ip.String())
	}
	certs, err := postCSRs(ctx, cfg, roots, &body)
	if err != nil {
		return err
	}
	// Check what came back before storing it: a certificate that does not
	// fit its key or the CA would only fail later, less clearly.
	for _, c := range []struct {
		what    string
		certPEM string
		key     crypto.Signer
		usage   x509.ExtKeyUsage
	}{
		{"client", certs.ClientCert, clientKey, x509.ExtKeyUsageClientAuth},
		{"serving", certs.ServingCert, servingKey, x509.ExtKeyUsageServerAuth},
		{"service proxy", certs.ProxyCert, proxyKey, x509.ExtKeyUsageClientAuth},
		{"cluster DNS", certs.DNSCert, dnsKey, x509.ExtKeyUsageClientAuth},
	} {
		if c.certPEM == "" {
			return fmt.Errorf("the server sent no %s certificate: it runs an older version than this agent; upgrade the servers first", c.what)
		}
		cert, err := pki.ParseCertPEM([]byte(c.certPEM))
		if err != nil {
			return fmt.Errorf("%s certificate from the server: %w", c.what, err)
		}
		if !pki.KeyMatches(cert, c.key) {
			return fmt.Errorf("%s certificate from the server is not for the key sent", c.what)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			return fmt.Errorf("%s certificate from the server: %w", c.what, err)
		}
	}
	// Keys first: a crash in between leaves certificates that do not match
	// their keys, which the next start notices and replaces.
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{res.ClientKeyFile, clientKeyPEM, keyMode},
		{res.ServingKeyFile, servingKeyPEM, keyMode},
		{res.ProxyKeyFile, proxyKeyPEM, keyMode},
		{res.DNSKeyFile, dnsKeyPEM, keyMode},
		{res.ClientCertFile, []byte(certs.ClientCert), certMode},
		{res.ServingCertFile, []byte(certs.ServingCert), certMode},
		{res.ProxyCertFile, []byte(certs.ProxyCert), certMode},
		{res.DNSCertFile, []byte(certs.DNSCert), certMode},
		{res.CAFile, caPEM, certMode},
	} {
		if err := pki.WriteFileAtomic(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// nodePassword returns the node's password, creating it on first use. The
// server pins the node name to it, so it must outlive the certificates.
func nodePassword(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil && len(bytes.TrimSpace(data)) > 0 {
		return string(bytes.TrimSpace(data)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read node password: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate node password: %w", err)
	}
	password := hex.EncodeToString(buf)
	if err := pki.WriteFileAtomic(path, []byte(password+"\n"), keyMode); err != nil {
		return "", fmt.Errorf("write node password: %w", err)
	}
	return password, nil
}

// FetchCA gets /cacerts without verifying the server, which is the only way
// to get a CA one does not have yet, and accepts it only when its hash is
// the one in the token.
func FetchCA(ctx context.Context, serverURL, caHash string) ([]byte, error) {
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		// Nothing secret is sent on this connection and what comes back is
		// checked against the token's hash below.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(serverURL, "/")+join.CACertsPath, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch CA certificate: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch CA certificate: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return nil, fmt.Errorf("fetch CA certificate: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch CA certificate: %s", statusMessage(resp, data))
	}
	if got := pki.CAHash(data); got != caHash {
		return nil, fmt.Errorf("CA certificate hash %s does not match the token: wrong token or a man in the middle", got)
	}
	return data, nil
}

// postCSRs sends the CSRs over TLS verified against the pinned CA.
func postCSRs(ctx context.Context, cfg Config, roots *x509.CertPool, body *join.NodeCertsRequest) (*join.NodeCertsResponse, error) {
	var out join.NodeCertsResponse
	err := Call(ctx, cfg.ServerURL, cfg.Token, roots, http.MethodPost, join.NodeCertsPath, body, &out)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusForbidden && strings.Contains(se.Message, "node password") {
		return nil, fmt.Errorf("request node certificates: %w. If this is another machine with the same host name, start it with --with-node-id (appends a stable random suffix to the node name) or with --node-name NAME", err)
	}
	if err != nil {
		return nil, fmt.Errorf("request node certificates: %w", err)
	}
	return &out, nil
}

// StatusError is a join endpoint's refusal.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return e.Message }

// Call sends in (nil for none) as JSON to a join endpoint of the server at
// serverURL, authenticated with the join token, over TLS verified against
// roots (the CA pinned by FetchCA), and decodes the answer into out.
func Call(ctx context.Context, serverURL, token string, roots *x509.CertPool, method, path string, in, out any) error {
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(serverURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusUnauthorized:
		return &StatusError{Code: resp.StatusCode, Message: "the server refused the token (401 Unauthorized): check --token against `skiff token --agent` (agents) or `skiff token` (servers) on a server; a rotated token is refused"}
	default:
		return &StatusError{Code: resp.StatusCode, Message: statusMessage(resp, data)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// statusMessage is the message of a Kubernetes Status answer, or the
// status line and body of anything else.
func statusMessage(resp *http.Response, data []byte) string {
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Message != "" {
		return fmt.Sprintf("%s: %s", resp.Status, st.Message)
	}
	return fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
}

// writeKubeconfig writes the node's kubeconfig, certificates embedded, and
// loads the client configuration from it.
func writeKubeconfig(cfg Config, res *Result) error {
	var pems [3][]byte
	for i, p := range []string{res.CAFile, res.ClientCertFile, res.ClientKeyFile} {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("node kubeconfig: %w", err)
		}
		pems[i] = data
	}
	kc, err := pki.Kubeconfig("default", cfg.ServerURL, pems[0], pems[1], pems[2])
	if err != nil {
		return fmt.Errorf("node kubeconfig: %w", err)
	}
	if old, err := os.ReadFile(res.Kubeconfig); err != nil || !bytes.Equal(old, kc) {
		if err := pki.WriteFileAtomic(res.Kubeconfig, kc, kubeconfigMode); err != nil {
			return fmt.Errorf("node kubeconfig: %w", err)
		}
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return fmt.Errorf("node kubeconfig: %w", err)
	}
	res.RESTConfig = rc
	if res.ProxyRESTConfig, err = WithClientCert(rc, res.ProxyCertFile, res.ProxyKeyFile); err != nil {
		return err
	}
	if res.DNSRESTConfig, err = WithClientCert(rc, res.DNSCertFile, res.DNSKeyFile); err != nil {
		return err
	}
	return nil
}

// WithClientCert returns a copy of rc that authenticates with the
// certificate and key in certFile and keyFile instead.
func WithClientCert(rc *rest.Config, certFile, keyFile string) (*rest.Config, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	out := rest.CopyConfig(rc)
	out.CertFile, out.KeyFile = "", ""
	out.CertData, out.KeyData = certPEM, keyPEM
	return out, nil
}
