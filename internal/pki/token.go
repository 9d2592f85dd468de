package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Join tokens have k3s's shape, "K10<CA hash>::<user>:<secret>", so that a
// joining node can check the CA it is shown against the hash before trusting
// it, and users who know k3s recognise them. The server token's user is
// "server" (it joins servers and agents and seals the bootstrap data); the
// agent token's is "node" (it joins agents only).
const (
	tokenPrefix = "K10"
	// ServerTokenUser and AgentTokenUser name the two join tokens.
	ServerTokenUser = "server"
	AgentTokenUser  = "node"
	tokenMode       = 0o600
)

// CAHash is the hex SHA-256 of the CA certificate PEM bytes.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// FormatToken is the full token for a secret: K10<hash>::<user>:<secret>.
func FormatToken(caPEM []byte, user, secret string) string {
	return tokenPrefix + CAHash(caPEM) + "::" + user + ":" + secret
}

// NewTokenSecret is a new random 32-byte hex secret.
func NewTokenSecret() (string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate token secret: %w", err)
	}
	return hex.EncodeToString(buf), nil
}

// TokenSecretHash is what servers keep of a join token's secret where more
// than the server itself can read it (etcd): a hash that names the secret
// without giving it away.
func TokenSecretHash(secret string) string {
	sum := sha256.Sum256([]byte("skiff-join-token:" + secret))
	return hex.EncodeToString(sum[:])
}

// EnsureToken is EnsureTokenFile for the server token.
func EnsureToken(path string, caPEM []byte) (token string, err error) {
	return EnsureTokenFile(path, caPEM, ServerTokenUser)
}

// EnsureTokenFile returns the join token stored at path, creating the file
// (mode 0600) with a new random secret when it does not exist. The returned
// token always carries the hash of caPEM and user: a file holding a bare
// secret, or a hash of an older CA, is rewritten with the same secret, since
// the secret is what nodes authenticate with.
func EnsureTokenFile(path string, caPEM []byte, user string) (token string, err error) {
	var secret string
	data, err := os.ReadFile(path)
	switch {
	case err == nil && strings.TrimSpace(string(data)) != "":
		if _, secret, err = ParseToken(string(data)); err != nil {
			return "", fmt.Errorf("token file %s: %w", path, err)
		}
	case err == nil, errors.Is(err, fs.ErrNotExist):
		if secret, err = NewTokenSecret(); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("read token file: %w", err)
	}
	token = FormatToken(caPEM, user, secret)
	if string(data) != token+"\n" {
		if err := WriteFileAtomic(path, []byte(token+"\n"), tokenMode); err != nil {
			return "", fmt.Errorf("write token: %w", err)
		}
	}
	return token, nil
}

// ReadTokenSecret reads the token file at path and returns its secret.
func ReadTokenSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	_, secret, err := ParseToken(string(data))
	if err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return secret, nil
}

// WriteToken writes a full token to path (mode 0600).
func WriteToken(path, token string) error {
	if err := WriteFileAtomic(path, []byte(strings.TrimSpace(token)+"\n"), tokenMode); err != nil {
		return fmt.Errorf("write token: %w", err)
	}
	return nil
}

// ParseToken splits a full token "K10<hash>::<user>:<secret>" into the CA
// hash and the secret. A bare secret (no "K10" prefix) is accepted and gives
// an empty hash: the joining node then cannot pin the CA.
func ParseToken(token string) (caHash, secret string, err error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", "", errors.New("token is empty")
	}
	if !strings.HasPrefix(token, tokenPrefix) {
		return "", token, nil
	}
	hash, creds, ok := strings.Cut(strings.TrimPrefix(token, tokenPrefix), "::")
	if !ok {
		return "", "", errors.New(`token starts with "K10" but has no "::" after the CA hash`)
	}
	if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
		return "", "", errors.New("token CA hash is not a hex SHA-256")
	}
	user, secret, ok := strings.Cut(creds, ":")
	if !ok || user == "" || secret == "" {
		return "", "", errors.New(`token has no "<user>:<secret>" after the CA hash`)
	}
	return strings.ToLower(hash), secret, nil
}
