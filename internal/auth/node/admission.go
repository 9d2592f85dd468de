package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1listers "k8s.io/client-go/listers/core/v1"

	"skiff/internal/auth"
)

// Operations, as admission names them.
const (
	Create = "CREATE"
	Update = "UPDATE"
	Delete = "DELETE"
)

// MirrorPodAnnotation marks a static pod's mirror.
const MirrorPodAnnotation = corev1.MirrorPodAnnotationKey

// Request is what NodeRestriction needs of an admission request.
type Request struct {
	User      *auth.User
	Operation string // Create, Update or Delete
	// APIGroup, Resource and Subresource name what is written, as in the
	// URL (pods, pods/status, pods/eviction, nodes, nodes/status, leases,
	// serviceaccounts/token).
	APIGroup    string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	// Object is the new object (nil on delete); OldObject the stored one
	// on update and delete.
	Object    runtime.Object
	OldObject runtime.Object
}

// NodeRestriction is upstream's admission plugin of that name: a node may
// create only mirror pods bound to itself, change only its own pods, Node
// and Lease, request tokens only for its own pods, and never give itself
// node-restriction.kubernetes.io/ labels, other kubernetes.io labels
// beyond the kubelet's own (so no node-role.kubernetes.io/control-plane),
// or new taints.
type NodeRestriction struct {
	pods  corev1listers.PodLister
	nodes corev1listers.NodeLister
}

// NewNodeRestriction looks pods up (evictions, tokens) and nodes (mirror
// pod owners) in the listers.
func NewNodeRestriction(pods corev1listers.PodLister, nodes corev1listers.NodeLister) *NodeRestriction {
	return &NodeRestriction{pods: pods, nodes: nodes}
}

// Admit returns nil, or a 403 API status saying why the node may not make
// the request. Requests from other users pass.
func (p *NodeRestriction) Admit(r Request) error {
	node, ok := r.User.NodeName()
	if !ok {
		if r.User.InGroup(auth.NodesGroup) {
			return p.forbid(r, fmt.Errorf("could not determine node from user %q", r.User.Name))
		}
		return nil
	}
	switch {
	case r.APIGroup == "" && r.Resource == "pods":
		return p.pod(node, r)
	case r.APIGroup == "" && r.Resource == "nodes":
		return p.node(node, r)
	case r.APIGroup == "" && r.Resource == "serviceaccounts" && r.Subresource == "token":
		return p.token(node, r)
	case r.APIGroup == "coordination.k8s.io" && r.Resource == "leases":
		return p.lease(node, r)
	}
	return nil
}

func (p *NodeRestriction) forbid(r Request, err error) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: r.APIGroup, Resource: r.Resource}, r.Name, err)
}

func (p *NodeRestriction) pod(node string, r Request) error {
	switch r.Subresource {
	case "":
		switch r.Operation {
		case Create:
			return p.createPod(node, r)
		case Delete:
			old, ok := r.OldObject.(*corev1.Pod)
			if !ok {
				return p.forbid(r, fmt.Errorf("unexpected type %T", r.OldObject))
			}
			if old.Spec.NodeName != node {
				return p.forbid(r, fmt.Errorf("node %q can only delete pods with spec.nodeName set to itself", node))
			}
			return nil
		}
		return p.forbid(r, fmt.Errorf("unexpected operation %s", r.Operation))
	case "status":
		if r.Operation != Update {
			return p.forbid(r, fmt.Errorf("unexpected operation %s", r.Operation))
		}
		pod, ok1 := r.Object.(*corev1.Pod)
		old, ok2 := r.OldObject.(*corev1.Pod)
		if !ok1 || !ok2 {
			return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
		}
		if old.Spec.NodeName != node {
			return p.forbid(r, fmt.Errorf("node %q can only update pod status for pods with spec.nodeName set to itself", node))
		}
		if !equality.Semantic.DeepEqual(pod.Labels, old.Labels) {
			return p.forbid(r, fmt.Errorf("node %q cannot update labels through pod status", node))
		}
		return nil
	case "eviction":
		if r.Operation != Create {
			return nil
		}
		name := r.Name
		if e, ok := r.Object.(*policyv1.Eviction); ok && e.Name != "" {
			name = e.Name
		}
		pod, err := p.pods.Pods(r.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil // the eviction answers NotFound
		}
		if err != nil {
			return p.forbid(r, fmt.Errorf("error looking up pod %s/%s: %w", r.Namespace, name, err))
		}
		if pod.Spec.NodeName != node {
			return p.forbid(r, fmt.Errorf("node %s can only evict pods with spec.nodeName set to itself", node))
		}
		return nil
	}
	return nil
}

