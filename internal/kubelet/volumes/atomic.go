package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// The layout the kubelet uses for configMap, secret, downwardAPI and
// projected volumes, which applications (and their file watchers) rely on:
//
//	..2026_11_27_10_00_00.123456/   the payload, one directory per version
//	..data -> ..2026_11_27_10_00_00.123456
//	key -> ..data/key               one symlink per top-level name
//
// Readers go through ..data, which is replaced with one rename, so they see
// either the whole old payload or the whole new one, never a mix.
const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
)

// file is one entry of a volume's payload.
type file struct {
	data []byte
	mode os.FileMode
}

// checkPayloadPath refuses paths that would leave the volume or collide with
// the writer's own ..-prefixed bookkeeping names.
func checkPayloadPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	if path.IsAbs(p) {
		return fmt.Errorf("path %q must be relative", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == "" {
			return fmt.Errorf("path %q must not contain '..', '.' or empty elements", p)
		}
	}
	if strings.HasPrefix(p, "..") {
		return fmt.Errorf("path %q must not start with '..'", p)
	}
	return nil
}

// writeAtomic makes dir hold exactly files, swapping versions atomically. It
// does nothing if the current version already has the same contents and
// modes, and reports whether it changed anything. A gid >= 0 becomes the
// group of everything written (the pod's fsGroup).
func writeAtomic(dir string, files map[string]file, gid int) (bool, error) {
	for p := range files {
		if err := checkPayloadPath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create volume dir: %w", err)
	}
	old, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", dataLink, err)
	}
	if old != "" && sameContents(filepath.Join(dir, old), files) {
		return false, nil
	}

	// The leading ".." keeps versions out of the way of user-visible names,
	// which validation forbids from starting with "..".
	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return false, fmt.Errorf("create version dir: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = os.RemoveAll(tsDir)
		}
	}()
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return false, fmt.Errorf("chmod version dir: %w", err)
	}
	for p, f := range files {
		full := filepath.Join(tsDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return false, fmt.Errorf("write %s: %w", p, err)
		}
		// WriteFile's mode is filtered by the umask; the pod asked for this one.
		if err := os.Chmod(full, f.mode); err != nil {
			return false, fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	if gid >= 0 {
		err := filepath.WalkDir(tsDir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, -1, gid)
		})
		if err != nil {
			return false, fmt.Errorf("set fsGroup %d: %w", gid, err)
		}
	}

	tmp := filepath.Join(dir, dataLinkTmp)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(tsDir), tmp); err != nil {
		return false, fmt.Errorf("link new version: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("swap %s: %w", dataLink, err)
	}
	swapped = true

	top := map[string]bool{}
	for p := range files {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range top {
		if err := ensureUserLink(dir, name); err != nil {
			return true, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, fmt.Errorf("list volume dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataLink || name == filepath.Base(tsDir):
		case strings.HasPrefix(name, ".."):
			// Old versions, and leftovers of a writer that crashed midway.
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return true, fmt.Errorf("remove old version %s: %w", name, err)
			}
		case !top[name] && e.Type()&fs.ModeSymlink != 0:
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return true, fmt.Errorf("remove stale %s: %w", name, err)
			}
		}
	}
	return true, nil
}

// ensureUserLink makes dir/name a symlink to ..data/name.
func ensureUserLink(dir, name string) error {
	target := dataLink + "/" + name
	link := filepath.Join(dir, name)
	if cur, err := os.Readlink(link); err == nil && cur == target {
		return nil
	}
	tmp := filepath.Join(dir, "..link_tmp_"+name)
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %s: %w", name, err)
	}
	return nil
}

// sameContents reports whether dir holds exactly files (contents and modes).
func sameContents(dir string, files map[string]file) bool {
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		want, ok := files[filepath.ToSlash(rel)]
		if !ok || !d.Type().IsRegular() {
			return errors.New("differs")
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.mode.Perm() {
			return errors.New("differs")
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want.data) {
			return errors.New("differs")
		}
		seen++
		return nil
	})
	return err == nil && seen == len(files)
}
