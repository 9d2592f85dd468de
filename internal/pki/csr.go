package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
)

// Joining nodes keep their private keys: they send certificate signing
// requests and the CA signs the public key in them. The subject, names and
// usages in a CSR are ignored; the signer decides them from what it has
// checked, so a token holder cannot ask for a cluster-admin certificate.

// GenerateKey returns a new ECDSA P-256 key and its PKCS#8 PEM encoding.
func GenerateKey() (crypto.Signer, []byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, keyPEM, nil
}

// ParseKeyPEM parses a PEM private key (PKCS#8, SEC 1 or PKCS#1).
func ParseKeyPEM(keyPEM []byte) (crypto.Signer, error) { return parseKey(keyPEM) }

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(certPEM []byte) (*x509.Certificate, error) { return parseCert(certPEM) }

// KeyMatches reports whether key is the private key of cert.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool { return keyMatches(cert, key) }

// NewCSR returns a PEM certificate signing request for key with Subject CN=cn.
func NewCSR(key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// parseCSR decodes a PEM CSR and checks its self-signature, which proves the
// requester holds the private key.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no CERTIFICATE REQUEST found in PEM data")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return csr, nil
}

// SignClientCSR signs the public key of csrPEM as a client certificate with
// Subject CN=cn and O=orgs (the Kubernetes user and groups), valid for a
// year, and returns it as PEM.
func (ca *CA) SignClientCSR(csrPEM []byte, cn string, orgs []string) ([]byte, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.signLeaf(csr.PublicKey, leafSpec{
		subject: pkix.Name{CommonName: cn, Organization: dedupStrings(orgs)},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("sign client certificate for %s: %w", cn, err)
	}
	return certPEM, nil
}

// SignServingCSR signs the public key of csrPEM as a server certificate for
// dnsNames and ips with Subject CN=cn and O=orgs, valid for a year, and
// returns it as PEM.
func (ca *CA) SignServingCSR(csrPEM []byte, cn string, orgs, dnsNames []string, ips []net.IP) ([]byte, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	certPEM, err := ca.signLeaf(csr.PublicKey, leafSpec{
		subject: pkix.Name{CommonName: cn, Organization: dedupStrings(orgs)},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		dns:     dedupStrings(dnsNames),
		ips:     dedupIPs(ips),
	})
	if err != nil {
		return nil, fmt.Errorf("sign serving certificate for %s: %w", cn, err)
	}
	return certPEM, nil
}
