// Package namespace empties namespaces that are being deleted. For a
// Terminating namespace whose spec.finalizers still hold "kubernetes" it
// deletes everything in it, of every namespaced resource the API serves
// (found through discovery, so new resources are covered), waits until
// nothing is left, then removes "kubernetes" through the finalize
// subresource so that the API server can delete the namespace. Progress is
// reported in the namespace's status conditions.
package namespace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// Name is the controller's name in logs and the manager.
const Name = "namespace"

const (
	workers = 2
	// pollFast and pollSlow are how soon a namespace with content left is
	// looked at again (nothing tells the controller when that content
	// goes); after slowAfter the pace drops.
	pollFast  = time.Second
	pollSlow  = 5 * time.Second
	slowAfter = 30 * time.Second
	// retryAfterError keeps a namespace going after its retries with
	// backoff are used up.
	retryAfterError = time.Minute
)

// Controller is the namespace controller.
type Controller struct {
	client     kubernetes.Interface
	meta       metadata.Interface
	discovery  discovery.DiscoveryInterface
	namespaces corelisters.NamespaceLister
	synced     cache.InformerSynced
	queue      controller.Queue
	log        *slog.Logger
	now        func() time.Time
}

// New builds the controller from cctx.
func New(cctx *controller.Context) (*Controller, error) {
	mc, err := cctx.MetadataClient("skiff-controller-manager/namespace")
	if err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	return newController(cctx, mc, cctx.Client.Discovery())
}

func newController(cctx *controller.Context, mc metadata.Interface, disc discovery.DiscoveryInterface) (*Controller, error) {
	inf := cctx.Informers.Core().V1().Namespaces()
	c := &Controller{
		client:     cctx.Client,
		meta:       mc,
		discovery:  disc,
		namespaces: inf.Lister(),
		synced:     inf.Informer().HasSynced,
		queue:      controller.NewQueue(Name),
		log:        cctx.ControllerLogger(Name),
		now:        time.Now,
	}
	onChange := func(obj interface{}) {
		if ns, ok := obj.(*corev1.Namespace); ok && ns.DeletionTimestamp != nil {
			controller.Enqueue(c.queue, obj)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    onChange,
		UpdateFunc: func(_, cur interface{}) { onChange(cur) },
	}); err != nil {
		return nil, fmt.Errorf("namespace: handler: %w", err)
	}
	return c, nil
}

// Run empties terminating namespaces until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	controller.Run(ctx, c.log, c.queue, workers, c.sync, c.synced)
}

// sync empties namespace name if it is being deleted, and finalizes it
// once empty.
func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	res, discoveryErr := c.deletableResources()
	if res == nil && discoveryErr != nil {
		c.queue.AddAfter(name, retryAfterError)
		return fmt.Errorf("namespace %s: discover resources: %w", name, discoveryErr)
	}
	left, deleteErr := c.deleteContent(ctx, name, res)
	if err := c.setConditions(ctx, ns, discoveryErr, deleteErr, left); err != nil {
		c.log.Debug("could not update namespace conditions", "namespace", name, "err", err)
	}
	if discoveryErr != nil || deleteErr != nil {
		// Some content could not even be looked at: never finalize then.
		// Retried with backoff, and in any case again after a while.
		c.queue.AddAfter(name, retryAfterError)
		return fmt.Errorf("namespace %s: %w", name, errors.Join(discoveryErr, deleteErr))
	}
	if left.total() > 0 {
		delay := pollFast
		if c.now().Sub(ns.DeletionTimestamp.Time) > slowAfter {
			delay = pollSlow
		}
		c.log.Debug("namespace content remaining", "namespace", name, "remaining", left.String(), "retryIn", delay)
		c.queue.AddAfter(name, delay)
		return nil
	}
	return c.finalize(ctx, ns)
}

// resource is a namespaced resource the controller deletes.
type resource struct {
	gvr              schema.GroupVersionResource
	deleteCollection bool
}

// deletableResources lists the preferred version of every namespaced
// resource that can be listed and deleted. With a partial discovery
// failure it returns what it found and the error.
func (c *Controller) deletableResources() ([]resource, error) {
	lists, err := c.discovery.ServerPreferredNamespacedResources()
	var partial *discovery.ErrGroupDiscoveryFailed
	if err != nil && !errors.As(err, &partial) {
		return nil, err
	}
	var out []resource
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !r.Namespaced {
				continue
			}
			verbs := r.Verbs
			if !slices.Contains(verbs, "list") || !slices.Contains(verbs, "delete") {
				continue
			}
			out = append(out, resource{gvr: gv.WithResource(r.Name), deleteCollection: slices.Contains(verbs, "deletecollection")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gvr.String() < out[j].gvr.String() })
	return out, err
}

// remaining counts what is left in a namespace, by resource.
type remaining struct {
	objects    map[string]int
	finalizers map[string]int
}

