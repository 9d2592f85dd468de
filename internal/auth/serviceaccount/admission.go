package serviceaccount

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// What the ServiceAccount admission plugin mounts, as upstream.
const (
	DefaultServiceAccountName = "default"
	// MountPath is where in-cluster clients find token, ca.crt and
	// namespace.
	MountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	// RootCAConfigMap holds the cluster CA in every namespace.
	RootCAConfigMap = "kube-root-ca.crt"
	// ProjectedExpirationSeconds is the life of a mounted token: upstream's
	// 3607, an hour and a few seconds that mark it as an admission-made
	// token. The kubelet renews it at 80 % of its life.
	ProjectedExpirationSeconds = 3607
	volumePrefix               = "kube-api-access-"
)

// AdmitPod is upstream's ServiceAccount admission for a pod being created:
// it sets spec.serviceAccountName (default "default"), checks the account
// exists, copies its image pull secrets when the pod has none and, unless
// automountServiceAccountToken is false on the pod (or, when unset there,
// on the account), adds a projected volume with a bound token, the cluster
// CA and the namespace, mounted read-only at MountPath in every container
// that has nothing there yet. A mirror pod may not refer to an account.
// The error texts are upstream's; callers wrap them in a 403.
func AdmitPod(ctx context.Context, g Getter, pod *corev1.Pod) error {
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		if pod.Spec.ServiceAccountName != "" {
			return errors.New("a mirror pod may not reference service accounts")
		}
		for _, v := range pod.Spec.Volumes {
			if v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.ServiceAccountToken != nil {
						return errors.New("a mirror pod may not use ServiceAccountToken volume projections")
					}
				}
			}
		}
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = DefaultServiceAccountName
	}
	sa, err := g.ServiceAccount(ctx, pod.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return fmt.Errorf("error looking up service account %s/%s: %w", pod.Namespace, pod.Spec.ServiceAccountName, err)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = append([]corev1.LocalObjectReference(nil), sa.ImagePullSecrets...)
	}
	if !automount(sa, pod) {
		return nil
	}
	mountTokenVolume(pod)
	return nil
}

func automount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountTokenVolume adds the kube-api-access volume and its mounts.
func mountTokenVolume(pod *corev1.Pod) {
	needs := func(c *corev1.Container) bool {
		for _, m := range c.VolumeMounts {
			if m.MountPath == MountPath {
				return false
			}
		}
		return true
	}
	missing := false
	for i := range pod.Spec.InitContainers {
		missing = missing || needs(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		missing = missing || needs(&pod.Spec.Containers[i])
	}
	if !missing {
		return
	}
	name := ""
	for name == "" || hasVolume(pod, name) {
		name = volumePrefix + utilrand.String(5)
	}
	pod.Spec.Volumes = append(pod.Spec.Volumes, TokenVolume(name))
	mount := corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: MountPath}
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; needs(c) {
			c.VolumeMounts = append(c.VolumeMounts, mount)
		}
	}
	for i := range pod.Spec.Containers {
		if c := &pod.Spec.Containers[i]; needs(c) {
			c.VolumeMounts = append(c.VolumeMounts, mount)
		}
	}
}

func hasVolume(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// TokenVolume is the projected volume in-cluster clients read: token,
// ca.crt and namespace.
func TokenVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](ProjectedExpirationSeconds)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: RootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
}
