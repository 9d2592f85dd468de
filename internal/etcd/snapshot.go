package etcd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// checksumSuffix names the file next to a snapshot that holds its sha256.
const checksumSuffix = ".sha256"

// partSuffix marks a snapshot still being written; it is never listed.
const partSuffix = ".part"

// Checksum states of a snapshot, as `skiff etcd-snapshot ls` prints them.
const (
	ChecksumOK      = "ok"
	ChecksumBad     = "bad"
	ChecksumMissing = "missing"
)

// Snapshot is one snapshot file in a snapshot directory.
type Snapshot struct {
	// Name is the file name, which is also the name commands take.
	Name    string
	Path    string
	Size    int64
	Created time.Time
	// Checksum is ChecksumOK, ChecksumBad or ChecksumMissing (no .sha256
	// file next to it).
	Checksum string
}

// SaveSnapshot streams a snapshot of the etcd member cli talks to into
// dir/name, and writes dir/name.sha256 with the file's checksum. The file
// appears only once it is complete, so a crash never leaves a half snapshot
// under a snapshot's name. cli must talk to one member only: a snapshot is
// that member's point-in-time state.
func SaveSnapshot(ctx context.Context, cli *clientv3.Client, dir, name string) (Snapshot, error) {
	if err := checkName(name); err != nil {
		return Snapshot{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: create dir: %w", name, err)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Lstat(path); err == nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %s already exists", name, path)
	}
	part := path + partSuffix
	defer os.Remove(part) // gone already after a successful rename

	rc, err := cli.Maintenance.Snapshot(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: request: %w", name, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), rc)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: receive: %w", name, err)
	}
	// etcd ends the stream with the sha256 of the database, and bbolt
	// files are made of 512-byte multiples: anything else was cut short.
	if size%512 != sha256.Size {
		return Snapshot{}, fmt.Errorf("snapshot %s: stream of %d bytes is truncated (no etcd checksum at its end)", name, size)
	}
	if err := f.Sync(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: close: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// The checksum file goes first: a snapshot without one is reported as
	// "missing", never as "bad", whatever moment a crash happens at.
	if err := writeFileSync(path+checksumSuffix, []byte(sum+"  "+name+"\n")); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: write checksum: %w", name, err)
	}
	if err := os.Rename(part, path); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	syncDir(dir)
	fi, err := os.Stat(path)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", name, err)
	}
	return Snapshot{Name: name, Path: path, Size: size, Created: fi.ModTime(), Checksum: ChecksumOK}, nil
}

// ListSnapshots lists the snapshots in dir, oldest first, each with its
// checksum verified. A missing dir holds no snapshots.
func ListSnapshots(dir string) ([]Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []Snapshot
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(n, checksumSuffix) || strings.HasSuffix(n, partSuffix) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted while listing
		}
		s := Snapshot{Name: n, Path: filepath.Join(dir, n), Size: fi.Size(), Created: fi.ModTime()}
		switch err := VerifySnapshot(s.Path); {
		case err == nil:
			s.Checksum = ChecksumOK
		case errors.Is(err, errNoChecksum):
			s.Checksum = ChecksumMissing
		default:
			s.Checksum = ChecksumBad
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// errNoChecksum means a snapshot has no .sha256 file to check it against.
var errNoChecksum = errors.New("no checksum file")

// VerifySnapshot checks the snapshot at path against path.sha256. When there
// is no checksum file the error wraps os.ErrNotExist.
func VerifySnapshot(path string) error {
	data, err := os.ReadFile(path + checksumSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("verify snapshot %s: %w: %w", path, errNoChecksum, err)
	}
	if err != nil {
		return fmt.Errorf("verify snapshot %s: %w", path, err)
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return fmt.Errorf("verify snapshot %s: %s is empty", path, path+checksumSuffix)
	}
	want := strings.ToLower(fields[0])
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify snapshot %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify snapshot %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("verify snapshot %s: checksum mismatch: file has sha256 %s, %s says %s; the file is corrupt",
			path, got, filepath.Base(path)+checksumSuffix, want)
	}
	return nil
}

// DeleteSnapshot removes the snapshot name from dir, with its checksum.
func DeleteSnapshot(dir, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete snapshot %s: no such snapshot in %s", name, dir)
		}
		return fmt.Errorf("delete snapshot %s: %w", name, err)
	}
	if err := os.Remove(path + checksumSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete snapshot %s: checksum file: %w", name, err)
	}
	return nil
}

// checkName refuses names that would escape the snapshot dir or collide
// with the helper files kept next to snapshots.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, filepath.Separator) ||
		strings.HasSuffix(name, checksumSuffix) || strings.HasSuffix(name, partSuffix) {
		return fmt.Errorf("snapshot name %q: want a plain file name", name)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename in dir durable; failing to is not worth failing a
// snapshot that is already complete on disk.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
