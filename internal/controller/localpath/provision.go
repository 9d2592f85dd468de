package localpath

import (
	"context"
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller/volumebinder"
)

// hostnameLabel is the node label local volumes are pinned by.
const hostnameLabel = corev1.LabelHostname

// VolumeName is the name of the volume provisioned for a claim.
func VolumeName(claim *corev1.PersistentVolumeClaim) string { return "pvc-" + string(claim.UID) }

// VolumePath is where, under storageDir on its node, a claim's volume lives.
func VolumePath(storageDir string, claim *corev1.PersistentVolumeClaim) string {
	return filepath.Join(storageDir, fmt.Sprintf("pvc-%s_%s_%s", claim.UID, claim.Namespace, claim.Name))
}

// asksUs reports whether the binder handed the claim to this provisioner
// and it still needs a volume.
func asksUs(claim *corev1.PersistentVolumeClaim) bool {
	if claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil {
		return false
	}
	p := claim.Annotations[volumebinder.AnnStorageProvisioner]
	if p == "" {
		p = claim.Annotations[volumebinder.AnnBetaStorageProvisioner]
	}
	return p == ProvisionerName
}

// unsupported says why this provisioner cannot serve the claim, "" if it can.
func unsupported(claim *corev1.PersistentVolumeClaim) string {
	switch {
	case claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode != corev1.PersistentVolumeFilesystem:
		return fmt.Sprintf("local-path volumes are directories: volumeMode %s is not supported", *claim.Spec.VolumeMode)
	case claim.Spec.Selector != nil:
		return "a claim with a selector binds only existing volumes; dynamic provisioning does not serve it"
	case claim.Spec.DataSource != nil || claim.Spec.DataSourceRef != nil:
		return "local-path volumes cannot be populated from a data source"
	}
	return ""
}

// volumeFor is the volume provisioned for claim of class on the node whose
// kubernetes.io/hostname label is hostname. It is pre-bound to the claim.
func volumeFor(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, hostname, storageDir string) *corev1.PersistentVolume {
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        VolumeName(claim),
			Annotations: map[string]string{volumebinder.AnnDynamicallyProvisioned: ProvisionerName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity: corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: VolumePath(storageDir, claim)},
			},
			AccessModes:                   append([]corev1.PersistentVolumeAccessMode(nil), claim.Spec.AccessModes...),
			ClaimRef:                      volumebinder.ClaimReference(claim),
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  append([]string(nil), class.MountOptions...),
			VolumeMode:                    new(corev1.PersistentVolumeFilesystem),
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: hostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname},
				}}}},
			}},
		},
	}
}

// syncClaim provisions a volume for the claim named by key if it asks for one.
func (c *Controller) syncClaim(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	claim, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", key, err)
	}
	if !asksUs(claim) {
		return nil
	}
	class, err := c.classes.Get(volumebinder.ClaimClass(claim))
	if apierrors.IsNotFound(err) {
		// The binder reports a missing class.
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s: storage class: %w", key, err)
	}
	if class.Provisioner != ProvisionerName {
		return nil
	}
	node := claim.Annotations[volumebinder.AnnSelectedNode]
	if node == "" {
		c.recorder.Eventf(claim, corev1.EventTypeWarning, reasonProvisioningFailed,
			"a local-path volume lives on one node, which the scheduler chooses: StorageClass %q needs volumeBindingMode WaitForFirstConsumer", class.Name)
		return nil
	}
	if why := unsupported(claim); why != "" {
		c.recorder.Event(claim, corev1.EventTypeWarning, reasonProvisioningFailed, why)
		return nil
	}
	if _, err := c.volumes.Get(VolumeName(claim)); err == nil {
		// Provisioned already; the binder binds it.
		return nil
	}
	pv := volumeFor(claim, class, c.hostname(node), c.storageDir)
	_, err = c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(claim, corev1.EventTypeWarning, reasonProvisioningFailed, "creating volume %s failed: %v", pv.Name, err)
		return fmt.Errorf("claim %s: create volume %s: %w", key, pv.Name, err)
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, reasonProvisioningSucceeded,
		"Successfully provisioned volume %s on node %s at %s", pv.Name, node, pv.Spec.Local.Path)
	c.log.Info("provisioned volume", "claim", key, "volume", pv.Name, "node", node, "path", pv.Spec.Local.Path)
	return nil
}

// hostname is the kubernetes.io/hostname label of the node named node,
// which is usually its name.
func (c *Controller) hostname(node string) string {
	if n, err := c.nodes.Get(node); err == nil {
		if h := n.Labels[hostnameLabel]; h != "" {
			return h
		}
	}
	return node
}

// syncVolume deletes a local-path volume released with reclaim policy
// Delete.
//
// Only the PersistentVolume object is deleted here. Its directory on the
// node is the kubelet's to remove: the kubelet of that node owns the disk,
// and removes the directories under <data-dir>/storage of volumes that no
// longer exist.
func (c *Controller) syncVolume(ctx context.Context, key string) error {
	v, err := c.volumes.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", key, err)
	}
	if v.Annotations[volumebinder.AnnDynamicallyProvisioned] != ProvisionerName ||
		v.Status.Phase != corev1.VolumeReleased ||
		v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		v.DeletionTimestamp != nil {
		return nil
	}
	uid, rv := v.UID, v.ResourceVersion
	err = c.client.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		if !apierrors.IsConflict(err) {
			c.recorder.Eventf(v, corev1.EventTypeWarning, reasonVolumeFailedDelete, "deleting the released volume failed: %v", err)
		}
		return fmt.Errorf("delete released volume %s: %w", v.Name, err)
	}
	c.log.Info("deleted released volume", "volume", v.Name, "path", localPath(v))
	return nil
}

func localPath(v *corev1.PersistentVolume) string {
	if v.Spec.Local != nil {
		return v.Spec.Local.Path
	}
	return ""
}
