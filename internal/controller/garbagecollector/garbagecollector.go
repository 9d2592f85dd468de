// Package garbagecollector deletes objects whose owners are gone, as
// Kubernetes' garbage collector does with metadata.ownerReferences.
//
// It watches the metadata of every resource the API serves that can be
// listed, watched and deleted (found through discovery, refreshed
// periodically so new resources are covered), indexed by owner UID. Then:
//
//   - An object none of whose owners exists any more (checked against the
//     API server, not only the cache) is deleted, in the background unless
//     its own finalizers ask otherwise. An object with some owners gone and
//     one still there loses the references to the gone ones.
//   - An owner being deleted with the foregroundDeletion finalizer has its
//     dependents deleted first; it keeps the finalizer until no dependent
//     that blocks owner deletion (blockOwnerDeletion) is left.
//   - An owner being deleted with the orphan finalizer has its references
//     removed from its dependents, then loses the finalizer.
//
// The API server adds those finalizers on a delete with propagationPolicy
// Foreground or Orphan.
package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "garbagecollector"

const (
	workers = 4
	// rediscoverEvery is how often served resources are looked up again.
	rediscoverEvery = 30 * time.Second
	// recheckForeground is how soon an owner waiting for its dependents is
	// looked at again even if no event says so.
	recheckForeground = 10 * time.Second
	// syncTimeout is how long the start waits for every resource's cache.
	syncTimeout = 30 * time.Second
	// conflictRetries bounds read-modify-write attempts per object.
	conflictRetries = 5
)

// ignoredResources are never watched: they churn and are never owners.
var ignoredResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "events"}:              true,
	{Group: "events.k8s.io", Resource: "events"}: true,
}

// Controller is the garbage collector.
type Controller struct {
	meta      metadata.Interface
	discovery discovery.DiscoveryInterface
	queue     controller.Queue
	log       *slog.Logger
	ignored   map[schema.GroupResource]bool

	mu         sync.RWMutex
	monitors   map[schema.GroupVersionResource]*monitor
	kinds      map[schema.GroupVersionKind]resourceInfo
	groupKinds map[schema.GroupKind]resourceInfo
	monitorWG  sync.WaitGroup
}

// New builds the garbage collector from cctx.
func New(cctx *controller.Context) (*Controller, error) {
	mc, err := cctx.MetadataClient("skiff-controller-manager/garbage-collector")
	if err != nil {
		return nil, fmt.Errorf("garbagecollector: %w", err)
	}
	return newController(cctx.ControllerLogger(Name), mc, cctx.Client.Discovery()), nil
}

func newController(log *slog.Logger, mc metadata.Interface, disc discovery.DiscoveryInterface) *Controller {
	return &Controller{
		meta:       mc,
		discovery:  disc,
		queue:      controller.NewQueue(Name),
		log:        log,
		ignored:    ignoredResources,
		monitors:   map[schema.GroupVersionResource]*monitor{},
		kinds:      map[schema.GroupVersionKind]resourceInfo{},
		groupKinds: map[schema.GroupKind]resourceInfo{},
	}
}

// Run collects garbage until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting")
	defer c.log.Info("stopped")
	defer c.monitorWG.Wait()
	// Discovery must work once before anything is decided.
	for {
		started, err := c.resync(ctx)
		if err == nil || len(started) > 0 {
			if err != nil {
				c.log.Warn("partial discovery; collecting for what was found", "err", err)
			}
			break
		}
		c.log.Warn("discovery failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			c.queue.ShutDown()
			return
		case <-time.After(2 * time.Second):
		}
	}
	// One resource that cannot be listed must not stop the collector for
	// all others: after a while it starts with what has synced. Deleting
	// never depends on the caches alone (owners are looked up on the API
	// server); at worst a foreground deletion finishes before dependents
	// of an unsynced resource are gone, and those are collected later.
	monitors := c.allMonitors()
	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	cache.WaitForCacheSync(syncCtx.Done(), func() bool {
		for _, m := range monitors {
			if !m.informer.HasSynced() {
				return false
			}
		}
		return true
	})
	cancel()
	if ctx.Err() != nil {
		c.queue.ShutDown()
		return
	}
	var unsynced []string
	for _, m := range monitors {
		if !m.informer.HasSynced() {
			unsynced = append(unsynced, m.gvr.String())
		}
	}
	if len(unsynced) > 0 {
		c.log.Warn("some resources have not synced; collecting without them for now", "resources", unsynced)
	}
	c.log.Info("ready", "resources", len(monitors))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(rediscoverEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := c.resync(ctx); err != nil {
					c.log.Debug("rediscovery failed", "err", err)
				}
			}
		}
	}()
	controller.RunWorkers(ctx, c.log, c.queue, workers, c.sync)
	wg.Wait()
}

