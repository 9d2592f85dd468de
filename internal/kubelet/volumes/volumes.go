// Package volumes prepares a pod's volumes on the host: it creates
// emptyDirs (tmpfs for medium Memory), checks hostPaths, writes configMap,
// secret, downwardAPI and projected volumes with the kubelet's atomic
// ..data layout, resolves persistentVolumeClaims to their bound local
// PersistentVolume, and turns container volumeMounts into host bind mounts.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Config configures a Manager.
type Config struct {
	// Root is <data-dir>/agent/pods; a pod's volumes live under
	// Root/<podUID>/volumes/<kind>/<name>.
	Root string
	// Client reads ConfigMaps, Secrets, PVCs, PVs and this node.
	Client kubernetes.Interface
	// NodeName is this node: downwardAPI limits that a container leaves
	// unset are the node's allocatable resources.
	NodeName string
	// LocalCopyDir, when set, keeps sealed copies of the ConfigMaps and
	// Secrets that volumes use, so that they can be set up again while no
	// server answers.
	LocalCopyDir string
	// Offline, when set and true, says no server answers now: the local
	// copies are read first, without waiting on the API.
	Offline func() bool
	// Clock times service account token renewal (nil: the real clock).
	Clock  clock.PassiveClock
	Logger *slog.Logger
}

// Manager sets up and tears down pod volumes. It is safe for concurrent use
// on different pods; calls for one pod must not overlap (the kubelet's pod
// worker serializes them).
type Manager struct {
	cfg    Config
	log    *slog.Logger
	copies *localCopies // nil without Config.LocalCopyDir
	tokens *tokens
}

// New returns a Manager for cfg.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m := &Manager{cfg: cfg, log: log.With("component", "volumes"), tokens: newTokens(cfg.Client, cfg.Clock)}
	if cfg.LocalCopyDir != "" {
		m.copies = newLocalCopies(cfg.LocalCopyDir)
	}
	return m
}

// Volume is a prepared volume: the host path to bind into containers.
type Volume struct {
	Path     string
	ReadOnly bool
}

// Directory names under Root/<uid>/volumes, one per kind that lives there.
const (
	kindEmptyDir  = "empty-dir"
	kindConfigMap = "configmap"
	kindSecret    = "secret"
	kindDownward  = "downward-api"
	kindProjected = "projected"
)

