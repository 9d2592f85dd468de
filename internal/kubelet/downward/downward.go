// Package downward resolves what a pod may learn about itself, the same way
// for environment variables and downwardAPI volumes: fieldRef paths,
// resourceFieldRefs, and Kubernetes' $(VAR) expansion.
package downward

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Expand replaces $(VAR) with vars[VAR] as Kubernetes does: $$ is a literal
// $, and references to unknown variables are left as written.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// FieldPath resolves a fieldRef against the pod; status fields are read
// from pod.Status, which the kubelet fills in before the API hears of them.
func FieldPath(pod *corev1.Pod, path string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return FormatMap(pod.Labels), nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	case "status.hostIPs":
		var ips []string
		for _, ip := range pod.Status.HostIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.podIPs":
		var ips []string
		for _, ip := range pod.Status.PodIPs {
			ips = append(ips, ip.IP)
		}
		return strings.Join(ips, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses metadata.labels['key'] forms.
func subscript(path, prefix string) (string, bool) {
	if !strings.HasPrefix(path, prefix+"['") || !strings.HasSuffix(path, "']") {
		return "", false
	}
	return path[len(prefix)+2 : len(path)-2], true
}

// FormatMap renders labels or annotations as the kubelet does: sorted
// key="value" lines, values Go-quoted.
func FormatMap(m map[string]string) string {
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

// Container finds a container or init container by name.
func Container(pod *corev1.Pod, name string) *corev1.Container {
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

// NeedsAllocatable reports whether resolving ref reads the node's
// allocatable resources (an unset limit), so callers fetch them only then.
func NeedsAllocatable(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) bool {
	limits, name, err := splitResource(ref)
	c := Container(pod, ref.ContainerName)
	if err != nil || !limits || c == nil {
		return false
	}
	_, ok := c.Resources.Limits[name]
	return !ok
}

// ResourceField renders a container's limit or request divided by the
// divisor, rounded up; an unset limit is the node's allocatable amount, as
// with the kubelet.
func ResourceField(pod *corev1.Pod, ref *corev1.ResourceFieldSelector, allocatable corev1.ResourceList) (string, error) {
	c := Container(pod, ref.ContainerName)
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
			q = allocatable[name]
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