// Object keys: "group/version/resource/namespace/name".

func objectKey(gvr schema.GroupVersionResource, ns, name string) string {
	return gvr.Group + "/" + gvr.Version + "/" + gvr.Resource + "/" + ns + "/" + name
}

func parseKey(key string) (schema.GroupVersionResource, string, string, bool) {
	p := strings.SplitN(key, "/", 5)
	if len(p) != 5 {
		return schema.GroupVersionResource{}, "", "", false
	}
	return schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}, p[3], p[4], true
}

func hasFinalizer(m *metav1.PartialObjectMetadata, f string) bool {
	return slices.Contains(m.Finalizers, f)
}

// interesting: an object the collector may have to act on or for.
func interesting(m *metav1.PartialObjectMetadata) bool {
	return len(m.OwnerReferences) > 0 || (m.DeletionTimestamp != nil &&
		(hasFinalizer(m, metav1.FinalizerDeleteDependents) || hasFinalizer(m, metav1.FinalizerOrphanDependents)))
}

func (c *Controller) onAdd(mon *monitor, obj interface{}) {
	if m, ok := controller.ObjectOf[*metav1.PartialObjectMetadata](obj); ok && interesting(m) {
		c.queue.Add(objectKey(mon.gvr, m.Namespace, m.Name))
	}
}

func (c *Controller) onUpdate(mon *monitor, old, cur interface{}) {
	o, ok1 := controller.ObjectOf[*metav1.PartialObjectMetadata](old)
	n, ok2 := controller.ObjectOf[*metav1.PartialObjectMetadata](cur)
	if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion {
		return
	}
	refsChanged := !slices.EqualFunc(o.OwnerReferences, n.OwnerReferences, sameRef)
	deletionChanged := (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) || !slices.Equal(o.Finalizers, n.Finalizers)
	if (refsChanged || deletionChanged) && interesting(n) {
		c.queue.Add(objectKey(mon.gvr, n.Namespace, n.Name))
	}
	if refsChanged {
		// An owner that was waiting for this dependent may be free now.
		for _, r := range o.OwnerReferences {
			if !slices.ContainsFunc(n.OwnerReferences, func(x metav1.OwnerReference) bool { return x.UID == r.UID }) {
				c.enqueueOwner(o.Namespace, r)
			}
		}
	}
}

func (c *Controller) onDelete(_ *monitor, obj interface{}) {
	m, ok := controller.ObjectOf[*metav1.PartialObjectMetadata](obj)
	if !ok {
		return
	}
	// Its dependents may be garbage now, and owners waiting for it in a
	// foreground deletion may be done.
	c.enqueueDependents(m.UID)
	for _, r := range m.OwnerReferences {
		c.enqueueOwner(m.Namespace, r)
	}
}

func sameRef(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && a.APIVersion == b.APIVersion && a.Kind == b.Kind && a.Name == b.Name &&
		boolValue(a.BlockOwnerDeletion) == boolValue(b.BlockOwnerDeletion) && boolValue(a.Controller) == boolValue(b.Controller)
}

func boolValue(b *bool) bool { return b != nil && *b }

func (c *Controller) enqueueOwner(dependentNS string, r metav1.OwnerReference) {
	info, ok := c.resolve(r.APIVersion, r.Kind)
	if !ok {
		return
	}
	ns := ""
	if info.namespaced {
		ns = dependentNS
	}
	c.queue.Add(objectKey(info.gvr, ns, r.Name))
}

// dependent is an object in some monitor's cache.
type dependent struct {
	gvr schema.GroupVersionResource
	obj *metav1.PartialObjectMetadata
}

func (d dependent) key() string { return objectKey(d.gvr, d.obj.Namespace, d.obj.Name) }

