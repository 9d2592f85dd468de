// Package localpath is skiff's built-in dynamic provisioner,
// skiff.io/local-path: a claim of its class gets a PersistentVolume that is
// a directory on the node the scheduler chose for the claim's first pod,
// like k3s's local-path StorageClass. On start it makes sure the default
// StorageClass local-path exists.
//
// It works with the binder (package volumebinder) as an external
// provisioner works with Kubernetes' PV controller:
//
//   - the binder finds no volume for a claim of a class with this
//     provisioner and annotates the claim volume.kubernetes.io/storage-provisioner;
//     the scheduler annotates it volume.kubernetes.io/selected-node;
//   - this controller then creates the volume pvc-<claim uid>, already
//     pre-bound to the claim (spec.claimRef with its uid), and the binder
//     completes the binding;
//   - when the claim is deleted the binder marks the volume Released; with
//     reclaim policy Delete this controller deletes the PersistentVolume.
//     It is the only one that deletes local-path volumes: no finalizer is
//     needed since nobody else acts on them.
//
// This controller never touches a node's disk. The kubelet of the volume's
// node creates the directory when it first mounts the volume, and removes
// the directories of local-path volumes that no longer exist.
package localpath

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
	"skiff/internal/controller/manager"
	"skiff/internal/controller/volumebinder"
)

const (
	// ProvisionerName is the provisioner of local-path StorageClasses and
	// the value of the provisioned-by annotation of their volumes.
	ProvisionerName = "skiff.io/local-path"
	// DefaultClassName is the StorageClass ensured at start.
	DefaultClassName = "local-path"
	// AnnDefaultClass marks the cluster's default StorageClass.
	AnnDefaultClass = "storageclass.kubernetes.io/is-default-class"
	// StorageSubdir is where, under a node's data dir, volumes live.
	StorageSubdir = "storage"

	reasonProvisioningSucceeded = "ProvisioningSucceeded"
	reasonProvisioningFailed    = "ProvisioningFailed"
	reasonVolumeFailedDelete    = "VolumeFailedDelete"

	claimWorkers = 2
	// ensureClassMaxDelay caps the wait between attempts to create the
	// default StorageClass.
	ensureClassMaxDelay = 30 * time.Second
)

// Config is what the provisioner needs besides the controller context.
type Config struct {
	// DataDir is the data directory; a volume is the directory
	// <DataDir>/storage/pvc-<uid>_<namespace>_<name> on its node.
	DataDir string
}

// Controller is the local-path provisioner.
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
	storageDir  string
}

// New builds the provisioner and registers its informer handlers.
func New(cctx *controller.Context, cfg Config) (*Controller, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("local-path provisioner: no data dir")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local-path provisioner: data dir %q: %w", cfg.DataDir, err)
	}
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
		claimQueue:  controller.NewQueue("local-path-claims"),
		volumeQueue: controller.NewQueue("local-path-volumes"),
		recorder:    cctx.Recorder(ProvisionerName),
		log:         cctx.ControllerLogger("local-path-provisioner"),
		storageDir:  filepath.Join(dataDir, StorageSubdir),
	}
	if _, err := claimInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.claimChanged,
		UpdateFunc: func(_, cur interface{}) { c.claimChanged(cur) },
	}); err != nil {
		return nil, fmt.Errorf("local-path provisioner: watch claims: %w", err)
	}
	if _, err := volumeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.volumeChanged,
		UpdateFunc: func(_, cur interface{}) { c.volumeChanged(cur) },
	}); err != nil {
		return nil, fmt.Errorf("local-path provisioner: watch volumes: %w", err)
	}
	return c, nil
}

// Run ensures the default StorageClass, waits for the caches and
// provisions and deletes volumes until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	defer c.claimQueue.ShutDown()
	defer c.volumeQueue.ShutDown()
	c.log.Info("starting", "storageDir", c.storageDir)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.ensureDefaultClass(ctx) })
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		return
	}
	c.log.Info("ready")
	wg.Go(func() { controller.RunWorkers(ctx, c.log, c.claimQueue, claimWorkers, c.syncClaim) })
	wg.Go(func() { controller.RunWorkers(ctx, c.log, c.volumeQueue, 1, c.syncVolume) })
	wg.Wait()
	c.log.Info("stopped")
}

func (c *Controller) claimChanged(obj interface{}) {
	if claim, ok := obj.(*corev1.PersistentVolumeClaim); ok && claim.Spec.VolumeName == "" {
		c.claimQueue.Add(claim.Namespace + "/" + claim.Name)
	}
}

func (c *Controller) volumeChanged(obj interface{}) {
	if v, ok := obj.(*corev1.PersistentVolume); ok && v.Annotations[volumebinder.AnnDynamicallyProvisioned] == ProvisionerName {
		c.volumeQueue.Add(v.Name)
	}
}

// DefaultClass is the StorageClass ensured at start.
func DefaultClass() *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: DefaultClassName, Annotations: map[string]string{AnnDefaultClass: "true"}},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     new(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: new(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// ensureDefaultClass creates the local-path StorageClass unless a class of
// that name exists (an administrator's changes to it are kept), retrying
// with backoff until it succeeds or ctx ends.
func (c *Controller) ensureDefaultClass(ctx context.Context) {
	classes := c.client.StorageV1().StorageClasses()
	delay := time.Second
	for {
		_, err := classes.Get(ctx, DefaultClassName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = classes.Create(ctx, DefaultClass(), metav1.CreateOptions{})
			if err == nil {
				c.log.Info("created default storage class", "class", DefaultClassName)
			}
		}
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("cannot ensure the default storage class; will retry", "class", DefaultClassName, "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, ensureClassMaxDelay)
	}
}

// NewRunner returns New with cfg for the controller manager's entry list.
func NewRunner(cfg Config) func(*controller.Context) (manager.Runner, error) {
	return func(cctx *controller.Context) (manager.Runner, error) {
		c, err := New(cctx, cfg)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}
