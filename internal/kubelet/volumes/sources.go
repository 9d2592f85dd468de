package volumes

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/kubelet/downward"
)

// defaultFileMode is the kubelet's default for configMap, secret,
// downwardAPI and projected files.
const defaultFileMode = 0o644

func fileMode(item *int32, def *int32) os.FileMode {
	switch {
	case item != nil:
		return os.FileMode(*item) & os.ModePerm
	case def != nil:
		return os.FileMode(*def) & os.ModePerm
	}
	return defaultFileMode
}

// payload collects the files of one volume; projected volumes merge
// several sources into one.
type payload map[string]file

func (p payload) add(path string, data []byte, mode os.FileMode) error {
	if err := checkPayloadPath(path); err != nil {
		return err
	}
	if _, dup := p[path]; dup {
		return fmt.Errorf("path %q is written by two sources", path)
	}
	p[path] = file{data: data, mode: mode}
	return nil
}

// keyed is what configMaps and secrets have in common for a volume.
type keyed struct {
	kind     string // "configmap" or "secret", as in error messages
	name     string
	data     map[string][]byte
	found    bool
	items    []corev1.KeyToPath
	optional bool
	defMode  *int32
}

func (k keyed) addTo(p payload) error {
	if !k.found {
		return nil // optional and missing: an empty volume
	}
	if len(k.items) == 0 {
		for key, v := range k.data {
			if err := p.add(key, v, fileMode(nil, k.defMode)); err != nil {
				return fmt.Errorf("%s %q: %w", k.kind, k.name, err)
			}
		}
		return nil
	}
	for _, it := range k.items {
		v, ok := k.data[it.Key]
		if !ok {
			if k.optional {
				continue
			}
			return fmt.Errorf("%s %q references non-existent key: %s", k.kind, k.name, it.Key)
		}
		if err := p.add(it.Path, v, fileMode(it.Mode, k.defMode)); err != nil {
			return fmt.Errorf("%s %q: %w", k.kind, k.name, err)
		}
	}
	return nil
}

func (m *Manager) configMap(ctx context.Context, ns, name string, optional *bool) (keyed, error) {
	k := keyed{kind: "configmap", name: name, optional: optional != nil && *optional}
	if data, ok := m.offlineCopy(kindConfigMap, ns, name); ok {
		k.found, k.data = true, data
		return k, nil
	}
	cm, err := m.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		m.removeLocalCopy(kindConfigMap, ns, name)
		if k.optional {
			return k, nil
		}
		return k, fmt.Errorf("configmap %q not found", name)
	case err != nil:
		if data, ok := m.fromLocalCopy(kindConfigMap, ns, name, err); ok {
			k.found, k.data = true, data
			return k, nil
		}
		return k, fmt.Errorf("get configmap %q: %w", name, err)
	}
	k.found = true
	k.data = make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for key, v := range cm.Data {
		k.data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		k.data[key] = v
	}
	m.keepLocalCopy(kindConfigMap, ns, name, k.data)
	return k, nil
}

func (m *Manager) secret(ctx context.Context, ns, name string, optional *bool) (keyed, error) {
	k := keyed{kind: "secret", name: name, optional: optional != nil && *optional}
	if data, ok := m.offlineCopy(kindSecret, ns, name); ok {
		k.found, k.data = true, data
		return k, nil
	}
	s, err := m.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		m.removeLocalCopy(kindSecret, ns, name)
		if k.optional {
			return k, nil
		}
		return k, fmt.Errorf("secret %q not found", name)
	case err != nil:
		if data, ok := m.fromLocalCopy(kindSecret, ns, name, err); ok {
			k.found, k.data = true, data
			return k, nil
		}
		return k, fmt.Errorf("get secret %q: %w", name, err)
	}
	k.found = true
	k.data = make(map[string][]byte, len(s.Data)+len(s.StringData))
	for key, v := range s.StringData {
		k.data[key] = []byte(v)
	}
	for key, v := range s.Data {
		k.data[key] = v
	}
	m.keepLocalCopy(kindSecret, ns, name, k.data)
	return k, nil
}

// downward adds downwardAPI items to p.
func (m *Manager) downward(ctx context.Context, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode *int32, p payload) error {
	var alloc corev1.ResourceList // fetched once, only if a limit is unset
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = downward.FieldPath(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			if alloc == nil && downward.NeedsAllocatable(pod, it.ResourceFieldRef) {
				if alloc, err = m.allocatable(ctx); err != nil {
					return err
				}
			}
			val, err = downward.ResourceField(pod, it.ResourceFieldRef, alloc)
		default:
			err = fmt.Errorf("item %q has neither fieldRef nor resourceFieldRef", it.Path)
		}
		if err != nil {
			return fmt.Errorf("downwardAPI %q: %w", it.Path, err)
		}
		if err := p.add(it.Path, []byte(val), fileMode(it.Mode, defMode)); err != nil {
			return fmt.Errorf("downwardAPI: %w", err)
		}
	}
	return nil
}

func (m *Manager) allocatable(ctx context.Context) (corev1.ResourceList, error) {
	if m.cfg.NodeName == "" {
		return corev1.ResourceList{}, nil
	}
	n, err := m.cfg.Client.CoreV1().Nodes().Get(ctx, m.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get node %q for allocatable resources: %w", m.cfg.NodeName, err)
	}
	return n.Status.Allocatable, nil
}
