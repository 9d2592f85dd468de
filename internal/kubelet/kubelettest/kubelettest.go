// Package kubelettest builds container images inside tests and serves them
// from an in-process registry on loopback, so container tests need no
// internet: a busybox layer (from the host's busybox-static) and a layer
// with testprog, a static Go program whose behaviour tests pick by argument.
package kubelettest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// busyboxApplets are linked to /bin/busybox in the image.
var busyboxApplets = []string{"sh", "echo", "cat", "ls", "sleep", "id", "hostname", "true", "false", "touch", "mkdir", "rm", "env", "nc", "wget", "httpd", "ps", "kill", "head", "tail", "grep", "printf", "test", "date", "whoami", "stat", "mount", "df", "dd", "seq", "tee", "wc"}

// RequireRoot skips the test unless it runs as root with busybox-static.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: containers, namespaces and cgroups (CI runs as root)")
	}
	if _, err := busyboxPath(); err != nil {
		t.Skip("needs busybox-static (apt-get install busybox-static) for the test image")
	}
}

// busyboxPath finds a statically linked busybox (one without an ELF
// interpreter), which runs in an image with nothing else in it.
func busyboxPath() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

type tarEntry struct {
	name, link string
	mode       int64
	body       []byte
	typ        byte
}

func tarLayer(t testing.TB, entries []tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	testprogOnce sync.Once
	testprogBin  []byte
	testprogErr  error
)

// testprog builds the test program once per test binary.
func testprog(t testing.TB) []byte {
	t.Helper()
	testprogOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testprog")
		if err != nil {
			testprogErr = err
			return
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, "testprog")
		cmd := exec.Command("go", "build", "-o", out, "skiff/internal/kubelet/kubelettest/testprog")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			testprogErr = &buildError{string(b), err}
			return
		}
		testprogBin, testprogErr = os.ReadFile(out)
	})
	if testprogErr != nil {
		t.Fatalf("build testprog: %v", testprogErr)
	}
	return testprogBin
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Image returns the test image: busybox (sh and applets in /bin) plus
// /testprog, with /etc/passwd naming root and nobody (65534), and
// cmd = ["/testprog", "sleep", "3600"].
func Image(t testing.TB) v1.Image {
	t.Helper()
	bbPath, err := busyboxPath()
	if err != nil {
		t.Skip("needs busybox-static")
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		t.Fatal(err)
	}
	base := []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, body: bb},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, body: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, body: []byte("root:x:0:\nnogroup:x:65534:\n")},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "root/", typ: tar.TypeDir, mode: 0o700},
	}
	for _, a := range busyboxApplets {
		base = append(base, tarEntry{name: "bin/" + a, typ: tar.TypeSymlink, link: "busybox", mode: 0o777})
	}
	prog := []tarEntry{{name: "testprog", typ: tar.TypeReg, mode: 0o755, body: testprog(t)}}
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, base), tarLayer(t, prog))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtimeArch()
	cfg.Config.Cmd = []string{"/testprog", "sleep", "3600"}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Registry is an in-process registry on loopback.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:41234.
	Host string
}

// StartRegistry serves an empty registry until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	t.Cleanup(srv.Close)
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}
}

// Push uploads img as repo:tag and returns the full reference.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := r.Host + "/" + repoTag
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// SaveTarball writes img as a docker-save tarball tagged ref.
func SaveTarball(t testing.TB, path, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}
