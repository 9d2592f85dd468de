package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// Other ".wh..wh." names are AUFS bookkeeping (hard-link directories)
	// with no meaning for overlayfs.
	whiteoutMeta = ".wh..wh."
)

// unpacker extracts one layer tarball into root in the form overlayfs expects
// of a lower directory. It refuses any entry that would land outside root.
type unpacker struct {
	root       string
	privileged bool // running as root: ownership and device nodes can be set
	size       int64
	dirTimes   []dirTime
}

type dirTime struct {
	path  string
	mtime time.Time
}

// errUnsafePath marks a layer that tries to write outside its directory.
var errUnsafePath = errors.New("unsafe path in layer")

func unpackLayer(r io.Reader, root string) (int64, error) {
	u := &unpacker{root: root, privileged: os.Geteuid() == 0}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read layer tar: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return 0, fmt.Errorf("unpack %q: %w", hdr.Name, err)
		}
	}
	// Directory mtimes last: creating children changes them.
	for i := len(u.dirTimes) - 1; i >= 0; i-- {
		d := u.dirTimes[i]
		_ = os.Chtimes(d.path, d.mtime, d.mtime)
	}
	return u.size, nil
}

// resolve turns a tar entry name into a path inside root. It rejects absolute
// names, ".." that climbs out, and parents that are symlinks (a link created
// earlier in the same layer could point anywhere on the host).
func (u *unpacker) resolve(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name %q", errUnsafePath, name)
	}
	clean := filepath.Clean(name)
	if clean == "." {
		return u.root, nil
	}
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("%w: %q escapes the layer root", errUnsafePath, name)
	}
	p := u.root
	parts := strings.Split(clean, string(filepath.Separator))
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			break // created below as a plain directory
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", fmt.Errorf("%w: %q goes through symlink %q", errUnsafePath, name, p)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("%w: parent %q is not a directory", errUnsafePath, p)
		}
	}
	return filepath.Join(u.root, clean), nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	target, err := u.resolve(hdr.Name)
	if err != nil {
		return err
	}
	base := filepath.Base(target)
	if target != u.root && strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(target, base)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	// A later entry replaces an earlier one of the same name, except that a
	// directory stays (its children are kept) when the new entry is one too.
	if fi, err := os.Lstat(target); err == nil {
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old tars still use TypeRegA
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		u.size += n
	case tar.TypeSymlink:
		// The link text is stored as is: it is resolved inside the container's
		// root at run time, never by us.
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		src, err := u.resolve(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		if src == u.root {
			return fmt.Errorf("%w: hard link to the layer root", errUnsafePath)
		}
		if _, err := os.Lstat(src); err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		// The link shares the target's inode, so its metadata is already set.
		return os.Link(src, target)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(target, mode, int(dev)); err != nil {
			if !u.privileged && hdr.Typeflag != tar.TypeFifo {
				return nil // devices need root; an unprivileged store skips them
			}
			return fmt.Errorf("mknod: %w", err)
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return nil // sparse files and vendor types do not occur in images
	}
	return u.meta(hdr, target)
}

// meta applies ownership, mode, xattrs and times. Order matters: chown clears
// setuid bits, so chmod comes after it.
func (u *unpacker) meta(hdr *tar.Header, target string) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil && u.privileged {
		return fmt.Errorf("lchown: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		// Filesystems without xattr support (or security.* without root)
		// refuse some names; the layer is still usable without them.
		_ = unix.Lsetxattr(target, name, []byte(v), 0)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	}
	if err := os.Chmod(target, tarMode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if hdr.Typeflag == tar.TypeDir {
		u.dirTimes = append(u.dirTimes, dirTime{target, hdr.ModTime})
		return nil
	}
	_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
	return nil
}

func tarMode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// whiteout converts OCI whiteout markers to overlayfs form: ".wh.NAME" becomes
// a 0/0 character device NAME, ".wh..wh..opq" the opaque xattr on its directory.
func (u *unpacker) whiteout(target, base string) error {
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	switch {
	case base == whiteoutOpaque:
		if err := unix.Lsetxattr(dir, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %s opaque (needs root and a filesystem with trusted xattrs): %w", dir, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMeta):
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: bad whiteout %q", errUnsafePath, base)
	}
	p := filepath.Join(dir, name)
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("create whiteout %s (needs root): %w", p, err)
	}
	return nil
}
