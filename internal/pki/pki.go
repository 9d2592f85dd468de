// Package pki owns skiff's cluster trust: the CA, the certificates it signs,
// kubeconfig files that carry them, and the join token that pins the CA.
//
// Everything here is "ensure": files are loaded when they exist and are still
// good, and only (re)created when missing or unfit, so a restarted server keeps
// its CA, its certificates and its token, and clients that trusted it keep
// working.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before expiry a leaf is replaced on start-up,
	// so a server restarted now and then never serves an expired cert.
	renewBefore = 90 * 24 * time.Hour
	// backdate covers clocks of other nodes that run a little behind ours;
	// without it a freshly issued cert can be "not yet valid" elsewhere.
	backdate = time.Hour

	keyMode  os.FileMode = 0o600
	certMode os.FileMode = 0o644
)

// CA is the cluster certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// EnsureCA loads dir/ca.crt and dir/ca.key, creating them (ECDSA P-256, valid
// for 10 years, CN "skiff-ca@<unix time>") on first use.
func EnsureCA(dir string) (*CA, error) { return EnsureNamedCA(dir, "skiff-ca") }

// EnsureNamedCA is EnsureCA for a CA of its own, such as the one that signs
// only etcd's certificates; name prefixes the CN ("<name>@<unix time>"), so
// that a certificate chain says which CA it is.
func EnsureNamedCA(dir, name string) (*CA, error) {
	certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	certPEM, certErr := os.ReadFile(certFile)
	keyPEM, keyErr := os.ReadFile(keyFile)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load CA from %s: %w", dir, err)
		}
		return ca, nil
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("read CA certificate: %w", certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("read CA key: %w", keyErr)
	case certErr == nil:
		// A CA certificate without its key may already be trusted by nodes
		// and kubeconfigs; silently replacing it would lock them all out.
		return nil, fmt.Errorf("load CA from %s: %s exists but %s is missing; restore the key or remove both to create a new CA", dir, certFile, keyFile)
	}
	// Either nothing exists, or only the key does: the key is written first,
	// so a lone key means an earlier start died before the CA was complete
	// and nothing can have been signed by it yet.
	return createCA(certFile, keyFile, name)
}

// ParseCA checks that certPEM is a CA certificate and keyPEM its key, as
// taken from another server's bootstrap data.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) { return parseCA(certPEM, keyPEM) }

