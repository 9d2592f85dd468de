package volumebinder

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

const (
	// Event messages users and tools know from Kubernetes.
	msgNoClassNoVolume = "no persistent volumes available for this claim and no storage class is set"
	msgWaitForConsumer = "waiting for first consumer to be created before binding"

	annotationValueYes = "yes"
	claimKind          = "PersistentVolumeClaim"
)

// syncClaim reconciles the claim named by key ("namespace/name").
func (c *Controller) syncClaim(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	claim, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Its volumes were enqueued by the delete handler.
		return nil
	}
	if err != nil {
		return fmt.Errorf("claim %s: %w", key, err)
	}
	if !metav1.HasAnnotation(claim.ObjectMeta, AnnBindCompleted) {
		return c.syncUnboundClaim(ctx, claim)
	}
	return c.syncBoundClaim(ctx, claim)
}

// syncUnboundClaim finds a volume for a claim not yet bound, or asks for
// one to be provisioned.
func (c *Controller) syncUnboundClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	if claim.Spec.VolumeName != "" {
		return c.syncPreBoundClaim(ctx, claim)
	}
	class, err := c.claimStorageClass(claim)
	if err != nil {
		return err
	}
	delay := class != nil && isWaitForFirstConsumer(class) && claim.Annotations[AnnSelectedNode] == ""
	volumes, err := c.volumes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list volumes: %w", err)
	}
	v, err := findBestMatch(claim, volumes, matchQuery{node: c.selectedNode(claim), preBoundOnly: delay})
	if err != nil {
		return err
	}
	if v != nil {
		return c.bind(ctx, v, claim)
	}
	switch className := ClaimClass(claim); {
	case delay:
		c.recorder.Event(claim, corev1.EventTypeNormal, ReasonWaitForFirstConsumer, msgWaitForConsumer)
	case className == "":
		c.recorder.Event(claim, corev1.EventTypeNormal, ReasonFailedBinding, msgNoClassNoVolume)
	case class == nil:
		// The class handler enqueues the claim when the class appears.
		c.recorder.Eventf(claim, corev1.EventTypeWarning, ReasonProvisioningFailed, "storageclass.storage.k8s.io %q not found", className)
	case class.Provisioner == NoProvisioner:
		c.recorder.Eventf(claim, corev1.EventTypeWarning, ReasonProvisioningFailed,
			"no persistent volume fits this claim and storage class %q has no provisioner: create a matching volume", className)
	default:
		if claim, err = c.askProvisioner(ctx, claim, class.Provisioner); err != nil {
			return err
		}
	}
	_, err = c.setClaimPhase(ctx, claim, corev1.ClaimPending, nil)
	return err
}

// askProvisioner records on the claim which provisioner is to create its
// volume; the provisioner acts on claims carrying its name.
func (c *Controller) askProvisioner(ctx context.Context, claim *corev1.PersistentVolumeClaim, provisioner string) (*corev1.PersistentVolumeClaim, error) {
	if claim.Annotations[AnnStorageProvisioner] != provisioner || claim.Annotations[AnnBetaStorageProvisioner] != provisioner {
		nc := claim.DeepCopy()
		metav1.SetMetaDataAnnotation(&nc.ObjectMeta, AnnStorageProvisioner, provisioner)
		metav1.SetMetaDataAnnotation(&nc.ObjectMeta, AnnBetaStorageProvisioner, provisioner)
		out, err := c.client.CoreV1().PersistentVolumeClaims(nc.Namespace).Update(ctx, nc, metav1.UpdateOptions{})
		if err != nil {
			return claim, fmt.Errorf("claim %s/%s: set provisioner: %w", claim.Namespace, claim.Name, err)
		}
		claim = out
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, ReasonExternalProvisioning,
		"waiting for a volume to be created by the %q provisioner or by an administrator", provisioner)
	return claim, nil
}

