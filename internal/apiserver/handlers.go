package apiserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/registry"
	"skiff/internal/storage"
)

func (q *request) get() {
	obj, err := q.s.store.Get(q.r.Context(), key(q.res, q.ri.namespace, q.ri.name))
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
		return
	}
	q.respond(http.StatusOK, obj)
}

func (q *request) list() {
	match, err := q.matcher()
	if err != nil {
		q.fail(err)
		return
	}
	if q.listPage(match) {
		return
	}
	query := q.query
	var rev int64
	if query.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		if rev, err = strconv.ParseInt(query.Get("resourceVersion"), 10, 64); err != nil {
			q.fail(badRequest("resourceVersion %q: not a number", query.Get("resourceVersion")))
			return
		}
	}
	if q.listRaw(rev) {
		return
	}
	items, rev, err := q.s.store.List(q.r.Context(), prefix(q.res, q.ri.namespace), rev)
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), ""))
		return
	}
	kept := items[:0]
	for _, it := range items {
		if match(it) {
			kept = append(kept, it)
		}
	}
	list := q.res.NewList()
	if err := meta.SetList(list, kept); err != nil {
		q.fail(err)
		return
	}
	la, _ := meta.ListAccessor(list)
	la.SetResourceVersion(strconv.FormatInt(rev, 10))
	q.respond(http.StatusOK, list)
}

// listRaw answers a plain JSON list with no selectors straight from the
// stored JSON, without decoding and re-encoding every object: the common
// case of informers' and kubectl's lists. It reports whether it answered.
func (q *request) listRaw(rev int64) bool {
	if q.query.Get("labelSelector") != "" || q.query.Get("fieldSelector") != "" {
		return false
	}
	if out, err := negotiate(q.r.Header.Get("Accept")); err != nil || out != (output{}) {
		return false
	}
	items, rev, err := q.s.store.ListRaw(q.r.Context(), prefix(q.res, q.ri.namespace), rev)
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), ""))
		return true
	}
	objs := make([][]byte, len(items))
	for i, it := range items {
		data, ok := it.WithResourceVersion()
		if !ok {
			return false
		}
		objs[i] = data
	}
	gvk := q.res.NewList().GetObjectKind().GroupVersionKind()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"},"items":[`, gvk.Kind, gvk.GroupVersion().String(), rev)
	for i, o := range objs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(o)
	}
	buf.WriteString("]}")
	q.w.Header().Set("Content-Type", "application/json")
	q.w.WriteHeader(http.StatusOK)
	_, _ = q.w.Write(buf.Bytes())
	return true
}

// namespaceUsable refuses objects in a missing or terminating namespace, as
// Kubernetes' NamespaceLifecycle admission does.
func (q *request) namespaceUsable(ctx context.Context, ns string) error {
	if !q.res.Namespaced {
		return nil
	}
	obj, err := q.s.store.Get(ctx, key(q.s.namespaces, "", ns))
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(q.s.namespaces.GroupResource(), ns)
	}
	if err != nil {
		return err
	}
	if n := obj.(*corev1.Namespace); n.DeletionTimestamp != nil || n.Status.Phase == corev1.NamespaceTerminating {
		return apierrors.NewForbidden(q.res.GroupResource(), "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

// randomSuffix is the 5-character suffix of generateName.
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (q *request) create() {
	obj, err := q.decodeBody()
	if err != nil {
		q.fail(err)
		return
	}
	ctx := q.r.Context()
	m, _ := meta.Accessor(obj)
	if q.res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(q.ri.namespace)
		}
		if q.ri.namespace != "" && m.GetNamespace() != q.ri.namespace {
			q.fail(badRequest("the namespace of the provided object does not match the namespace sent on the request"))
			return
		}
		if q.ri.namespace == "" {
			q.fail(badRequest("%s must be created in a namespace: POST to .../namespaces/<namespace>/%s", q.res.Resource, q.res.Resource))
			return
		}
	} else {
		m.SetNamespace("")
	}
	if m.GetResourceVersion() != "" {
		q.fail(badRequest("resourceVersion should not be set on objects to be created"))
		return
	}
	if err := q.namespaceUsable(ctx, m.GetNamespace()); err != nil {
		q.fail(err)
		return
	}
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetManagedFields(nil)
	m.SetGeneration(0)
	if registry.StatusOf(obj) != nil || hasSpec(obj) {
		m.SetGeneration(1)
	}
	q.res.PrepareForCreate(obj)
	q.res.Default(obj)
	if err := q.s.admitCreate(ctx, obj); err != nil {
		q.fail(err)
		return
	}
	for attempt := 0; ; attempt++ {
		if generated {
			m.SetName(m.GetGenerateName() + randomSuffix())
		}
		if errs := q.res.Validate(obj); len(errs) > 0 {
			q.fail(invalid(q.res, m.GetName(), errs))
			return
		}
		out, err := q.storeCreate(ctx, obj)
		if errors.Is(err, storage.ErrExists) && generated && attempt < 8 {
			continue
		}
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), m.GetName()))
			return
		}
		q.respond(http.StatusCreated, out)
		return
	}
}