func createCA(certFile, keyFile, name string) (*CA, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", name, now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := WriteFileAtomic(keyFile, keyPEM, keyMode); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := WriteFileAtomic(certFile, certPEM, certMode); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return parseCA(certPEM, keyPEM)
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, errors.New("certificate is not a CA")
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !keyMatches(cert, key) {
		return nil, errors.New("CA key does not match CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// CertPool returns a pool holding only the cluster CA.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// EnsureServingCert loads or (re)creates dir/<name>.crt and dir/<name>.key, a
// server certificate signed by the CA for dnsNames and ips. An existing cert
// is replaced when it lacks a wanted SAN, was signed by another CA or expires
// within 90 days; its key is kept so pinned keys survive a renewal.
func (ca *CA) EnsureServingCert(dir, name string, dnsNames []string, ips []net.IP) (certFile, keyFile string, err error) {
	return ca.ensureServerCert(dir, name, dnsNames, ips, x509.ExtKeyUsageServerAuth)
}

// EnsurePeerCert is EnsureServingCert for a certificate that is also
// presented as a client: etcd members use one certificate both ways.
func (ca *CA) EnsurePeerCert(dir, name string, dnsNames []string, ips []net.IP) (certFile, keyFile string, err error) {
	return ca.ensureServerCert(dir, name, dnsNames, ips, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

func (ca *CA) ensureServerCert(dir, name string, dnsNames []string, ips []net.IP, usages ...x509.ExtKeyUsage) (certFile, keyFile string, err error) {
	dnsNames = dedupStrings(dnsNames)
	ips = dedupIPs(ips)
	leaf := leafSpec{
		name:    name,
		subject: pkix.Name{CommonName: servingCN(name, dnsNames, ips)},
		usages:  usages,
		dns:     dnsNames,
		ips:     ips,
		fits: func(c *x509.Certificate) bool {
			for _, d := range dnsNames {
				if !slices.Contains(c.DNSNames, d) {
					return false
				}
			}
			for _, ip := range ips {
				if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
					return false
				}
			}
			return true
		},
	}
	certFile, keyFile, _, _, err = ca.ensureLeaf(dir, leaf)
	return certFile, keyFile, err
}

// servingCN picks a readable CN; clients check SANs, not the CN.
func servingCN(name string, dnsNames []string, ips []net.IP) string {
	switch {
	case len(dnsNames) > 0:
		return dnsNames[0]
	case len(ips) > 0:
		return ips[0].String()
	}
	return name
}

// EnsureClientCert loads or creates dir/<name>.crt and dir/<name>.key, a
// client certificate with Subject CN=cn and O=orgs (the Kubernetes user name
// and groups). It is replaced when CN or O differ, when it was signed by
// another CA, or when it expires within 90 days.
func (ca *CA) EnsureClientCert(dir, name, cn string, orgs []string) (certPEM, keyPEM []byte, err error) {
	orgs = dedupStrings(orgs)
	leaf := leafSpec{
		name:    name,
		subject: pkix.Name{CommonName: cn, Organization: orgs},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		fits: func(c *x509.Certificate) bool {
			// Order of O does not matter for authorization, so compare as sets.
			have := slices.Sorted(slices.Values(dedupStrings(c.Subject.Organization)))
			want := slices.Sorted(slices.Values(orgs))
			return c.Subject.CommonName == cn && slices.Equal(have, want)
		},
	}
	_, _, certPEM, keyPEM, err = ca.ensureLeaf(dir, leaf)
	return certPEM, keyPEM, err
}

// IssueClientCert signs a new key as a client certificate for user cn in
// groups orgs and returns both, kept in memory only: for in-process
// components that get a fresh identity at every start.
func (ca *CA) IssueClientCert(cn string, orgs []string) (certPEM, keyPEM []byte, err error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	if keyPEM, err = encodeKey(key); err != nil {
		return nil, nil, err
	}
	certPEM, err = ca.signLeaf(key.Public(), leafSpec{
		name:    cn,
		subject: pkix.Name{CommonName: cn, Organization: dedupStrings(orgs)},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sign client certificate for %s: %w", cn, err)
	}
	return certPEM, keyPEM, nil
}

// leafSpec describes a wanted leaf certificate; fits says whether an
// existing certificate already provides what is wanted.
type leafSpec struct {
	name    string
	subject pkix.Name
	usages  []x509.ExtKeyUsage
	dns     []string
	ips     []net.IP
	fits    func(*x509.Certificate) bool
}

func (ca *CA) ensureLeaf(dir string, spec leafSpec) (certFile, keyFile string, certPEM, keyPEM []byte, err error) {
	if spec.name == "" || filepath.Base(spec.name) != spec.name {
		return "", "", nil, nil, fmt.Errorf("certificate name %q: want a plain file name", spec.name)
	}
	certFile = filepath.Join(dir, spec.name+".crt")
	keyFile = filepath.Join(dir, spec.name+".key")

	var key crypto.Signer
	keyPEM, err = os.ReadFile(keyFile)
	switch {
	case err == nil:
		// A key that no longer parses is useless; a new one is the fix.
		key, _ = parseKey(keyPEM)
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", nil, nil, fmt.Errorf("read %s: %w", keyFile, err)
	}

	if key != nil {
		certPEM, err = os.ReadFile(certFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", "", nil, nil, fmt.Errorf("read %s: %w", certFile, err)
		}
		if err == nil && ca.leafIsCurrent(certPEM, key, spec) {
			return certFile, keyFile, certPEM, keyPEM, nil
		}
	}

	if key == nil {
		if key, err = newKey(); err != nil {
			return "", "", nil, nil, err
		}
		if keyPEM, err = encodeKey(key); err != nil {
			return "", "", nil, nil, err
		}
		if err := WriteFileAtomic(keyFile, keyPEM, keyMode); err != nil {
			return "", "", nil, nil, fmt.Errorf("write %s key: %w", spec.name, err)
		}
	}
	certPEM, err = ca.signLeaf(key.Public(), spec)
	if err != nil {
		return "", "", nil, nil, fmt.Errorf("sign %s certificate: %w", spec.name, err)
	}
	if err := WriteFileAtomic(certFile, certPEM, certMode); err != nil {
		return "", "", nil, nil, fmt.Errorf("write %s certificate: %w", spec.name, err)
	}
	return certFile, keyFile, certPEM, keyPEM, nil
}

func (ca *CA) leafIsCurrent(certPEM []byte, key crypto.Signer, spec leafSpec) bool {
	cert, err := parseCert(certPEM)
	if err != nil {
		return false
	}
	return keyMatches(cert, key) &&
		cert.CheckSignatureFrom(ca.Cert) == nil &&
		time.Until(cert.NotAfter) > renewBefore &&
		!slices.ContainsFunc(spec.usages, func(u x509.ExtKeyUsage) bool { return !slices.Contains(cert.ExtKeyUsage, u) }) &&
		spec.fits(cert)
}

func (ca *CA) signLeaf(pub crypto.PublicKey, spec leafSpec) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(leafValidity)
	// A leaf outliving its CA would fail verification anyway; stop it
	// at the CA's end so the renewal check notices in time.
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               spec.subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           spec.usages,
		BasicConstraintsValid: true,
		DNSNames:              spec.dns,
		IPAddresses:           spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newKey() (crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	return key, nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits: unique without keeping a serial counter on disk.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	return serial, nil
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey accepts PKCS#8, SEC 1 and PKCS#1 keys, so a CA or key brought
// from another tool (openssl, k3s) can be used as is.
func parseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key found in PEM data")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", k)
			}
			return s, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse EC key: %w", err)
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse RSA key: %w", err)
			}
			return k, nil
		}
		// Skip other blocks such as "EC PARAMETERS" that openssl emits.
	}
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no certificate found in PEM data")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

func keyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	// Every public key type in the standard library has Equal.
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func dedupStrings(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func dedupIPs(in []net.IP) []net.IP {
	out := make([]net.IP, 0, len(in))
	for _, ip := range in {
		if ip != nil && !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}
