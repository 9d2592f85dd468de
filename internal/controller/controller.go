// Package controller holds what skiff's controllers share: the context they
// are built from and the workqueue loop of Kubernetes' sample-controller.
// Each controller lives in its own subpackage.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// Context is what every controller is built from.
type Context struct {
	// RESTConfig reaches the API server; for clients beyond Client
	// (metadata, dynamic).
	RESTConfig *rest.Config
	Client     kubernetes.Interface
	Informers  informers.SharedInformerFactory
	// Recorder emits Events; the broadcaster deduplicates them with counts.
	Recorder func(component string) record.EventRecorder
	Logger   *slog.Logger
}

// ControllerLogger returns the context's logger (slog.Default() if it has
// none) with the attribute controller=name.
func (c *Context) ControllerLogger(name string) *slog.Logger {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	return log.With("controller", name)
}

// MetadataClient returns a client for PartialObjectMetadata of any
// resource, for controllers that handle every kind (namespace, GC).
func (c *Context) MetadataClient(userAgent string) (metadata.Interface, error) {
	if c.RESTConfig == nil {
		return nil, fmt.Errorf("metadata client for %s: the controller context has no REST config", userAgent)
	}
	rc := rest.CopyConfig(c.RESTConfig)
	rc.UserAgent = userAgent
	mc, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("metadata client for %s: %w", userAgent, err)
	}
	return mc, nil
}

// Queue is a rate-limited queue of object keys ("namespace/name").
type Queue = workqueue.TypedRateLimitingInterface[string]

// NewQueue returns a named rate-limited queue with exponential per-item
// backoff (5 ms doubling up to 1000 s) and an overall token bucket.
func NewQueue(name string) Queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// Enqueue adds obj's key to q; tombstones are unwrapped.
func Enqueue(q Queue, obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		q.Add(key)
	}
}

// EnqueueHandler returns informer handlers that enqueue the key of every
// added, updated (the new object) and deleted object. Replace a field to
// handle one kind of event differently.
func EnqueueHandler(q Queue) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { Enqueue(q, obj) },
		UpdateFunc: func(_, cur interface{}) { Enqueue(q, cur) },
		DeleteFunc: func(obj interface{}) { Enqueue(q, obj) },
	}
}

// ObjectOf returns an informer event's object as a T (such as *corev1.Pod),
// unwrapping a tombstone (cache.DeletedFinalStateUnknown); false if it is
// no T.
func ObjectOf[T any](obj interface{}) (T, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(T)
	return o, ok
}

// ControllerKey returns the key ("namespace/name") of the object that
// controls obj (its ownerReference with controller=true), if that object is
// of apiVersion and kind; false otherwise.
func ControllerKey(obj metav1.Object, apiVersion, kind string) (string, bool) {
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || ref.Kind != kind || ref.APIVersion != apiVersion {
		return "", false
	}
	return obj.GetNamespace() + "/" + ref.Name, true
}

// maxRetries is how often a failing key is retried before it is dropped
// (with a log line); the next change to the object enqueues it again.
const maxRetries = 15

// SyncFunc reconciles one key from the current state. It must be idempotent.
type SyncFunc func(ctx context.Context, key string) error

// RunWorkers runs workers goroutines draining q with sync until ctx is done,
// then shuts the queue down and waits for them. NotFound errors count as
// success; other errors are retried with backoff.
func RunWorkers(ctx context.Context, log *slog.Logger, q Queue, workers int, syncKey SyncFunc) {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for processNext(ctx, log, q, syncKey) {
			}
		}()
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

func processNext(ctx context.Context, log *slog.Logger, q Queue, syncKey SyncFunc) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	start := time.Now()
	err := syncKey(ctx, key)
	switch {
	case err == nil || apierrors.IsNotFound(err):
		q.Forget(key)
	case ctx.Err() != nil:
		q.Forget(key)
	case q.NumRequeues(key) < maxRetries:
		log.Debug("sync failed; will retry", "key", key, "err", err, "took", time.Since(start))
		q.AddRateLimited(key)
	default:
		log.Warn("sync failed too often; dropping until the object changes", "key", key, "err", err)
		q.Forget(key)
	}
	return true
}

// Run is the Run of a controller with one queue: it logs starting, waits
// for the caches, logs ready and runs workers goroutines draining q with
// syncKey until ctx is done, then logs stopped. q is shut down either way.
func Run(ctx context.Context, log *slog.Logger, q Queue, workers int, syncKey SyncFunc, synced ...cache.InformerSynced) {
	log.Info("starting")
	defer log.Info("stopped")
	if !WaitForSync(ctx, log, synced...) {
		q.ShutDown()
		return
	}
	log.Info("ready")
	RunWorkers(ctx, log, q, workers, syncKey)
}

// WaitForSync waits for the informers' caches; false if ctx ended first.
func WaitForSync(ctx context.Context, log *slog.Logger, synced ...cache.InformerSynced) bool {
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		log.Info("stopped before caches synced")
		return false
	}
	return true
}
