// Package identity names a node and finds the address it advertises. Names
// must be unique in a cluster even where machines share a host name (every
// Raspberry Pi image is "raspberrypi", cloned VMs keep their template's
// name), so the random parts of a node's identity are created once and kept
// in its data dir: they survive restarts and upgrades, and a new data dir
// is a new identity.
package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"skiff/internal/pki"
)

// suffixBytes random bytes make a suffix: 8 hex digits, as k3s's.
const suffixBytes = 4

// Hostname is the machine's host name, lower case (node names are).
func Hostname() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("the host name is empty")
	}
	return h, nil
}

// NodeName is the node's name: name, or the host name when name is empty;
// withID appends "-" and the stable suffix kept in idFile, so machines that
// share a host name get distinct names without naming each one.
func NodeName(name string, withID bool, idFile string) (string, error) {
	from := "--node-name"
	if name == "" {
		h, err := Hostname()
		if err != nil {
			return "", fmt.Errorf("%w: set --node-name", err)
		}
		name, from = h, "the host name"
	}
	if withID {
		id, err := Suffix(idFile)
		if err != nil {
			return "", fmt.Errorf("node id: %w", err)
		}
		name += "-" + id
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return "", fmt.Errorf("node name %q (from %s) is not a valid node name: %s; set --node-name", name, from, strings.Join(msgs, "; "))
	}
	return name, nil
}

// Suffix returns the random suffix kept in file, creating the file on
// first use (mode 0600, written atomically).
func Suffix(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err == nil {
		if s := string(bytes.TrimSpace(b)); validSuffix(s) {
			return s, nil
		}
		return "", fmt.Errorf("%s holds %q, not a suffix of hex digits: remove the file to make a new one", file, bytes.TrimSpace(b))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	s, err := NewSuffix()
	if err != nil {
		return "", err
	}
	if err := pki.WriteFileAtomic(file, []byte(s+"\n"), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// NewSuffix returns a fresh random suffix.
func NewSuffix() (string, error) {
	buf := make([]byte, suffixBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("random suffix: %w", err)
	}
	return hex.EncodeToString(buf), nil
}

func validSuffix(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