// storeCreate admits and writes a new object, with the allocations that
// services need; a dry run stops before writing.
func (q *request) storeCreate(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	release, err := q.s.allocateOnCreate(ctx, obj, q.dryRun())
	if err != nil {
		return nil, err
	}
	if q.dryRun() {
		return obj, nil
	}
	var ttl time.Duration
	if q.res.Expires {
		ttl = q.s.cfg.EventTTL
	}
	out, err := q.s.store.CreateWithTTL(ctx, key(q.res, m.GetNamespace(), m.GetName()), obj, ttl)
	if err != nil {
		release()
		return nil, err
	}
	return out, nil
}

func hasSpec(obj runtime.Object) bool {
	_, ok := reflectField(obj, "Spec")
	return ok
}

// update serves PUT and PATCH on the main resource and on /status.
func (q *request) update() {
	ctx := q.r.Context()
	b, err := q.readBody()
	if err != nil {
		q.fail(err)
		return
	}
	var patch patchFunc
	if q.ri.verb == "patch" {
		if b.protobuf {
			q.fail(unsupportedMediaType(protobufMediaType))
			return
		}
		if patch, err = q.patcher(b.data); err != nil {
			q.fail(err)
			return
		}
	}
	k := key(q.res, q.ri.namespace, q.ri.name)
	for {
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		var obj runtime.Object
		if patch != nil {
			obj, err = q.applyPatch(patch, cur)
		} else {
			obj = q.res.New()
			err = q.s.decodeInto(b, obj, q.res.GVK())
		}
		if err != nil {
			q.fail(err)
			return
		}
		out, code, err := q.admitUpdate(ctx, obj, cur)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			q.fail(err)
			return
		}
		q.respond(code, out)
		return
	}
}

// errRetry: the object changed under an update that named no
// resourceVersion; read it again and retry.
var errRetry = errors.New("retry")

