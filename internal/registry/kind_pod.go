package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// podStrategy is core/v1 pods. The rules themselves are in
// strategy_pod*.go (shared with the workload kinds' pod templates) and the
// table in tables_core.go.
type podStrategy struct {
	basics
	opts Options
}

func (podStrategy) Info() *Info {
	return &Info{
		Version: "v1", Resource: "pods", Kind: "Pod", SingularName: "pod", Namespaced: true,
		ShortNames: []string{"po"}, Categories: []string{"all"},
		Subresources: []Subresource{
			statusSubresource(),
			{Name: "binding", Kind: "Binding", Verbs: []string{"create"}},
			{Name: "eviction", Group: "policy", Version: "v1", Kind: "Eviction", Verbs: []string{"create"}},
			{Name: "log", Verbs: []string{"get"}},
			{Name: "exec", Kind: "PodExecOptions", Verbs: []string{"create", "get"}},
			{Name: "attach", Kind: "PodAttachOptions", Verbs: []string{"create", "get"}},
			{Name: "portforward", Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
		},
	}
}

func (podStrategy) New() runtime.Object     { return &corev1.Pod{} }
func (podStrategy) NewList() runtime.Object { return &corev1.PodList{} }

func (podStrategy) PrepareForCreate(obj runtime.Object) { preparePodForCreate(obj.(*corev1.Pod)) }

func (s podStrategy) PrepareForUpdate(obj, old runtime.Object) { s.CopyStatus(obj, old) }

func (s podStrategy) Default(obj runtime.Object) { defaultPod(obj.(*corev1.Pod), s.opts) }

func (podStrategy) Validate(obj runtime.Object) field.ErrorList {
	return validatePod(obj.(*corev1.Pod))
}

func (podStrategy) ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	return validatePodUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
}

func (podStrategy) CopyStatus(dst, src runtime.Object) {
	dst.(*corev1.Pod).Status = src.(*corev1.Pod).Status
}

func (podStrategy) SpecChanged(obj, old runtime.Object) bool {
	return !equality.Semantic.DeepEqual(obj.(*corev1.Pod).Spec, old.(*corev1.Pod).Spec)
}

func (podStrategy) SelectableFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	return fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         fmt.Sprint(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.podIP":             p.Status.PodIP,
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
}

func (podStrategy) TableColumns() []metav1.TableColumnDefinition { return podColumns() }

func (podStrategy) TableRow(obj runtime.Object, now time.Time) []interface{} {
	return podCells(obj.(*corev1.Pod), now)
}

// GracefulDelete gives a pod bound to a node its grace period: the kubelet
// stops it and then deletes it for good. An unscheduled or finished pod has
// no kubelet to wait for.
func (podStrategy) GracefulDelete(obj runtime.Object, opts *metav1.DeleteOptions, now time.Time) (runtime.Object, bool) {
	pod := obj.(*corev1.Pod)
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if opts.GracePeriodSeconds != nil {
		grace = *opts.GracePeriodSeconds
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		grace = 0
	}
	if grace <= 0 {
		return nil, false
	}
	if pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds <= grace {
		return nil, true
	}
	next := pod.DeepCopy()
	ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
	next.DeletionTimestamp = &ts
	next.DeletionGracePeriodSeconds = &grace
	return next, true
}

// GracePending: a pod inside its grace period is deleted by its kubelet,
// not by the removal of its last finalizer.
func (podStrategy) GracePending(obj runtime.Object) bool {
	p := obj.(*corev1.Pod)
	return p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds > 0
}

// Action serves pods/binding (the scheduler's assignment to a node) and
// pods/eviction (a delete with the eviction's options).
func (podStrategy) Action(sub string) (*Action, bool) {
	switch sub {
	case "binding":
		return &Action{
			Verb:          "create",
			NewBody:       func() runtime.Object { return &corev1.Binding{} },
			BodyKind:      corev1.SchemeGroupVersion.WithKind("Binding"),
			Update:        bindPod,
			RespondStatus: true,
		}, true
	case "eviction":
		return &Action{
			Verb:     "create",
			NewBody:  func() runtime.Object { return &policyv1.Eviction{} },
			BodyKind: policyv1.SchemeGroupVersion.WithKind("Eviction"),
			Delete: func(body runtime.Object) *metav1.DeleteOptions {
				if o := body.(*policyv1.Eviction).DeleteOptions; o != nil {
					return o
				}
				return &metav1.DeleteOptions{}
			},
			RespondStatus: true,
		}, true
	}
	return nil, false
}

func podConflict(name string, err error) error {
	return apierrors.NewConflict(corev1.Resource("pods"), name, err)
}

// bindPod assigns an unassigned pod to the binding's node.
func bindPod(body, cur runtime.Object) (runtime.Object, error) {
	b, pod := body.(*corev1.Binding), cur.(*corev1.Pod)
	if b.Name != "" && b.Name != pod.Name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the binding's name (%s) does not match the pod's (%s)", b.Name, pod.Name))
	}
	if b.Target.Name == "" {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Binding").GroupKind(), pod.Name,
			field.ErrorList{field.Required(field.NewPath("target", "name"), "")})
	}
	if pod.DeletionTimestamp != nil {
		return nil, podConflict(pod.Name, errors.New("pod is being deleted, cannot be assigned to a host"))
	}
	if pod.Spec.NodeName != "" {
		return nil, podConflict(pod.Name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
	}
	if b.UID != "" && b.UID != pod.UID {
		return nil, podConflict(pod.Name, errors.New("the binding's uid does not match the pod's"))
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

// KubeletMethods: logs are read; exec, attach and port-forward upgrade
// a GET or POST.
func (podStrategy) KubeletMethods(sub string) []string {
	switch sub {
	case "log":
		return []string{http.MethodGet, http.MethodHead}
	case "exec", "attach", "portforward":
		return []string{http.MethodGet, http.MethodPost}
	}
	return nil
}

// KubeletPath maps a pod subresource to the kubelet API: /containerLogs,
// /exec, /attach (per container) and /portForward (per pod).
func (podStrategy) KubeletPath(obj runtime.Object, sub, _ string, query url.Values) (string, string, error) {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName == "" {
		return "", "", apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	ns, name := url.PathEscape(pod.Namespace), url.PathEscape(pod.Name)
	if sub == "portforward" {
		return pod.Spec.NodeName, "/portForward/" + ns + "/" + name, nil
	}
	c, err := podContainer(pod, query.Get("container"))
	if err != nil {
		return "", "", err
	}
	prefix := map[string]string{"log": "/containerLogs/", "exec": "/exec/", "attach": "/attach/"}[sub]
	return pod.Spec.NodeName, prefix + ns + "/" + name + "/" + url.PathEscape(c), nil
}

// podContainer picks the container a request names, or the only one, with
// the kubelet's messages.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	var names, initNames []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.InitContainers {
		initNames = append(initNames, c.Name)
	}
	if name == "" {
		if len(names) == 1 {
			return names[0], nil
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		if len(initNames) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", initNames)
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}
