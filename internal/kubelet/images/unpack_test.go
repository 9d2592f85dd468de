package images

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

func TestEnsureLayerVerifiesDiffIDAndAcceptsZstd(t *testing.T) {
	dataDir := t.TempDir()
	s := openStore(t, dataDir, Options{})
	plain := tarBytes(t, file("z", "zstd content"))
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zbuf.Bytes())), nil }

	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	if _, err := s.ensureLayer(ctx(t), wrong, open, nil); err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Fatalf("wrong diffID: err = %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "layers")); len(entries) != 0 {
		t.Fatalf("a layer failing verification was kept: %v", entries)
	}

	sum := sha256.Sum256(plain)
	right := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	cached, err := s.ensureLayer(ctx(t), right, open, nil)
	if err != nil || cached {
		t.Fatalf("ensureLayer = cached %v, %v", cached, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.layerDir(right.String()), "z")); string(b) != "zstd content" {
		t.Errorf("content %q", b)
	}
	if cached, err := s.ensureLayer(ctx(t), right, open, nil); err != nil || !cached {
		t.Errorf("second ensureLayer = cached %v, %v", cached, err)
	}
}

func TestOpenClearsInterruptedWork(t *testing.T) {
	dataDir := t.TempDir()
	s := openStore(t, dataDir, Options{})
	s.Close()
	half := filepath.Join(dataDir, "tmp", "abc-123")
	os.MkdirAll(half, 0o700)
	os.WriteFile(filepath.Join(half, "partial"), []byte("x"), 0o600)
	openStore(t, dataDir, Options{})
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Errorf("half-unpacked layer survived Open: %v", err)
	}
}