func (p *NodeRestriction) createPod(node string, r Request) error {
	pod, ok := r.Object.(*corev1.Pod)
	if !ok {
		return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
	}
	if _, mirror := pod.Annotations[MirrorPodAnnotation]; !mirror {
		return p.forbid(r, fmt.Errorf("pod does not have %q annotation, node %q can only create mirror pods", MirrorPodAnnotation, node))
	}
	if pod.Spec.NodeName != node {
		return p.forbid(r, fmt.Errorf("node %q can only create pods with spec.nodeName set to itself", node))
	}
	switch len(pod.OwnerReferences) {
	case 0:
		return p.forbid(r, fmt.Errorf("node %q can only create pods with an owner reference set to itself", node))
	case 1:
	default:
		return p.forbid(r, fmt.Errorf("node %q can only create pods with a single owner reference set to itself", node))
	}
	owner := pod.OwnerReferences[0]
	if owner.APIVersion != "v1" || owner.Kind != "Node" || owner.Name != node {
		return p.forbid(r, fmt.Errorf("node %q can only create pods with an owner reference set to itself", node))
	}
	if owner.Controller == nil || !*owner.Controller {
		return p.forbid(r, fmt.Errorf("node %q can only create pods with a controller owner reference set to itself", node))
	}
	if owner.BlockOwnerDeletion != nil && *owner.BlockOwnerDeletion {
		return p.forbid(r, fmt.Errorf("node %q must not set blockOwnerDeletion on an owner reference", node))
	}
	n, err := p.nodes.Get(node)
	if err != nil {
		return p.forbid(r, fmt.Errorf("error looking up node %s to verify uid: %w", node, err))
	}
	if owner.UID != n.UID {
		return p.forbid(r, fmt.Errorf("node %s UID mismatch: expected %s got %s", node, owner.UID, n.UID))
	}
	// A mirror pod refers to no other API object.
	if pod.Spec.ServiceAccountName != "" {
		return p.forbid(r, fmt.Errorf("node %q can not create pods that reference a service account", node))
	}
	for _, ref := range podRefs(pod) {
		switch ref.kind {
		case kindSecret:
			return p.forbid(r, fmt.Errorf("node %q can not create pods that reference secrets", node))
		case kindConfigMap:
			return p.forbid(r, fmt.Errorf("node %q can not create pods that reference configmaps", node))
		case kindPVC:
			return p.forbid(r, fmt.Errorf("node %q can not create pods that reference persistentvolumeclaims", node))
		}
	}
	return nil
}

func (p *NodeRestriction) node(node string, r Request) error {
	name := r.Name
	if n, ok := r.Object.(*corev1.Node); ok && name == "" {
		name = n.Name
	}
	if name != node {
		return p.forbid(r, fmt.Errorf("node %q is not allowed to modify node %q", node, name))
	}
	switch r.Operation {
	case Create:
		n, ok := r.Object.(*corev1.Node)
		if !ok {
			return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
		}
		if bad := forbiddenLabels(modifiedLabels(n.Labels, nil)); len(bad) > 0 {
			return p.forbid(r, fmt.Errorf("node %q is not allowed to set the following labels: %s", node, strings.Join(bad, ", ")))
		}
	case Update:
		n, ok1 := r.Object.(*corev1.Node)
		old, ok2 := r.OldObject.(*corev1.Node)
		if !ok1 || !ok2 {
			return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
		}
		if !equality.Semantic.DeepEqual(n.Spec.Taints, old.Spec.Taints) {
			return p.forbid(r, fmt.Errorf("node %q is not allowed to modify taints", node))
		}
		if bad := forbiddenLabels(modifiedLabels(n.Labels, old.Labels)); len(bad) > 0 {
			return p.forbid(r, fmt.Errorf("is not allowed to modify labels: %s", strings.Join(bad, ", ")))
		}
	}
	return nil
}

