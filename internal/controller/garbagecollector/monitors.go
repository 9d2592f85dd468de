package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
)

// ownerIndex indexes a monitor's cache by the UIDs of each object's owners.
const ownerIndex = "ownerUID"

func ownerUIDs(obj interface{}) ([]string, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return nil, nil
	}
	out := make([]string, 0, len(m.OwnerReferences))
	for _, r := range m.OwnerReferences {
		out = append(out, string(r.UID))
	}
	return out, nil
}

// monitor is a metadata-only informer over one resource.
type monitor struct {
	gvr        schema.GroupVersionResource
	namespaced bool
	informer   cache.SharedIndexInformer
	// cancel stops the informer.
	cancel context.CancelFunc
}

// resourceInfo is what an owner reference's kind resolves to.
type resourceInfo struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// discovered is the outcome of one discovery pass.
type discovered struct {
	// monitored are the resources to watch: preferred versions that can
	// be listed, watched and deleted.
	monitored map[schema.GroupVersionResource]bool // → namespaced
	// kinds resolves every served group/version/kind; groupKinds falls
	// back by group and kind to the preferred version.
	kinds      map[schema.GroupVersionKind]resourceInfo
	groupKinds map[schema.GroupKind]resourceInfo
}

// discover asks the API which resources exist. With a partial failure it
// returns what it found along with the error.
func (c *Controller) discover() (*discovered, error) {
	d := &discovered{
		monitored:  map[schema.GroupVersionResource]bool{},
		kinds:      map[schema.GroupVersionKind]resourceInfo{},
		groupKinds: map[schema.GroupKind]resourceInfo{},
	}
	var partial *discovery.ErrGroupDiscoveryFailed
	preferred, perr := c.discovery.ServerPreferredResources()
	if perr != nil && !errors.As(perr, &partial) {
		return nil, fmt.Errorf("discover preferred resources: %w", perr)
	}
	for _, l := range preferred {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			gvr := gv.WithResource(r.Name)
			info := resourceInfo{gvr: gvr, namespaced: r.Namespaced}
			d.groupKinds[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = info
			if c.ignored[gvr.GroupResource()] {
				continue
			}
			if slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") && slices.Contains(r.Verbs, "delete") {
				d.monitored[gvr] = r.Namespaced
			}
		}
	}
	_, all, aerr := discovery.ServerGroupsAndResources(c.discovery)
	if aerr != nil && !errors.As(aerr, &partial) {
		return nil, fmt.Errorf("discover resources: %w", aerr)
	}
	for _, l := range all {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") {
				continue
			}
			d.kinds[gv.WithKind(r.Kind)] = resourceInfo{gvr: gv.WithResource(r.Name), namespaced: r.Namespaced}
		}
	}
	return d, errors.Join(perr, aerr)
}

// resync rediscovers the resources and starts or stops monitors to match.
// It returns the monitors it started, which may not have synced yet.
func (c *Controller) resync(ctx context.Context) ([]*monitor, error) {
	d, err := c.discover()
	if d == nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kinds, c.groupKinds = d.kinds, d.groupKinds
	var started []*monitor
	for gvr, namespaced := range d.monitored {
		if _, ok := c.monitors[gvr]; ok {
			continue
		}
		m, merr := c.newMonitor(gvr, namespaced)
		if merr != nil {
			err = errors.Join(err, merr)
			continue
		}
		c.monitors[gvr] = m
		started = append(started, m)
	}
	// A partial discovery failure must not stop monitors of resources
	// whose group merely failed to answer this time.
	if err == nil {
		for gvr, m := range c.monitors {
			if _, ok := d.monitored[gvr]; !ok {
				m.cancel()
				delete(c.monitors, gvr)
				c.log.Info("stopped watching resource that is no longer served", "resource", gvr.String())
			}
		}
	}
	for _, m := range started {
		mctx, cancel := context.WithCancel(ctx)
		m.cancel = cancel
		c.monitorWG.Add(1)
		go func() {
			defer c.monitorWG.Done()
			m.informer.RunWithContext(mctx)
		}()
	}
	if len(started) > 0 {
		c.log.Debug("watching resources", "started", len(started), "total", len(c.monitors))
	}
	return started, err
}

// newMonitor builds (but does not start) the informer for gvr.
func (c *Controller) newMonitor(gvr schema.GroupVersionResource, namespaced bool) (*monitor, error) {
	inf := metadatainformer.NewFilteredMetadataInformer(c.meta, gvr, metav1.NamespaceAll, 0,
		cache.Indexers{ownerIndex: ownerUIDs, cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	m := &monitor{gvr: gvr, namespaced: namespaced, informer: inf, cancel: func() {}}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { c.onAdd(m, obj) },
		UpdateFunc: func(old, cur interface{}) { c.onUpdate(m, old, cur) },
		DeleteFunc: func(obj interface{}) { c.onDelete(m, obj) },
	})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", gvr, err)
	}
	return m, nil
}

// monitorFor returns the monitor of gvr, or nil.
func (c *Controller) monitorFor(gvr schema.GroupVersionResource) *monitor {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.monitors[gvr]
}

// allMonitors is a snapshot of the monitors.
func (c *Controller) allMonitors() []*monitor {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*monitor, 0, len(c.monitors))
	for _, m := range c.monitors {
		out = append(out, m)
	}
	return out
}

// resolve maps an owner reference's apiVersion and kind to a resource.
func (c *Controller) resolve(apiVersion, kind string) (resourceInfo, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return resourceInfo{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if info, ok := c.kinds[gv.WithKind(kind)]; ok {
		return info, true
	}
	info, ok := c.groupKinds[schema.GroupKind{Group: gv.Group, Kind: kind}]
	return info, ok
}
