package registry

import (
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

// The tables here are what `kubectl get` prints: the columns and cells of
// Kubernetes' server-side printers. The server always sends every column,
// the `-o wide` ones (Priority 1) included; kubectl hides those unless asked.
// Cells are strings, int64 or bool, as Kubernetes sends them, and a column's
// Type is the one Kubernetes declares (which is "string" for several columns
// that hold numbers).

// tableColumns returns the column definitions for a resource (nil → default
// Name/Created At). Columns with Priority 1 are the `-o wide` extras.
func tableColumns(gr schema.GroupResource) []metav1.TableColumnDefinition {
	switch gr {
	case schema.GroupResource{Resource: "pods"}:
		return podColumns()
	case schema.GroupResource{Resource: "nodes"}:
		return nodeColumns()
	case schema.GroupResource{Resource: "namespaces"}:
		return namespaceColumns()
	case schema.GroupResource{Resource: "services"}:
		return serviceColumns()
	case schema.GroupResource{Resource: "endpoints"}:
		return endpointsColumns()
	case schema.GroupResource{Resource: "configmaps"}:
		return configMapColumns()
	case schema.GroupResource{Resource: "secrets"}:
		return secretColumns()
	case schema.GroupResource{Resource: "serviceaccounts"}:
		return serviceAccountColumns()
	case schema.GroupResource{Resource: "events"},
		schema.GroupResource{Group: "events.k8s.io", Resource: "events"}:
		return eventColumns()
	case schema.GroupResource{Resource: "persistentvolumes"}:
		return persistentVolumeColumns()
	case schema.GroupResource{Resource: "persistentvolumeclaims"}:
		return persistentVolumeClaimColumns()
	case schema.GroupResource{Group: "apps", Resource: "deployments"}:
		return deploymentColumns()
	case schema.GroupResource{Group: "apps", Resource: "replicasets"}:
		return replicaSetColumns()
	case schema.GroupResource{Group: "apps", Resource: "daemonsets"}:
		return daemonSetColumns()
	case schema.GroupResource{Group: "apps", Resource: "statefulsets"}:
		return statefulSetColumns()
	case schema.GroupResource{Group: "batch", Resource: "jobs"}:
		return jobColumns()
	case schema.GroupResource{Group: "batch", Resource: "cronjobs"}:
		return cronJobColumns()
	case schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}:
		return endpointSliceColumns()
	case schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}:
		return leaseColumns()
	case schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}:
		return storageClassColumns()
	}
	return nil
}

// tableRow returns the cells of obj's row, one per column of tableColumns
// for its resource (nil → default). Ages are measured against time.Now().
func tableRow(obj runtime.Object) []interface{} {
	return tableRowAt(obj, time.Now())
}

// tableRowAt is tableRow with the clock passed in, so tests are exact.
func tableRowAt(obj runtime.Object, now time.Time) []interface{} {
	switch o := obj.(type) {
	case *corev1.Pod:
		return podCells(o, now)
	case *corev1.Node:
		return nodeCells(o, now)
	case *corev1.Namespace:
		return namespaceCells(o, now)
	case *corev1.Service:
		return serviceCells(o, now)
	case *corev1.Endpoints:
		return endpointsCells(o, now)
	case *corev1.ConfigMap:
		return configMapCells(o, now)
	case *corev1.Secret:
		return secretCells(o, now)
	case *corev1.ServiceAccount:
		return serviceAccountCells(o, now)
	case *corev1.Event:
		return coreEventCells(o, now)
	case *eventsv1.Event:
		return eventsV1Cells(o, now)
	case *corev1.PersistentVolume:
		return persistentVolumeCells(o, now)
	case *corev1.PersistentVolumeClaim:
		return persistentVolumeClaimCells(o, now)
	case *appsv1.Deployment:
		return deploymentCells(o, now)
	case *appsv1.ReplicaSet:
		return replicaSetCells(o, now)
	case *appsv1.DaemonSet:
		return daemonSetCells(o, now)
	case *appsv1.StatefulSet:
		return statefulSetCells(o, now)
	case *batchv1.Job:
		return jobCells(o, now)
	case *batchv1.CronJob:
		return cronJobCells(o, now)
	case *discoveryv1.EndpointSlice:
		return endpointSliceCells(o, now)
	case *coordinationv1.Lease:
		return leaseCells(o, now)
	case *storagev1.StorageClass:
		return storageClassCells(o, now)
	}
	return nil
}

func defaultColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name"},
		{Name: "Created At", Type: "date"},
	}
}

func defaultRow(obj runtime.Object) []interface{} {
	m := obj.(metav1.Object)
	return []interface{}{m.GetName(), m.GetCreationTimestamp().UTC().Format("2006-01-02T15:04:05Z")}
}

// Column builders. Every table starts with tableNameColumn (events aside, whose
// Name is a wide column at the end, as in Kubernetes).

func tableNameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the object, unique within its namespace."}
}

func tableAgeColumn() metav1.TableColumnDefinition {
	return tableColumn("Age", "string", "Time since the object was created.")
}

func tableColumn(name, typ, description string) metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: name, Type: typ, Description: description}
}

// tableWideColumn is a column kubectl shows only with `-o wide`.
func tableWideColumn(name, typ, description string) metav1.TableColumnDefinition {
	c := tableColumn(name, typ, description)
	c.Priority = 1
	return c
}

// templateColumns are the wide Containers/Images(/Selector) columns of the
// workload kinds.
func templateColumns(withSelector bool) []metav1.TableColumnDefinition {
	cols := []metav1.TableColumnDefinition{
		tableWideColumn("Containers", "string", "Names of each container in the template."),
		tableWideColumn("Images", "string", "Images referenced by each container in the template."),
	}
	if withSelector {
		cols = append(cols, tableWideColumn("Selector", "string", "Label selector of the pods the object manages."))
	}
	return cols
}

// Cell helpers.

// tableAge renders the time since t the way kubectl users know it ("5s",
// "3m2s", "10m", "2d3h"): "<unknown>" for an unset time, "<invalid>" for a
// time in the future (beyond a second of clock skew).
func tableAge(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func tableMicroAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// containerCells returns the comma-joined names and images of containers.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, 0, len(containers))
	im := make([]string, 0, len(containers))
	for _, c := range containers {
		n = append(n, c.Name)
		im = append(im, c.Image)
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// cellOrNone returns s, or "<none>" when it is empty.
func cellOrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// cellReplicas reads a replicas field the API defaults to 1 when unset.
func cellReplicas(p *int32) int64 {
	if p == nil {
		return 1
	}
	return int64(*p)
}
