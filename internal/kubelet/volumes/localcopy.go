package volumes

// Local copies of ConfigMaps and Secrets, so that a node with no server
// reachable can set up its pods' volumes again (after a restart or a
// reboot). Each object's data is kept in one file, sealed with AES-256-GCM
// under a key that never leaves the node (created on first use, mode 0600);
// the object's kind, namespace and name are the additional data, so a file
// cannot be passed off as another object's. Secret material is thus never
// on disk in the clear here.

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"skiff/internal/pki"
)

const localKeyFile = "local.key"

// localCopies keeps sealed copies of objects' data under dir.
type localCopies struct {
	dir string

	mu      sync.Mutex
	aead    cipher.AEAD
	written map[string][32]byte // object → digest of what was last written
}

func newLocalCopies(dir string) *localCopies {
	return &localCopies{dir: dir, written: map[string][32]byte{}}
}

// cipher loads or creates the node-local key.
func (c *localCopies) cipher() (cipher.AEAD, error) {
	if c.aead != nil {
		return c.aead, nil
	}
	path := filepath.Join(c.dir, localKeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(path, key, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s: want a 32-byte key, found %d bytes", path, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	c.aead, err = cipher.NewGCM(block)
	return c.aead, err
}

func objectID(kind, ns, name string) string { return kind + "/" + ns + "/" + name }

func (c *localCopies) path(kind, ns, name string) string {
	return filepath.Join(c.dir, kind, ns, name)
}

// put keeps data as the object's local copy; unchanged data is not
// written again.
func (c *localCopies) put(kind, ns, name string, data map[string][]byte) error {
	plain, err := json.Marshal(data)
	if err != nil {
		return err
	}
	id := objectID(kind, ns, name)
	sum := sha256.Sum256(plain)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written[id] == sum {
		return nil
	}
	aead, err := c.cipher()
	if err != nil {
		return fmt.Errorf("local copy of %s: %w", id, err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := aead.Seal(nonce, nonce, plain, []byte(id))
	if err := pki.WriteFileAtomic(c.path(kind, ns, name), sealed, 0o600); err != nil {
		return fmt.Errorf("local copy of %s: %w", id, err)
	}
	c.written[id] = sum
	return nil
}

// get returns the object's local copy, if there is one.
func (c *localCopies) get(kind, ns, name string) (map[string][]byte, bool, error) {
	id := objectID(kind, ns, name)
	sealed, err := os.ReadFile(c.path(kind, ns, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	aead, err := c.cipher()
	c.mu.Unlock()
	if err != nil {
		return nil, false, fmt.Errorf("local copy of %s: %w", id, err)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, false, fmt.Errorf("local copy of %s: truncated", id)
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, false, fmt.Errorf("local copy of %s: cannot open it with this node's key: %w", id, err)
	}
	var data map[string][]byte
	if err := json.NewDecoder(bytes.NewReader(plain)).Decode(&data); err != nil {
		return nil, false, fmt.Errorf("local copy of %s: %w", id, err)
	}
	return data, true, nil
}

// remove drops the object's local copy (it is gone from the API).
func (c *localCopies) remove(kind, ns, name string) {
	c.mu.Lock()
	delete(c.written, objectID(kind, ns, name))
	c.mu.Unlock()
	_ = os.Remove(c.path(kind, ns, name))
}

func unreachable(err error) bool { return Unreachable(err) }

// Unreachable reports whether err, from a client of the API, means no
// server answered (rather than an answer, such as NotFound or Forbidden,
// that the API gave, or a problem of the object itself).
func Unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= 500 || code == 429
	}
	// client-go's transport errors are *url.Error, a net.Error: refused,
	// reset, timed out (the node's load balancer closes connections when
	// it reaches no server).
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded)
}

// fromLocalCopy is the object's local copy when no server answered the
// read that failed with err.
func (m *Manager) fromLocalCopy(kind, ns, name string, err error) (map[string][]byte, bool) {
	if m.copies == nil || !unreachable(err) {
		return nil, false
	}
	data, ok, cerr := m.copies.get(kind, ns, name)
	if cerr != nil {
		m.log.Warn("local copy unusable", "object", objectID(kind, ns, name), "err", cerr)
		return nil, false
	}
	if ok {
		m.log.Debug("no server answers: using the local copy", "object", objectID(kind, ns, name), "err", err)
	}
	return data, ok
}

// offlineCopy is the object's local copy while the node knows that no
// server answers (a read would only wait for retries to fail).
func (m *Manager) offlineCopy(kind, ns, name string) (map[string][]byte, bool) {
	if m.copies == nil || m.cfg.Offline == nil || !m.cfg.Offline() {
		return nil, false
	}
	data, ok, err := m.copies.get(kind, ns, name)
	if err != nil {
		m.log.Warn("local copy unusable", "object", objectID(kind, ns, name), "err", err)
		return nil, false
	}
	return data, ok
}

func (m *Manager) removeLocalCopy(kind, ns, name string) {
	if m.copies != nil {
		m.copies.remove(kind, ns, name)
	}
}

func (m *Manager) keepLocalCopy(kind, ns, name string, data map[string][]byte) {
	if m.copies == nil {
		return
	}
	if err := m.copies.put(kind, ns, name, data); err != nil {
		m.log.Warn("keep a local copy failed; the node cannot set up this volume while no server answers", "err", err)
	}
}
