package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
)

// AnnSelectedNode is the annotation the scheduler puts on an unbound claim
// of a WaitForFirstConsumer StorageClass once it chose a node for the pod
// using it, so that the provisioner creates the volume there.
const AnnSelectedNode = "volume.kubernetes.io/selected-node"

// annStorageClassBeta is the old way of naming a claim's class.
const annStorageClassBeta = "volume.beta.kubernetes.io/storage-class"

// Lookup is the part of the cluster the scheduler reads besides nodes and
// pods: volume objects and namespace labels. Getters return a NotFound
// error (apierrors) for missing objects.
type Lookup interface {
	PVC(namespace, name string) (*corev1.PersistentVolumeClaim, error)
	PV(name string) (*corev1.PersistentVolume, error)
	StorageClass(name string) (*storagev1.StorageClass, error)
	NamespaceLabels(namespace string) labels.Set
}

// volumeState is what the volume filter precomputed for the pod.
type volumeState struct {
	// boundAffinity are the node affinities of the PVs the pod's bound
	// claims use; the node must match each one.
	boundAffinity []*corev1.NodeSelector
	// selectedNodes are nodes already chosen for claims being provisioned.
	selectedNodes []string
	// toAnnotate are unbound WaitForFirstConsumer claims: any node will do
	// and the chosen one is recorded on them before the pod is bound.
	toAnnotate []*corev1.PersistentVolumeClaim
}

// podClaims lists the claims the pod uses: persistentVolumeClaim volumes
// and the claims of generic ephemeral volumes (named pod-volume).
func podClaims(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, pod.Name+"-"+v.Name)
		}
	}
	return out
}

func claimClass(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return pvc.Annotations[annStorageClassBeta]
}

// preFilterVolumes reads the pod's claims. A missing or deleted claim, a
// claim bound to a missing volume, or an unbound claim that is not to be
// bound by the first consumer (so waits for the volume controller) makes
// the pod unschedulable on every node.
func preFilterVolumes(st *CycleState) *Status {
	claims := podClaims(st.Pod.Pod)
	if len(claims) == 0 {
		return nil
	}
	if st.Lookup == nil {
		return asError(PluginVolumeBinding, fmt.Errorf("pod uses claims but the scheduler has no volume lookup"))
	}
	vs := &st.volumes
	ns := st.Pod.Pod.Namespace
	for _, name := range claims {
		pvc, err := st.Lookup.PVC(ns, name)
		if apierrors.IsNotFound(err) {
			return unresolvable(PluginVolumeBinding, fmt.Sprintf("persistentvolumeclaim %q not found", name))
		}
		if err != nil {
			return asError(PluginVolumeBinding, fmt.Errorf("claim %s/%s: %w", ns, name, err))
		}
		if pvc.DeletionTimestamp != nil {
			return unresolvable(PluginVolumeBinding, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name))
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := st.Lookup.PV(pvc.Spec.VolumeName)
			if apierrors.IsNotFound(err) {
				return unresolvable(PluginVolumeBinding, reasonBoundToMissingPV)
			}
			if err != nil {
				return asError(PluginVolumeBinding, fmt.Errorf("volume %s: %w", pvc.Spec.VolumeName, err))
			}
			if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
				vs.boundAffinity = append(vs.boundAffinity, pv.Spec.NodeAffinity.Required)
			}
			continue
		}
		class := claimClass(pvc)
		if class == "" {
			return unresolvable(PluginVolumeBinding, reasonUnboundImmediatePVC)
		}
		sc, err := st.Lookup.StorageClass(class)
		if apierrors.IsNotFound(err) {
			return unresolvable(PluginVolumeBinding, fmt.Sprintf("storageclass.storage.k8s.io %q not found", class))
		}
		if err != nil {
			return asError(PluginVolumeBinding, fmt.Errorf("storage class %s: %w", class, err))
		}
		if sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			return unresolvable(PluginVolumeBinding, reasonUnboundImmediatePVC)
		}
		if sel := pvc.Annotations[AnnSelectedNode]; sel != "" {
			vs.selectedNodes = append(vs.selectedNodes, sel)
			continue
		}
		vs.toAnnotate = append(vs.toAnnotate, pvc)
	}
	return nil
}

// filterVolumes keeps the pod with its data: the node must match the node
// affinity of every bound volume, and be the node already selected for a
// claim being provisioned.
func filterVolumes(st *CycleState, n *NodeInfo) *Status {
	vs := &st.volumes
	for _, sel := range vs.boundAffinity {
		if !nodeMatchesTerms(n.Node, sel.NodeSelectorTerms) {
			return unresolvable(PluginVolumeBinding, reasonVolumeNodeConflict)
		}
	}
	for _, name := range vs.selectedNodes {
		if name != n.Name {
			return unresolvable(PluginVolumeBinding, reasonVolumeSelectedNode)
		}
	}
	return nil
}
