package volumes

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	cm, err := m.cfg.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if k.optional {
			return k, nil
		}
		return k, fmt.Errorf("configmap %q not found", name)
	case err != nil:
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
	return k, nil
}

func (m *Manager) secret(ctx context.Context, ns, name string, optional *bool) (keyed, error) {
	k := keyed{kind: "secret", name: name, optional: optional != nil && *optional}
	s, err := m.cfg.Client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if k.optional {
			return k, nil
		}
		return k, fmt.Errorf("secret %q not found", name)
	case err != nil:
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
			val, err = podField(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			if alloc == nil && needsAllocatable(pod, it.ResourceFieldRef) {
				if alloc, err = m.allocatable(ctx); err != nil {
					return err
				}
			}
			val, err = resourceField(pod, it.ResourceFieldRef, alloc)
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

// formatMap renders labels or annotations as the kubelet does: sorted
// key="value" lines, values Go-quoted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(lines, "\n")
}

// subscript parses metadata.labels['key'] forms.
func subscript(fieldPath, prefix string) (string, bool) {
	if !strings.HasPrefix(fieldPath, prefix+"['") || !strings.HasSuffix(fieldPath, "']") {
		return "", false
	}
	return fieldPath[len(prefix)+2 : len(fieldPath)-2], true
}

func podField(pod *corev1.Pod, fieldPath string) (string, error) {
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	if k, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", fieldPath)
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

func splitResource(ref *corev1.ResourceFieldSelector) (limits bool, name corev1.ResourceName, err error) {
	switch {
	case strings.HasPrefix(ref.Resource, "limits."):
		return true, corev1.ResourceName(strings.TrimPrefix(ref.Resource, "limits.")), nil
	case strings.HasPrefix(ref.Resource, "requests."):
		return false, corev1.ResourceName(strings.TrimPrefix(ref.Resource, "requests.")), nil
	}
	return false, "", fmt.Errorf("unsupported resource %q", ref.Resource)
}

func needsAllocatable(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) bool {
	limits, name, err := splitResource(ref)
	c := findContainer(pod, ref.ContainerName)
	if err != nil || !limits || c == nil {
		return false
	}
	_, ok := c.Resources.Limits[name]
	return !ok
}

// resourceField renders a container's limit or request divided by the
// divisor, rounded up; an unset limit is the node's allocatable amount, as
// with the kubelet.
func resourceField(pod *corev1.Pod, ref *corev1.ResourceFieldSelector, alloc corev1.ResourceList) (string, error) {
	c := findContainer(pod, ref.ContainerName)
	if c == nil {
		return "", fmt.Errorf("container %q not found", ref.ContainerName)
	}
	limits, name, err := splitResource(ref)
	if err != nil {
		return "", err
	}
	var q resource.Quantity
	var ok bool
	if limits {
		if q, ok = c.Resources.Limits[name]; !ok {
			q = alloc[name]
		}
	} else {
		q = c.Resources.Requests[name]
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	var n, d int64
	if name == corev1.ResourceCPU {
		n, d = q.MilliValue(), div.MilliValue()
	} else {
		n, d = q.Value(), div.Value()
	}
	if d <= 0 {
		return "", fmt.Errorf("invalid divisor %s", div.String())
	}
	return strconv.FormatInt((n+d-1)/d, 10), nil
}
