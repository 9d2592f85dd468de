package registry

// The strategy of each kind: what a create may not set (prepareForCreate),
// the defaults the API server fills in (defaultObject), and validation of new
// objects and of updates (validateObject, validateObjectUpdate). They follow
// Kubernetes' behaviour kind by kind; the per-kind code lives in
// strategy_pod.go, strategy_workloads.go, strategy_service.go and
// strategy_misc.go. Error paths are Kubernetes' ("spec.containers[0].image"),
// so `kubectl` users see the messages they know.

import (
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// prepareForCreate resets what clients may not set on create, as Kubernetes'
// strategies do: most kinds with a status subresource start with an empty
// status (a pod Pending with its QoS class, a namespace Active), and the kinds
// that track it start at generation 1. Nodes keep the status they are created
// with.
func prepareForCreate(obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		preparePodForCreate(o)
	case *corev1.Namespace:
		prepareNamespaceForCreate(o)
	case *corev1.Service:
		o.Status = corev1.ServiceStatus{}
	case *corev1.PersistentVolume:
		preparePersistentVolumeForCreate(o)
	case *corev1.PersistentVolumeClaim:
		o.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	case *appsv1.Deployment:
		o.Status, o.Generation = appsv1.DeploymentStatus{}, 1
	case *appsv1.ReplicaSet:
		o.Status, o.Generation = appsv1.ReplicaSetStatus{}, 1
	case *appsv1.DaemonSet:
		o.Status, o.Generation = appsv1.DaemonSetStatus{}, 1
	case *appsv1.StatefulSet:
		o.Status, o.Generation = appsv1.StatefulSetStatus{}, 1
	case *batchv1.Job:
		o.Status, o.Generation = batchv1.JobStatus{}, 1
	case *batchv1.CronJob:
		o.Status, o.Generation = batchv1.CronJobStatus{}, 1
	case *discoveryv1.EndpointSlice:
		o.Generation = 1
	}
}

// defaultObject applies the defaults Kubernetes' API server applies, on
// create and on update: the SetDefaults_* functions of each API version, and
// the defaults of the admission plugins skiff has no separate stage for
// (ServiceAccount, Priority, DefaultTolerationSeconds on pods).
func defaultObject(obj runtime.Object, opts Options) {
	switch o := obj.(type) {
	case *corev1.Pod:
		defaultPod(o, opts)
	case *corev1.Node:
		defaultNode(o)
	case *corev1.Namespace:
		defaultNamespace(o)
	case *corev1.Service:
		defaultService(o)
	case *corev1.Endpoints:
		defaultEndpoints(o)
	case *corev1.Secret:
		defaultSecret(o)
	case *corev1.PersistentVolume:
		defaultPersistentVolume(o)
	case *corev1.PersistentVolumeClaim:
		defaultPersistentVolumeClaim(o)
	case *appsv1.Deployment:
		defaultDeployment(o)
	case *appsv1.ReplicaSet:
		defaultReplicaSet(o)
	case *appsv1.DaemonSet:
		defaultDaemonSet(o)
	case *appsv1.StatefulSet:
		defaultStatefulSet(o)
	case *batchv1.Job:
		defaultJob(o)
	case *batchv1.CronJob:
		defaultCronJob(o)
	case *discoveryv1.EndpointSlice:
		defaultEndpointSlice(o)
	case *storagev1.StorageClass:
		defaultStorageClass(o)
	}
}

// validateObject validates a new object, or the new version of an updated
// one: metadata (name format per kind, generateName, labels, annotations,
// owner references, finalizers, the namespace being set for namespaced kinds)
// and the kind's spec.
func validateObject(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePod(o)
	case *corev1.Node:
		return validateNode(o)
	case *corev1.Namespace:
		return validateNamespace(o)
	case *corev1.Service:
		return validateService(o)
	case *corev1.Endpoints:
		return validateEndpoints(o)
	case *corev1.ConfigMap:
		return validateConfigMap(o)
	case *corev1.Secret:
		return validateSecret(o)
	case *corev1.ServiceAccount:
		return validateServiceAccount(o)
	case *corev1.Event:
		return validateCoreEvent(o)
	case *corev1.PersistentVolume:
		return validatePersistentVolume(o)
	case *corev1.PersistentVolumeClaim:
		return validatePersistentVolumeClaim(o)
	case *appsv1.Deployment:
		return validateDeployment(o)
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o)
	case *appsv1.DaemonSet:
		return validateDaemonSet(o)
	case *appsv1.StatefulSet:
		return validateStatefulSet(o)
	case *batchv1.Job:
		return validateJob(o)
	case *batchv1.CronJob:
		return validateCronJob(o)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o)
	case *coordinationv1.Lease:
		return validateLease(o)
	case *storagev1.StorageClass:
		return validateStorageClass(o)
	case *eventsv1.Event:
		return validateEventsV1Event(o)
	case *autoscalingv1.Scale:
		return validateScale(o)
	}
	return nil
}

