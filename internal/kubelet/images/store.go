// Package images is the node's image store: it pulls images from registries
// (or imports tarballs), unpacks every layer once per diffID into a plain
// directory usable as an overlayfs lowerdir, keeps image metadata in bbolt,
// and removes images that are no longer wanted.
package images

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
)

// ErrNotFound is returned when no image matches a reference or ID.
var ErrNotFound = errors.New("image not found")

// ErrInUse is returned by Remove for an image a container still uses.
var ErrInUse = errors.New("image is in use")

var (
	bucketImages  = []byte("images")  // image ID -> record (JSON)
	bucketRefs    = []byte("refs")    // normalized tag or repo digest -> image ID
	bucketLayers  = []byte("layers")  // diffID hex -> layerRecord (JSON)
	bucketImports = []byte("imports") // auto-import file name -> "size/mtime"
)

// Options configures a Store.
type Options struct {
	// Platform picks the image from multi-platform indexes. Default: the
	// platform this binary runs on.
	Platform v1.Platform
	// Registries is the node's mirror/auth/TLS configuration; may be nil.
	Registries *Registries
	Logger     *slog.Logger
	// GCMinAge protects images pulled or used more recently than this from
	// GC, so an image pulled for a pod that has not started yet survives.
	// The kubelet default is 2 minutes; zero means no protection.
	GCMinAge time.Duration
	// PullConcurrency is how many layers of one image download at once
	// (default 3).
	PullConcurrency int
}

// Image is an image in the store.
type Image struct {
	ID          string    // config digest, "sha256:..."
	RepoTags    []string  // normalized, "docker.io/library/busybox:latest"
	RepoDigests []string  // "docker.io/library/busybox@sha256:..." (manifest digest)
	Size        int64     // unpacked size on disk, bytes
	Config      v1.Config // Entrypoint, Cmd, Env, WorkingDir, User, ...
	Layers      []string  // absolute unpacked layer directories, base first
	LastUsed    time.Time
}

type record struct {
	ID          string    `json:"id"`
	RepoTags    []string  `json:"repoTags,omitempty"`
	RepoDigests []string  `json:"repoDigests,omitempty"`
	Config      v1.Config `json:"config"`
	OS          string    `json:"os,omitempty"`
	Arch        string    `json:"architecture,omitempty"`
	DiffIDs     []string  `json:"diffIDs"`
	Size        int64     `json:"size"`
	LastUsed    time.Time `json:"lastUsed"`
}

type layerRecord struct {
	Size int64 `json:"size"`
}

// Store is an image store rooted at one directory. It is safe for concurrent use.
type Store struct {
	dir       string
	layersDir string
	tmpDir    string
	db        *bolt.DB
	opts      Options
	log       *slog.Logger

	mu         sync.Mutex
	inflight   map[string]int           // diffID hex -> pulls about to reference it
	layerLocks map[string]chan struct{} // diffID hex -> held while unpacking
	transports map[string]http.RoundTripper
	closed     bool
}

// Open opens (creating) the store at dir: layers under dir/layers/<hex>/,
// metadata in dir/images.db. Leftovers of interrupted unpacks are removed.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Platform.OS == "" {
		opts.Platform = defaultPlatform()
	}
	if opts.PullConcurrency <= 0 {
		opts.PullConcurrency = 3
	}
	s := &Store{
		dir:        dir,
		layersDir:  filepath.Join(dir, "layers"),
		tmpDir:     filepath.Join(dir, "tmp"),
		opts:       opts,
		log:        opts.Logger.With("component", "images"),
		inflight:   map[string]int{},
		layerLocks: map[string]chan struct{}{},
		transports: map[string]http.RoundTripper{},
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	// The database lock comes first: whoever holds it owns tmp, so a second
	// opener (the images CLI while the agent runs) never cleans the
	// owner's work in progress.
	db, err := bolt.Open(filepath.Join(dir, "images.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open image store database %s (is another agent using this data dir?): %w", filepath.Join(dir, "images.db"), err)
	}
	// Anything in tmp is a half-written layer or import from a crash.
	if err := os.RemoveAll(s.tmpDir); err != nil {
		db.Close()
		return nil, fmt.Errorf("open image store: clean %s: %w", s.tmpDir, err)
	}
	for _, d := range []string{s.layersDir, s.tmpDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			db.Close()
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRefs, bucketLayers, bucketImports} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open image store database: %w", err)
	}
	s.db = db
	return s, nil
}

func defaultPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "GOARM" && s.Value != "" {
					p.Variant = "v" + strings.SplitN(s.Value, ",", 2)[0]
				}
			}
		}
	}
	return p
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, t := range s.transports {
		if c, ok := t.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close image store: %w", err)
	}
	return nil
}

func (s *Store) layerDir(diffID string) string {
	return filepath.Join(s.layersDir, strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) toImage(r *record) *Image {
	img := &Image{
		ID:          r.ID,
		RepoTags:    slices.Clone(r.RepoTags),
		RepoDigests: slices.Clone(r.RepoDigests),
		Size:        r.Size,
		Config:      r.Config,
		LastUsed:    r.LastUsed,
	}
	for _, d := range r.DiffIDs {
		img.Layers = append(img.Layers, s.layerDir(d))
	}
	return img
}

func getRecord(tx *bolt.Tx, id string) (*record, error) {
	data := tx.Bucket(bucketImages).Get([]byte(id))
	if data == nil {
		return nil, ErrNotFound
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode image record %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(r.ID), data)
}

// resolveID finds the image ID for a reference: a full or "sha256:"-less ID,
// a tag or digest reference (normalized), or a unique ID prefix of at least
// 4 hex digits (what `skiff images` prints).
func resolveID(tx *bolt.Tx, ref string) (string, error) {
	images := tx.Bucket(bucketImages)
	if images.Get([]byte(ref)) != nil {
		return ref, nil
	}
	if isHex(ref) && len(ref) == 64 && images.Get([]byte("sha256:"+ref)) != nil {
		return "sha256:" + ref, nil
	}
	if n, err := NormalizeRef(ref); err == nil {
		if id := tx.Bucket(bucketRefs).Get([]byte(n)); id != nil {
			return string(id), nil
		}
	}
	prefix := strings.TrimPrefix(ref, "sha256:")
	if len(prefix) >= 4 && isHex(prefix) {
		var found []string
		c := images.Cursor()
		p := []byte("sha256:" + prefix)
		for k, _ := c.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, _ = c.Next() {
			found = append(found, string(k))
		}
		if len(found) == 1 {
			return found[0], nil
		}
		if len(found) > 1 {
			return "", fmt.Errorf("image %q: ambiguous ID prefix matches %d images", ref, len(found))
		}
	}
	return "", fmt.Errorf("%q: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil && s != ""
}

// Lookup finds an image by reference (normalized like Pull) or ID.
func (s *Store) Lookup(ref string) (*Image, error) {
	var img *Image
	err := s.db.View(func(tx *bolt.Tx) error {
		id, err := resolveID(tx, ref)
		if err != nil {
			return err
		}
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		img = s.toImage(r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lookup image: %w", err)
	}
	return img, nil
}

// List returns all images, sorted by first tag then ID.
func (s *Store) List() ([]*Image, error) {
	var out []*Image
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode image record %s: %w", k, err)
			}
			out = append(out, s.toImage(&r))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return sortKey(out[i]) < sortKey(out[j]) })
	return out, nil
}

func sortKey(img *Image) string {
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0] + "\x00" + img.ID
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0] + "\x00" + img.ID
	}
	return "\xff" + img.ID
}

// MarkUsed records that a container was started from image id, for LRU GC.
func (s *Store) MarkUsed(id string) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		r.LastUsed = time.Now()
		return putRecord(tx, r)
	})
	if err != nil {
		s.log.Warn("mark image used failed", "image", id, "err", err)
	}
}