// admitUpdate applies the update rules to obj (the client's intent) over
// cur (stored), writes it and returns the stored result.
func (q *request) admitUpdate(ctx context.Context, obj, cur runtime.Object) (runtime.Object, int, error) {
	m, _ := meta.Accessor(obj)
	old, _ := meta.Accessor(cur)
	if m.GetName() != q.ri.name {
		return nil, 0, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), q.ri.name)
	}
	if q.res.Namespaced && m.GetNamespace() != "" && m.GetNamespace() != q.ri.namespace {
		return nil, 0, badRequest("the namespace of the object (%s) does not match the namespace on the URL (%s)", m.GetNamespace(), q.ri.namespace)
	}
	preconditioned := m.GetResourceVersion() != ""
	if preconditioned && m.GetResourceVersion() != old.GetResourceVersion() {
		return nil, 0, apierrors.NewConflict(q.res.GroupResource(), q.ri.name, errors.New(conflictMessage))
	}
	if m.GetUID() != "" && m.GetUID() != old.GetUID() {
		return nil, 0, apierrors.NewConflict(q.res.GroupResource(), q.ri.name,
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", m.GetUID(), old.GetUID()))
	}
	if q.ri.subresource == "status" {
		// A status write changes the status and nothing else.
		next := cur.DeepCopyObject()
		registry.CopyStatus(next, obj)
		obj = next
		m, _ = meta.Accessor(obj)
	} else {
		if q.res.HasSubresource("status") {
			registry.CopyStatus(obj, cur)
		}
		// Server-owned metadata is kept from the stored object.
		m.SetNamespace(old.GetNamespace())
		m.SetUID(old.GetUID())
		m.SetCreationTimestamp(old.GetCreationTimestamp())
		m.SetDeletionTimestamp(old.GetDeletionTimestamp())
		m.SetDeletionGracePeriodSeconds(old.GetDeletionGracePeriodSeconds())
		m.SetGeneration(old.GetGeneration())
		if old.GetDeletionTimestamp() != nil && len(m.GetFinalizers()) > len(old.GetFinalizers()) {
			return nil, 0, invalid(q.res, q.ri.name, field.ErrorList{field.Forbidden(field.NewPath("metadata", "finalizers"), "no new finalizers can be added if the object is being deleted")})
		}
	}
	m.SetResourceVersion(old.GetResourceVersion())
	carryOverAllocations(obj, cur)
	q.res.Default(obj)
	if errs := q.res.ValidateUpdate(obj, cur); len(errs) > 0 {
		return nil, 0, invalid(q.res, q.ri.name, errs)
	}
	if !registry.SpecEqual(obj, cur) && m.GetGeneration() > 0 {
		m.SetGeneration(old.GetGeneration() + 1)
	}
	if err := q.s.allocateOnUpdate(ctx, obj, cur, q.dryRun()); err != nil {
		return nil, 0, err
	}
	if same, _ := equalEncoded(obj, cur); same {
		return cur, http.StatusOK, nil
	}
	if q.dryRun() {
		return obj, http.StatusOK, nil
	}
	rev, _ := strconv.ParseInt(old.GetResourceVersion(), 10, 64)
	k := key(q.res, old.GetNamespace(), old.GetName())
	// The last finalizer gone from an object being deleted: delete it.
	if old.GetDeletionTimestamp() != nil && q.ri.subresource != "status" && finalizersDone(obj) {
		out, err := q.s.store.Delete(ctx, k, rev)
		if errors.Is(err, storage.ErrConflict) && !preconditioned {
			return nil, 0, errRetry
		}
		if err == nil {
			q.s.releaseOnDelete(ctx, out)
		}
		return out, http.StatusOK, storeErr(err, q.res.GroupResource(), q.ri.name)
	}
	out, err := q.s.store.Update(ctx, k, obj, rev)
	if errors.Is(err, storage.ErrConflict) && !preconditioned {
		return nil, 0, errRetry
	}
	if err != nil {
		return nil, 0, storeErr(err, q.res.GroupResource(), q.ri.name)
	}
	return out, http.StatusOK, nil
}

// finalizersDone reports an object that nothing holds back from deletion:
// no finalizers (for a namespace, none in its spec either) and, for a pod,
// no grace period still running.
func finalizersDone(obj runtime.Object) bool {
	m, _ := meta.Accessor(obj)
	if len(m.GetFinalizers()) > 0 || pendingGrace(obj) {
		return false
	}
	ns, ok := obj.(*corev1.Namespace)
	return !ok || len(ns.Spec.Finalizers) == 0
}

// pendingGrace reports a pod still inside its deletion grace period: the
// kubelet, not a finalizer update, finishes its deletion.
func pendingGrace(obj runtime.Object) bool {
	p, ok := obj.(*corev1.Pod)
	return ok && p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds > 0
}

func equalEncoded(a, b runtime.Object) (bool, error) {
	ea, err := encodeObject(a)
	if err != nil {
		return false, err
	}
	eb, err := encodeObject(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ea, eb), nil
}

func (q *request) delete() {
	opts, err := q.deleteOptions()
	if err != nil {
		q.fail(err)
		return
	}
	out, code, err := q.s.deleteObject(q.r.Context(), q.res, q.ri.namespace, q.ri.name, opts)
	if err != nil {
		q.fail(err)
		return
	}
	q.respond(code, out)
}

