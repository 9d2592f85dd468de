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

// Join tokens have k3s's shape, "K10<CA hash>::server:<secret>", so that a
// joining node can check the CA it is shown against the hash before trusting
// it, and users who know k3s recognise them.
const (
	tokenPrefix = "K10"
	tokenUser   = "server"
	tokenMode   = 0o600
)

// CAHash is the hex SHA-256 of the CA certificate PEM bytes.
func CAHash(caPEM []byte) string {
	sum := sha256.Sum256(caPEM)
	return hex.EncodeToString(sum[:])
}

// EnsureToken returns the join token stored at path, creating the file (mode
// 0600) with a new random 32-byte hex secret when it does not exist. The
// returned token always carries the hash of caPEM: a file holding a bare
// secret, or a hash of an older CA, is rewritten with the same secret, since
// the secret is what nodes authenticate with.
func EnsureToken(path string, caPEM []byte) (token string, err error) {
	var secret string
	data, err := os.ReadFile(path)
	switch {
	case err == nil && strings.TrimSpace(string(data)) != "":
		if _, secret, err = ParseToken(string(data)); err != nil {
			return "", fmt.Errorf("token file %s: %w", path, err)
		}
	case err == nil, errors.Is(err, fs.ErrNotExist):
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate token secret: %w", err)
		}
		secret = hex.EncodeToString(buf)
	default:
		return "", fmt.Errorf("read token file: %w", err)
	}
	token = tokenPrefix + CAHash(caPEM) + "::" + tokenUser + ":" + secret
	if string(data) != token+"\n" {
		if err := WriteFileAtomic(path, []byte(token+"\n"), tokenMode); err != nil {
			return "", fmt.Errorf("write token: %w", err)
		}
	}
	return token, nil
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
