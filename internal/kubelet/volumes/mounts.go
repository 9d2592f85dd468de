package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"skiff/internal/kubelet/downward"
)

// Mount is one bind mount for a container: Source on the host at
// Destination in the container.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// ContainerMounts resolves c.VolumeMounts against vols (from SetUp). A
// subPathExpr is expanded with $(VAR) references from env (the
// container's resolved environment); a subPath must stay inside its volume,
// also through symlinks, and a missing subPath directory is created. A
// mount is read-only if the mount or the volume says so.
func ContainerMounts(pod *corev1.Pod, c *corev1.Container, vols map[string]Volume, env map[string]string) ([]Mount, error) {
	out := make([]Mount, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		vol, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %q: volumeMount %q: no volume of that name in pod %s/%s", c.Name, vm.Name, pod.Namespace, pod.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = downward.Expand(vm.SubPathExpr, env)
		}
		src := vol.Path
		if sub != "" {
			var err error
			if src, err = resolveSubPath(vol.Path, sub); err != nil {
				return nil, fmt.Errorf("container %q: volumeMount %q: subPath %q: %w", c.Name, vm.Name, sub, err)
			}
		}
		out = append(out, Mount{Source: src, Destination: vm.MountPath, ReadOnly: vm.ReadOnly || vol.ReadOnly})
	}
	return out, nil
}

// resolveSubPath walks sub inside root one element at a time, following
// symlinks only while they stay inside root and creating missing
// directories, and returns the resolved host path.
//
// This is a check at setup time; a container that can write to the volume
// could swap a directory for a symlink afterwards (the kubelet guards that
// with file descriptors; skiff does not yet).
func resolveSubPath(root, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", errors.New("must be a relative path")
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", errors.New("must not contain '..'")
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve volume path: %w", err)
	}
	inside := func(p string) bool {
		return p == realRoot || strings.HasPrefix(p, realRoot+string(filepath.Separator))
	}
	cur := realRoot
	parts := strings.Split(filepath.Clean(sub), string(filepath.Separator))
	for i, part := range parts {
		if part == "." || part == "" {
			continue
		}
		next := filepath.Join(cur, part)
		info, err := os.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Like the kubelet, a missing subPath is created as a
			// directory, traversable by any container user.
			if err := os.Mkdir(next, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("create: %w", err)
			}
			cur = next
			continue
		case err != nil:
			return "", err
		case info.Mode()&fs.ModeSymlink != 0:
			resolved, err := filepath.EvalSymlinks(next)
			if err != nil {
				return "", fmt.Errorf("resolve symlink %s: %w", part, err)
			}
			if !inside(resolved) {
				return "", errors.New("resolves outside the volume")
			}
			next = resolved
			if info, err = os.Stat(next); err != nil {
				return "", err
			}
		}
		if !info.IsDir() && i < len(parts)-1 {
			return "", fmt.Errorf("%s is not a directory", part)
		}
		cur = next
	}
	if !inside(cur) {
		return "", errors.New("resolves outside the volume")
	}
	return cur, nil
}
