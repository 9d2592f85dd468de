package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"skiff/internal/registry"
	"skiff/internal/storage"
)

// crdServer keeps the registry in step with the stored
// CustomResourceDefinitions: every API server serves each definition's
// versions as soon as its watch sees the definition, and deletes a deleted
// definition's objects before letting the definition go (its cleanup
// finalizer). Every server does the cleanup; deletes are idempotent.
type crdServer struct {
	s   *Server
	crd *registry.Resource
	// served maps a definition's name to the resources it added and the
	// resourceVersion they were built from.
	served map[string]servedCRD
	// terminating names the definitions whose cleanup is still to finish;
	// only while there are some does the retry list them again.
	terminating map[string]bool
}

type servedCRD struct {
	resourceVersion string
	gvrs            []schema.GroupVersionResource
}

// crdRetry is how often a terminating definition's cleanup is retried
// while objects with finalizers remain.
const crdRetry = 2 * time.Second

func newCRDServer(s *Server) (*crdServer, error) {
	res, ok := s.reg.Lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
	if !ok {
		return nil, errors.New("the registry serves no customresourcedefinitions")
	}
	return &crdServer{s: s, crd: res, served: map[string]servedCRD{}, terminating: map[string]bool{}}, nil
}

// start serves the stored definitions, then follows changes until ctx is
// done; done is closed when the goroutine has stopped.
func (c *crdServer) start(ctx context.Context) (<-chan struct{}, error) {
	items, rev, err := c.s.store.List(ctx, prefix(c.crd, ""), 0)
	if err != nil {
		return nil, fmt.Errorf("list customresourcedefinitions: %w", err)
	}
	for _, it := range items {
		c.sync(ctx, it.(*apiextensionsv1.CustomResourceDefinition))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, rev)
	}()
	return done, nil
}