// syncPreBoundClaim binds a claim that names its volume in spec.volumeName.
func (c *Controller) syncPreBoundClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	v, err := c.volumes.Get(claim.Spec.VolumeName)
	switch {
	case apierrors.IsNotFound(err):
		// The volume handler enqueues the claim when it is created.
		_, err = c.setClaimPhase(ctx, claim, corev1.ClaimPending, nil)
		return err
	case err != nil:
		return fmt.Errorf("volume %s: %w", claim.Spec.VolumeName, err)
	case v.Spec.ClaimRef == nil:
		if err := volumeSatisfiesClaim(v, claim); err != nil {
			c.recorder.Eventf(claim, corev1.EventTypeWarning, ReasonVolumeMismatch, "cannot bind to requested volume %q: %v", v.Name, err)
			_, err = c.setClaimPhase(ctx, claim, corev1.ClaimPending, nil)
			return err
		}
		return c.bind(ctx, v, claim)
	case claimRefersTo(v.Spec.ClaimRef, claim):
		return c.bind(ctx, v, claim)
	default:
		c.recorder.Eventf(claim, corev1.EventTypeWarning, ReasonFailedBinding, "volume %q is already bound to a different claim", v.Name)
		_, err = c.setClaimPhase(ctx, claim, corev1.ClaimPending, nil)
		return err
	}
}

// syncBoundClaim keeps a bound claim's binding whole, or marks it Lost
// when its volume is gone or belongs to another claim.
func (c *Controller) syncBoundClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim) error {
	if claim.Spec.VolumeName == "" {
		return c.loseClaim(ctx, claim, ReasonClaimLost, "the claim was bound but names no volume any more; its data is unreachable")
	}
	v, err := c.volumes.Get(claim.Spec.VolumeName)
	switch {
	case apierrors.IsNotFound(err):
		return c.loseClaim(ctx, claim, ReasonClaimLost, fmt.Sprintf("volume %q of this bound claim was deleted; its data is lost", claim.Spec.VolumeName))
	case err != nil:
		return fmt.Errorf("volume %s: %w", claim.Spec.VolumeName, err)
	case v.Spec.ClaimRef == nil, claimRefersTo(v.Spec.ClaimRef, claim):
		// Bound, or the volume's half was undone: (re)complete it.
		return c.bind(ctx, v, claim)
	default:
		return c.loseClaim(ctx, claim, ReasonClaimMisbound, fmt.Sprintf("volume %q is bound to another claim; this claim is bound incorrectly", v.Name))
	}
}

func (c *Controller) loseClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim, reason, msg string) error {
	if claim.Status.Phase != corev1.ClaimLost {
		c.recorder.Event(claim, corev1.EventTypeWarning, reason, msg)
	}
	_, err := c.setClaimPhase(ctx, claim, corev1.ClaimLost, nil)
	return err
}

// bind completes the binding of v and claim, each step idempotent: the
// volume's claimRef, its phase, the claim's volumeName and annotations,
// its phase. A failed step is retried from the top on the next sync.
func (c *Controller) bind(ctx context.Context, v *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) error {
	v, err := c.bindVolume(ctx, v, claim)
	if err != nil {
		return err
	}
	if v, err = c.setVolumePhase(ctx, v, corev1.VolumeBound, ""); err != nil {
		return err
	}
	if claim, err = c.bindClaim(ctx, claim, v); err != nil {
		return err
	}
	if _, err = c.setClaimPhase(ctx, claim, corev1.ClaimBound, v); err != nil {
		return err
	}
	c.log.Debug("bound", "claim", claimKey(claim.Namespace, claim.Name), "volume", v.Name)
	return nil
}

// ClaimReference is the claimRef a volume bound (or pre-bound by a
// provisioner) to claim carries.
func ClaimReference(claim *corev1.PersistentVolumeClaim) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind: claimKind, APIVersion: "v1",
		Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
	}
}

func (c *Controller) bindVolume(ctx context.Context, v *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) (*corev1.PersistentVolume, error) {
	if r := v.Spec.ClaimRef; r != nil && r.Namespace == claim.Namespace && r.Name == claim.Name && r.UID == claim.UID {
		return v, nil
	}
	nv := v.DeepCopy()
	if !claimRefersTo(v.Spec.ClaimRef, claim) {
		// Not pre-bound by a user or a provisioner: the binder chose it.
		metav1.SetMetaDataAnnotation(&nv.ObjectMeta, AnnBoundByController, annotationValueYes)
	}
	nv.Spec.ClaimRef = ClaimReference(claim)
	out, err := c.client.CoreV1().PersistentVolumes().Update(ctx, nv, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("bind volume %s to claim %s/%s: %w", v.Name, claim.Namespace, claim.Name, err)
	}
	return out, nil
}

