package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// DefaultClassAnnotation marks the StorageClass claims get when they name none.
const DefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// DefaultStorageClass gives a new claim that names no class the default
// one (the newest, if several are marked), as Kubernetes' plugin does.
type DefaultStorageClass struct{ Getter Getter }

func (p DefaultStorageClass) Admit(ctx context.Context, a *Attributes) error {
	pvc, ok := a.Object.(*corev1.PersistentVolumeClaim)
	if a.Operation != Create || !ok || pvc.Spec.StorageClassName != nil {
		return nil
	}
	classes, err := p.Getter.List(ctx, storagev1.SchemeGroupVersion.WithResource("storageclasses"), "")
	if err != nil {
		return err
	}
	var chosen *storagev1.StorageClass
	for _, o := range classes {
		sc, ok := o.(*storagev1.StorageClass)
		if !ok || sc.Annotations[DefaultClassAnnotation] != "true" {
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