func (m *Manager) podDir(uid string) (string, error) {
	// The UID becomes a path element that TearDown removes recursively, so
	// anything that could name another directory is refused.
	if uid == "" || uid == "." || uid == ".." || strings.ContainsAny(uid, `/\`) {
		return "", fmt.Errorf("invalid pod UID %q", uid)
	}
	if m.cfg.Root == "" {
		return "", errors.New("volumes: Config.Root is empty")
	}
	return filepath.Join(m.cfg.Root, uid), nil
}

func (m *Manager) volDir(pod *corev1.Pod, kind, name string) (string, error) {
	pd, err := m.podDir(string(pod.UID))
	if err != nil {
		return "", err
	}
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", fmt.Errorf("invalid volume name %q", name)
	}
	return filepath.Join(pd, "volumes", kind, name), nil
}

// SetUp prepares every volume in pod.Spec.Volumes and returns them by name.
// It is idempotent and meant to be called on every pod sync (the pod
// worker's sync interval, 10 s by default); it also refreshes configMap,
// secret, downwardAPI and projected contents, service account tokens
// included. An error
// names the volume and what is missing; a volume's contents are swapped in
// whole or not at all.
func (m *Manager) SetUp(ctx context.Context, pod *corev1.Pod) (map[string]Volume, error) {
	if _, err := m.podDir(string(pod.UID)); err != nil {
		return nil, err
	}
	out := make(map[string]Volume, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		vol, err := m.setUpOne(ctx, pod, v)
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		out[v.Name] = vol
	}
	return out, nil
}

func (m *Manager) setUpOne(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (Volume, error) {
	s := &v.VolumeSource
	switch {
	case s.EmptyDir != nil:
		return m.emptyDir(pod, v.Name, s.EmptyDir)
	case s.HostPath != nil:
		p, err := checkHostPath(s.HostPath.Path, s.HostPath.Type)
		return Volume{Path: p}, err
	case s.PersistentVolumeClaim != nil:
		return m.claim(ctx, pod.Namespace, s.PersistentVolumeClaim)
	case s.ConfigMap != nil, s.Secret != nil, s.DownwardAPI != nil, s.Projected != nil:
		return m.writeContent(ctx, pod, v)
	}
	return Volume{}, errors.New("unsupported volume type (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected, persistentVolumeClaim)")
}

// contentKind tells the kinds whose files the manager writes apart.
func contentKind(s *corev1.VolumeSource) string {
	switch {
	case s.ConfigMap != nil:
		return kindConfigMap
	case s.Secret != nil:
		return kindSecret
	case s.DownwardAPI != nil:
		return kindDownward
	case s.Projected != nil:
		return kindProjected
	}
	return ""
}

// writeContent builds a content volume's whole payload from the API before
// touching the disk, then swaps it in.
func (m *Manager) writeContent(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) (Volume, error) {
	kind := contentKind(&v.VolumeSource)
	dir, err := m.volDir(pod, kind, v.Name)
	if err != nil {
		return Volume{}, err
	}
	p, err := m.buildContent(ctx, pod, v, kind)
	if err != nil {
		// No server (a service account token cannot be requested, an
		// object has no local copy): a volume set up before keeps its
		// files until one answers.
		if _, lerr := os.Readlink(filepath.Join(dir, dataLink)); lerr == nil && unreachable(err) {
			m.log.Debug("no server answers: keeping the volume's current files", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "err", err)
			return Volume{Path: dir, ReadOnly: true}, nil
		}
		return Volume{}, err
	}
	gid := -1
	if g := fsGroup(pod); g != nil {
		// As the kubelet does, the pod's group may always read its files.
		gid = int(*g)
		for k, f := range p {
			f.mode |= 0o440
			p[k] = f
		}
	}
	changed, err := writeAtomic(dir, p, gid)
	if err != nil {
		return Volume{}, fmt.Errorf("write %s: %w", dir, err)
	}
	if changed {
		m.log.Debug("volume contents updated", "pod", pod.Namespace+"/"+pod.Name, "volume", v.Name, "files", len(p))
	}
	// The kubelet always mounts these read-only: the files are the API's.
	return Volume{Path: dir, ReadOnly: true}, nil
}

// buildContent reads a content volume's files from the API.
func (m *Manager) buildContent(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, kind string) (payload, error) {
	p := payload{}
	s := &v.VolumeSource
	switch kind {
	case kindConfigMap:
		k, err := m.configMap(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Optional)
		if err != nil {
			return nil, err
		}
		k.items, k.defMode = s.ConfigMap.Items, s.ConfigMap.DefaultMode
		err = k.addTo(p)
		if err != nil {
			return nil, err
		}
	case kindSecret:
		k, err := m.secret(ctx, pod.Namespace, s.Secret.SecretName, s.Secret.Optional)
		if err != nil {
			return nil, err
		}
		k.items, k.defMode = s.Secret.Items, s.Secret.DefaultMode
		if err := k.addTo(p); err != nil {
			return nil, err
		}
	case kindDownward:
		if err := m.downward(ctx, pod, s.DownwardAPI.Items, s.DownwardAPI.DefaultMode, p); err != nil {
			return nil, err
		}
	case kindProjected:
		if err := m.projected(ctx, pod, v.Name, s.Projected, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (m *Manager) projected(ctx context.Context, pod *corev1.Pod, volName string, src *corev1.ProjectedVolumeSource, p payload) error {
	for _, s := range src.Sources {
		switch {
		case s.ConfigMap != nil:
			k, err := m.configMap(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Optional)
			if err != nil {
				return err
			}
			k.items, k.defMode = s.ConfigMap.Items, src.DefaultMode
			if err := k.addTo(p); err != nil {
				return err
			}
		case s.Secret != nil:
			k, err := m.secret(ctx, pod.Namespace, s.Secret.Name, s.Secret.Optional)
			if err != nil {
				return err
			}
			k.items, k.defMode = s.Secret.Items, src.DefaultMode
			if err := k.addTo(p); err != nil {
				return err
			}
		case s.DownwardAPI != nil:
			if err := m.downward(ctx, pod, s.DownwardAPI.Items, src.DefaultMode, p); err != nil {
				return err
			}
		case s.ServiceAccountToken != nil:
			tok, err := m.serviceAccountToken(ctx, pod, volName, s.ServiceAccountToken)
			if err != nil {
				return err
			}
			if err := p.add(s.ServiceAccountToken.Path, tok, fileMode(nil, src.DefaultMode)); err != nil {
				return fmt.Errorf("serviceAccountToken: %w", err)
			}
		default:
			m.log.Warn("skipping unsupported projected volume source",
				"pod", pod.Namespace+"/"+pod.Name, "volume", volName)
		}
	}
	return nil
}

// serviceAccountToken is the projection's token: the cached or a new one
// from the API. While no server answers, the token already in the volume
// is kept (it stays valid until it expires; the API decides then), so an
// offline node does not fail its pods.
func (m *Manager) serviceAccountToken(ctx context.Context, pod *corev1.Pod, volName string, src *corev1.ServiceAccountTokenProjection) ([]byte, error) {
	onDisk := func() ([]byte, bool) {
		dir, err := m.volDir(pod, kindProjected, volName)
		if err != nil || checkPayloadPath(src.Path) != nil {
			return nil, false
		}
		b, err := os.ReadFile(filepath.Join(dir, dataLink, filepath.FromSlash(src.Path)))
		return b, err == nil && len(b) > 0
	}
	if m.cfg.Offline != nil && m.cfg.Offline() {
		if b, ok := onDisk(); ok {
			return b, nil
		}
	}
	tok, err := m.tokens.get(ctx, pod, src)
	if err != nil {
		if b, ok := onDisk(); ok && unreachable(err) {
			m.log.Debug("no server answers: keeping the service account token on disk", "pod", pod.Namespace+"/"+pod.Name, "volume", volName, "err", err)
			return b, nil
		}
		return nil, err
	}
	return []byte(tok), nil
}

func (m *Manager) emptyDir(pod *corev1.Pod, name string, src *corev1.EmptyDirVolumeSource) (Volume, error) {
	dir, err := m.volDir(pod, kindEmptyDir, name)
	if err != nil {
		return Volume{}, err
	}
	// Containers may run as any user; like the kubelet, the directory is
	// world-writable.
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return Volume{}, fmt.Errorf("create emptyDir: %w", err)
	}
	switch src.Medium {
	case corev1.StorageMediumDefault:
		return Volume{Path: dir}, m.ownEmptyDir(pod, dir)
	case corev1.StorageMediumMemory:
	default:
		return Volume{}, fmt.Errorf("emptyDir medium %q is not supported (use \"\" or Memory)", src.Medium)
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return Volume{}, fmt.Errorf("check tmpfs mount %s: %w", dir, err)
	}
	if !mounted {
		opts := "mode=0777"
		if src.SizeLimit != nil && !src.SizeLimit.IsZero() {
			opts += fmt.Sprintf(",size=%d", src.SizeLimit.Value())
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return Volume{}, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
		m.log.Debug("mounted tmpfs", "pod", pod.Namespace+"/"+pod.Name, "volume", name, "options", opts)
	}
	return Volume{Path: dir}, m.ownEmptyDir(pod, dir)
}

func fsGroup(pod *corev1.Pod) *int64 {
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.FSGroup
	}
	return nil
}

// ownEmptyDir makes an emptyDir world-writable and, with an fsGroup, owned
// by that group with setgid so that new files inherit it.
func (m *Manager) ownEmptyDir(pod *corev1.Pod, dir string) error {
	mode := os.FileMode(0o777)
	if g := fsGroup(pod); g != nil {
		if err := os.Lchown(dir, -1, int(*g)); err != nil {
			return fmt.Errorf("set emptyDir fsGroup %d: %w", *g, err)
		}
		mode |= os.ModeSetgid
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod emptyDir: %w", err)
	}
	return nil
}

func (m *Manager) claim(ctx context.Context, ns string, src *corev1.PersistentVolumeClaimVolumeSource) (Volume, error) {
	pvc, err := m.cfg.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, src.ClaimName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Volume{}, fmt.Errorf("persistentvolumeclaim %q not found", src.ClaimName)
	case err != nil:
		return Volume{}, fmt.Errorf("get persistentvolumeclaim %q: %w", src.ClaimName, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return Volume{}, fmt.Errorf("persistentvolumeclaim %q is not bound", src.ClaimName)
	}
	pv, err := m.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Volume{}, fmt.Errorf("persistentvolume %q of claim %q not found", pvc.Spec.VolumeName, src.ClaimName)
	case err != nil:
		return Volume{}, fmt.Errorf("get persistentvolume %q: %w", pvc.Spec.VolumeName, err)
	}
	var p string
	switch {
	case pv.Spec.HostPath != nil:
		p, err = checkHostPath(pv.Spec.HostPath.Path, pv.Spec.HostPath.Type)
	case pv.Spec.Local != nil && pv.Annotations[annProvisionedBy] == localPathProvisioner:
		// The local-path provisioner runs on the control plane and only
		// names the folder; the node that mounts the volume makes it, as
		// the provisioner's helper pod does upstream.
		create := corev1.HostPathDirectoryOrCreate
		p, err = checkHostPath(pv.Spec.Local.Path, &create)
		if err == nil {
			err = os.Chmod(p, 0o777)
		}
	case pv.Spec.Local != nil:
		p, err = checkHostPath(pv.Spec.Local.Path, nil)
		if err == nil {
			if _, serr := os.Stat(p); serr != nil {
				err = fmt.Errorf("local volume path %s: %w", p, serr)
			}
		}
	default:
		err = errors.New("unsupported volume source (supported: hostPath, local)")
	}
	if err != nil {
		return Volume{}, fmt.Errorf("persistentvolume %q: %w", pv.Name, err)
	}
	return Volume{Path: p, ReadOnly: src.ReadOnly}, nil
}

// A volume of skiff's local-path provisioner carries these (the agent
// speaks of the provisioner by its API names, not its package).
const (
	annProvisionedBy     = "pv.kubernetes.io/provisioned-by"
	localPathProvisioner = "skiff.io/local-path"
)

// checkHostPath enforces a hostPath volume's type, creating what the
// *OrCreate types ask for, and returns the cleaned path.
func checkHostPath(p string, typ *corev1.HostPathType) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hostPath %q must be absolute", p)
	}
	p = filepath.Clean(p)
	t := corev1.HostPathUnset
	if typ != nil {
		t = *typ
	}
	fail := func(what string) error { return fmt.Errorf("hostPath type check failed: %s is not %s", p, what) }
	info, statErr := os.Stat(p)
	switch t {
	case corev1.HostPathUnset:
		return p, nil
	case corev1.HostPathDirectoryOrCreate:
		if errors.Is(statErr, fs.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", fmt.Errorf("hostPath create directory %s: %w", p, err)
			}
			return p, nil
		}
		if statErr != nil || !info.IsDir() {
			return "", fail("a directory")
		}
	case corev1.HostPathDirectory:
		if statErr != nil || !info.IsDir() {
			return "", fail("a directory")
		}
	case corev1.HostPathFileOrCreate:
		if errors.Is(statErr, fs.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", fmt.Errorf("hostPath create file %s: %w", p, err)
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return "", fmt.Errorf("hostPath create file %s: %w", p, err)
			}
			_ = f.Close()
			return p, nil
		}
		if statErr != nil || !info.Mode().IsRegular() {
			return "", fail("a file")
		}
	case corev1.HostPathFile:
		if statErr != nil || !info.Mode().IsRegular() {
			return "", fail("a file")
		}
	case corev1.HostPathSocket:
		if statErr != nil || info.Mode()&fs.ModeSocket == 0 {
			return "", fail("a socket file")
		}
	case corev1.HostPathCharDev:
		if statErr != nil || info.Mode()&fs.ModeCharDevice == 0 {
			return "", fail("a character device")
		}
	case corev1.HostPathBlockDev:
		if statErr != nil || info.Mode()&fs.ModeDevice == 0 || info.Mode()&fs.ModeCharDevice != 0 {
			return "", fail("a block device")
		}
	default:
		return "", fmt.Errorf("hostPath %s: unknown type %q", p, t)
	}
	return p, nil
}

// TearDown unmounts everything mounted under the pod's directory (tmpfs
// emptyDirs, and anything else left there) and deletes it. It is
// idempotent. Nothing is deleted while a mount remains, so a failed unmount
// never lets the removal reach into a mounted filesystem.
func (m *Manager) TearDown(ctx context.Context, podUID string) error {
	dir, err := m.podDir(podUID)
	if err != nil {
		return err
	}
	m.tokens.forgetPod(types.UID(podUID))
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// The mount table holds resolved paths.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("list mounts under %s: %w", dir, err)
	}
	// Deepest first, so nested mounts come off before their parents.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, mt := range mounts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unix.Unmount(mt.Mountpoint, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", mt.Mountpoint, err)
		}
	}
	if rest, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil {
		return fmt.Errorf("list mounts under %s: %w", dir, err)
	} else if len(rest) > 0 {
		return fmt.Errorf("%s is still mounted; not removing pod directory", rest[0].Mountpoint)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pod volumes %s: %w", dir, err)
	}
	m.log.Debug("pod volumes removed", "podUID", podUID)
	return nil
}