// dependents lists the cached objects that name uid as an owner.
func (c *Controller) dependents(uid types.UID) []dependent {
	var out []dependent
	for _, mon := range c.allMonitors() {
		objs, err := mon.informer.GetIndexer().ByIndex(ownerIndex, string(uid))
		if err != nil {
			continue
		}
		for _, o := range objs {
			if m, ok := o.(*metav1.PartialObjectMetadata); ok {
				out = append(out, dependent{gvr: mon.gvr, obj: m})
			}
		}
	}
	return out
}

func (c *Controller) enqueueDependents(uid types.UID) {
	for _, d := range c.dependents(uid) {
		c.queue.Add(d.key())
	}
}

// cached returns the object at key from its monitor's cache.
func (c *Controller) cached(gvr schema.GroupVersionResource, ns, name string) (*metav1.PartialObjectMetadata, bool) {
	mon := c.monitorFor(gvr)
	if mon == nil {
		return nil, false
	}
	k := name
	if ns != "" {
		k = ns + "/" + name
	}
	obj, exists, err := mon.informer.GetIndexer().GetByKey(k)
	if err != nil || !exists {
		return nil, false
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	return m, ok
}

// sync acts on one object: as an owner being deleted with a collector
// finalizer, or as a dependent whose owners may be gone.
func (c *Controller) sync(ctx context.Context, key string) error {
	gvr, ns, name, ok := parseKey(key)
	if !ok {
		return nil
	}
	item, ok := c.cached(gvr, ns, name)
	if !ok {
		return nil
	}
	if item.DeletionTimestamp != nil {
		switch {
		case hasFinalizer(item, metav1.FinalizerOrphanDependents):
			return c.orphanDependents(ctx, gvr, item)
		case hasFinalizer(item, metav1.FinalizerDeleteDependents):
			return c.deleteDependentsFirst(ctx, key, gvr, item)
		}
		return nil
	}
	if len(item.OwnerReferences) == 0 || c.ownersSolidInCache(item) {
		return nil
	}
	return c.collect(ctx, gvr, item)
}

// ownersSolidInCache is the fast path: every owner is in the cache, the
// same object, and not being deleted in the foreground.
func (c *Controller) ownersSolidInCache(item *metav1.PartialObjectMetadata) bool {
	for _, r := range item.OwnerReferences {
		info, ok := c.resolve(r.APIVersion, r.Kind)
		if !ok {
			continue // unknown kinds are never collected for
		}
		ns := ""
		if info.namespaced {
			if item.Namespace == "" {
				return false
			}
			ns = item.Namespace
		}
		o, ok := c.cached(info.gvr, ns, r.Name)
		if !ok || o.UID != r.UID || (o.DeletionTimestamp != nil && hasFinalizer(o, metav1.FinalizerDeleteDependents)) {
			return false
		}
	}
	return true
}

// ownerState is what became of one owner.
type ownerState int

const (
	ownerSolid   ownerState = iota // exists (or cannot be looked up)
	ownerGone                      // absent, or replaced by another object of the name
	ownerWaiting                   // being deleted, waiting for its dependents
)

// lookupOwner checks owner reference r of item against the API server.
func (c *Controller) lookupOwner(ctx context.Context, item *metav1.PartialObjectMetadata, r metav1.OwnerReference) (ownerState, error) {
	info, ok := c.resolve(r.APIVersion, r.Kind)
	if !ok {
		c.log.Debug("owner of unknown kind; leaving the dependent alone", "apiVersion", r.APIVersion, "kind", r.Kind,
			"dependent", item.Namespace+"/"+item.Name)
		return ownerSolid, nil
	}
	ns := ""
	if info.namespaced {
		if item.Namespace == "" {
			// A cluster-scoped object cannot be owned by a namespaced one.
			return ownerGone, nil
		}
		ns = item.Namespace
	}
	o, err := c.meta.Resource(info.gvr).Namespace(ns).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ownerGone, nil
	}
	if err != nil {
		return ownerSolid, fmt.Errorf("look up owner %s %s: %w", r.Kind, r.Name, err)
	}
	if o.UID != r.UID {
		return ownerGone, nil
	}
	if o.DeletionTimestamp != nil && hasFinalizer(o, metav1.FinalizerDeleteDependents) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// collect decides about a dependent from fresh state: delete it when no
// owner is left, or drop its references to the owners that are gone.
func (c *Controller) collect(ctx context.Context, gvr schema.GroupVersionResource, cachedItem *metav1.PartialObjectMetadata) error {
	api := c.meta.Resource(gvr).Namespace(cachedItem.Namespace)
	item, err := api.Get(ctx, cachedItem.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s: %w", gvr.Resource, cachedItem.Name, err)
	}
	if item.UID != cachedItem.UID || item.DeletionTimestamp != nil || len(item.OwnerReferences) == 0 {
		return nil
	}
	var solid, gone, waiting []metav1.OwnerReference
	for _, r := range item.OwnerReferences {
		st, err := c.lookupOwner(ctx, item, r)
		if err != nil {
			return err
		}
		switch st {
		case ownerSolid:
			solid = append(solid, r)
		case ownerGone:
			gone = append(gone, r)
		case ownerWaiting:
			waiting = append(waiting, r)
		}
	}
	switch {
	case len(solid) > 0:
		if len(gone)+len(waiting) == 0 {
			return nil
		}
		// Still owned: only forget the owners that are gone or going.
		drop := map[types.UID]bool{}
		for _, r := range append(gone, waiting...) {
			drop[r.UID] = true
		}
		keep := slices.DeleteFunc(slices.Clone(item.OwnerReferences), func(r metav1.OwnerReference) bool { return drop[r.UID] })
		c.log.Info("removing references to owners that are gone", "resource", gvr.Resource, "object", nsName(item), "removed", len(drop))
		_, err := c.patchOwnerRefs(ctx, api, item, keep)
		return err
	case len(waiting) > 0 && len(c.dependents(item.UID)) > 0:
		// An owner waits for this object, which has dependents of its own:
		// delete it in the foreground too. A dependent of it already in a
		// foreground deletion could wait on it in turn; unblocking its
		// references to the owners breaks such a cycle.
		cycle := slices.ContainsFunc(c.dependents(item.UID), func(d dependent) bool {
			return d.obj.DeletionTimestamp != nil && hasFinalizer(d.obj, metav1.FinalizerDeleteDependents)
		})
		blocks := slices.ContainsFunc(item.OwnerReferences, func(r metav1.OwnerReference) bool { return boolValue(r.BlockOwnerDeletion) })
		if cycle && blocks {
			refs := make([]metav1.OwnerReference, len(item.OwnerReferences))
			for i, r := range item.OwnerReferences {
				r.BlockOwnerDeletion = nil
				refs[i] = r
			}
			out, err := c.patchOwnerRefs(ctx, api, item, refs)
			if err != nil || out == nil {
				return err
			}
			item = out
		}
		return c.deleteObject(ctx, api, gvr, item, metav1.DeletePropagationForeground)
	default:
		policy := metav1.DeletePropagationBackground
		switch {
		case hasFinalizer(item, metav1.FinalizerOrphanDependents):
			policy = metav1.DeletePropagationOrphan
		case hasFinalizer(item, metav1.FinalizerDeleteDependents):
			policy = metav1.DeletePropagationForeground
		}
		return c.deleteObject(ctx, api, gvr, item, policy)
	}
}

func nsName(m *metav1.PartialObjectMetadata) string {
	if m.Namespace == "" {
		return m.Name
	}
	return m.Namespace + "/" + m.Name
}

// deleteObject deletes item if it is still exactly what was decided on.
func (c *Controller) deleteObject(ctx context.Context, api metadata.ResourceInterface, gvr schema.GroupVersionResource,
	item *metav1.PartialObjectMetadata, policy metav1.DeletionPropagation) error {
	uid, rv := item.UID, item.ResourceVersion
	err := api.Delete(ctx, item.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		// A conflict means the object changed since: decide again.
		return fmt.Errorf("delete %s %s: %w", gvr.Resource, nsName(item), err)
	}
	c.log.Info("deleted object whose owners are gone", "resource", gvr.Resource, "object", nsName(item), "propagation", policy)
	return nil
}

// patchOwnerRefs sets item's owner references to refs, only if item has
// not changed since it was read. It returns the patched object (nil if it
// is gone).
func (c *Controller) patchOwnerRefs(ctx context.Context, api metadata.ResourceInterface, item *metav1.PartialObjectMetadata, refs []metav1.OwnerReference) (*metav1.PartialObjectMetadata, error) {
	var value interface{}
	if len(refs) > 0 {
		value = refs
	}
	patch, err := json.Marshal(map[string]interface{}{"metadata": map[string]interface{}{
		"uid": item.UID, "resourceVersion": item.ResourceVersion, "ownerReferences": value,
	}})
	if err != nil {
		return nil, err
	}
	out, err := api.Patch(ctx, item.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("patch owner references of %s: %w", nsName(item), err)
	}
	return out, nil
}

// deleteDependentsFirst serves an owner in a foreground deletion: its
// dependents are queued for deletion, and once none that blocks owner
// deletion is left, the owner's foregroundDeletion finalizer goes.
func (c *Controller) deleteDependentsFirst(ctx context.Context, key string, gvr schema.GroupVersionResource, owner *metav1.PartialObjectMetadata) error {
	blocking := 0
	for _, d := range c.dependents(owner.UID) {
		if d.obj.DeletionTimestamp == nil {
			c.queue.Add(d.key())
		}
		for _, r := range d.obj.OwnerReferences {
			if r.UID == owner.UID && boolValue(r.BlockOwnerDeletion) {
				blocking++
				break
			}
		}
	}
	if blocking > 0 {
		c.queue.AddAfter(key, recheckForeground)
		return nil
	}
	return c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerDeleteDependents)
}

