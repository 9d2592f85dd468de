package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"skiff/internal/storage"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// replicasOf returns the spec.replicas pointer and the selector of a
// scalable workload.
func replicasOf(obj runtime.Object) (**int32, *metav1.LabelSelector, int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Replicas, o.Spec.Selector, o.Status.Replicas
	case *appsv1.ReplicaSet:
		return &o.Spec.Replicas, o.Spec.Selector, o.Status.Replicas
	case *appsv1.StatefulSet:
		return &o.Spec.Replicas, o.Spec.Selector, o.Status.Replicas
	}
	return nil, nil, 0
}

func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	spec, sel, statusReplicas := replicasOf(obj)
	if spec == nil {
		return nil, fmt.Errorf("%T has no scale", obj)
	}
	m, _ := meta.Accessor(obj)
	s := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Status: autoscalingv1.ScaleStatus{Replicas: statusReplicas},
	}
	if *spec != nil {
		s.Spec.Replicas = **spec
	}
	if sel != nil {
		if ls, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			s.Status.Selector = ls.String()
		}
	}
	return s, nil
}

// scale serves the autoscaling/v1 Scale of deployments, replicasets and
// statefulsets: reads and writes spec.replicas.
func (q *request) scale() {
	ctx := q.r.Context()
	k := key(q.res, q.ri.namespace, q.ri.name)
	switch q.ri.verb {
	case "get":
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		s, err := scaleOf(cur)
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
		curScale, err := scaleOf(cur)
		if err != nil {
			q.fail(err)
			return
		}
		want := &autoscalingv1.Scale{}
		if patch != nil {
			orig, _ := encodeObject(curScale)
			patched, err := patch(orig, &autoscalingv1.Scale{})
			if err == nil {
				err = q.s.decodeInto(body{data: patched}, want, scaleGVK)
			}
			if err != nil {
				q.fail(err)
				return
			}
		} else if err := q.s.decodeInto(b, want, scaleGVK); err != nil {
			q.fail(err)
			return
		}
		if want.Spec.Replicas < 0 {
			q.fail(apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, q.ri.name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")}))
			return
		}
		if want.ResourceVersion != "" && want.ResourceVersion != curScale.ResourceVersion {
			q.fail(apierrors.NewConflict(q.res.GroupResource(), q.ri.name, errors.New(conflictMessage)))
			return
		}
		next := cur.DeepCopyObject()
		spec, _, _ := replicasOf(next)
		n := want.Spec.Replicas
		*spec = &n
		m, _ := meta.Accessor(next)
		if !equalReplicas(cur, n) {
			m.SetGeneration(m.GetGeneration() + 1)
		}
		rev, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
		out := cur
		if !q.dryRun() && !equalReplicas(cur, n) {
			out, err = q.s.store.Update(ctx, k, next, rev)
			if errors.Is(err, storage.ErrConflict) && want.ResourceVersion == "" {
				continue
			}
			if err != nil {
				q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
				return
			}
		} else if q.dryRun() {
			out = next
		}
		s, _ := scaleOf(out)
		writeJSON(q.w, http.StatusOK, s)
		return
	}
}

func equalReplicas(obj runtime.Object, n int32) bool {
	spec, _, _ := replicasOf(obj)
	return *spec != nil && **spec == n
}

// bind serves pods/binding: it assigns an unassigned pod to a node.
func (q *request) bind() {
	b := &corev1.Binding{}
	if !q.decodeSubresource("create", b, corev1.SchemeGroupVersion.WithKind("Binding")) {
		return
	}
	if b.Name != "" && b.Name != q.ri.name {
		q.fail(badRequest("the binding's name (%s) does not match the pod's (%s)", b.Name, q.ri.name))
		return
	}
	if b.Target.Name == "" {
		q.fail(apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, q.ri.name,
			field.ErrorList{field.Required(field.NewPath("target", "name"), "")}))
		return
	}
	ctx := q.r.Context()
	_, err := q.s.store.GuaranteedUpdate(ctx, key(q.res, q.ri.namespace, q.ri.name), func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(q.res.GroupResource(), q.ri.name, errors.New("pod is being deleted, cannot be assigned to a host"))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(q.res.GroupResource(), q.ri.name,
				fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(q.res.GroupResource(), q.ri.name, errors.New("the binding's uid does not match the pod's"))
		}
		pod.Spec.NodeName = b.Target.Name
		for k, v := range b.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(pod, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		return pod, nil
	})
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
		return
	}
	writeJSON(q.w, http.StatusCreated, statusSuccess(http.StatusCreated))
}

func setPodCondition(pod *corev1.Pod, c corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == c.Type {
			pod.Status.Conditions[i] = c
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, c)
}

// evict serves pods/eviction. With no PodDisruptionBudgets served, an
// eviction is a delete with the eviction's options.
func (q *request) evict() {
	ev := &policyv1.Eviction{}
	if !q.decodeSubresource("create", ev, policyv1.SchemeGroupVersion.WithKind("Eviction")) {
		return
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if _, _, err := q.s.deleteObject(q.r.Context(), q.res, q.ri.namespace, q.ri.name, opts); err != nil {
		q.fail(err)
		return
	}
	writeJSON(q.w, http.StatusCreated, statusSuccess(http.StatusCreated))
}

// finalizeNamespace serves namespaces/<name>/finalize: it sets
// spec.finalizers, and a terminating namespace with none left is deleted.
func (q *request) finalizeNamespace() {
	want := &corev1.Namespace{}
	if !q.decodeSubresource("update", want, q.res.GVK()) {
		return
	}
	ctx := q.r.Context()
	k := key(q.res, "", q.ri.name)
	for {
		cur, err := q.s.store.Get(ctx, k)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
			return
		}
		ns := cur.(*corev1.Namespace).DeepCopy()
		ns.Spec.Finalizers = want.Spec.Finalizers
		rev, _ := strconv.ParseInt(ns.ResourceVersion, 10, 64)
		var out runtime.Object
		if ns.DeletionTimestamp != nil && len(ns.Spec.Finalizers) == 0 && len(ns.Finalizers) == 0 {
			out, err = q.s.store.Delete(ctx, k, rev)
		} else {
			out, err = q.s.store.Update(ctx, k, ns, rev)
		}
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), q.ri.name))
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
