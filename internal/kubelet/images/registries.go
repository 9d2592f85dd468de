package images

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"
)

// Registries is the node's registries file, in the shape k3s users know:
//
//	mirrors:
//	  docker.io:
//	    endpoint: ["http://127.0.0.1:5000"]
//	configs:
//	  registry.example:5000:
//	    auth: {username: u, password: p}
//	    insecure: true
//	    tls: {ca_file: /etc/ssl/reg.pem}
type Registries struct {
	Mirrors map[string]Mirror         `json:"mirrors,omitempty"`
	Configs map[string]RegistryConfig `json:"configs,omitempty"`
}

// Mirror lists endpoints tried in order before the upstream registry. The key
// "*" applies to every registry without its own entry.
type Mirror struct {
	Endpoints []string `json:"endpoint,omitempty"`
}

// RegistryConfig holds credentials and transport settings for one registry
// host (upstream or mirror).
type RegistryConfig struct {
	Auth *RegistryAuth `json:"auth,omitempty"`
	// Insecure allows plain HTTP and skips TLS verification.
	Insecure bool       `json:"insecure,omitempty"`
	TLS      *TLSConfig `json:"tls,omitempty"`
}

// RegistryAuth is a registry login; Auth is base64("user:password") as in
// docker config files.
type RegistryAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// TLSConfig configures HTTPS to a registry.
type TLSConfig struct {
	CAFile             string `json:"ca_file,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// LoadRegistries reads a registries file. A missing file is an empty config:
// most nodes have none.
func LoadRegistries(p string) (*Registries, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &Registries{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registries file: %w", err)
	}
	var r Registries
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("parse registries file %s: %w", p, err)
	}
	for _, m := range r.Mirrors {
		for _, ep := range m.Endpoints {
			if _, err := parseEndpoint(ep); err != nil {
				return nil, fmt.Errorf("parse registries file %s: %w", p, err)
			}
		}
	}
	return &r, nil
}

// config returns the settings for host, matching keys however they are spelled.
func (r *Registries) config(host string) (RegistryConfig, bool) {
	if r == nil {
		return RegistryConfig{}, false
	}
	for k, c := range r.Configs {
		if normalizeHost(k) == host {
			return c, true
		}
	}
	return RegistryConfig{}, false
}

func (r *Registries) mirrors(host string) []string {
	if r == nil {
		return nil
	}
	for k, m := range r.Mirrors {
		if normalizeHost(k) == host {
			return m.Endpoints
		}
	}
	if m, ok := r.Mirrors["*"]; ok {
		return m.Endpoints
	}
	return nil
}

// endpoint is one place an image can be fetched from.
type endpoint struct {
	host   string // host[:port]
	plain  bool   // http:// was asked for explicitly
	mirror bool
}

func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("mirror endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return endpoint{}, fmt.Errorf("mirror endpoint %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("mirror endpoint %q: no host", s)
	}
	// go-containerregistry always talks to /v2/ at the root of the host, so
	// only an empty or /v2 path can be honoured.
	if p := strings.TrimSuffix(path.Clean("/"+u.Path), "/"); p != "" && p != "/v2" {
		return endpoint{}, fmt.Errorf("mirror endpoint %q: path prefixes are not supported", s)
	}
	return endpoint{host: normalizeHost(u.Host), plain: u.Scheme == "http", mirror: true}, nil
}

// isLoopback reports whether host[:port] names this machine, where plain HTTP
// is acceptable without configuration (local registries, tests).
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// nameOptions are the ggcr parse options for talking to host.
func (r *Registries) nameOptions(ep endpoint) []name.Option {
	c, _ := r.config(ep.host)
	if ep.plain || c.Insecure || isLoopback(ep.host) {
		// name.Insecure lets ggcr fall back to plain HTTP after HTTPS fails.
		return []name.Option{name.Insecure}
	}
	return nil
}

// transport builds the HTTP transport for host from its TLS settings.
func (r *Registries) transport(host string) (http.RoundTripper, error) {
	base := remote.DefaultTransport.(*http.Transport).Clone()
	c, ok := r.config(host)
	if !ok || (c.TLS == nil && !c.Insecure) {
		return base, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.Insecure {
		tc.InsecureSkipVerify = true
	}
	if t := c.TLS; t != nil {
		tc.InsecureSkipVerify = tc.InsecureSkipVerify || t.InsecureSkipVerify
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: read ca_file: %w", host, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: no certificates in %s", host, t.CAFile)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" || t.KeyFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: load client certificate: %w", host, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	base.TLSClientConfig = tc
	return base, nil
}

// keychain resolves credentials: pull secrets first (as the kubelet does),
// then the node's registries file, else anonymous.
type keychain struct {
	secrets []map[string]authn.AuthConfig // host -> auth, one map per secret
	regs    *Registries
}

func (k *keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	host := normalizeHost(res.RegistryStr())
	for _, s := range k.secrets {
		if a, ok := matchHost(s, host); ok {
			return authn.FromConfig(a), nil
		}
	}
	if c, ok := k.regs.config(host); ok && c.Auth != nil {
		return authn.FromConfig(authn.AuthConfig{
			Username:      c.Auth.Username,
			Password:      c.Auth.Password,
			Auth:          c.Auth.Auth,
			IdentityToken: c.Auth.IdentityToken,
		}), nil
	}
	return authn.Anonymous, nil
}

func matchHost(m map[string]authn.AuthConfig, host string) (authn.AuthConfig, bool) {
	if a, ok := m[host]; ok {
		return a, true
	}
	// Docker config keys may be globs such as "*.example.com" (Kubernetes
	// accepts them in pull secrets).
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	for k, a := range m {
		if !strings.Contains(k, "*") {
			continue
		}
		if ok, _ := path.Match(k, host); ok {
			return a, true
		}
		if ok, _ := path.Match(k, h); ok {
			return a, true
		}
	}
	return authn.AuthConfig{}, false
}

// parseDockerConfig reads a kubernetes.io/dockerconfigjson secret payload
// ({"auths": {...}}) or a legacy .dockercfg one (the map alone).
func parseDockerConfig(data []byte) (map[string]authn.AuthConfig, error) {
	type entry struct {
		Username      string `json:"username"`
		Password      string `json:"password"`
		Auth          string `json:"auth"`
		IdentityToken string `json:"identitytoken"`
	}
	var wrapped struct {
		Auths map[string]entry `json:"auths"`
	}
	if err := json.Unmarshal(data, &wrapped); err != nil {
		return nil, fmt.Errorf("parse docker config: %w", err)
	}
	entries := wrapped.Auths
	if entries == nil {
		if err := json.Unmarshal(data, &entries); err != nil {
			return nil, fmt.Errorf("parse docker config: %w", err)
		}
	}
	out := make(map[string]authn.AuthConfig, len(entries))
	for k, e := range entries {
		a := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" && a.Username == "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("parse docker config: auth for %s is not base64: %w", k, err)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, fmt.Errorf("parse docker config: auth for %s is not user:password", k)
			}
			a.Username, a.Password = user, pass
		}
		out[normalizeHost(k)] = a
	}
	return out, nil
}
