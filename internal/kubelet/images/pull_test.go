package images

import (
	"archive/tar"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

func TestNormalizeRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"busybox":                     "docker.io/library/busybox:latest",
		"busybox:1.36":                "docker.io/library/busybox:1.36",
		"docker.io/library/busybox":   "docker.io/library/busybox:latest",
		"index.docker.io/foo/bar:v1":  "docker.io/foo/bar:v1",
		"127.0.0.1:5000/test:v1":      "127.0.0.1:5000/test:v1",
		"ghcr.io/org/app@" + d:        "ghcr.io/org/app@" + d,
		"ghcr.io/org/app:v2@" + d:     "ghcr.io/org/app@" + d,
		"registry.example:5000/a/b/c": "registry.example:5000/a/b/c:latest",
	} {
		got, err := NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a b"} {
		if _, err := NormalizeRef(bad); err == nil {
			t.Errorf("NormalizeRef(%q) succeeded, want error", bad)
		}
	}
}

func TestPullUnpacksLayersAndSharesThem(t *testing.T) {
	reg := newRegistry(t, nil)
	base := layerOf(t,
		dir("etc/"),
		file("etc/hello", "hello world\n"),
		ent{name: "etc/hello-link", typ: tar.TypeLink, link: "etc/hello"},
		ent{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "bin/tool", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o4755},
		ent{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/tool"},
	)
	top := layerOf(t, file("etc/app.conf", "port=80\n"))
	other := layerOf(t, file("srv/other", "other\n"))
	img1 := imageOf(t, "/bin/tool", base, top)
	img2 := imageOf(t, "/bin/other", base, other)
	push(t, reg.host+"/test:v1", img1)
	push(t, reg.host+"/other:v1", img2)

	dataDir := t.TempDir()
	s := openStore(t, dataDir, Options{})
	var events []Progress
	var mu sync.Mutex
	got, err := s.Pull(ctx(t), reg.host+"/test:v1", PullOptions{Progress: func(p Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configName(t, img1) {
		t.Errorf("ID = %s, want config digest %s", got.ID, configName(t, img1))
	}
	if want := reg.host + "/test:v1"; len(got.RepoTags) != 1 || got.RepoTags[0] != want {
		t.Errorf("RepoTags = %v, want [%s]", got.RepoTags, want)
	}
	md, _ := img1.Digest()
	if want := reg.host + "/test@" + md.String(); len(got.RepoDigests) != 1 || got.RepoDigests[0] != want {
		t.Errorf("RepoDigests = %v, want [%s]", got.RepoDigests, want)
	}
	if len(got.Config.Cmd) != 1 || got.Config.Cmd[0] != "/bin/tool" || got.Config.WorkingDir != "/work" {
		t.Errorf("Config = %+v", got.Config)
	}
	if len(got.Layers) != 2 {
		t.Fatalf("Layers = %v", got.Layers)
	}
	if got.Size <= 0 {
		t.Errorf("Size = %d", got.Size)
	}
	if b, err := os.ReadFile(filepath.Join(got.Layers[0], "etc/hello")); err != nil || string(b) != "hello world\n" {
		t.Errorf("etc/hello = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(got.Layers[1], "etc/app.conf")); err != nil || string(b) != "port=80\n" {
		t.Errorf("etc/app.conf = %q, %v", b, err)
	}
	a, _ := os.Stat(filepath.Join(got.Layers[0], "etc/hello"))
	b, err := os.Stat(filepath.Join(got.Layers[0], "etc/hello-link"))
	if err != nil || !os.SameFile(a, b) {
		t.Errorf("etc/hello-link is not a hard link of etc/hello (%v)", err)
	}
	if l, err := os.Readlink(filepath.Join(got.Layers[0], "bin/sh")); err != nil || l != "/bin/tool" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(got.Layers[0], "bin/tool")); err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool mode = %v, %v; want setuid 0755", fi.Mode(), err)
	}
	if !strings.HasPrefix(got.Layers[0], filepath.Join(dataDir, "layers")+"/") {
		t.Errorf("layer dir %s not under %s/layers", got.Layers[0], dataDir)
	}
	var complete bool
	for _, e := range events {
		complete = complete || (e.Complete && e.Layer == "")
	}
	if !complete {
		t.Errorf("no final Complete progress event in %+v", events)
	}

	// Pulling the same image again downloads no blob at all.
	before := reg.totalBlobGets()
	if _, err := s.Pull(ctx(t), reg.host+"/test:v1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := reg.totalBlobGets() - before; n != 0 {
		t.Errorf("second pull fetched %d blobs, want 0", n)
	}

	// A second image sharing the base layer reuses it.
	got2, err := s.Pull(ctx(t), reg.host+"/other:v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.blobGets(digestOf(t, base)); n != 1 {
		t.Errorf("shared base layer downloaded %d times, want 1", n)
	}
	if got2.Layers[0] != got.Layers[0] {
		t.Errorf("shared layer stored twice: %s vs %s", got2.Layers[0], got.Layers[0])
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "layers"))
	if len(entries) != 3 {
		t.Errorf("layers dir has %d entries, want 3", len(entries))
	}

	// Lookup by ref spelling, ID, and short ID.
	for _, ref := range []string{reg.host + "/test:v1", got.ID, strings.TrimPrefix(got.ID, "sha256:")[:12], got.RepoDigests[0]} {
		if l, err := s.Lookup(ref); err != nil || l.ID != got.ID {
			t.Errorf("Lookup(%q) = %v, %v", ref, l, err)
		}
	}
	if _, err := s.Lookup("nothere:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(missing) err = %v, want ErrNotFound", err)
	}

	// The store survives a restart.
	s.Close()
	s2 := openStore(t, dataDir, Options{})
	l, err := s2.Lookup(reg.host + "/test:v1")
	if err != nil || l.ID != got.ID || len(l.Layers) != 2 {
		t.Fatalf("after reopen Lookup = %+v, %v", l, err)
	}
	list, err := s2.List()
	if err != nil || len(list) != 2 {
		t.Errorf("after reopen List = %d images, %v", len(list), err)
	}
}

func TestPullTagMovesToNewImage(t *testing.T) {
	reg := newRegistry(t, nil)
	s := openStore(t, t.TempDir(), Options{})
	old := imageOf(t, "old", layerOf(t, file("a", "1")))
	push(t, reg.host+"/app:latest", old)
	if _, err := s.Pull(ctx(t), reg.host+"/app", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	newer := imageOf(t, "new", layerOf(t, file("a", "2")))
	push(t, reg.host+"/app:latest", newer)
	got, err := s.Pull(ctx(t), reg.host+"/app:latest", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configName(t, newer) {
		t.Fatalf("pulled %s, want the new image", got.ID)
	}
	prev, err := s.Lookup(configName(t, old))
	if err != nil {
		t.Fatal(err)
	}
	if len(prev.RepoTags) != 0 {
		t.Errorf("old image still tagged %v", prev.RepoTags)
	}
}

func TestPullConcurrentSameImage(t *testing.T) {
	reg := newRegistry(t, nil)
	l1, l2 := layerOf(t, file("one", "1")), layerOf(t, file("two", "2"))
	img := imageOf(t, "x", l1, l2)
	push(t, reg.host+"/conc:v1", img)
	s := openStore(t, t.TempDir(), Options{})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	ids := make([]string, 4)
	for i := range 4 {
		wg.Go(func() {
			got, err := s.Pull(ctx(t), reg.host+"/conc:v1", PullOptions{})
			errs[i] = err
			if err == nil {
				ids[i] = got.ID
			}
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || ids[i] != configName(t, img) {
			t.Errorf("pull %d: id %s, err %v", i, ids[i], errs[i])
		}
	}
	for _, l := range []v1.Layer{l1, l2} {
		if n := reg.blobGets(digestOf(t, l)); n != 1 {
			t.Errorf("layer downloaded %d times by concurrent pulls, want 1", n)
		}
	}
}

func TestPullMissingTagKeepsRegistryMessage(t *testing.T) {
	reg := newRegistry(t, nil)
	push(t, reg.host+"/test:v1", imageOf(t, "x", layerOf(t, file("a", "b"))))
	s := openStore(t, t.TempDir(), Options{})
	_, err := s.Pull(ctx(t), reg.host+"/test:nope", PullOptions{})
	var pe *PullError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *PullError", err, err)
	}
	if !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || !strings.Contains(err.Error(), reg.host+"/test:nope") {
		t.Errorf("error %q lacks the registry's MANIFEST_UNKNOWN or the ref", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("failed pull left images %v", list)
	}
}

func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPullWithAuth(t *testing.T) {
	reg := newRegistry(t, basicAuth("alice", "s3cret"))
	img := imageOf(t, "x", layerOf(t, file("a", "b")))
	push(t, reg.host+"/private:v1", img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	ref := reg.host + "/private:v1"

	s := openStore(t, t.TempDir(), Options{})
	_, err := s.Pull(ctx(t), ref, PullOptions{})
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("pull without credentials: err = %v, want UNAUTHORIZED", err)
	}

	wrong := fmt.Sprintf(`{"auths":{"%s":{"username":"alice","password":"nope"}}}`, reg.host)
	if _, err := s.Pull(ctx(t), ref, PullOptions{DockerConfigs: [][]byte{[]byte(wrong)}}); err == nil {
		t.Fatal("pull with wrong password succeeded")
	}

	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	secret := fmt.Sprintf(`{"auths":{"http://%s":{"auth":"%s"}}}`, reg.host, auth)
	got, err := s.Pull(ctx(t), ref, PullOptions{DockerConfigs: [][]byte{[]byte(`{"auths":{"other.example":{"auth":"eDp5"}}}`), []byte(secret)}})
	if err != nil {
		t.Fatalf("pull with dockerconfigjson secret: %v", err)
	}
	if got.ID != configName(t, img) {
		t.Errorf("ID = %s", got.ID)
	}

	// Legacy .dockercfg and node-level credentials from the registries file.
	legacy := fmt.Sprintf(`{"%s":{"username":"alice","password":"s3cret"}}`, reg.host)
	if _, err := s.Pull(ctx(t), ref, PullOptions{DockerConfigs: [][]byte{[]byte(legacy)}}); err != nil {
		t.Errorf("pull with .dockercfg secret: %v", err)
	}
	s2 := openStore(t, t.TempDir(), Options{Registries: &Registries{Configs: map[string]RegistryConfig{
		reg.host: {Auth: &RegistryAuth{Username: "alice", Password: "s3cret"}},
	}}})
	if _, err := s2.Pull(ctx(t), ref, PullOptions{}); err != nil {
		t.Errorf("pull with registries.yaml auth: %v", err)
	}
}

func TestPullUsesMirror(t *testing.T) {
	mirror := newRegistry(t, nil)
	img := imageOf(t, "mirrored", layerOf(t, file("m", "m")))
	push(t, mirror.host+"/library/mirrored:v1", img)
	regsFile := filepath.Join(t.TempDir(), "registries.yaml")
	yaml := fmt.Sprintf("mirrors:\n  docker.io:\n    endpoint:\n      - \"http://127.0.0.1:1\"\n      - \"http://%s\"\n", mirror.host)
	if err := os.WriteFile(regsFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	regs, err := LoadRegistries(regsFile)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir(), Options{Registries: regs})
	got, err := s.Pull(ctx(t), "mirrored:v1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != configName(t, img) || len(got.RepoTags) != 1 || got.RepoTags[0] != "docker.io/library/mirrored:v1" {
		t.Errorf("got %s %v", got.ID, got.RepoTags)
	}
	if _, err := s.Lookup("docker.io/library/mirrored:v1"); err != nil {
		t.Error(err)
	}
}

func TestLoadRegistries(t *testing.T) {
	r, err := LoadRegistries(filepath.Join(t.TempDir(), "missing.yaml"))
	if err != nil || r == nil || len(r.Mirrors) != 0 {
		t.Fatalf("missing file: %+v, %v", r, err)
	}
	p := filepath.Join(t.TempDir(), "r.yaml")
	os.WriteFile(p, []byte("configs:\n  \"registry.example:5000\":\n    auth: {username: u, password: p}\n    insecure: true\n"), 0o600)
	r, err = LoadRegistries(p)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.config("registry.example:5000")
	if !ok || !c.Insecure || c.Auth.Username != "u" {
		t.Errorf("config = %+v %v", c, ok)
	}
	os.WriteFile(p, []byte("mirrors:\n  docker.io:\n    endpoints: [x]\n"), 0o600)
	if _, err := LoadRegistries(p); err == nil {
		t.Error("typo'd key accepted")
	}
}

func TestPullSelectsPlatformFromIndex(t *testing.T) {
	reg := newRegistry(t, nil)
	amd := imageFor(t, v1.Platform{OS: "linux", Architecture: "amd64"}, "amd", layerOf(t, file("arch", "amd64")))
	arm := imageFor(t, v1.Platform{OS: "linux", Architecture: "arm64"}, "arm", layerOf(t, file("arch", "arm64")))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref := reg.host + "/multi:v1"
	r, _ := parseRef(ref)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	for arch, want := range map[string]v1.Image{"amd64": amd, "arm64": arm} {
		s := openStore(t, t.TempDir(), Options{Platform: v1.Platform{OS: "linux", Architecture: arch}})
		got, err := s.Pull(ctx(t), ref, PullOptions{})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if got.ID != configName(t, want) {
			t.Errorf("%s node got image %s (cmd %v)", arch, got.ID, got.Config.Cmd)
		}
		if b, _ := os.ReadFile(filepath.Join(got.Layers[0], "arch")); string(b) != arch {
			t.Errorf("%s node unpacked %q", arch, b)
		}
		if want := reg.host + "/multi@" + idxDigest.String(); got.RepoDigests[0] != want {
			t.Errorf("RepoDigests = %v, want index digest %s", got.RepoDigests, want)
		}
	}
	s := openStore(t, t.TempDir(), Options{Platform: v1.Platform{OS: "linux", Architecture: "riscv64"}})
	if _, err := s.Pull(ctx(t), ref, PullOptions{}); err == nil || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("pull for a missing platform: err = %v", err)
	}
}

func TestPullRejectsEscapingLayers(t *testing.T) {
	outside := t.TempDir()
	cases := map[string][]ent{
		"dotdot":        {file("../escape", "x")},
		"deep dotdot":   {dir("a/"), file("a/../../escape", "x")},
		"absolute":      {file(filepath.Join(outside, "escape"), "x")},
		"via symlink":   {{name: "link", typ: tar.TypeSymlink, link: outside}, file("link/escape", "x")},
		"hardlink out":  {{name: "h", typ: tar.TypeLink, link: "../../../../etc/passwd"}},
		"whiteout dots": {file(".wh...", "")},
	}
	reg := newRegistry(t, nil)
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			dataDir := t.TempDir()
			s := openStore(t, dataDir, Options{})
			ref := reg.host + "/evil:" + strings.ReplaceAll(name, " ", "-")
			push(t, ref, imageOf(t, "x", layerOf(t, ents...)))
			_, err := s.Pull(ctx(t), ref, PullOptions{})
			if !errors.Is(err, errUnsafePath) {
				t.Fatalf("pull of a malicious layer: err = %v, want unsafe path error", err)
			}
			if _, err := os.Lstat(filepath.Join(outside, "escape")); err == nil {
				t.Fatal("layer wrote outside its root")
			}
			if _, err := os.Lstat(filepath.Join(dataDir, "escape")); err == nil {
				t.Fatal("layer wrote into the data dir")
			}
			if entries, _ := os.ReadDir(filepath.Join(dataDir, "layers")); len(entries) != 0 {
				t.Errorf("failed unpack left layer dirs %v", entries)
			}
		})
	}
}

func TestPullWhiteoutsBecomeOverlayForm(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts need root (mknod of a 0/0 char device, trusted.* xattrs)")
	}
	reg := newRegistry(t, nil)
	base := layerOf(t, dir("gone/"), file("gone/f", "x"), dir("opaque/"), file("opaque/old", "old"))
	upper := layerOf(t, file(".wh.gone", ""), dir("opaque/"), file("opaque/.wh..wh..opq", ""), file("opaque/new", "new"))
	push(t, reg.host+"/wh:v1", imageOf(t, "x", base, upper))
	s := openStore(t, t.TempDir(), Options{})
	got, err := s.Pull(ctx(t), reg.host+"/wh:v1", PullOptions{})
	if err != nil {
		if strings.Contains(err.Error(), "trusted.overlay") {
			t.Skipf("filesystem lacks trusted xattrs: %v", err)
		}
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(got.Layers[1], "gone"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout gone: mode %o rdev %d, want char device 0/0", st.Mode, st.Rdev)
	}
	if _, err := os.Lstat(filepath.Join(got.Layers[1], ".wh.gone")); err == nil {
		t.Error(".wh.gone marker left in the layer")
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(got.Layers[1], "opaque"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr = %q, %v", buf[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(got.Layers[1], "opaque/.wh..wh..opq")); err == nil {
		t.Error("opaque marker left in the layer")
	}
	if b, _ := os.ReadFile(filepath.Join(got.Layers[1], "opaque/new")); string(b) != "new" {
		t.Errorf("opaque/new = %q", b)
	}
}
