package volumes

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	cases := []struct {
		path    string
		typ     corev1.HostPathType
		wantErr string
	}{
		{filepath.Join(dir, "anything"), corev1.HostPathUnset, ""},
		{dir, corev1.HostPathDirectory, ""},
		{file, corev1.HostPathDirectory, "hostPath type check failed: " + file + " is not a directory"},
		{filepath.Join(dir, "missing"), corev1.HostPathDirectory, "is not a directory"},
		{filepath.Join(dir, "new/dir"), corev1.HostPathDirectoryOrCreate, ""},
		{file, corev1.HostPathDirectoryOrCreate, "is not a directory"},
		{file, corev1.HostPathFile, ""},
		{dir, corev1.HostPathFile, "is not a file"},
		{filepath.Join(dir, "made/file"), corev1.HostPathFileOrCreate, ""},
		{sock, corev1.HostPathSocket, ""},
		{file, corev1.HostPathSocket, "is not a socket file"},
		{"/dev/null", corev1.HostPathCharDev, ""},
		{file, corev1.HostPathCharDev, "is not a character device"},
		{"/dev/null", corev1.HostPathBlockDev, "is not a block device"},
		{"relative", corev1.HostPathUnset, "must be absolute"},
	}
	m := New(Config{Root: t.TempDir()})
	for _, c := range cases {
		pod := newPod("uid-host", corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: c.path, Type: ptr(c.typ)}}})
		vols, err := m.SetUp(context.Background(), pod)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s %q: %v", c.path, c.typ, err)
			} else if vols["h"].Path != c.path {
				t.Errorf("%s %q: path %s", c.path, c.typ, vols["h"].Path)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s %q: err = %v, want %q", c.path, c.typ, err, c.wantErr)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, "new/dir")); err != nil || !info.IsDir() || info.Mode().Perm() != 0o755 {
		t.Errorf("DirectoryOrCreate: %v %v", info, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "made/file")); err != nil || !info.Mode().IsRegular() {
		t.Errorf("FileOrCreate: %v", err)
	}
}

func TestContainerMounts(t *testing.T) {
	m := New(Config{Root: t.TempDir()})
	outside := t.TempDir()
	pod := newPod("uid-mounts",
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: outside}}})
	vols, err := m.SetUp(context.Background(), pod)
	if err != nil {
		t.Fatal(err)
	}
	data := vols["data"].Path
	if info, err := os.Stat(data); err != nil || info.Mode().Perm() != 0o777 {
		t.Fatalf("emptyDir: %v %v", info, err)
	}
	if err := os.Symlink(outside, filepath.Join(data, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("logs", filepath.Join(data, "inside")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"POD_NAME": "web-1"}

	c := &corev1.Container{Name: "app", VolumeMounts: []corev1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "data", MountPath: "/logs", SubPathExpr: "logs/$(POD_NAME)", ReadOnly: true},
		{Name: "data", MountPath: "/via-link", SubPath: "inside"},
		{Name: "host", MountPath: "/host", SubPath: "a/b"},
	}}
	got, err := ContainerMounts(pod, c, vols, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Source: data, Destination: "/data"},
		{Source: filepath.Join(data, "logs/web-1"), Destination: "/logs", ReadOnly: true},
		{Source: filepath.Join(data, "logs"), Destination: "/via-link"},
		{Source: filepath.Join(outside, "a/b"), Destination: "/host"},
	}
	if len(got) != len(want) {
		t.Fatalf("mounts = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
		if info, err := os.Stat(got[i].Source); err != nil || !info.IsDir() {
			t.Errorf("mount %d source %s: %v", i, got[i].Source, err)
		}
	}

	for _, bad := range []corev1.VolumeMount{
		{Name: "data", MountPath: "/x", SubPath: "../../etc"},
		{Name: "data", MountPath: "/x", SubPath: "ok/../../etc"},
		{Name: "data", MountPath: "/x", SubPath: "/etc"},
		{Name: "data", MountPath: "/x", SubPath: "escape"},
		{Name: "data", MountPath: "/x", SubPath: "escape/sub"},
		{Name: "data", MountPath: "/x", SubPathExpr: "$(UP)/etc"},
		{Name: "nope", MountPath: "/x"},
	} {
		env := map[string]string{"UP": ".."}
		c := &corev1.Container{Name: "app", VolumeMounts: []corev1.VolumeMount{bad}}
		if ms, err := ContainerMounts(pod, c, vols, env); err == nil {
			t.Errorf("%+v accepted: %+v", bad, ms)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); err == nil {
		t.Error("a refused subPath created a directory outside the volume")
	}
}

func TestEmptyDirMemory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
	m := New(Config{Root: t.TempDir()})
	size := resource.MustParse("8Mi")
	pod := newPod("uid-tmpfs", corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: &size}}})
	for range 2 { // idempotent: mounted once
		if _, err := m.SetUp(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
	}
	vols, _ := m.SetUp(context.Background(), pod)
	var st unix.Statfs_t
	if err := unix.Statfs(vols["mem"].Path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("emptyDir medium Memory is not a tmpfs (fs type %#x)", st.Type)
	}
	if got := int64(st.Blocks) * st.Bsize; got != size.Value() {
		t.Errorf("tmpfs size %d, want %d", got, size.Value())
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Count(string(mi), vols["mem"].Path+" ") != 1 {
		t.Errorf("want exactly one tmpfs mount on %s after repeated SetUp", vols["mem"].Path)
	}
	if err := m.TearDown(context.Background(), "uid-tmpfs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.Root, "uid-tmpfs")); !os.IsNotExist(err) {
		t.Errorf("pod dir left after TearDown: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), vols["mem"].Path) {
		t.Error("tmpfs still mounted after TearDown")
	}
}
