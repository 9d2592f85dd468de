package registry

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nodeStrategy is core/v1 nodes. A node keeps the status it is created
// with (its kubelet registers it whole).
type nodeStrategy struct{ basics }

func (nodeStrategy) Info() *Info {
	return &Info{
		Version: "v1", Resource: "nodes", Kind: "Node", SingularName: "node",
		ShortNames: []string{"no"},
		Subresources: []Subresource{
			statusSubresource(),
			{Name: "proxy", Kind: "NodeProxyOptions", Verbs: []string{"create", "delete", "get", "patch", "update"}},
		},
	}
}

func (nodeStrategy) New() runtime.Object     { return &corev1.Node{} }
func (nodeStrategy) NewList() runtime.Object { return &corev1.NodeList{} }

func (s nodeStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }
func (nodeStrategy) Default(obj runtime.Object)                 { defaultNode(obj.(*corev1.Node)) }
func (nodeStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validateNode(obj.(*corev1.Node))
}

func (nodeStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validateNodeUpdate(obj.(*corev1.Node), old.(*corev1.Node))
}

func (nodeStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.Node).Status = src.(*corev1.Node).Status
}

func (nodeStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.Node).Spec, old.(*corev1.Node).Spec)
}

func (nodeStrategy) SelectableFields(obj runtime.Object) fields.Set {
	return fields.Set{"spec.unschedulable": fmt.Sprint(obj.(*corev1.Node).Spec.Unschedulable)}
}

func (nodeStrategy) TableColumns() []metav1.TableColumnDefinition { return nodeColumns() }
func (nodeStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return nodeCells(obj.(*corev1.Node), now)
}

// KubeletMethods: nodes/proxy passes any method through.
func (nodeStrategy) KubeletMethods(sub string) []string {
	if sub == "proxy" || strings.HasPrefix(sub, "proxy/") {
		return []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}
	}
	return nil
}

// KubeletPath: nodes/<name>/proxy/<rest> is <rest> on the node's kubelet.
func (nodeStrategy) KubeletPath(obj runtime.Object, _, rest string, _ url.Values) (string, string, error) {
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	return obj.(*corev1.Node).Name, rest, nil
}
