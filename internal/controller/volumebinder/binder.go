// Package volumebinder is the PersistentVolume controller: it binds
// PersistentVolumeClaims to PersistentVolumes, keeps the phases of both
// (volume Available, Bound, Released, Failed; claim Pending, Bound, Lost),
// hands claims that no volume fits to their class's provisioner, and
// reclaims volumes whose claim is gone.
//
// It behaves as Kubernetes' PV controller does towards users and
// provisioners: the same annotations, phases and event reasons. Decisions
// live in match.go as pure functions; the sync functions read the current
// state from the listers and write only through the API.
//
// Reclaiming with policy Delete: a volume with the pv.kubernetes.io/provisioned-by
// annotation belongs to that provisioner, which removes the storage and then
// the PersistentVolume (skiff's own skiff.io/local-path volumes are deleted
// by the local-path provisioner, package localpath); the binder only marks it
// Released. A volume an administrator created with policy Delete has no
// provisioner to remove its data, so the binder deletes the PersistentVolume
// object itself and leaves the storage as it is.
package volumebinder

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
	"skiff/internal/controller/manager"
)

// Name is the controller's name in events (the component Kubernetes' PV
// controller reports as).
const Name = "persistentvolume-controller"

// Annotations shared with provisioners and the scheduler.
const (
	// AnnBindCompleted on a claim: the binder finished binding it.
	AnnBindCompleted = "pv.kubernetes.io/bind-completed"
	// AnnBoundByController on a claim or volume: the binder, not a user,
	// set its half of the binding.
	AnnBoundByController = "pv.kubernetes.io/bound-by-controller"
	// AnnSelectedNode on a claim: the node the scheduler chose for the
	// first pod using a WaitForFirstConsumer claim.
	AnnSelectedNode = "volume.kubernetes.io/selected-node"
	// AnnStorageProvisioner on a claim: the provisioner asked to create
	// its volume; AnnBetaStorageProvisioner is the older spelling, still
	// set for provisioners that read only it.
	AnnStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	AnnBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	// AnnDynamicallyProvisioned on a volume: the provisioner that created
	// it, and that deletes it when reclaimed with policy Delete.
	AnnDynamicallyProvisioned = "pv.kubernetes.io/provisioned-by"
	// NoProvisioner is the provisioner of classes whose volumes are only
	// created by hand.
	NoProvisioner = "kubernetes.io/no-provisioner"
)

// Event reasons, those of Kubernetes.
const (
	ReasonFailedBinding        = "FailedBinding"
	ReasonWaitForFirstConsumer = "WaitForFirstConsumer"
	ReasonExternalProvisioning = "ExternalProvisioning"
	ReasonProvisioningFailed   = "ProvisioningFailed"
	ReasonVolumeMismatch       = "VolumeMismatch"
	ReasonClaimLost            = "ClaimLost"
	ReasonClaimMisbound        = "ClaimMisbound"
	ReasonVolumeFailedRecycle  = "VolumeFailedRecycle"
	ReasonVolumeFailedDelete   = "VolumeFailedDelete"
	ReasonVolumeDelete         = "VolumeDelete"
)

// Controller is the PersistentVolume binder.
type Controller struct {
	client      kubernetes.Interface
	claims      corelisters.PersistentVolumeClaimLister
	volumes     corelisters.PersistentVolumeLister
	classes     storagelisters.StorageClassLister
	nodes       corelisters.NodeLister
	synced      []cache.InformerSynced
	claimQueue  controller.Queue
	volumeQueue controller.Queue
	recorder    record.EventRecorder
	log         *slog.Logger
	now         func() time.Time
}

// New builds the binder and registers its informer handlers.
func New(cctx *controller.Context) (*Controller, error) {
	claimInf := cctx.Informers.Core().V1().PersistentVolumeClaims()
	volumeInf := cctx.Informers.Core().V1().PersistentVolumes()
	classInf := cctx.Informers.Storage().V1().StorageClasses()
	nodeInf := cctx.Informers.Core().V1().Nodes()
	c := &Controller{
		client:  cctx.Client,
		claims:  claimInf.Lister(),
		volumes: volumeInf.Lister(),
		classes: classInf.Lister(),
		nodes:   nodeInf.Lister(),
		synced: []cache.InformerSynced{claimInf.Informer().HasSynced, volumeInf.Informer().HasSynced,
			classInf.Informer().HasSynced, nodeInf.Informer().HasSynced},
		claimQueue:  controller.NewQueue("persistentvolume-binder-claims"),
		volumeQueue: controller.NewQueue("persistentvolume-binder-volumes"),
		recorder:    cctx.Recorder(Name),
		log:         cctx.ControllerLogger("persistentvolume-binder"),
		now:         time.Now,
	}
	if _, err := claimInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.claimChanged,
		UpdateFunc: func(_, cur interface{}) { c.claimChanged(cur) },
		DeleteFunc: c.claimDeleted,
	}); err != nil {
		return nil, fmt.Errorf("persistentvolume binder: watch claims: %w", err)
	}
	if _, err := volumeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.volumeChanged,
		UpdateFunc: func(_, cur interface{}) { c.volumeChanged(cur) },
		DeleteFunc: c.volumeDeleted,
	}); err != nil {
		return nil, fmt.Errorf("persistentvolume binder: watch volumes: %w", err)
	}
	if _, err := classInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.classChanged,
		UpdateFunc: func(_, cur interface{}) { c.classChanged(cur) },
	}); err != nil {
		return nil, fmt.Errorf("persistentvolume binder: watch storage classes: %w", err)
	}
	return c, nil
}