func (p *NodeRestriction) lease(node string, r Request) error {
	if r.Operation != Create {
		return nil // the authorizer checked the name
	}
	l, ok := r.Object.(*coordinationv1.Lease)
	if !ok {
		return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
	}
	if l.Name != node {
		return p.forbid(r, errors.New("can only access node lease with the same name as the requesting node"))
	}
	return nil
}

func (p *NodeRestriction) token(node string, r Request) error {
	if r.Operation != Create {
		return nil
	}
	tr, ok := r.Object.(*authenticationv1.TokenRequest)
	if !ok {
		return p.forbid(r, fmt.Errorf("unexpected type %T", r.Object))
	}
	ref := tr.Spec.BoundObjectRef
	if ref == nil || ref.Kind != "Pod" {
		return p.forbid(r, errors.New("node requested token not bound to a pod"))
	}
	if ref.UID == "" {
		return p.forbid(r, errors.New("node requested token with a pod binding without a uid"))
	}
	pod, err := p.pods.Pods(r.Namespace).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		return p.forbid(r, fmt.Errorf("node requested token bound to a pod that does not exist"))
	}
	if err != nil {
		return p.forbid(r, fmt.Errorf("error looking up pod %s/%s: %w", r.Namespace, ref.Name, err))
	}
	if ref.UID != pod.UID {
		return p.forbid(r, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	if pod.Spec.NodeName != node {
		return p.forbid(r, errors.New("node requested token bound to a pod scheduled on a different node"))
	}
	return nil
}

// modifiedLabels lists the keys added, removed or changed.
func modifiedLabels(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// kubeletLabels are the kubernetes.io labels a kubelet may set on its Node,
// as upstream; so may it those under kubelet.kubernetes.io/ and
// node.kubernetes.io/.
func kubeletLabels() []string {
	return []string{
		corev1.LabelHostname,
		corev1.LabelTopologyZone, corev1.LabelTopologyRegion,
		corev1.LabelFailureDomainBetaZone, corev1.LabelFailureDomainBetaRegion,
		corev1.LabelInstanceType, corev1.LabelInstanceTypeStable,
		corev1.LabelOSStable, corev1.LabelArchStable,
		"beta.kubernetes.io/os", "beta.kubernetes.io/arch",
	}
}

func labelNamespace(key string) string {
	if ns, _, ok := strings.Cut(key, "/"); ok {
		return ns
	}
	return ""
}

func inNamespace(ns, domain string) bool {
	return ns == domain || strings.HasSuffix(ns, "."+domain)
}

// IsKubeletLabel reports whether a kubelet may set the label on its Node.
func IsKubeletLabel(key string) bool {
	if slices.Contains(kubeletLabels(), key) {
		return true
	}
	ns := labelNamespace(key)
	return inNamespace(ns, "kubelet.kubernetes.io") || inNamespace(ns, "node.kubernetes.io")
}

func forbiddenLabels(keys []string) []string {
	var out []string
	for _, k := range keys {
		ns := labelNamespace(k)
		restricted := inNamespace(ns, corev1.LabelNamespaceNodeRestriction)
		kubernetes := inNamespace(ns, "kubernetes.io") || inNamespace(ns, "k8s.io")
		if restricted || (kubernetes && !IsKubeletLabel(k)) {
			out = append(out, k)
		}
	}
	return out
}