// orphanDependents serves an owner deleted with the orphan policy: its
// dependents lose their references to it, then it loses the finalizer.
func (c *Controller) orphanDependents(ctx context.Context, gvr schema.GroupVersionResource, owner *metav1.PartialObjectMetadata) error {
	var errs []error
	for _, d := range c.dependents(owner.UID) {
		if err := c.dropOwner(ctx, d, owner.UID); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.removeFinalizer(ctx, gvr, owner, metav1.FinalizerOrphanDependents)
}

// dropOwner removes the reference to owner uid from dependent d, reading
// it fresh and retrying on conflicts.
func (c *Controller) dropOwner(ctx context.Context, d dependent, uid types.UID) error {
	api := c.meta.Resource(d.gvr).Namespace(d.obj.Namespace)
	var err error
	for range conflictRetries {
		var cur *metav1.PartialObjectMetadata
		cur, err = api.Get(ctx, d.obj.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s %s: %w", d.gvr.Resource, nsName(d.obj), err)
		}
		if cur.UID != d.obj.UID {
			return nil
		}
		keep := slices.DeleteFunc(slices.Clone(cur.OwnerReferences), func(r metav1.OwnerReference) bool { return r.UID == uid })
		if len(keep) == len(cur.OwnerReferences) {
			return nil
		}
		if _, err = c.patchOwnerRefs(ctx, api, cur, keep); err == nil || !apierrors.IsConflict(err) {
			return err
		}
	}
	return err
}

// removeFinalizer takes finalizer f off obj, reading it fresh and retrying
// on conflicts. Taking the last finalizer off lets the API server delete it.
func (c *Controller) removeFinalizer(ctx context.Context, gvr schema.GroupVersionResource, obj *metav1.PartialObjectMetadata, f string) error {
	api := c.meta.Resource(gvr).Namespace(obj.Namespace)
	var err error
	for range conflictRetries {
		var cur *metav1.PartialObjectMetadata
		cur, err = api.Get(ctx, obj.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get %s %s: %w", gvr.Resource, nsName(obj), err)
		}
		if cur.UID != obj.UID || !hasFinalizer(cur, f) {
			return nil
		}
		var value interface{}
		if rest := slices.DeleteFunc(slices.Clone(cur.Finalizers), func(x string) bool { return x == f }); len(rest) > 0 {
			value = rest
		}
		patch, merr := json.Marshal(map[string]interface{}{"metadata": map[string]interface{}{
			"uid": cur.UID, "resourceVersion": cur.ResourceVersion, "finalizers": value,
		}})
		if merr != nil {
			return merr
		}
		_, err = api.Patch(ctx, cur.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			c.log.Info("removed finalizer", "resource", gvr.Resource, "object", nsName(cur), "finalizer", f)
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("remove finalizer %s from %s: %w", f, nsName(cur), err)
		}
	}
	return fmt.Errorf("remove finalizer %s from %s: %w", f, nsName(obj), err)
}
