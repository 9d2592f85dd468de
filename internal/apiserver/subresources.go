package apiserver

import (
	"errors"
	"net/http"
	"strconv"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/admission"
	"skiff/internal/registry"
	"skiff/internal/storage"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// scale serves the autoscaling/v1 Scale of a kind with a ScaleStrategy:
// reads and writes its desired replicas.
func (q *request) scale() {
	ctx := q.r.Context()
	scaler := q.res.Scaler()
	if scaler == nil {
		q.fail(apierrors.NewNotFound(q.res.GroupResource(), q.ri.name+"/scale"))
		return
	}
	k := key(q.res, q.ri.namespace, q.ri.name)
	switch q.ri.verb {
	case "get":
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		s, err := scaler.Scale(cur)
		if err != nil {
			q.fail(err)
			return
		}
		writeJSON(q.w, http.StatusOK, s)
		return
	case "update", "patch":
	default:
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		return
	}
	b, err := q.readBody()
	if err != nil {
		q.fail(err)
		return
	}
	var patch patchFunc
	if q.ri.verb == "patch" {
		if patch, err = q.patcher(b.data); err != nil {
			q.fail(err)
			return
		}
	}
	for {
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		curScale, err := scaler.Scale(cur)
		if err != nil {
			q.fail(err)
			return
		}
		want := &autoscalingv1.Scale{}
		if patch != nil {
			orig, _ := encodeObject(curScale)
			patched, err := patch(orig, &autoscalingv1.Scale{})
			if err == nil {
				err = q.s.decodeInto(body{data: patched, fields: q.fields}, want, scaleGVK)
			}
			if err != nil {
				q.fail(err)
				return
			}
		} else if err := q.s.decodeInto(b, want, scaleGVK); err != nil {
			q.fail(err)
			return
		}
		if errs := registry.ValidateScale(want); len(errs) > 0 {
			q.fail(apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, q.ri.name, errs))
			return
		}
		if want.ResourceVersion != "" && want.ResourceVersion != curScale.ResourceVersion {
			q.fail(apierrors.NewConflict(q.res.GroupResource(), q.ri.name, errors.New(conflictMessage)))
			return
		}
		changed := want.Spec.Replicas != curScale.Spec.Replicas
		next := cur.DeepCopyObject()
		if err := scaler.SetReplicas(next, want.Spec.Replicas); err != nil {
			q.fail(err)
			return
		}
		m, _ := meta.Accessor(next)
		if changed {
			m.SetGeneration(m.GetGeneration() + 1)
		}
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		out := cur
		switch {
		case q.dryRun():
			out = next
		case changed:
			out, err = q.s.store.Update(ctx, k, next, rev)
			if errors.Is(err, storage.ErrConflict) && want.ResourceVersion == "" {
				continue
			}
			if err != nil {
				q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
				return
			}
		}
		s, err := scaler.Scale(out)
		if err != nil {
			q.fail(err)
			return
		}
		writeJSON(q.w, http.StatusOK, s)
		return
	}
}

// action serves a subresource that changes or deletes the stored object
// from a request body (pods/binding, pods/eviction, namespaces/finalize).
func (q *request) action(a *registry.Action) {
	body := a.NewBody()
	if !q.decodeSubresource(a.Verb, body, a.BodyKind) {
		return
	}
	ctx := q.r.Context()
	// As upstream, a subresource create (a binding, an eviction, a token
	// request) passes admission with its body as the object: NodeRestriction
	// limits what a node may ask for.
	if a.Verb == "create" {
		if err := q.s.admit(ctx, &admission.Attributes{
			Operation: admission.Create, Resource: q.res.GVR(), Subresource: q.ri.subresource,
			Namespace: q.ri.namespace, Name: q.ri.name, Object: body, DryRun: q.dryRun(),
		}); err != nil {
			q.fail(err)
			return
		}
	}
	if a.Delete != nil {
		if _, _, err := q.s.deleteObject(ctx, q.res, q.ri.namespace, q.ri.name, a.Delete(body)); err != nil {
			q.fail(err)
			return
		}
		writeJSON(q.w, http.StatusCreated, statusSuccess(http.StatusCreated))
		return
	}
	k := key(q.res, q.ri.namespace, q.ri.name)
	if a.Respond != nil {
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		out, err := a.Respond(ctx, body, cur)
		if err != nil {
			q.fail(err)
			return
		}
		writeJSON(q.w, http.StatusCreated, out)
		return
	}
	for {
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		next, err := a.Update(body, cur.DeepCopyObject())
		if err != nil {
			q.fail(err)
			return
		}
		m, _ := meta.Accessor(next)
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		var out runtime.Object
		if m.GetDeletionTimestamp() != nil && finalizersDone(q.res, next) {
			out, err = q.s.store.Delete(ctx, k, rev)
			if err == nil {
				q.s.releaseOnDelete(ctx, q.res, out)
			}
		} else {
			out, err = q.s.store.Update(ctx, k, next, rev)
		}
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		if a.RespondStatus {
			writeJSON(q.w, http.StatusCreated, statusSuccess(http.StatusCreated))
			return
		}
		q.respond(http.StatusOK, out)
		return
	}
}

// decodeSubresource checks the verb and decodes the body into into; on
// failure it has answered the request and returns false.
func (q *request) decodeSubresource(verb string, into runtime.Object, gvk schema.GroupVersionKind) bool {
	if q.ri.verb != verb {
		q.fail(apierrors.NewMethodNotSupported(q.res.GroupResource(), q.r.Method))
		return false
	}
	raw, err := q.readBody()
	if err == nil {
		err = q.s.decodeInto(raw, into, gvk)
	}
	if err != nil {
		q.fail(err)
		return false
	}
	return true
}
