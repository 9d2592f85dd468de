package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	bolt "go.etcd.io/bbolt"
)

const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import loads images from a docker-save tarball (manifest.json) or an OCI
// image layout tarball (index.json + blobs), optionally gzip or zstd
// compressed. Tags come from the tarball: RepoTags in manifest.json, or the
// io.containerd.image.name / org.opencontainers.image.ref.name annotations.
func (s *Store) Import(ctx context.Context, r io.Reader, progress func(Progress)) ([]*Image, error) {
	dir, err := os.MkdirTemp(s.tmpDir, "import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := extractArchive(ctx, r, dir); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	var imgs []*Image
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		imgs, err = s.importDocker(ctx, dir, progress)
		if err != nil {
			return imgs, fmt.Errorf("import docker archive: %w", err)
		}
	} else if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		imgs, err = s.importOCI(ctx, dir, progress)
		if err != nil {
			return imgs, fmt.Errorf("import OCI layout: %w", err)
		}
	} else {
		return nil, fmt.Errorf("import: neither manifest.json (docker save) nor index.json (OCI layout) found in archive")
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import: archive contains no images")
	}
	return imgs, nil
}

// extractArchive unpacks the regular files of an image archive into dir.
// Links (legacy docker save shares identical layers by symlink) are
// materialized as hard links to files inside dir; nothing may point outside.
func extractArchive(ctx context.Context, r io.Reader, dir string) error {
	plain, err := decompress(&ctxReader{ctx: ctx, r: r})
	if err != nil {
		return err
	}
	defer plain.Close()
	type link struct{ name, target string }
	var links []link
	tr := tar.NewReader(plain)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name := path.Clean(hdr.Name)
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("%w: archive entry %q", errUnsafePath, hdr.Name)
		}
		p := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		case tar.TypeSymlink:
			links = append(links, link{name, path.Join(path.Dir(name), hdr.Linkname)})
		case tar.TypeLink:
			links = append(links, link{name, path.Clean(hdr.Linkname)})
		}
	}
	for _, l := range links {
		if !filepath.IsLocal(l.target) {
			return fmt.Errorf("%w: archive link %q points outside the archive", errUnsafePath, l.name)
		}
		src := filepath.Join(dir, l.target)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // dangling or a link to a link: not something images need
		}
		dst := filepath.Join(dir, l.name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		if err := os.Link(src, dst); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (s *Store) importDocker(ctx context.Context, dir string, progress func(Progress)) ([]*Image, error) {
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("parse manifest.json: %w", err)
	}
	var out []*Image
	for _, e := range entries {
		img, err := s.importDockerEntry(ctx, dir, e, progress)
		if err != nil {
			return out, err
		}
		out = append(out, img)
	}
	return out, nil
}

func (s *Store) importDockerEntry(ctx context.Context, dir string, e dockerManifestEntry, progress func(Progress)) (*Image, error) {
	open := func(name string) (string, error) {
		clean := path.Clean(name)
		if !filepath.IsLocal(clean) {
			return "", fmt.Errorf("%w: %q", errUnsafePath, name)
		}
		return filepath.Join(dir, clean), nil
	}
	cfgPath, err := open(e.Config)
	if err != nil {
		return nil, err
	}
	cfgData, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(cfgData)))
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", e.Config, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return nil, fmt.Errorf("config %s lists %d layers, manifest.json %d", e.Config, len(cfg.RootFS.DiffIDs), len(e.Layers))
	}
	sum := sha256.Sum256(cfgData)
	var names []string
	for _, t := range e.RepoTags {
		n, err := NormalizeRef(t)
		if err != nil {
			s.log.Warn("import: ignoring bad tag", "tag", t, "err", err)
			continue
		}
		names = append(names, n)
	}
	label := "sha256:" + hex.EncodeToString(sum[:])
	if len(names) > 0 {
		label = names[0]
	}
	rec := &record{ID: "sha256:" + hex.EncodeToString(sum[:]), Config: cfg.Config, OS: cfg.OS, Arch: cfg.Architecture}
	for _, d := range cfg.RootFS.DiffIDs {
		rec.DiffIDs = append(rec.DiffIDs, d.String())
	}
	release := s.hold(rec.DiffIDs)
	defer release()
	for i, lname := range e.Layers {
		p, err := open(lname)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", lname, err)
		}
		diffID := cfg.RootFS.DiffIDs[i]
		total := fi.Size()
		tick := func(done int64) {
			s.report(progress, Progress{Ref: label, Layer: diffID.String(), Done: done, Total: total})
		}
		cached, err := s.ensureLayer(ctx, diffID, func() (io.ReadCloser, error) { return os.Open(p) }, tick)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", lname, err)
		}
		s.report(progress, Progress{Ref: label, Layer: diffID.String(), Done: total, Total: total, Complete: true, Cached: cached})
	}
	img, err := s.commit(rec, names)
	if err != nil {
		return nil, err
	}
	s.log.Info("image imported", "ref", label, "image", img.ID, "size", img.Size)
	s.report(progress, Progress{Ref: label, Complete: true})
	return img, nil
}