// commit stores an image whose layers are all unpacked and points names
// (tags and repo digests) at it, taking them away from any other image.
func (s *Store) commit(r *record, names []string) (*Image, error) {
	var out *Image
	err := s.db.Update(func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, r.ID); err == nil {
			r.RepoTags = old.RepoTags
			r.RepoDigests = old.RepoDigests
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		r.Size = 0
		layers := tx.Bucket(bucketLayers)
		seen := map[string]bool{}
		for _, d := range r.DiffIDs {
			if seen[d] {
				continue
			}
			seen[d] = true
			var lr layerRecord
			if data := layers.Get([]byte(strings.TrimPrefix(d, "sha256:"))); data != nil {
				_ = json.Unmarshal(data, &lr)
			}
			r.Size += lr.Size
		}
		r.LastUsed = time.Now()
		refs := tx.Bucket(bucketRefs)
		for _, n := range names {
			if prev := refs.Get([]byte(n)); prev != nil && string(prev) != r.ID {
				if err := untag(tx, string(prev), n); err != nil {
					return err
				}
			}
			if err := refs.Put([]byte(n), []byte(r.ID)); err != nil {
				return err
			}
			if strings.Contains(n, "@") {
				r.RepoDigests = appendUnique(r.RepoDigests, n)
			} else {
				r.RepoTags = appendUnique(r.RepoTags, n)
			}
		}
		if err := putRecord(tx, r); err != nil {
			return err
		}
		out = s.toImage(r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record image %s: %w", r.ID, err)
	}
	return out, nil
}

// untag removes name from image id's record (the image itself stays, untagged,
// like a dangling docker image, until removed or collected).
func untag(tx *bolt.Tx, id, name string) error {
	r, err := getRecord(tx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r.RepoTags = slices.DeleteFunc(r.RepoTags, func(s string) bool { return s == name })
	r.RepoDigests = slices.DeleteFunc(r.RepoDigests, func(s string) bool { return s == name })
	return putRecord(tx, r)
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// Remove removes ref. If ref is one of several tags of an image only that tag
// goes; otherwise (an ID, or the last tag) the image is deleted, which is
// refused with ErrInUse while inUse reports it is used. Layers no other image
// needs are deleted from disk.
func (s *Store) Remove(ref string, inUse func(id string) bool) error {
	var deleted bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		id, err := resolveID(tx, ref)
		if err != nil {
			return err
		}
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		name := ""
		if n, err := NormalizeRef(ref); err == nil && (slices.Contains(r.RepoTags, n) || slices.Contains(r.RepoDigests, n)) {
			name = n
		}
		otherTags := slices.DeleteFunc(slices.Clone(r.RepoTags), func(t string) bool { return t == name })
		if name != "" && len(otherTags) > 0 {
			if err := tx.Bucket(bucketRefs).Delete([]byte(name)); err != nil {
				return err
			}
			return untag(tx, id, name)
		}
		if inUse != nil && inUse(id) {
			return fmt.Errorf("%s (%s): %w by a container; stop the pod first", ref, shortID(id), ErrInUse)
		}
		deleted = true
		return deleteRecord(tx, r)
	})
	if err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	if deleted {
		if _, err := s.sweepLayers(); err != nil {
			return fmt.Errorf("remove image: %w", err)
		}
	}
	return nil
}

func deleteRecord(tx *bolt.Tx, r *record) error {
	refs := tx.Bucket(bucketRefs)
	for _, n := range append(slices.Clone(r.RepoTags), r.RepoDigests...) {
		if string(refs.Get([]byte(n))) == r.ID {
			if err := refs.Delete([]byte(n)); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketImages).Delete([]byte(r.ID))
}

// sweepLayers deletes layer directories that no image references and no pull
// in progress is about to reference. It returns the bytes freed.
func (s *Store) sweepLayers() (int64, error) {
	s.mu.Lock()
	var doomed []string
	var freed int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		used := map[string]bool{}
		err := tx.Bucket(bucketImages).ForEach(func(_, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			for _, d := range r.DiffIDs {
				used[strings.TrimPrefix(d, "sha256:")] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		entries, err := os.ReadDir(s.layersDir)
		if err != nil {
			return err
		}
		layers := tx.Bucket(bucketLayers)
		for _, e := range entries {
			h := e.Name()
			if used[h] || s.inflight[h] > 0 {
				continue
			}
			if _, busy := s.layerLocks[h]; busy {
				continue
			}
			// Rename first so a crash mid-delete never leaves a partial
			// layer under its final name; Open clears tmp.
			trash := filepath.Join(s.tmpDir, "del-"+h)
			if err := os.Rename(filepath.Join(s.layersDir, h), trash); err != nil {
				return err
			}
			var lr layerRecord
			if data := layers.Get([]byte(h)); data != nil {
				_ = json.Unmarshal(data, &lr)
			}
			freed += lr.Size
			if err := layers.Delete([]byte(h)); err != nil {
				return err
			}
			doomed = append(doomed, trash)
		}
		return nil
	})
	s.mu.Unlock()
	for _, d := range doomed {
		if rerr := os.RemoveAll(d); rerr != nil {
			s.log.Warn("delete layer failed", "dir", d, "err", rerr)
		}
	}
	if err != nil {
		return freed, fmt.Errorf("delete unused layers: %w", err)
	}
	return freed, nil
}

// GC removes least-recently-used images that are not in use, when the
// filesystem holding the store is more than highPercent full, until it is
// below lowPercent. It returns the bytes freed.
func (s *Store) GC(ctx context.Context, inUse func(id string) bool, highPercent, lowPercent int) (int64, error) {
	total, used, err := diskUsage(s.dir)
	if err != nil {
		return 0, fmt.Errorf("image gc: %w", err)
	}
	if total == 0 || used*100 <= int64(highPercent)*total {
		return 0, nil
	}
	want := used - int64(lowPercent)*total/100
	s.log.Info("image gc starting", "usedBytes", used, "capacityBytes", total, "bytesToFree", want)
	freed, err := s.freeSpace(ctx, inUse, want)
	s.log.Info("image gc finished", "freedBytes", freed, "err", err)
	if err != nil {
		return freed, fmt.Errorf("image gc: %w", err)
	}
	if freed < want {
		return freed, fmt.Errorf("image gc: freed %d bytes of the %d wanted; the remaining images are in use or too new", freed, want)
	}
	return freed, nil
}

// freeSpace deletes unused images, least recently used first, until want
// bytes are freed or none are left to delete.
func (s *Store) freeSpace(ctx context.Context, inUse func(id string) bool, want int64) (int64, error) {
	imgs, err := s.List()
	if err != nil {
		return 0, err
	}
	sort.SliceStable(imgs, func(i, j int) bool { return imgs[i].LastUsed.Before(imgs[j].LastUsed) })
	var freed int64
	for _, img := range imgs {
		if freed >= want {
			break
		}
		if err := ctx.Err(); err != nil {
			return freed, err
		}
		if s.opts.GCMinAge > 0 && time.Since(img.LastUsed) < s.opts.GCMinAge {
			continue
		}
		if inUse != nil && inUse(img.ID) {
			continue
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			r, err := getRecord(tx, img.ID)
			if err != nil {
				return err
			}
			return deleteRecord(tx, r)
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return freed, fmt.Errorf("delete image %s: %w", img.ID, err)
		}
		n, err := s.sweepLayers()
		freed += n
		s.log.Info("image removed by gc", "image", img.ID, "tags", img.RepoTags, "freedBytes", n)
		if err != nil {
			return freed, err
		}
	}
	return freed, nil
}

// lockLayer serializes work on one layer across concurrent pulls; the second
// puller waits and then finds the layer already unpacked.
func (s *Store) lockLayer(ctx context.Context, hex string) (func(), error) {
	for {
		s.mu.Lock()
		ch, busy := s.layerLocks[hex]
		if !busy {
			ch = make(chan struct{})
			s.layerLocks[hex] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.layerLocks, hex)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// hold marks layers as about to be referenced so sweepLayers keeps them
// until the image record is written; the returned func releases them.
func (s *Store) hold(diffIDs []string) func() {
	s.mu.Lock()
	for _, d := range diffIDs {
		s.inflight[strings.TrimPrefix(d, "sha256:")]++
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		for _, d := range diffIDs {
			h := strings.TrimPrefix(d, "sha256:")
			if s.inflight[h]--; s.inflight[h] <= 0 {
				delete(s.inflight, h)
			}
		}
		s.mu.Unlock()
	}
}

// haveLayers reports whether image id is recorded and all its layers exist.
func (s *Store) haveLayers(id string) bool {
	var r *record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	if err != nil {
		return false
	}
	for _, d := range r.DiffIDs {
		if _, err := os.Stat(s.layerDir(d)); err != nil {
			return false
		}
	}
	return true
}

func (s *Store) existingRecord(id string) (*record, bool) {
	var r *record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, id)
		return err
	})
	return r, err == nil
}

func dirSize(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
