package apiserver

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// defaultClassAnnotation marks the StorageClass claims get when they name none.
const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// admitCreate applies the admission that needs cluster state, as
// Kubernetes' DefaultStorageClass plugin: a claim that names no class
// gets the default one (the newest, if several are marked).
func (s *Server) admitCreate(ctx context.Context, obj runtime.Object) error {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || pvc.Spec.StorageClassName != nil {
		return nil
	}
	classes, _, err := s.store.List(ctx, prefix(s.storageClasses, ""), 0)
	if err != nil {
		return err
	}
	var chosen *storagev1.StorageClass
	for _, o := range classes {
		sc := o.(*storagev1.StorageClass)
		if sc.Annotations[defaultClassAnnotation] != "true" {
			continue
		}
		if chosen == nil || sc.CreationTimestamp.After(chosen.CreationTimestamp.Time) ||
			sc.CreationTimestamp.Equal(&chosen.CreationTimestamp) && sc.Name < chosen.Name {
			chosen = sc
		}
	}
	if chosen != nil {
		name := chosen.Name
		pvc.Spec.StorageClassName = &name
	}
	return nil
}