// validateObjectUpdate checks an update of old to obj: metadata that may not
// change (name, namespace, uid, ...) and each kind's immutable fields. The
// server validates obj itself with validateObject.
func validateObjectUpdate(obj, old runtime.Object) field.ErrorList {
	errs := validateMetaUpdate(objectMetaOf(obj), objectMetaOf(old))
	switch o := obj.(type) {
	case *corev1.Pod:
		if p, ok := old.(*corev1.Pod); ok {
			errs = append(errs, validatePodUpdate(o, p)...)
		}
	case *corev1.Node:
		if n, ok := old.(*corev1.Node); ok {
			errs = append(errs, validateNodeUpdate(o, n)...)
		}
	case *corev1.Service:
		if s, ok := old.(*corev1.Service); ok {
			errs = append(errs, validateServiceUpdate(o, s)...)
		}
	case *corev1.ConfigMap:
		if c, ok := old.(*corev1.ConfigMap); ok {
			errs = append(errs, validateConfigMapUpdate(o, c)...)
		}
	case *corev1.Secret:
		if s, ok := old.(*corev1.Secret); ok {
			errs = append(errs, validateSecretUpdate(o, s)...)
		}
	case *corev1.PersistentVolume:
		if p, ok := old.(*corev1.PersistentVolume); ok {
			errs = append(errs, validatePersistentVolumeUpdate(o, p)...)
		}
	case *corev1.PersistentVolumeClaim:
		if p, ok := old.(*corev1.PersistentVolumeClaim); ok {
			errs = append(errs, validatePersistentVolumeClaimUpdate(o, p)...)
		}
	case *appsv1.Deployment:
		if d, ok := old.(*appsv1.Deployment); ok {
			errs = append(errs, validateSelectorUpdate(o.Spec.Selector, d.Spec.Selector)...)
		}
	case *appsv1.ReplicaSet:
		if r, ok := old.(*appsv1.ReplicaSet); ok {
			errs = append(errs, validateSelectorUpdate(o.Spec.Selector, r.Spec.Selector)...)
		}
	case *appsv1.DaemonSet:
		if d, ok := old.(*appsv1.DaemonSet); ok {
			errs = append(errs, validateSelectorUpdate(o.Spec.Selector, d.Spec.Selector)...)
		}
	case *appsv1.StatefulSet:
		if s, ok := old.(*appsv1.StatefulSet); ok {
			errs = append(errs, validateStatefulSetUpdate(o, s)...)
		}
	case *batchv1.Job:
		if j, ok := old.(*batchv1.Job); ok {
			errs = append(errs, validateJobUpdate(o, j)...)
		}
	case *discoveryv1.EndpointSlice:
		if e, ok := old.(*discoveryv1.EndpointSlice); ok {
			errs = append(errs, apimachineryvalidation.ValidateImmutableField(o.AddressType, e.AddressType, field.NewPath("addressType"))...)
		}
	case *storagev1.StorageClass:
		if s, ok := old.(*storagev1.StorageClass); ok {
			errs = append(errs, validateStorageClassUpdate(o, s)...)
		}
	case *eventsv1.Event:
		if e, ok := old.(*eventsv1.Event); ok {
			errs = append(errs, validateEventsV1EventUpdate(o, e)...)
		}
	}
	return errs
}

// Metadata.

var metadataPath = field.NewPath("metadata")

// validateMeta validates an object's metadata as Kubernetes' ValidateObjectMeta
// does, with the kind's name rule.
func validateMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apimachineryvalidation.ValidateNameFunc) field.ErrorList {
	return apimachineryvalidation.ValidateObjectMeta(m, namespaced, nameFn, metadataPath)
}

// validateMetaUpdate checks the metadata of an update. The system fields a
// client may leave out of an update (uid, creationTimestamp, generation,
// resourceVersion, deletion fields) are taken from the stored object first,
// as Kubernetes' API server does before validating; what remains checks that
// name and namespace do not change and that no finalizer is added to an
// object being deleted.
func validateMetaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	if m == nil || old == nil {
		return nil
	}
	n := m.DeepCopy()
	if n.UID == "" {
		n.UID = old.UID
	}
	if n.CreationTimestamp.IsZero() {
		n.CreationTimestamp = old.CreationTimestamp
	}
	if old.DeletionTimestamp != nil {
		n.DeletionTimestamp = old.DeletionTimestamp
	}
	if old.DeletionGracePeriodSeconds != nil {
		n.DeletionGracePeriodSeconds = old.DeletionGracePeriodSeconds
	}
	if n.Generation < old.Generation {
		n.Generation = old.Generation
	}
	if n.ResourceVersion == "" {
		// Concurrency is the storage's job (compare-and-swap on the
		// resourceVersion); an unconditional update is allowed.
		n.ResourceVersion = old.ResourceVersion
		if n.ResourceVersion == "" {
			n.ResourceVersion = "0"
		}
	}
	return apimachineryvalidation.ValidateObjectMetaUpdate(n, old, metadataPath)
}

// objectMetaOf returns obj's ObjectMeta, or nil for a kind without one.
func objectMetaOf(obj runtime.Object) *metav1.ObjectMeta {
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if m, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			return m
		}
	}
	return nil
}
