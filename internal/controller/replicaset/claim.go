package replicaset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

// claimPods sorts pods into rs's: those it controls and still selects,
// plus matching orphans it adopts. Pods it controls but no longer selects
// are released. Adoption first re-reads rs from the API server, so that a
// ReplicaSet that was deleted (or replaced by one of the same name) while
// the cache lagged adopts nothing.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var (
		claimed  []*corev1.Pod
		errs     []error
		adoptErr error
		checked  bool
	)
	canAdopt := func() error {
		if checked {
			return adoptErr
		}
		checked = true
		fresh, err := c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			adoptErr = fmt.Errorf("recheck replicaset %s before adopting: %w", keyOf(rs), err)
		case fresh.UID != rs.UID:
			adoptErr = fmt.Errorf("replicaset %s was replaced (uid %s, want %s); not adopting", keyOf(rs), fresh.UID, rs.UID)
		case fresh.DeletionTimestamp != nil:
			adoptErr = fmt.Errorf("replicaset %s is being deleted; not adopting", keyOf(rs))
		}
		return adoptErr
	}
	for _, pod := range pods {
		matches := selector.Matches(labels.Set(pod.Labels))
		if ref := metav1.GetControllerOf(pod); ref != nil {
			if ref.UID != rs.UID {
				continue // someone else's
			}
			if matches {
				claimed = append(claimed, pod)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue
			}
			if err := c.releasePod(ctx, rs, pod); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if !matches || rs.DeletionTimestamp != nil || pod.DeletionTimestamp != nil {
			continue
		}
		if err := canAdopt(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := c.adoptPod(ctx, rs, pod); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		claimed = append(claimed, pod)
	}
	return claimed, errors.Join(errs...)
}

// ownerRefPatch is the metadata of a strategic merge patch on ownerReferences.
// The pod's uid is part of it so the patch fails on a pod that was replaced
// by another of the same name (uid is immutable).
type ownerRefPatch struct {
	Metadata struct {
		OwnerReferences []map[string]interface{} `json:"ownerReferences"`
		UID             types.UID                `json:"uid"`
	} `json:"metadata"`
}

func (c *Controller) adoptPod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	var p ownerRefPatch
	p.Metadata.UID = pod.UID
	p.Metadata.OwnerReferences = []map[string]interface{}{{
		"apiVersion":         rsKind().GroupVersion().String(),
		"kind":               rsKind().Kind,
		"name":               rs.Name,
		"uid":                rs.UID,
		"controller":         true,
		"blockOwnerDeletion": true,
	}}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("adopt pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("adopt pod %s/%s into replicaset %s: %w", pod.Namespace, pod.Name, keyOf(rs), err)
	}
	c.log.Debug("adopted pod", "replicaset", keyOf(rs), "pod", pod.Name)
	return nil
}

func (c *Controller) releasePod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	var p ownerRefPatch
	p.Metadata.UID = pod.UID
	p.Metadata.OwnerReferences = []map[string]interface{}{{"$patch": "delete", "uid": rs.UID}}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("release pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	_, err = c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
	switch {
	case err == nil:
		c.log.Debug("released pod", "replicaset", keyOf(rs), "pod", pod.Name)
		return nil
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err):
		// Gone, or replaced by a pod with another uid: nothing to release.
		return nil
	default:
		return fmt.Errorf("release pod %s/%s from replicaset %s: %w", pod.Namespace, pod.Name, keyOf(rs), err)
	}
}
