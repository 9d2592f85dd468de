package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"
)

// Progress reports pull or import progress. Layer is the layer digest (or
// diffID for imports); an event with Layer == "" and Complete set means the
// whole image is done. Total is 0 when unknown.
type Progress struct {
	Ref      string
	Layer    string
	Done     int64
	Total    int64
	Complete bool
	Cached   bool // the layer was already in the store; nothing was downloaded
}

// PullOptions are per-pull settings.
type PullOptions struct {
	// DockerConfigs are the payloads of the pod's imagePullSecrets
	// (kubernetes.io/dockerconfigjson or legacy .dockercfg), tried first.
	DockerConfigs [][]byte
	Progress      func(Progress)
}

// PullError is a failed pull. Its message keeps what the registry said
// (for example "MANIFEST_UNKNOWN: manifest unknown") so users see it in the
// pod's events.
type PullError struct {
	Ref string
	Err error
}

func (e *PullError) Error() string {
	return fmt.Sprintf("pull %s: %s", e.Ref, strings.ReplaceAll(e.Err.Error(), "\n", "; "))
}

func (e *PullError) Unwrap() error { return e.Err }

// Pull fetches ref (mirrors first, then the upstream registry), unpacks any
// layers not already in the store and tags the image. The manifest is always
// resolved again so a moved tag is noticed; layers already present are not
// downloaded.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, &PullError{Ref: ref, Err: err}
	}
	norm := refString(r)
	kc := &keychain{regs: s.opts.Registries}
	for i, dc := range opts.DockerConfigs {
		m, err := parseDockerConfig(dc)
		if err != nil {
			return nil, &PullError{Ref: norm, Err: fmt.Errorf("image pull secret %d: %w", i, err)}
		}
		kc.secrets = append(kc.secrets, m)
	}
	host := registryString(r.Context().Registry)
	var eps []endpoint
	for _, m := range s.opts.Registries.mirrors(host) {
		ep, err := parseEndpoint(m)
		if err != nil {
			s.log.Warn("ignoring bad mirror endpoint", "registry", host, "err", err)
			continue
		}
		eps = append(eps, ep)
	}
	eps = append(eps, endpoint{host: host})

	var errs []error
	for _, ep := range eps {
		img, err := s.pullFrom(ctx, r, ep, kc, opts.Progress)
		if err == nil {
			return img, nil
		}
		if ep.mirror {
			s.log.Warn("pull from mirror failed, trying next endpoint", "ref", norm, "mirror", ep.host, "err", err)
			err = fmt.Errorf("mirror %s: %w", ep.host, err)
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &PullError{Ref: norm, Err: errors.Join(errs...)}
}

// transportFor returns the cached transport for host, so connections are
// reused across pulls.
func (s *Store) transportFor(host string) (http.RoundTripper, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.transports[host]; ok {
		return t, nil
	}
	t, err := s.opts.Registries.transport(host)
	if err != nil {
		return nil, err
	}
	s.transports[host] = t
	return t, nil
}

func (s *Store) pullFrom(ctx context.Context, r name.Reference, ep endpoint, kc authn.Keychain, progress func(Progress)) (*Image, error) {
	suffix := ":" + r.Identifier()
	if _, ok := r.(name.Digest); ok {
		suffix = "@" + r.Identifier()
	}
	src, err := name.ParseReference(ep.host+"/"+r.Context().RepositoryStr()+suffix, s.opts.Registries.nameOptions(ep)...)
	if err != nil {
		return nil, fmt.Errorf("parse reference for %s: %w", ep.host, err)
	}
	tr, err := s.transportFor(ep.host)
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(kc),
		remote.WithTransport(tr),
		remote.WithPlatform(s.opts.Platform),
		remote.WithUserAgent("skiff"),
	}
	desc, err := remote.Get(src, ropts...)
	if err != nil {
		return nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("select image for platform %s: %w", s.opts.Platform.String(), err)
	}
	norm := refString(r)
	names := []string{repoString(r.Context()) + "@" + desc.Digest.String()}
	if _, ok := r.(name.Tag); ok {
		names = append([]string{norm}, names...)
	}
	// The manifest names the config digest; asking the image for its
	// ConfigName would download the config blob.
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	id := m.Config.Digest.String()
	// Already complete: only the names change, nothing is downloaded.
	if rec, ok := s.existingRecord(id); ok && s.haveLayers(id) {
		release := s.hold(rec.DiffIDs)
		defer release()
		img, err := s.commit(rec, names)
		if err == nil {
			s.report(progress, Progress{Ref: norm, Complete: true, Cached: true})
		}
		return img, err
	}
	return s.store(ctx, norm, img, names, progress)
}