func (r remaining) total() int {
	n := 0
	for _, v := range r.objects {
		n += v
	}
	return n
}

func (r remaining) String() string {
	return describe(r.objects, "%s has %d resource instances")
}

// describe renders the counts in m, sorted by key, each with format (a
// %s for the key, a %d for its count), joined by ", ".
func describe(m map[string]int, format string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(format, k, m[k])
	}
	return strings.Join(parts, ", ")
}

// deleteContent deletes every object of res in namespace ns and counts
// what is still there afterwards (objects waiting for finalizers or a
// grace period).
func (c *Controller) deleteContent(ctx context.Context, ns string, res []resource) (remaining, error) {
	left := remaining{objects: map[string]int{}, finalizers: map[string]int{}}
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	var errs []error
	for _, r := range res {
		if ctx.Err() != nil {
			return left, ctx.Err()
		}
		api := c.meta.Resource(r.gvr).Namespace(ns)
		name := r.gvr.GroupResource().String()
		collected := false
		if r.deleteCollection {
			err := api.DeleteCollection(ctx, opts, metav1.ListOptions{})
			switch {
			case err == nil:
				collected = true
			case apierrors.IsNotFound(err):
				continue // the resource went away
			case !apierrors.IsMethodNotSupported(err):
				errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
				continue
			}
		}
		list, err := api.List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", name, err))
			continue
		}
		for i := range list.Items {
			it := &list.Items[i]
			if !collected && it.DeletionTimestamp == nil {
				uid := it.UID
				err := api.Delete(ctx, it.Name, metav1.DeleteOptions{PropagationPolicy: &background, Preconditions: &metav1.Preconditions{UID: &uid}})
				// NotFound or Conflict: gone, or replaced; the next look
				// counts what is left.
				if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
					errs = append(errs, fmt.Errorf("delete %s %s: %w", name, it.Name, err))
				}
			}
			left.objects[name]++
			for _, f := range it.Finalizers {
				left.finalizers[f]++
			}
		}
	}
	return left, errors.Join(errs...)
}

// setConditions reports deletion progress in the namespace's status.
func (c *Controller) setConditions(ctx context.Context, ns *corev1.Namespace, discoveryErr, deleteErr error, left remaining) error {
	now := metav1.NewTime(c.now())
	cond := func(t corev1.NamespaceConditionType, bad bool, reasonBad, reasonOK, msg string) corev1.NamespaceCondition {
		if bad {
			return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reasonBad, Message: msg}
		}
		return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: reasonOK, Message: msg}
	}
	msg := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	want := []corev1.NamespaceCondition{
		cond(corev1.NamespaceDeletionDiscoveryFailure, discoveryErr != nil, "DiscoveryFailed", "ResourcesDiscovered",
			orDefault(msg(discoveryErr), "All resources successfully discovered")),
		cond(corev1.NamespaceDeletionContentFailure, deleteErr != nil, "ContentDeletionFailed", "ContentDeleted",
			orDefault(msg(deleteErr), "All content successfully deleted, may be waiting on finalization")),
		cond(corev1.NamespaceContentRemaining, left.total() > 0, "SomeResourcesRemain", "ContentRemoved",
			orDefault(prefixed("Some resources are remaining: ", left.String()), "All content successfully removed")),
		cond(corev1.NamespaceFinalizersRemaining, len(left.finalizers) > 0, "SomeFinalizersRemain", "ContentHasNoFinalizers",
			orDefault(prefixed("Some content in the namespace has finalizers remaining: ", describe(left.finalizers, "%s in %d resource instances")), "All content-preserving finalizers finished")),
	}
	next := ns.DeepCopy()
	changed := next.Status.Phase != corev1.NamespaceTerminating
	next.Status.Phase = corev1.NamespaceTerminating
	for _, w := range want {
		found := false
		for i := range next.Status.Conditions {
			have := &next.Status.Conditions[i]
			if have.Type != w.Type {
				continue
			}
			found = true
			if have.Status != w.Status || have.Reason != w.Reason || have.Message != w.Message {
				w.LastTransitionTime = now
				*have = w
				changed = true
			}
		}
		if !found {
			w.LastTransitionTime = now
			next.Status.Conditions = append(next.Status.Conditions, w)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	_, err := c.client.CoreV1().Namespaces().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// finalize removes "kubernetes" from the namespace's spec.finalizers; the
// API server deletes the namespace when none remain.
func (c *Controller) finalize(ctx context.Context, ns *corev1.Namespace) error {
	next := ns.DeepCopy()
	next.Spec.Finalizers = slices.DeleteFunc(next.Spec.Finalizers, func(f corev1.FinalizerName) bool {
		return f == corev1.FinalizerKubernetes
	})
	_, err := c.client.CoreV1().Namespaces().Finalize(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finalize namespace %s: %w", ns.Name, err)
	}
	c.log.Info("namespace emptied and finalized", "namespace", ns.Name)
	return nil
}
