// Package controller holds what skiff's controllers share: the context they
// are built from and the workqueue loop of Kubernetes' sample-controller.
// Each controller lives in its own subpackage.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/listers"
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

// SlowStartBatch calls fn(ctx, i) for i in [0, count), in batches of
// growing size (initial, 2*initial, 4*initial, ...) whose calls run in
// parallel, and stops after the first batch with a failure, so that a
// systematic error (quota, admission, a bad template) costs a few calls
// rather than count. It returns how many calls succeeded and the errors of
// the failing batch (or ctx's error if ctx ended between batches).
func SlowStartBatch(ctx context.Context, count, initial int, fn func(ctx context.Context, i int) error) (int, error) {
	done := 0
	for start, batch := 0, min(count, max(initial, 1)); start < count; start, batch = start+batch, min(2*batch, count-start-batch) {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		errs := make([]error, batch)
		var wg sync.WaitGroup
		for i := range batch {
			wg.Go(func() { errs[i] = fn(ctx, start+i) })
		}
		wg.Wait()
		for _, err := range errs {
			if err == nil {
				done++
			}
		}
		if err := errors.Join(errs...); err != nil {
			return done, err
		}
	}
	return done, nil
}

// Object is an API object such as *appsv1.ReplicaSet.
type Object interface {
	runtime.Object
	metav1.Object
}

// Owners finds, in a cache, the owners of kind O (such as
// *appsv1.ReplicaSet for pods) of the objects a controller watches, for
// its informer handlers.
type Owners[O Object] struct {
	// Kind is the owners' kind: a controller reference of another group or
	// kind is not followed (one of another version is).
	Kind schema.GroupVersionKind
	// Cache holds the owners: listers.New over their informer's indexer.
	Cache listers.ResourceIndexer[O]
	// Selector returns an owner's label selector.
	Selector func(O) *metav1.LabelSelector
}

// Resolve returns the owner ref names in namespace, if ref is of o's kind
// and the owner still exists with ref's uid.
func (o Owners[O]) Resolve(namespace string, ref *metav1.OwnerReference) (O, bool) {
	var none O
	if ref == nil || ref.Kind != o.Kind.Kind {
		return none, false
	}
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != o.Kind.Group {
		return none, false
	}
	owner, err := listers.NewNamespaced(o.Cache, namespace).Get(ref.Name)
	if err != nil || owner.GetUID() != ref.UID {
		return none, false
	}
	return owner, true
}

// Controller returns the owner controlling obj (see Resolve); false if obj
// has no controller or it is none of o's.
func (o Owners[O]) Controller(obj metav1.Object) (O, bool) {
	return o.Resolve(obj.GetNamespace(), metav1.GetControllerOfNoCopy(obj))
}

// Selecting returns the owners in obj's namespace whose selector (valid and
// not empty) matches obj's labels: those that may adopt obj.
func (o Owners[O]) Selecting(obj metav1.Object) []O {
	all, err := listers.NewNamespaced(o.Cache, obj.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []O
	for _, owner := range all {
		sel, err := metav1.LabelSelectorAsSelector(o.Selector(owner))
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, owner)
		}
	}
	return out
}

// Updated returns the owners an update of an object from old to cur
// concerns: its former controller if the controller reference changed,
// its current one, and, for an orphan whose labels or controller
// reference changed, every owner selecting it.
func (o Owners[O]) Updated(old, cur metav1.Object) []O {
	var out []O
	oldRef, curRef := metav1.GetControllerOfNoCopy(old), metav1.GetControllerOfNoCopy(cur)
	refChanged := !reflect.DeepEqual(oldRef, curRef)
	if refChanged && oldRef != nil {
		if owner, ok := o.Resolve(old.GetNamespace(), oldRef); ok {
			out = append(out, owner)
		}
	}
	if curRef != nil {
		if owner, ok := o.Resolve(cur.GetNamespace(), curRef); ok {
			out = append(out, owner)
		}
		return out
	}
	if refChanged || !reflect.DeepEqual(old.GetLabels(), cur.GetLabels()) {
		out = append(out, o.Selecting(cur)...)
	}
	return out
}

