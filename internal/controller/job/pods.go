package job

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"skiff/internal/controller"
	"skiff/internal/controller/expectations"
)

// newPod builds a pod of job from its template; index is the completion
// index of an Indexed Job, -1 otherwise.
func newPod(job *batchv1.Job, index int) *corev1.Pod {
	t := job.Spec.Template.DeepCopy()
	base := job.Name
	if index >= 0 {
		base = fmt.Sprintf("%s-%d", job.Name, index)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            expectations.PodName(base),
			Namespace:       job.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      append(t.Finalizers, trackingFinalizer),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, batchv1.SchemeGroupVersion.WithKind("Job"))},
		},
		Spec: t.Spec,
	}
	if index < 0 {
		return pod
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	v := strconv.Itoa(index)
	pod.Annotations[indexAnnotation] = v
	pod.Labels[indexLabel] = v
	// The pod is reachable as <job>-<index>.<subdomain> when the template
	// names a headless Service as subdomain.
	if pod.Spec.Hostname == "" && len(validation.IsDNS1123Label(base)) == 0 {
		pod.Spec.Hostname = base
	}
	env := corev1.EnvVar{Name: indexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		APIVersion: "v1", FieldPath: fmt.Sprintf("metadata.annotations['%s']", indexAnnotation)}}}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if !hasEnv(list[i].Env, indexEnv) {
				list[i].Env = append(list[i].Env, env)
			}
		}
	}
	return pod
}

func hasEnv(env []corev1.EnvVar, name string) bool {
	for _, e := range env {
		if e.Name == name {
			return true
		}
	}
	return false
}

// createPods creates one pod per entry of indexes, in batches that double
// from one (so a failing template costs one request, not hundreds); it
// stops at the first batch with an error.
func (c *Controller) createPods(ctx context.Context, key string, job *batchv1.Job, indexes []int) (int, error) {
	return controller.SlowStartBatch(ctx, len(indexes), 1, func(ctx context.Context, i int) error {
		return c.createPod(ctx, key, job, indexes[i])
	})
}

func (c *Controller) createPod(ctx context.Context, key string, job *batchv1.Job, index int) error {
	pod := newPod(job, index)
	c.expect.ExpectAdd(key, pod.Name)
	_, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.expect.ObserveAdd(key, pod.Name)
		if ctx.Err() == nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		}
		return fmt.Errorf("create pod for job %s: %w", key, err)
	}
	c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %s", pod.Name)
	return nil
}

// deletePods deletes pods and returns those it deleted.
func (c *Controller) deletePods(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var done []*corev1.Pod
	var errs []error
	for _, p := range pods {
		c.expect.ExpectDelete(key, p.Name, p.UID)
		c.stopped.add(key, p.UID)
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			c.expect.ObserveDelete(key, p.Name)
			c.stopped.remove(key, p.UID)
			if ctx.Err() == nil {
				c.recorder.Eventf(job, corev1.EventTypeWarning, "FailedDelete", "Error deleting: %v", err)
			}
			errs = append(errs, fmt.Errorf("delete pod %s/%s of job %s: %w", p.Namespace, p.Name, key, err))
			continue
		}
		done = append(done, p)
		if err == nil {
			c.recorder.Eventf(job, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %s", p.Name)
		}
	}
	return done, errors.Join(errs...)
}