// store unpacks img's layers (at most PullConcurrency at a time) and records it.
func (s *Store) store(ctx context.Context, ref string, img v1.Image, names []string, progress func(Progress)) (*Image, error) {
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	// The ID is the hash of the bytes actually read, whatever the source.
	cfgName, _, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("hash image config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers: %w", err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("image config lists %d layers but the manifest has %d", len(cfg.RootFS.DiffIDs), len(layers))
	}
	p := s.opts.Platform
	if cfg.OS != "" && cfg.Architecture != "" && (cfg.OS != p.OS || cfg.Architecture != p.Architecture) {
		s.log.Warn("image platform differs from node platform; containers may fail with exec format error",
			"ref", ref, "image", cfg.OS+"/"+cfg.Architecture, "node", p.String())
	}
	rec := &record{ID: cfgName.String(), Config: cfg.Config, OS: cfg.OS, Arch: cfg.Architecture}
	for _, d := range cfg.RootFS.DiffIDs {
		rec.DiffIDs = append(rec.DiffIDs, d.String())
	}
	release := s.hold(rec.DiffIDs)
	defer release()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.PullConcurrency)
	for i, l := range layers {
		diffID := cfg.RootFS.DiffIDs[i]
		g.Go(func() error {
			label := diffID.String()
			if d, err := l.Digest(); err == nil {
				label = d.String()
			}
			total, _ := l.Size()
			tick := func(done int64) {
				s.report(progress, Progress{Ref: ref, Layer: label, Done: done, Total: total})
			}
			cached, err := s.ensureLayer(gctx, diffID, l.Compressed, tick)
			if err != nil {
				return fmt.Errorf("layer %s: %w", label, err)
			}
			s.report(progress, Progress{Ref: ref, Layer: label, Done: total, Total: total, Complete: true, Cached: cached})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out, err := s.commit(rec, names)
	if err != nil {
		return nil, err
	}
	s.log.Info("image stored", "ref", ref, "image", out.ID, "size", out.Size)
	s.report(progress, Progress{Ref: ref, Complete: true})
	return out, nil
}

func (s *Store) report(progress func(Progress), p Progress) {
	if progress != nil {
		progress(p)
	}
}

// ensureLayer makes sure the layer with diffID is unpacked. open returns the
// layer blob as stored (gzip, zstd or plain tar). The layer is unpacked into a
// temporary directory, checked against diffID, and only then renamed into
// place, so a directory under layers/ is always complete. cached reports that
// it was there already.
func (s *Store) ensureLayer(ctx context.Context, diffID v1.Hash, open func() (io.ReadCloser, error), tick func(int64)) (cached bool, err error) {
	if diffID.Algorithm != "sha256" {
		return false, fmt.Errorf("unsupported diffID algorithm %q", diffID.Algorithm)
	}
	h := diffID.Hex
	unlock, err := s.lockLayer(ctx, h)
	if err != nil {
		return false, err
	}
	defer unlock()
	final := s.layerDir(diffID.String())
	if _, err := os.Stat(final); err == nil {
		// A crash between rename and the size record leaves no size; recompute.
		if s.layerSize(h) < 0 {
			_ = s.putLayerSize(h, dirSize(final))
		}
		return true, nil
	}

	tmp, err := os.MkdirTemp(s.tmpDir, h[:12]+"-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return false, err
	}
	rc, err := open()
	if err != nil {
		return false, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	counted := &countingReader{r: &ctxReader{ctx: ctx, r: rc}, tick: tick}
	plain, err := decompress(counted)
	if err != nil {
		return false, err
	}
	defer plain.Close()
	hasher := sha256.New()
	tee := io.TeeReader(plain, hasher)
	size, err := unpackLayer(tee, tmp)
	if err != nil {
		return false, err
	}
	// Tar readers stop at the end marker; hash the padding after it too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return false, fmt.Errorf("read layer: %w", err)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h {
		return false, fmt.Errorf("content does not match diffID: got sha256:%s", got)
	}
	if err := os.Rename(tmp, final); err != nil {
		return false, fmt.Errorf("move layer into place: %w", err)
	}
	if err := s.putLayerSize(h, size); err != nil {
		return false, err
	}
	return false, nil
}

func (s *Store) layerSize(h string) int64 {
	size := int64(-1)
	_ = s.db.View(func(tx *bolt.Tx) error {
		if data := tx.Bucket(bucketLayers).Get([]byte(h)); data != nil {
			var lr layerRecord
			if json.Unmarshal(data, &lr) == nil {
				size = lr.Size
			}
		}
		return nil
	})
	return size
}

func (s *Store) putLayerSize(h string, size int64) error {
	data, _ := json.Marshal(layerRecord{Size: size})
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLayers).Put([]byte(h), data)
	})
	if err != nil {
		return fmt.Errorf("record layer %s: %w", h, err)
	}
	return nil
}

// ctxReader stops a long copy promptly when the pull is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
