package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func dockerTar(t *testing.T, imgs map[string]v1.Image) []byte {
	t.Helper()
	m := map[name.Reference]v1.Image{}
	for ref, img := range imgs {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		m[r] = img
	}
	var buf bytes.Buffer
	if err := tarball.MultiRefWrite(m, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportDockerArchive(t *testing.T) {
	shared := layerOf(t, file("etc/os-release", "ID=test\n"))
	a := imageOf(t, "a", shared, layerOf(t, file("a", "a")))
	b := imageOf(t, "b", shared)
	data := dockerTar(t, map[string]v1.Image{"example.com/a:v1": a, "b:latest": b, "example.com/a:v2": a})
	s := openStore(t, t.TempDir(), Options{})
	var done []string
	imgs, err := s.Import(ctx(t), bytes.NewReader(data), func(p Progress) {
		if p.Complete && p.Layer == "" {
			done = append(done, p.Ref)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("imported %d images, want 2", len(imgs))
	}
	if len(done) != 2 {
		t.Errorf("image completion events: %v", done)
	}
	got, err := s.Lookup("example.com/a:v2")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configName(t, a) || len(got.RepoTags) != 2 || got.Config.Cmd[0] != "a" {
		t.Errorf("a = %+v", got)
	}
	if b2, err := s.Lookup("docker.io/library/b"); err != nil || b2.ID != configName(t, b) {
		t.Errorf("b: %+v %v", b2, err)
	}
	if content, _ := os.ReadFile(filepath.Join(got.Layers[1], "a")); string(content) != "a" {
		t.Errorf("layer content %q", content)
	}

	// The same archive gzip-compressed imports too (and reuses the layers).
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	s2 := openStore(t, t.TempDir(), Options{})
	if imgs, err := s2.Import(ctx(t), &gz, nil); err != nil || len(imgs) != 2 {
		t.Fatalf("gzip import: %d images, %v", len(imgs), err)
	}

	if _, err := s.Import(ctx(t), bytes.NewReader(tarBytes(t, file("hello", "x"))), nil); err == nil ||
		!strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("import of a non-image tar: err = %v", err)
	}
}

func TestImportOCILayout(t *testing.T) {
	img := imageOf(t, "oci", layerOf(t, file("oci", "yes")))
	untagged := imageOf(t, "untagged", layerOf(t, file("u", "u")))
	lp, err := layout.Write(t.TempDir(), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
		annotationContainerdName: "registry.example/team/oci:v3",
		annotationRefName:        "v3",
	})); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(untagged, layout.WithAnnotations(map[string]string{annotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := string(lp)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, _ := d.Info()
		hdr, _ := tar.FileInfoHeader(fi, "")
		hdr.Name = rel
		tw.WriteHeader(hdr)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			tw.Write(b)
		}
		return nil
	})
	tw.Close()

	s := openStore(t, t.TempDir(), Options{})
	imgs, err := s.Import(ctx(t), &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("imported %d images, want 2", len(imgs))
	}
	got, err := s.Lookup("registry.example/team/oci:v3")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configName(t, img) || got.Config.Cmd[0] != "oci" {
		t.Errorf("got %+v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(got.Layers[0], "oci")); string(b) != "yes" {
		t.Errorf("layer content %q", b)
	}
	if u, err := s.Lookup(configName(t, untagged)); err != nil || len(u.RepoTags) != 0 {
		t.Errorf("untagged image: %+v %v", u, err)
	}
}

func TestImportDirImportsOnce(t *testing.T) {
	airgap := t.TempDir()
	img := imageOf(t, "air", layerOf(t, file("air", "gap")))
	os.WriteFile(filepath.Join(airgap, "air.tar"), dockerTar(t, map[string]v1.Image{"air:v1": img}), 0o644)
	os.WriteFile(filepath.Join(airgap, "notes.txt"), []byte("not an image"), 0o644)
	dataDir := t.TempDir()
	s := openStore(t, dataDir, Options{})
	imgs, err := s.ImportDir(ctx(t), airgap)
	if err != nil || len(imgs) != 1 || imgs[0].ID != configName(t, img) {
		t.Fatalf("first ImportDir: %v, %v", imgs, err)
	}
	if err := s.Remove("air:v1", nil); err != nil {
		t.Fatal(err)
	}
	if imgs, err := s.ImportDir(ctx(t), airgap); err != nil || len(imgs) != 0 {
		t.Fatalf("second ImportDir imported %d images (err %v), want 0", len(imgs), err)
	}
	s.Close()
	s = openStore(t, dataDir, Options{})
	if imgs, err := s.ImportDir(ctx(t), airgap); err != nil || len(imgs) != 0 {
		t.Fatalf("ImportDir after restart imported %d images (err %v), want 0", len(imgs), err)
	}
	// A changed file is imported again.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(airgap, "air.tar"), later, later)
	if imgs, err := s.ImportDir(ctx(t), airgap); err != nil || len(imgs) != 1 {
		t.Fatalf("ImportDir of a changed file: %d images, %v", len(imgs), err)
	}
	if imgs, err := s.ImportDir(ctx(t), filepath.Join(airgap, "missing")); err != nil || len(imgs) != 0 {
		t.Errorf("missing dir: %v %v", imgs, err)
	}
}

func TestRemove(t *testing.T) {
	shared := layerOf(t, file("shared", "s"))
	own := layerOf(t, file("own", "o"))
	a := imageOf(t, "a", shared, own)
	b := imageOf(t, "b", shared)
	dataDir := t.TempDir()
	s := openStore(t, dataDir, Options{})
	if _, err := s.Import(ctx(t), bytes.NewReader(dockerTar(t, map[string]v1.Image{"a:v1": a, "a:v2": a, "b:v1": b})), nil); err != nil {
		t.Fatal(err)
	}
	aID := configName(t, a)
	inUse := func(id string) bool { return id == aID }

	// One of two tags: only the tag goes, even while in use.
	if err := s.Remove("a:v2", inUse); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup("a:v2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a:v2 still there: %v", err)
	}
	img, err := s.Lookup("a:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("a:v1", inUse); !errors.Is(err, ErrInUse) {
		t.Fatalf("removing an in-use image: err = %v, want ErrInUse", err)
	}
	if err := s.Remove(aID, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(aID); !errors.Is(err, ErrNotFound) {
		t.Errorf("a still there: %v", err)
	}
	if _, err := os.Stat(img.Layers[1]); !os.IsNotExist(err) {
		t.Errorf("a's own layer not deleted: %v", err)
	}
	if _, err := os.Stat(img.Layers[0]); err != nil {
		t.Errorf("layer shared with b was deleted: %v", err)
	}
	if err := s.Remove("a:v1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing a missing image: %v", err)
	}
	if err := s.Remove("b:v1", nil); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dataDir, "layers")); len(entries) != 0 {
		t.Errorf("layers left after removing every image: %v", entries)
	}
}