func (c *Controller) bindClaim(ctx context.Context, claim *corev1.PersistentVolumeClaim, v *corev1.PersistentVolume) (*corev1.PersistentVolumeClaim, error) {
	if claim.Spec.VolumeName == v.Name && metav1.HasAnnotation(claim.ObjectMeta, AnnBindCompleted) {
		return claim, nil
	}
	nc := claim.DeepCopy()
	if nc.Spec.VolumeName != v.Name {
		metav1.SetMetaDataAnnotation(&nc.ObjectMeta, AnnBoundByController, annotationValueYes)
		nc.Spec.VolumeName = v.Name
	}
	metav1.SetMetaDataAnnotation(&nc.ObjectMeta, AnnBindCompleted, annotationValueYes)
	out, err := c.client.CoreV1().PersistentVolumeClaims(nc.Namespace).Update(ctx, nc, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("bind claim %s/%s to volume %s: %w", claim.Namespace, claim.Name, v.Name, err)
	}
	return out, nil
}

// setClaimPhase writes the claim's phase; a Bound claim reports its
// volume's access modes and capacity, any other none.
func (c *Controller) setClaimPhase(ctx context.Context, claim *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, v *corev1.PersistentVolume) (*corev1.PersistentVolumeClaim, error) {
	var modes []corev1.PersistentVolumeAccessMode
	var capacity corev1.ResourceList
	if v != nil {
		modes = v.Spec.AccessModes
		if q, ok := v.Spec.Capacity[corev1.ResourceStorage]; ok {
			capacity = corev1.ResourceList{corev1.ResourceStorage: q}
		}
	}
	st := &claim.Status
	if st.Phase == phase && equality.Semantic.DeepEqual(st.AccessModes, modes) && equality.Semantic.DeepEqual(st.Capacity, capacity) {
		return claim, nil
	}
	nc := claim.DeepCopy()
	nc.Status.Phase = phase
	nc.Status.AccessModes = modes
	nc.Status.Capacity = capacity
	out, err := c.client.CoreV1().PersistentVolumeClaims(nc.Namespace).UpdateStatus(ctx, nc, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("claim %s/%s: set phase %s: %w", claim.Namespace, claim.Name, phase, err)
	}
	return out, nil
}

// setVolumePhase writes the volume's phase and message, stamping the time
// of a phase change.
func (c *Controller) setVolumePhase(ctx context.Context, v *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, msg string) (*corev1.PersistentVolume, error) {
	if v.Status.Phase == phase && v.Status.Message == msg {
		return v, nil
	}
	nv := v.DeepCopy()
	if nv.Status.Phase != phase {
		now := metav1.NewTime(c.now())
		nv.Status.LastPhaseTransitionTime = &now
	}
	nv.Status.Phase = phase
	nv.Status.Message = msg
	out, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, nv, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("volume %s: set phase %s: %w", v.Name, phase, err)
	}
	return out, nil
}

// claimStorageClass is the claim's StorageClass, nil if it names none or
// the class does not exist (yet).
func (c *Controller) claimStorageClass(claim *corev1.PersistentVolumeClaim) (*storagev1.StorageClass, error) {
	name := ClaimClass(claim)
	if name == "" {
		return nil, nil
	}
	sc, err := c.classes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage class %s: %w", name, err)
	}
	return sc, nil
}

func isWaitForFirstConsumer(sc *storagev1.StorageClass) bool {
	return sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
}