// Run waits for the caches and syncs claims and volumes until ctx is done.
// Each queue has one worker, as in Kubernetes: bindings are decided one at
// a time, and the API's compare-and-swap catches a decision made on a
// stale cache.
func (c *Controller) Run(ctx context.Context) {
	defer c.claimQueue.ShutDown()
	defer c.volumeQueue.ShutDown()
	c.log.Info("starting")
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		return
	}
	c.log.Info("ready")
	var wg sync.WaitGroup
	wg.Go(func() { controller.RunWorkers(ctx, c.log, c.claimQueue, 1, c.syncClaim) })
	wg.Go(func() { controller.RunWorkers(ctx, c.log, c.volumeQueue, 1, c.syncVolume) })
	wg.Wait()
	c.log.Info("stopped")
}

// Event handlers: they only enqueue keys.

func asClaim(obj interface{}) *corev1.PersistentVolumeClaim {
	c, _ := controller.ObjectOf[*corev1.PersistentVolumeClaim](obj)
	return c
}

func asVolume(obj interface{}) *corev1.PersistentVolume {
	v, _ := controller.ObjectOf[*corev1.PersistentVolume](obj)
	return v
}

func claimKey(namespace, name string) string { return namespace + "/" + name }

func (c *Controller) claimChanged(obj interface{}) {
	claim := asClaim(obj)
	if claim == nil {
		return
	}
	c.claimQueue.Add(claimKey(claim.Namespace, claim.Name))
	if claim.Spec.VolumeName != "" {
		c.volumeQueue.Add(claim.Spec.VolumeName)
	}
}

// claimDeleted enqueues the volumes that referred to the claim, so they
// are released at once.
func (c *Controller) claimDeleted(obj interface{}) {
	claim := asClaim(obj)
	if claim == nil {
		return
	}
	if claim.Spec.VolumeName != "" {
		c.volumeQueue.Add(claim.Spec.VolumeName)
	}
	volumes, err := c.volumes.List(labels.Everything())
	if err != nil {
		return
	}
	for _, v := range volumes {
		if r := v.Spec.ClaimRef; r != nil && r.Namespace == claim.Namespace && r.Name == claim.Name {
			c.volumeQueue.Add(v.Name)
		}
	}
}

func (c *Controller) volumeChanged(obj interface{}) {
	v := asVolume(obj)
	if v == nil {
		return
	}
	c.volumeQueue.Add(v.Name)
	switch {
	case v.Spec.ClaimRef != nil:
		c.claimQueue.Add(claimKey(v.Spec.ClaimRef.Namespace, v.Spec.ClaimRef.Name))
	case v.Status.Phase == corev1.VolumeAvailable:
		c.enqueuePendingClaims(VolumeClass(v))
	}
}

// volumeDeleted enqueues the volume's claim, which becomes Lost if it was
// bound to it.
func (c *Controller) volumeDeleted(obj interface{}) {
	v := asVolume(obj)
	if v == nil || v.Spec.ClaimRef == nil {
		return
	}
	c.claimQueue.Add(claimKey(v.Spec.ClaimRef.Namespace, v.Spec.ClaimRef.Name))
}

func (c *Controller) classChanged(obj interface{}) {
	if sc, ok := obj.(*storagev1.StorageClass); ok {
		c.enqueuePendingClaims(sc.Name)
	}
}

// enqueuePendingClaims enqueues the unbound claims of class: a volume or a
// class they may have waited for appeared.
func (c *Controller) enqueuePendingClaims(class string) {
	claims, err := c.claims.List(labels.Everything())
	if err != nil {
		return
	}
	for _, claim := range claims {
		if claim.Spec.VolumeName == "" && ClaimClass(claim) == class {
			c.claimQueue.Add(claimKey(claim.Namespace, claim.Name))
		}
	}
}

// NewRunner is New for the controller manager's entry list.
func NewRunner(cctx *controller.Context) (manager.Runner, error) {
	c, err := New(cctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}