// RefManager is what Claim needs to know of an owner.
type RefManager struct {
	// Owner, of kind Kind, claims objects whose labels Selector matches.
	Owner    metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	// Recheck reads Owner from the API server (not the cache).
	Recheck func(ctx context.Context) (metav1.Object, error)
	// Patch applies a strategic merge patch to an object.
	Patch func(ctx context.Context, namespace, name string, patch []byte) error
	Log   *slog.Logger
}

// Claim returns the objects m.Owner controls and selects, as Kubernetes'
// ControllerRefManager does: it adopts the matching orphans (not being
// deleted) and releases the objects it controls that no longer match; an
// owner being deleted does neither. Before the first adoption the owner is
// read again with Recheck: if it is gone, replaced (another uid) or being
// deleted, Claim adopts nothing. Adoption and release pin the object's
// uid, so an object replaced by another of its name is left alone; one
// that is gone is skipped. The errors of all that failed are joined.
func Claim[T metav1.Object](ctx context.Context, m RefManager, objs []T) ([]T, error) {
	owner := m.Owner
	desc := strings.ToLower(m.Kind.Kind) + " " + owner.GetNamespace() + "/" + owner.GetName()
	deleting := owner.GetDeletionTimestamp() != nil
	var (
		claimed  []T
		errs     []error
		adoptErr error
		checked  bool
	)
	canAdopt := func() error {
		if checked {
			return adoptErr
		}
		checked = true
		fresh, err := m.Recheck(ctx)
		switch {
		case err != nil:
			adoptErr = fmt.Errorf("recheck %s before adopting: %w", desc, err)
		case fresh.GetUID() != owner.GetUID():
			adoptErr = fmt.Errorf("%s was replaced (uid %s, want %s); not adopting", desc, fresh.GetUID(), owner.GetUID())
		case fresh.GetDeletionTimestamp() != nil:
			adoptErr = fmt.Errorf("%s is being deleted; not adopting", desc)
		}
		return adoptErr
	}
	for _, obj := range objs {
		matches := m.Selector.Matches(labels.Set(obj.GetLabels()))
		if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
			if ref.UID != owner.GetUID() {
				continue // someone else's
			}
			if matches {
				claimed = append(claimed, obj)
				continue
			}
			if deleting {
				continue
			}
			// Gone, or replaced by another uid (Invalid): nothing to release.
			if err := m.patchRef(ctx, obj, false); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
				errs = append(errs, fmt.Errorf("release %s/%s from %s: %w", obj.GetNamespace(), obj.GetName(), desc, err))
			}
			continue
		}
		if !matches || deleting || obj.GetDeletionTimestamp() != nil {
			continue
		}
		if err := canAdopt(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := m.patchRef(ctx, obj, true); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("adopt %s/%s into %s: %w", obj.GetNamespace(), obj.GetName(), desc, err))
			}
			continue
		}
		claimed = append(claimed, obj)
	}
	return claimed, errors.Join(errs...)
}

// patchRef adds (adopt) or removes m.Owner's controller reference on obj.
func (m RefManager) patchRef(ctx context.Context, obj metav1.Object, adopt bool) error {
	var ref interface{} = map[string]interface{}{"$patch": "delete", "uid": m.Owner.GetUID()}
	if adopt {
		ref = metav1.NewControllerRef(m.Owner, m.Kind)
	}
	body, err := json.Marshal(map[string]interface{}{
		"metadata": map[string]interface{}{"ownerReferences": []interface{}{ref}, "uid": obj.GetUID()},
	})
	if err != nil {
		return err
	}
	if err := m.Patch(ctx, obj.GetNamespace(), obj.GetName(), body); err != nil {
		return err
	}
	verb := "released"
	if adopt {
		verb = "adopted"
	}
	m.Log.Debug(verb, strings.ToLower(m.Kind.Kind), m.Owner.GetNamespace()+"/"+m.Owner.GetName(), "object", obj.GetName())
	return nil
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
