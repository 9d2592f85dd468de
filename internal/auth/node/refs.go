package node

import (
	corev1 "k8s.io/api/core/v1"
)

// kind is a kind of object a node may read because a pod on it needs it.
type kind uint8

const (
	kindSecret kind = iota
	kindConfigMap
	kindPVC
	kindServiceAccount
)

// objRef names a namespaced object of a kind.
type objRef struct {
	kind            kind
	namespace, name string
}

// podRefs lists what a pod needs from the API: secrets (image pull,
// volumes, environment), config maps, claims (named and ephemeral) and its
// service account.
func podRefs(pod *corev1.Pod) []objRef {
	var refs []objRef
	add := func(k kind, name string) {
		if name != "" {
			refs = append(refs, objRef{k, pod.Namespace, name})
		}
	}
	for _, s := range pod.Spec.ImagePullSecrets {
		add(kindSecret, s.Name)
	}
	add(kindServiceAccount, pod.Spec.ServiceAccountName)
	visitEnv := func(env []corev1.EnvVar, from []corev1.EnvFromSource) {
		for _, e := range from {
			if e.SecretRef != nil {
				add(kindSecret, e.SecretRef.Name)
			}
			if e.ConfigMapRef != nil {
				add(kindConfigMap, e.ConfigMapRef.Name)
			}
		}
		for _, e := range env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.SecretKeyRef != nil {
				add(kindSecret, e.ValueFrom.SecretKeyRef.Name)
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				add(kindConfigMap, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, c := range pod.Spec.Containers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		visitEnv(c.Env, c.EnvFrom)
	}
	for _, v := range pod.Spec.Volumes {
		s := v.VolumeSource
		switch {
		case s.Secret != nil:
			add(kindSecret, s.Secret.SecretName)
		case s.ConfigMap != nil:
			add(kindConfigMap, s.ConfigMap.Name)
		case s.Projected != nil:
			for _, p := range s.Projected.Sources {
				if p.Secret != nil {
					add(kindSecret, p.Secret.Name)
				}
				if p.ConfigMap != nil {
					add(kindConfigMap, p.ConfigMap.Name)
				}
			}
		case s.PersistentVolumeClaim != nil:
			add(kindPVC, s.PersistentVolumeClaim.ClaimName)
		case s.Ephemeral != nil:
			add(kindPVC, pod.Name+"-"+v.Name)
		case s.CSI != nil && s.CSI.NodePublishSecretRef != nil:
			add(kindSecret, s.CSI.NodePublishSecretRef.Name)
		case s.AzureFile != nil:
			add(kindSecret, s.AzureFile.SecretName)
		case s.CephFS != nil && s.CephFS.SecretRef != nil:
			add(kindSecret, s.CephFS.SecretRef.Name)
		case s.Cinder != nil && s.Cinder.SecretRef != nil:
			add(kindSecret, s.Cinder.SecretRef.Name)
		case s.FlexVolume != nil && s.FlexVolume.SecretRef != nil:
			add(kindSecret, s.FlexVolume.SecretRef.Name)
		case s.ISCSI != nil && s.ISCSI.SecretRef != nil:
			add(kindSecret, s.ISCSI.SecretRef.Name)
		case s.RBD != nil && s.RBD.SecretRef != nil:
			add(kindSecret, s.RBD.SecretRef.Name)
		case s.ScaleIO != nil && s.ScaleIO.SecretRef != nil:
			add(kindSecret, s.ScaleIO.SecretRef.Name)
		case s.StorageOS != nil && s.StorageOS.SecretRef != nil:
			add(kindSecret, s.StorageOS.SecretRef.Name)
		}
	}
	return refs
}

// pvSecrets lists the secrets a persistent volume's plugin needs, as
// namespace/name pairs.
func pvSecrets(pv *corev1.PersistentVolume, claimNamespace string) [][2]string {
	var out [][2]string
	addRef := func(r *corev1.SecretReference) {
		if r != nil && r.Name != "" {
			ns := r.Namespace
			if ns == "" {
				ns = claimNamespace
			}
			out = append(out, [2]string{ns, r.Name})
		}
	}
	s := pv.Spec.PersistentVolumeSource
	switch {
	case s.CSI != nil:
		addRef(s.CSI.ControllerPublishSecretRef)
		addRef(s.CSI.NodeStageSecretRef)
		addRef(s.CSI.NodePublishSecretRef)
		addRef(s.CSI.ControllerExpandSecretRef)
		addRef(s.CSI.NodeExpandSecretRef)
	case s.AzureFile != nil:
		ns := claimNamespace
		if s.AzureFile.SecretNamespace != nil && *s.AzureFile.SecretNamespace != "" {
			ns = *s.AzureFile.SecretNamespace
		}
		if s.AzureFile.SecretName != "" {
			out = append(out, [2]string{ns, s.AzureFile.SecretName})
		}
	case s.CephFS != nil:
		addRef(s.CephFS.SecretRef)
	case s.Cinder != nil:
		addRef(s.Cinder.SecretRef)
	case s.FlexVolume != nil:
		addRef(s.FlexVolume.SecretRef)
	case s.ISCSI != nil:
		addRef(s.ISCSI.SecretRef)
	case s.RBD != nil:
		addRef(s.RBD.SecretRef)
	case s.ScaleIO != nil:
		addRef(s.ScaleIO.SecretRef)
	case s.StorageOS != nil:
		if s.StorageOS.SecretRef != nil && s.StorageOS.SecretRef.Name != "" {
			ns := s.StorageOS.SecretRef.Namespace
			if ns == "" {
				ns = claimNamespace
			}
			out = append(out, [2]string{ns, s.StorageOS.SecretRef.Name})
		}
	}
	return out
}
