// Package kubelettest builds container images inside tests and serves them
// from an in-process registry on loopback, so container tests need no
// internet: a busybox layer (from the host's busybox-static) and a layer
// with testprog, a static Go program whose behaviour tests pick by argument.
package kubelettest

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
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
var busyboxApplets = []string{"sh", "echo", "cat", "ls", "sleep", "id", "hostname", "true", "false", "touch", "mkdir", "rm", "env", "nc", "wget", "httpd", "ps", "kill", "head", "tail", "grep", "printf", "test", "date", "whoami", "stat", "mount", "df", "dd", "seq", "tee", "wc", "nslookup", "ping", "timeout", "ip", "ifconfig", "route"}

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

func tarLayer(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, Size: int64(len(e.body))}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

var (
	testprogOnce sync.Once
	testprogBin  []byte
	testprogErr  error
)

// testprog builds the test program once per process.
func testprog() ([]byte, error) {
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
		return nil, fmt.Errorf("build testprog: %w", testprogErr)
	}
	return testprogBin, nil
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// Image returns the test image (see BuildImage), skipping the test when
// busybox-static is missing.
func Image(t testing.TB) v1.Image {
	t.Helper()
	if _, err := busyboxPath(); err != nil {
		t.Skip("needs busybox-static (apt-get install busybox-static) for the test image")
	}
	img, err := BuildImage()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// BuildImage builds the test image: busybox (sh and applets in /bin) plus
// /testprog, with /etc/passwd naming root and nobody (65534), and
// cmd = ["/testprog", "sleep", "3600"].
func BuildImage() (v1.Image, error) {
	bbPath, err := busyboxPath()
	if err != nil {
		return nil, fmt.Errorf("a statically linked busybox is needed (apt-get install busybox-static)")
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, err
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
	prog, err := testprog()
	if err != nil {
		return nil, err
	}
	baseLayer, err := tarLayer(base)
	if err != nil {
		return nil, err
	}
	progLayer, err := tarLayer([]tarEntry{{name: "testprog", typ: tar.TypeReg, mode: 0o755, body: prog}})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, baseLayer, progLayer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtimeArch()
	cfg.Config.Cmd = []string{"/testprog", "sleep", "3600"}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"}
	return mutate.ConfigFile(img, cfg)
}

// Registry is an in-process registry on loopback.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:41234.
	Host string
}

// StartRegistry serves an empty registry until the test ends.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	r, stop := NewRegistry()
	t.Cleanup(stop)
	return r
}

// NewRegistry serves an empty registry until stop is called.
func NewRegistry() (r *Registry, stop func()) {
	srv := httptest.NewServer(registry.New(registry.Logger(discardLogger())))
	return &Registry{Host: strings.TrimPrefix(srv.URL, "http://")}, srv.Close
}

// Push uploads img as repo:tag and returns the full reference.
func (r *Registry) Push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref, err := r.Upload(repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Upload is Push returning its error.
func (r *Registry) Upload(repoTag string, img v1.Image) (string, error) {
	ref := r.Host + "/" + repoTag
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
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

// TestprogBinary returns the test program, built for this machine.
func TestprogBinary() ([]byte, error) { return testprog() }