func (s *Store) importOCI(ctx context.Context, dir string, progress func(Progress)) ([]*Image, error) {
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, desc := range im.Manifests {
		var names []string
		refName := desc.Annotations[annotationContainerdName]
		if refName == "" {
			// ref.name is often only a tag ("v1"), which names no repository.
			if n := desc.Annotations[annotationRefName]; strings.ContainsAny(n, "/:") {
				refName = n
			}
		}
		label := desc.Digest.String()
		if refName != "" {
			if n, err := parseRef(refName); err == nil {
				label = refString(n)
				names = append(names, label, repoString(n.Context())+"@"+desc.Digest.String())
			} else {
				s.log.Warn("import: ignoring bad image name", "name", refName, "err", err)
			}
		}
		var img v1.Image
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return out, err
			}
			img, err = s.imageForPlatform(child)
			if err != nil {
				return out, fmt.Errorf("%s: %w", label, err)
			}
		case desc.MediaType.IsImage():
			img, err = idx.Image(desc.Digest)
			if err != nil {
				return out, err
			}
		default:
			continue
		}
		stored, err := s.store(ctx, label, img, names, progress)
		if err != nil {
			return out, fmt.Errorf("%s: %w", label, err)
		}
		out = append(out, stored)
	}
	return out, nil
}

// imageForPlatform picks the node's image from an index.
func (s *Store) imageForPlatform(idx v1.ImageIndex) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() && d.Platform != nil && platformMatches(*d.Platform, s.opts.Platform) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s in index", s.opts.Platform.String())
}

func platformMatches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return want.Variant == "" || have.Variant == "" || have.Variant == want.Variant
}

// archiveSuffixes are the file names ImportDir picks up.
var archiveSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"}

// ImportDir imports every image archive in dir (the air-gap images folder)
// that it has not imported before; a file is imported again only when its
// size or modification time changes. A missing dir is not an error.
func (s *Store) ImportDir(ctx context.Context, dir string) ([]*Image, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("import dir: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var out []*Image
	var errs []error
	for _, e := range entries {
		if !isArchiveName(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p) // follows symlinks, which air-gap setups use
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		key := []byte(p)
		stamp := []byte(fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano()))
		var seen bool
		_ = s.db.View(func(tx *bolt.Tx) error {
			seen = string(tx.Bucket(bucketImports).Get(key)) == string(stamp)
			return nil
		})
		if seen {
			continue
		}
		imgs, err := s.importFile(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, imgs...)
		err = s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketImports).Put(key, stamp)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("record import of %s: %w", p, err))
		}
	}
	return out, errors.Join(errs...)
}

func (s *Store) importFile(ctx context.Context, p string) ([]*Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	defer f.Close()
	s.log.Info("importing image archive", "file", p)
	imgs, err := s.Import(ctx, f, nil)
	if err != nil {
		return imgs, fmt.Errorf("import %s: %w", p, err)
	}
	return imgs, nil
}

func isArchiveName(n string) bool {
	for _, suf := range archiveSuffixes {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	return false
}
