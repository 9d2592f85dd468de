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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/admission"
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
	if !servedAsStored(q.res) {
		return false // stored objects need another apiVersion or defaults
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
	if err := q.validateFieldManager(false); err != nil {
		q.fail(err)
		return
	}
	out, err := q.createObject(q.r.Context(), obj, nil)
	if err != nil {
		q.fail(err)
		return
	}
	q.respond(http.StatusCreated, out)
}

// createObject runs a create: server-owned metadata, the kind's create
// rules and defaults, managed fields, admission, validation, storage.
// applied, when set, is obj's managed fields from an apply patch that
// created it.
func (q *request) createObject(ctx context.Context, obj runtime.Object, applied []metav1.ManagedFieldsEntry) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	if q.res.Namespaced {
		if m.GetNamespace() == "" {
			m.SetNamespace(q.ri.namespace)
		}
		if q.ri.namespace != "" && m.GetNamespace() != q.ri.namespace {
			return nil, badRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if q.ri.namespace == "" {
			return nil, badRequest("%s must be created in a namespace: POST to .../namespaces/<namespace>/%s", q.res.Resource, q.res.Resource)
		}
	} else {
		m.SetNamespace("")
	}
	if m.GetResourceVersion() != "" {
		return nil, badRequest("resourceVersion should not be set on objects to be created")
	}
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetManagedFields(nil)
	m.SetGeneration(0)
	if q.res.TracksGeneration() {
		m.SetGeneration(1)
	}
	q.res.PrepareForCreate(obj)
	q.res.Default(obj)
	if applied != nil {
		m.SetManagedFields(applied)
	} else {
		obj = q.trackUpdate(nil, obj)
		m, _ = meta.Accessor(obj)
	}
	if err := q.s.admit(ctx, &admission.Attributes{
		Operation: admission.Create, Resource: q.res.GVR(), Namespace: m.GetNamespace(), Name: m.GetName(),
		Object: obj, DryRun: q.dryRun(),
	}); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if generated {
			m.SetName(m.GetGenerateName() + randomSuffix())
		}
		if errs := q.res.Validate(obj); len(errs) > 0 {
			return nil, invalid(q.res, m.GetName(), errs)
		}
		out, err := q.storeCreate(ctx, obj)
		if errors.Is(err, storage.ErrExists) && generated && attempt < 8 {
			continue
		}
		if err != nil {
			return nil, storeErr(err, q.res.GroupResource(), m.GetName())
		}
		return out, nil
	}
}

// storeCreate writes a new object, with the allocations its kind needs
// (a service's cluster IP); a dry run stops before writing.
func (q *request) storeCreate(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	release := func() {}
	if a := q.res.Allocator(); a != nil {
		var err error
		if release, err = a.AllocateOnCreate(ctx, obj, q.dryRun()); err != nil {
			return nil, err
		}
	}
	if q.dryRun() {
		return obj, nil
	}
	toStorageVersion(q.res, obj)
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

// update serves PUT and PATCH on the main resource and on /status.
func (q *request) update() {
	ctx := q.r.Context()
	b, err := q.readBody()
	if err != nil {
		q.fail(err)
		return
	}
	if q.ri.verb == "patch" && isApplyPatch(q.r) {
		q.serveApply(b.data)
		return
	}
	if err := q.validateFieldManager(false); err != nil {
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
		out, code, err := q.admitUpdate(ctx, obj, cur, false)
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
// applied says obj comes from an apply patch, whose managed fields are
// already set.
func (q *request) admitUpdate(ctx context.Context, obj, cur runtime.Object, applied bool) (runtime.Object, int, error) {
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
	status := q.ri.subresource == "status"
	if status {
		// A status write changes the status and nothing else.
		next := cur.DeepCopyObject()
		q.res.Status().CopyStatus(next, obj)
		obj = next
		m, _ = meta.Accessor(obj)
	} else {
		q.res.PrepareForUpdate(obj, cur)
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
	q.res.Default(obj)
	if !applied {
		obj = q.trackUpdate(cur, obj)
		m, _ = meta.Accessor(obj)
	}
	if err := q.s.admit(ctx, &admission.Attributes{
		Operation: admission.Update, Resource: q.res.GVR(), Subresource: q.ri.subresource,
		Namespace: old.GetNamespace(), Name: old.GetName(), Object: obj, OldObject: cur, DryRun: q.dryRun(),
	}); err != nil {
		return nil, 0, err
	}
	validate := q.res.ValidateUpdate
	if status {
		validate = q.res.ValidateStatusUpdate
	}
	if errs := validate(obj, cur); len(errs) > 0 {
		return nil, 0, invalid(q.res, q.ri.name, errs)
	}
	if m.GetGeneration() > 0 && q.res.SpecChanged(obj, cur) {
		m.SetGeneration(old.GetGeneration() + 1)
	}
	if a := q.res.Allocator(); a != nil {
		if err := a.AllocateOnUpdate(ctx, obj, cur, q.dryRun()); err != nil {
			return nil, 0, err
		}
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
	if old.GetDeletionTimestamp() != nil && !status && finalizersDone(q.res, obj) {
		out, err := q.s.store.Delete(ctx, k, rev)
		if errors.Is(err, storage.ErrConflict) && !preconditioned {
			return nil, 0, errRetry
		}
		if err == nil {
			q.s.releaseOnDelete(ctx, q.res, out)
		}
		return out, http.StatusOK, storeErr(err, q.res.GroupResource(), q.ri.name)
	}
	toStorageVersion(q.res, obj)
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
// no finalizers, and nothing its kind waits for (a namespace's
// spec.finalizers, a pod's grace period, which its kubelet ends).
func finalizersDone(res *registry.Resource, obj runtime.Object) bool {
	m, _ := meta.Accessor(obj)
	return len(m.GetFinalizers()) == 0 && !res.DeletionHeld(obj) && !res.GracePending(obj)
}

// releaseOnDelete frees what a deleted object's kind allocated for it.
func (s *Server) releaseOnDelete(ctx context.Context, res *registry.Resource, obj runtime.Object) {
	if a := res.Allocator(); a != nil {
		if err := a.ReleaseOnDelete(ctx, obj); err != nil {
			s.log.Warn("release allocations of a deleted object", "resource", res.GroupResource().String(), "err", err)
		}
	}
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
		next, pending := s.pendingDeletion(res, cur, opts)
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
		s.releaseOnDelete(ctx, res, out)
		return out, http.StatusOK, nil
	}
}

// pendingDeletion decides whether deleting cur must wait (finalizers, what
// its kind waits for: a namespace's spec finalizers, a pod's grace period).
// It returns the object to write (nil: nothing to change) and whether the
// deletion is pending.
func (s *Server) pendingDeletion(res *registry.Resource, cur runtime.Object, opts *metav1.DeleteOptions) (runtime.Object, bool) {
	m, _ := meta.Accessor(cur)
	now := metav1.Now()
	if g, ok := res.Strategy.(registry.GracefulDeleter); ok {
		if next, pending := g.GracefulDelete(cur, opts, now.Time); pending {
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
	if len(finalizers) == 0 && addFinalizer == "" && !res.DeletionHeld(cur) {
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
	res.MarkDeleting(next)
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
