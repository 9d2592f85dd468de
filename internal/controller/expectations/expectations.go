// Package expectations remembers the pods a controller has asked the API
// to create or delete and that its informer has not shown yet, per owner
// key, so that a controller whose cache is behind its own writes does not
// act twice. The DaemonSet and Job controllers use it; both name their pods
// themselves, so an expectation is recorded by pod name.
package expectations

import (
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"skiff/internal/controller"
)

// PodName is base plus a random suffix of five characters, as
// generateName would make it (base is cut to fit a DNS label). A
// controller picks its pods' names with it so it can expect a pod before
// creating it.
func PodName(base string) string {
	const maxBase = validation.DNS1123LabelMaxLength - 6
	if len(base) > maxBase {
		base = strings.TrimRight(base[:maxBase], "-.")
	}
	return base + "-" + utilrand.String(5)
}

// Pods remembers, per owner key, the pods a controller has asked the API
// to create or delete and that its informer has not shown yet. While some
// are outstanding the controller does not create or delete more pods for
// that owner: its cache is behind its own writes. Pod names are chosen by
// the controller, so an expectation is recorded before the request and
// cannot race with the informer. An expectation is also settled by looking
// at the lister, and gives up after ttl, so a lost event never blocks an
// owner for good. It is safe for concurrent use.
type Pods struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	owner map[string]*pending
}

type pending struct {
	adds map[string]struct{}
	dels map[string]types.UID
	at   time.Time
}

// New returns empty expectations that give up after ttl, reading the time
// from now.
func New(ttl time.Duration, now func() time.Time) *Pods {
	return &Pods{ttl: ttl, now: now, owner: map[string]*pending{}}
}

func (e *Pods) entry(key string) *pending {
	p := e.owner[key]
	if p == nil {
		p = &pending{adds: map[string]struct{}{}, dels: map[string]types.UID{}}
		e.owner[key] = p
	}
	p.at = e.now()
	return p
}

// ExpectAdd records that pod name is about to be created for key.
func (e *Pods) ExpectAdd(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.entry(key).adds[name] = struct{}{}
}

// ExpectDelete records that pod name (uid) is about to be deleted for key.
func (e *Pods) ExpectDelete(key, name string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.entry(key).dels[name] = uid
}

// ObserveAdd settles the creation of pod name, seen by the informer or
// failed at the API.
func (e *Pods) ObserveAdd(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.owner[key]; p != nil {
		delete(p.adds, name)
	}
}

// ObserveDelete settles the deletion of pod name.
func (e *Pods) ObserveDelete(key, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.owner[key]; p != nil {
		delete(p.dels, name)
	}
}

// Forget drops everything recorded for key.
func (e *Pods) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.owner, key)
}

// Satisfied reports whether the informer has caught up with every create
// and delete recorded for key; the lister of namespace ns settles those
// whose events were missed.
func (e *Pods) Satisfied(key, ns string, pods corelisters.PodLister) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.owner[key]
	if p == nil {
		return true
	}
	for name := range p.adds {
		if _, err := pods.Pods(ns).Get(name); err == nil {
			delete(p.adds, name)
		}
	}
	for name, uid := range p.dels {
		pod, err := pods.Pods(ns).Get(name)
		if apierrors.IsNotFound(err) || (err == nil && (pod.UID != uid || pod.DeletionTimestamp != nil)) {
			delete(p.dels, name)
		}
	}
	if len(p.adds) == 0 && len(p.dels) == 0 {
		delete(e.owner, key)
		return true
	}
	if e.now().Sub(p.at) > e.ttl {
		delete(e.owner, key)
		return true
	}
	return false
}

// PodHandler returns informer handlers for the pods of the owners e keeps
// expectations for. ownerKey gives the key of a pod's owner, false if the
// pod has none of that kind. Each event settles what it answers (a pod
// seen settles its creation; a pod being deleted or gone, its deletion)
// and enqueues the owner in q; an owner the pod no longer belongs to is
// enqueued too. orphan, if not nil, is called with every added or updated
// pod that has no owner.
func (e *Pods) PodHandler(q controller.Queue, ownerKey func(*corev1.Pod) (string, bool), orphan func(*corev1.Pod)) cache.ResourceEventHandlerFuncs {
	noOwner := func(pod *corev1.Pod) {
		if orphan != nil {
			orphan(pod)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			pod, ok := controller.ObjectOf[*corev1.Pod](obj)
			if !ok || pod == nil {
				return
			}
			key, ok := ownerKey(pod)
			if !ok {
				noOwner(pod)
				return
			}
			e.ObserveAdd(key, pod.Name)
			if pod.DeletionTimestamp != nil {
				e.ObserveDelete(key, pod.Name)
			}
			q.Add(key)
		},
		UpdateFunc: func(oldObj, obj interface{}) {
			old, _ := controller.ObjectOf[*corev1.Pod](oldObj)
			pod, ok := controller.ObjectOf[*corev1.Pod](obj)
			if !ok || pod == nil {
				return
			}
			key, ok := ownerKey(pod)
			if old != nil {
				if oldKey, oldOK := ownerKey(old); oldOK && (!ok || oldKey != key) {
					q.Add(oldKey)
				}
			}
			if !ok {
				noOwner(pod)
				return
			}
			if pod.DeletionTimestamp != nil {
				e.ObserveDelete(key, pod.Name)
			}
			q.Add(key)
		},
		DeleteFunc: func(obj interface{}) {
			pod, ok := controller.ObjectOf[*corev1.Pod](obj)
			if !ok || pod == nil {
				return
			}
			key, ok := ownerKey(pod)
			if !ok {
				return
			}
			e.ObserveAdd(key, pod.Name)
			e.ObserveDelete(key, pod.Name)
			q.Add(key)
		},
	}
}