// deleteObject deletes one object the way Kubernetes does: preconditions,
// graceful deletion of pods bound to a node, finalizers. It returns 200 when
// the object is gone and 202 when its deletion is pending.
func (s *Server) deleteObject(ctx context.Context, res *registry.Resource, ns, name string, opts *metav1.DeleteOptions) (runtime.Object, int, error) {
	k := key(res, ns, name)
	dryRun := len(opts.DryRun) > 0
	for {
		cur, err := s.store.Get(ctx, k)
		if err != nil {
			return nil, 0, storeErr(err, res.GroupResource(), name)
		}
		m, _ := meta.Accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, 0, apierrors.NewConflict(res.GroupResource(), name,
					fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, 0, apierrors.NewConflict(res.GroupResource(), name,
					fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		next, pending := s.pendingDeletion(cur, opts)
		if dryRun {
			return cur, http.StatusOK, nil
		}
		if pending {
			if next == nil {
				return cur, http.StatusAccepted, nil
			}
			out, err := s.store.Update(ctx, k, next, rev)
			if errors.Is(err, storage.ErrConflict) {
				continue
			}
			if err != nil {
				return nil, 0, storeErr(err, res.GroupResource(), name)
			}
			return out, http.StatusAccepted, nil
		}
		out, err := s.store.Delete(ctx, k, rev)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, 0, storeErr(err, res.GroupResource(), name)
		}
		s.releaseOnDelete(ctx, out)
		return out, http.StatusOK, nil
	}
}

// pendingDeletion decides whether deleting cur must wait (finalizers, a
// namespace's spec finalizers, a pod's grace period). It returns the object
// to write (nil: nothing to change) and whether the deletion is pending.
func (s *Server) pendingDeletion(cur runtime.Object, opts *metav1.DeleteOptions) (runtime.Object, bool) {
	m, _ := meta.Accessor(cur)
	now := metav1.Now()
	if pod, ok := cur.(*corev1.Pod); ok {
		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		if opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
		// An unscheduled or finished pod has no kubelet to wait for.
		if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			grace = 0
		}
		if grace > 0 {
			if pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds <= grace {
				return nil, true
			}
			next := pod.DeepCopy()
			ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
			next.DeletionTimestamp = &ts
			next.DeletionGracePeriodSeconds = &grace
			return next, true
		}
	}
	// The garbage collector acts on these finalizers: dependents first
	// (Foreground), or dependents released (Orphan).
	finalizers := m.GetFinalizers()
	addFinalizer := ""
	switch {
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationForeground:
		addFinalizer = metav1.FinalizerDeleteDependents
	case opts.PropagationPolicy != nil && *opts.PropagationPolicy == metav1.DeletePropagationOrphan,
		opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents:
		addFinalizer = metav1.FinalizerOrphanDependents
	}
	if addFinalizer != "" && slices.Contains(finalizers, addFinalizer) {
		addFinalizer = ""
	}
	ns, isNamespace := cur.(*corev1.Namespace)
	if len(finalizers) == 0 && addFinalizer == "" && !(isNamespace && len(ns.Spec.Finalizers) > 0) {
		return nil, false
	}
	zero := int64(0)
	graceDone := m.GetDeletionGracePeriodSeconds() != nil && *m.GetDeletionGracePeriodSeconds() == 0
	if m.GetDeletionTimestamp() != nil && graceDone && addFinalizer == "" {
		return nil, true
	}
	next := cur.DeepCopyObject()
	nm, _ := meta.Accessor(next)
	if nm.GetDeletionTimestamp() == nil || !graceDone {
		nm.SetDeletionTimestamp(&now)
	}
	nm.SetDeletionGracePeriodSeconds(&zero)
	if addFinalizer != "" {
		nm.SetFinalizers(append(finalizers, addFinalizer))
	}
	if n, ok := next.(*corev1.Namespace); ok {
		n.Status.Phase = corev1.NamespaceTerminating
	}
	return next, true
}

func (q *request) deleteCollection() {
	opts, err := q.deleteOptions()
	if err != nil {
		q.fail(err)
		return
	}
	match, err := q.matcher()
	if err != nil {
		q.fail(err)
		return
	}
	ctx := q.r.Context()
	items, rev, err := q.s.store.List(ctx, prefix(q.res, q.ri.namespace), 0)
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), ""))
		return
	}
	var deleted []runtime.Object
	for _, it := range items {
		if !match(it) {
			continue
		}
		m, _ := meta.Accessor(it)
		out, _, err := q.s.deleteObject(ctx, q.res, m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			q.fail(err)
			return
		}
		deleted = append(deleted, out)
	}
	list := q.res.NewList()
	_ = meta.SetList(list, deleted)
	la, _ := meta.ListAccessor(list)
	la.SetResourceVersion(strconv.FormatInt(rev, 10))
	q.respond(http.StatusOK, list)
}