// selectedNode is the node the scheduler chose for the claim, nil if none.
// A node not (yet) in the cache is known by name only, so volumes tied to
// nodes by label do not match it.
func (c *Controller) selectedNode(claim *corev1.PersistentVolumeClaim) *corev1.Node {
	name := claim.Annotations[AnnSelectedNode]
	if name == "" {
		return nil
	}
	if n, err := c.nodes.Get(name); err == nil {
		return n
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// syncVolume reconciles the volume named key.
func (c *Controller) syncVolume(ctx context.Context, key string) error {
	v, err := c.volumes.Get(key)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("volume %s: %w", key, err)
	}
	ref := v.Spec.ClaimRef
	if ref == nil || ref.UID == "" {
		// Unclaimed, or pre-bound by name to a claim that will take it.
		_, err := c.setVolumePhase(ctx, v, corev1.VolumeAvailable, "")
		return err
	}
	claim, err := c.claimOf(ctx, ref)
	if err != nil {
		return err
	}
	switch {
	case claim == nil:
		return c.release(ctx, v)
	case claim.Spec.VolumeName == "":
		// Binding is under way (or a provisioner just created the volume
		// for the claim): the claim's sync completes it.
		c.claimQueue.Add(claimKey(claim.Namespace, claim.Name))
		return nil
	case claim.Spec.VolumeName == v.Name:
		_, err := c.setVolumePhase(ctx, v, corev1.VolumeBound, "")
		return err
	case v.Annotations[AnnDynamicallyProvisioned] != "" && v.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete:
		// Provisioned for the claim, which then got another volume: it
		// is not needed.
		return c.release(ctx, v)
	default:
		return c.unbindVolume(ctx, v)
	}
}

// claimOf returns the claim ref names if it still exists with ref's uid,
// else nil. A claim missing from the cache is looked up in the API before
// its volume is released: the cache may not have seen it yet.
func (c *Controller) claimOf(ctx context.Context, ref *corev1.ObjectReference) (*corev1.PersistentVolumeClaim, error) {
	claim, err := c.claims.PersistentVolumeClaims(ref.Namespace).Get(ref.Name)
	if apierrors.IsNotFound(err) {
		claim, err = c.client.CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	if claim.UID != ref.UID {
		// Deleted and created again under the same name.
		return nil, nil
	}
	return claim, nil
}

// unbindVolume undoes the volume's half of a binding whose claim went to
// another volume: a binding the controller made is removed, a user's
// pre-binding by name is kept.
func (c *Controller) unbindVolume(ctx context.Context, v *corev1.PersistentVolume) error {
	nv := v.DeepCopy()
	if metav1.HasAnnotation(v.ObjectMeta, AnnBoundByController) {
		nv.Spec.ClaimRef = nil
		delete(nv.Annotations, AnnBoundByController)
	} else {
		nv.Spec.ClaimRef.UID = ""
	}
	out, err := c.client.CoreV1().PersistentVolumes().Update(ctx, nv, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("unbind volume %s: %w", v.Name, err)
	}
	_, err = c.setVolumePhase(ctx, out, corev1.VolumeAvailable, "")
	return err
}

// release marks a volume whose claim is gone Released and applies its
// reclaim policy. Failed volumes stay Failed.
func (c *Controller) release(ctx context.Context, v *corev1.PersistentVolume) error {
	if v.Status.Phase != corev1.VolumeReleased && v.Status.Phase != corev1.VolumeFailed {
		var err error
		if v, err = c.setVolumePhase(ctx, v, corev1.VolumeReleased, ""); err != nil {
			return err
		}
		c.log.Info("volume released", "volume", v.Name, "claim", claimKey(v.Spec.ClaimRef.Namespace, v.Spec.ClaimRef.Name),
			"reclaimPolicy", v.Spec.PersistentVolumeReclaimPolicy)
	}
	if v.Status.Phase != corev1.VolumeReleased {
		return nil
	}
	switch v.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRecycle:
		c.recorder.Event(v, corev1.EventTypeWarning, ReasonVolumeFailedRecycle, "skiff does not recycle volumes; use reclaim policy Retain or Delete")
		_, err := c.setVolumePhase(ctx, v, corev1.VolumeFailed, "reclaim policy Recycle is not supported")
		return err
	case corev1.PersistentVolumeReclaimDelete:
		if p := v.Annotations[AnnDynamicallyProvisioned]; p != "" {
			// Its provisioner removes the storage, then the volume.
			c.log.Debug("volume released; waiting for its provisioner to delete it", "volume", v.Name, "provisioner", p)
			return nil
		}
		if v.DeletionTimestamp != nil {
			return nil
		}
		// Created by hand: no plugin here can remove its data, which stays
		// where it is; only the API object goes.
		uid, rv := v.UID, v.ResourceVersion
		err := c.client.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) {
			if !apierrors.IsConflict(err) {
				c.recorder.Eventf(v, corev1.EventTypeWarning, ReasonVolumeFailedDelete, "deleting the released volume failed: %v", err)
			}
			return fmt.Errorf("delete released volume %s: %w", v.Name, err)
		}
		c.log.Info("deleted released volume; its storage is left in place", "volume", v.Name)
		return nil
	default:
		// Retain: the administrator decides.
		return nil
	}
}