func TestGCRemovesLeastRecentlyUsed(t *testing.T) {
	imgs := map[string]v1.Image{}
	for _, n := range []string{"old", "mid", "new", "busy"} {
		imgs[n+":v1"] = imageOf(t, n, layerOf(t, file(n, strings.Repeat(n, 100))))
	}
	s := openStore(t, t.TempDir(), Options{})
	if _, err := s.Import(ctx(t), bytes.NewReader(dockerTar(t, imgs)), nil); err != nil {
		t.Fatal(err)
	}
	id := func(n string) string { return configName(t, imgs[n+":v1"]) }
	for _, n := range []string{"busy", "old", "mid", "new"} {
		s.MarkUsed(id(n))
		time.Sleep(5 * time.Millisecond) // distinct LastUsed stamps
	}
	busy := func(x string) bool { return x == id("busy") }

	// Asking for one byte removes exactly the least recently used idle image.
	freed, err := s.freeSpace(ctx(t), busy, 1)
	if err != nil || freed <= 0 {
		t.Fatalf("freeSpace = %d, %v", freed, err)
	}
	if _, err := s.Lookup("old:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LRU image old survived: %v", err)
	}
	if _, err := s.Lookup("mid:v1"); err != nil {
		t.Errorf("mid removed too early: %v", err)
	}

	// highPercent 0 forces GC; lowPercent 0 wants everything idle gone.
	freed, err = s.GC(ctx(t), busy, 0, 0)
	if freed <= 0 {
		t.Errorf("GC freed %d", freed)
	}
	if err == nil {
		t.Error("GC reported success although the disk cannot get to 0%")
	}
	list, _ := s.List()
	if len(list) != 1 || list[0].ID != id("busy") {
		t.Errorf("after GC: %v, want only the busy image", list)
	}
	if freed, err := s.GC(ctx(t), busy, 100, 90); freed != 0 || err != nil {
		t.Errorf("GC under threshold: %d, %v", freed, err)
	}
}

func TestGCMinAgeProtectsFreshImages(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{GCMinAge: time.Hour})
	img := imageOf(t, "fresh", layerOf(t, file("f", "f")))
	if _, err := s.Import(ctx(t), bytes.NewReader(dockerTar(t, map[string]v1.Image{"fresh:v1": img})), nil); err != nil {
		t.Fatal(err)
	}
	s.GC(ctx(t), nil, 0, 0)
	if _, err := s.Lookup("fresh:v1"); err != nil {
		t.Errorf("fresh image collected: %v", err)
	}
}

func TestPrintList(t *testing.T) {
	var buf bytes.Buffer
	PrintList(&buf, []*Image{
		{ID: "sha256:" + strings.Repeat("a", 64), RepoTags: []string{"docker.io/library/busybox:latest", "127.0.0.1:5000/bb:v1"}, Size: 4_270_000},
		{ID: "sha256:" + strings.Repeat("b", 64), RepoDigests: []string{"ghcr.io/x/y@sha256:" + strings.Repeat("c", 64)}, Size: 871},
	})
	out := buf.String()
	for _, want := range []string{"IMAGE", "TAG", "IMAGE ID", "SIZE", "docker.io/library/busybox", "latest", "aaaaaaaaaaaa ", "4.27MB", "127.0.0.1:5000/bb", "ghcr.io/x/y", "<none>", "871B"} {
		if !strings.Contains(out, want) {
			t.Errorf("PrintList output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, strings.Repeat("a", 13)) {
		t.Errorf("IMAGE ID not shortened:\n%s", out)
	}
}

func TestProgressPrinterNonTTY(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgressPrinter(&buf)
	for i := int64(0); i <= 1000; i += 100 {
		p(Progress{Ref: "x:v1", Layer: "sha256:1234567890abcdef", Done: i, Total: 1000})
	}
	p(Progress{Ref: "x:v1", Layer: "sha256:1234567890abcdef", Done: 1000, Total: 1000, Complete: true})
	p(Progress{Ref: "x:v1", Complete: true})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "1234567890ab") || !strings.Contains(lines[0], "1kB") || !strings.Contains(lines[1], "done") {
		t.Errorf("non-TTY progress output:\n%s", buf.String())
	}
}