func (c *crdServer) run(ctx context.Context, rev int64) {
	retry := time.NewTicker(crdRetry)
	defer retry.Stop()
	for ctx.Err() == nil {
		events := c.s.store.Watch(ctx, prefix(c.crd, ""), rev)
	stream:
		for {
			select {
			case <-ctx.Done():
				return
			case <-retry.C:
				c.retryTerminating(ctx)
			case ev, ok := <-events:
				if !ok {
					break stream
				}
				if ev.Err != nil {
					if errors.Is(ev.Err, storage.ErrCompacted) {
						rev = c.resync(ctx)
					}
					break stream
				}
				if ev.Type == watch.Bookmark {
					rev = ev.Revision
					continue
				}
				rev = ev.Revision
				crd, ok := ev.Object.(*apiextensionsv1.CustomResourceDefinition)
				if !ok {
					continue
				}
				if ev.Type == watch.Deleted {
					c.remove(crd.Name)
					continue
				}
				c.sync(ctx, crd)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// resync lists every definition again after a compacted watch.
func (c *crdServer) resync(ctx context.Context) int64 {
	items, rev, err := c.s.store.List(ctx, prefix(c.crd, ""), 0)
	if err != nil {
		c.s.log.Warn("list customresourcedefinitions", "err", err)
		return 0
	}
	seen := map[string]bool{}
	for _, it := range items {
		crd := it.(*apiextensionsv1.CustomResourceDefinition)
		seen[crd.Name] = true
		c.sync(ctx, crd)
	}
	for name := range c.served {
		if !seen[name] {
			c.remove(name)
		}
	}
	return rev
}

// retryTerminating runs the cleanup of definitions still being deleted.
func (c *crdServer) retryTerminating(ctx context.Context) {
	if len(c.terminating) == 0 {
		return
	}
	items, _, err := c.s.store.List(ctx, prefix(c.crd, ""), 0)
	if err != nil {
		return
	}
	for _, it := range items {
		if crd := it.(*apiextensionsv1.CustomResourceDefinition); crd.DeletionTimestamp != nil {
			c.sync(ctx, crd)
		}
	}
}

// sync serves crd's versions (again, when it changed) and cleans up after
// a definition being deleted.
func (c *crdServer) sync(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) {
	if cur, ok := c.served[crd.Name]; !ok || cur.resourceVersion != crd.ResourceVersion {
		c.serve(crd)
	}
	if crd.DeletionTimestamp != nil {
		c.terminating[crd.Name] = true
		if err := c.cleanup(ctx, crd); err != nil {
			c.s.log.Info("deleting custom objects", "crd", crd.Name, "err", err)
		}
	}
}

func (c *crdServer) serve(crd *apiextensionsv1.CustomResourceDefinition) {
	c.remove(crd.Name)
	entry := servedCRD{resourceVersion: crd.ResourceVersion}
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		strategy, err := registry.NewCustomResource(crd, v.Name)
		if err != nil {
			c.s.log.Warn("cannot serve custom resource", "crd", crd.Name, "version", v.Name, "err", err)
			continue
		}
		res, err := c.s.reg.Add(strategy)
		if err != nil {
			c.s.log.Warn("cannot serve custom resource", "crd", crd.Name, "version", v.Name, "err", err)
			continue
		}
		entry.gvrs = append(entry.gvrs, res.GVR())
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			if sch, err := openAPISchema(v.Schema.OpenAPIV3Schema); err == nil {
				c.s.openapi.AddSchema(res.GVK(), sch)
			} else {
				c.s.log.Warn("custom resource schema left out of OpenAPI", "crd", crd.Name, "version", v.Name, "err", err)
			}
		}
	}
	c.served[crd.Name] = entry
}

func (c *crdServer) remove(name string) {
	delete(c.terminating, name)
	for _, gvr := range c.served[name].gvrs {
		if res, ok := c.s.reg.Lookup(gvr.Group, gvr.Version, gvr.Resource); ok {
			c.s.fields.forget(res)
			c.s.openapi.RemoveSchema(res.GVK())
		}
		c.s.reg.Remove(gvr)
	}
	delete(c.served, name)
}

// cleanup deletes every object of a definition being deleted, then drops
// its cleanup finalizer so that the definition goes.
func (c *crdServer) cleanup(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	if !slices.Contains(crd.Finalizers, registry.CRDCleanupFinalizer) {
		return nil
	}
	gvrs := c.served[crd.Name].gvrs
	if len(gvrs) > 0 {
		res, ok := c.s.reg.Lookup(gvrs[0].Group, gvrs[0].Version, gvrs[0].Resource)
		if !ok {
			return fmt.Errorf("%s is not served", gvrs[0])
		}
		items, _, err := c.s.store.List(ctx, prefix(res, ""), 0)
		if err != nil {
			return err
		}
		remaining := 0
		for _, it := range items {
			m, _ := meta.Accessor(it)
			remaining++
			if m.GetDeletionTimestamp() != nil {
				continue
			}
			if _, _, err := c.s.deleteObject(ctx, res, m.GetNamespace(), m.GetName(), &metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		if remaining > 0 {
			// Deleted ones are gone now; finalizers may hold the rest.
			if items, _, err = c.s.store.List(ctx, prefix(res, ""), 0); err != nil || len(items) > 0 {
				return fmt.Errorf("%d objects remain", len(items))
			}
		}
	}
	k := key(c.crd, "", crd.Name)
	_, err := c.s.store.GuaranteedUpdate(ctx, k, func(cur runtime.Object) (runtime.Object, error) {
		next := cur.(*apiextensionsv1.CustomResourceDefinition)
		next.Finalizers = slices.DeleteFunc(next.Finalizers, func(f string) bool { return f == registry.CRDCleanupFinalizer })
		return next, nil
	})
	if err != nil {
		return err
	}
	// With no finalizer left, the definition goes.
	cur, err := c.s.store.Get(ctx, k)
	if err != nil {
		return nil
	}
	if m, _ := meta.Accessor(cur); len(m.GetFinalizers()) == 0 {
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		if _, err := c.s.store.Delete(ctx, k, rev); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrConflict) {
			return err
		}
	}
	return nil
}

// openAPISchema turns a CRD version's schema into kube-openapi's form for
// the OpenAPI documents (kubectl explain).
func openAPISchema(p *apiextensionsv1.JSONSchemaProps) (*spec.Schema, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	out := &spec.Schema{}
	if err := json.Unmarshal(data, out); err != nil {
		return nil, err
	}
	return out, nil
}

// storageVersioned is a kind stored in one version and served in several
// (custom resources with conversion None: only apiVersion changes).
type storageVersioned interface{ StorageVersion() string }

// toStorageVersion sets a custom object's apiVersion to its storage
// version before it is written.
func toStorageVersion(res *registry.Resource, obj runtime.Object) {
	sv, ok := res.Strategy.(storageVersioned)
	u, isU := obj.(*unstructured.Unstructured)
	if !ok || !isU || sv.StorageVersion() == "" {
		return
	}
	u.SetAPIVersion(schema.GroupVersion{Group: res.Group, Version: sv.StorageVersion()}.String())
}

// readDefaulter is a kind whose objects get defaults when read (custom
// resources whose schema has some).
type readDefaulter interface {
	HasReadDefaults() bool
	DefaultOnRead(obj runtime.Object)
}

// toServedVersion returns obj as the request's version serves it: custom
// objects stored in another version get that version's apiVersion, and
// their schema's defaults. Objects read from storage may be shared (the
// watch's decode cache), so changes go to copies.
func toServedVersion(res *registry.Resource, obj runtime.Object) runtime.Object {
	want := res.GroupVersion().String()
	rd, defaults := res.Strategy.(readDefaulter)
	defaults = defaults && rd.HasReadDefaults()
	fix := func(u *unstructured.Unstructured) *unstructured.Unstructured {
		if u.GetAPIVersion() == want && !defaults {
			return u
		}
		u = u.DeepCopy()
		u.SetAPIVersion(want)
		if defaults {
			rd.DefaultOnRead(u)
		}
		return u
	}
	switch o := obj.(type) {
	case *unstructured.Unstructured:
		return fix(o)
	case *unstructured.UnstructuredList:
		for i := range o.Items {
			o.Items[i] = *fix(&o.Items[i])
		}
		return o
	}
	return obj
}

// servedAsStored reports whether stored objects of res can be sent as
// they are stored (no version change, no defaults on read).
func servedAsStored(res *registry.Resource) bool {
	if sv, ok := res.Strategy.(storageVersioned); ok && sv.StorageVersion() != res.Version {
		return false
	}
	if rd, ok := res.Strategy.(readDefaulter); ok && rd.HasReadDefaults() {
		return false
	}
	return true
}
