package registry

import (
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Tables of the apps, batch, discovery, coordination and storage groups.

// --- deployments ---

func deploymentColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Ready", "string", "Ready pods out of desired pods."),
		tableColumn("Up-to-date", "string", "Pods that run the current template."),
		tableColumn("Available", "string", "Pods available to serve."),
		tableAgeColumn(),
	}, templateColumns(true)...)
}

func deploymentCells(d *appsv1.Deployment, now time.Time) []interface{} {
	names, images := containerCells(d.Spec.Template.Spec.Containers)
	selector := "<invalid>"
	if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		selector = s.String()
	}
	return []interface{}{
		d.Name,
		fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, cellReplicas(d.Spec.Replicas)),
		int64(d.Status.UpdatedReplicas),
		int64(d.Status.AvailableReplicas),
		tableAge(d.CreationTimestamp, now),
		names, images, selector,
	}
}

// --- replicasets ---

func replicaSetColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Desired", "integer", "Number of pods wanted."),
		tableColumn("Current", "integer", "Number of pods that exist."),
		tableColumn("Ready", "integer", "Number of ready pods."),
		tableAgeColumn(),
	}, templateColumns(true)...)
}

func replicaSetCells(rs *appsv1.ReplicaSet, now time.Time) []interface{} {
	names, images := containerCells(rs.Spec.Template.Spec.Containers)
	return []interface{}{
		rs.Name,
		cellReplicas(rs.Spec.Replicas),
		int64(rs.Status.Replicas),
		int64(rs.Status.ReadyReplicas),
		tableAge(rs.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
	}
}

// --- daemonsets ---

func daemonSetColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Desired", "integer", "Nodes that should run the daemon pod."),
		tableColumn("Current", "integer", "Nodes that run the daemon pod."),
		tableColumn("Ready", "integer", "Nodes whose daemon pod is ready."),
		tableColumn("Up-to-date", "integer", "Nodes that run the current template."),
		tableColumn("Available", "integer", "Nodes whose daemon pod is available."),
		tableColumn("Node Selector", "string", "Labels a node needs to run the daemon pod."),
		tableAgeColumn(),
	}, templateColumns(true)...)
}

func daemonSetCells(ds *appsv1.DaemonSet, now time.Time) []interface{} {
	names, images := containerCells(ds.Spec.Template.Spec.Containers)
	st := ds.Status
	return []interface{}{
		ds.Name,
		int64(st.DesiredNumberScheduled),
		int64(st.CurrentNumberScheduled),
		int64(st.NumberReady),
		int64(st.UpdatedNumberScheduled),
		int64(st.NumberAvailable),
		labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
		tableAge(ds.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(ds.Spec.Selector),
	}
}

// --- statefulsets ---

func statefulSetColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Ready", "string", "Ready pods out of desired pods."),
		tableAgeColumn(),
	}, templateColumns(false)...)
}

func statefulSetCells(ss *appsv1.StatefulSet, now time.Time) []interface{} {
	names, images := containerCells(ss.Spec.Template.Spec.Containers)
	return []interface{}{
		ss.Name,
		fmt.Sprintf("%d/%d", ss.Status.ReadyReplicas, cellReplicas(ss.Spec.Replicas)),
		tableAge(ss.CreationTimestamp, now),
		names, images,
	}
}

// --- jobs ---

func jobColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Status", "string", "Status of the job."),
		tableColumn("Completions", "string", "Succeeded pods out of the completions wanted."),
		tableColumn("Duration", "string", "Time the job took, or has been running."),
		tableAgeColumn(),
	}, templateColumns(true)...)
}

func jobCells(j *batchv1.Job, now time.Time) []interface{} {
	names, images := containerCells(j.Spec.Template.Spec.Containers)
	return []interface{}{
		j.Name,
		jobStatus(j),
		jobCompletions(j),
		jobDuration(j, now),
		tableAge(j.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(j.Spec.Selector),
	}
}

// jobStatus is the STATUS column: a final condition first, then deletion,
// then the conditions a running job can have.
func jobStatus(j *batchv1.Job) string {
	switch {
	case tableJobCondition(j, batchv1.JobComplete):
		return "Complete"
	case tableJobCondition(j, batchv1.JobFailed):
		return "Failed"
	case j.DeletionTimestamp != nil:
		return "Terminating"
	case tableJobCondition(j, batchv1.JobSuspended):
		return "Suspended"
	case tableJobCondition(j, batchv1.JobFailureTarget):
		return "FailureTarget"
	case tableJobCondition(j, batchv1.JobSuccessCriteriaMet):
		return "SuccessCriteriaMet"
	}
	return "Running"
}

// tableJobCondition reports whether the first condition of type t is true.
func tableJobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// jobCompletions is "succeeded/completions", or for a job without a
// completion count "succeeded/1" ("succeeded/1 of parallelism" when it runs
// several pods at once).
func jobCompletions(j *batchv1.Job) string {
	if j.Spec.Completions != nil {
		return fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	}
	if p := j.Spec.Parallelism; p != nil && *p > 1 {
		return fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, *p)
	}
	return fmt.Sprintf("%d/1", j.Status.Succeeded)
}

func jobDuration(j *batchv1.Job, now time.Time) string {
	switch {
	case j.Status.StartTime == nil:
		return ""
	case j.Status.CompletionTime == nil:
		return duration.HumanDuration(now.Sub(j.Status.StartTime.Time))
	}
	return duration.HumanDuration(j.Status.CompletionTime.Sub(j.Status.StartTime.Time))
}

// --- cronjobs ---

func cronJobColumns() []metav1.TableColumnDefinition {
	return append([]metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Schedule", "string", "Cron schedule of the jobs."),
		tableColumn("Timezone", "string", "Time zone of the schedule."),
		tableColumn("Suspend", "boolean", "Whether new jobs are held back."),
		tableColumn("Active", "integer", "Number of running jobs."),
		tableColumn("Last Schedule", "string", "Time since a job was last scheduled."),
		tableAgeColumn(),
	}, templateColumns(true)...)
}

func cronJobCells(cj *batchv1.CronJob, now time.Time) []interface{} {
	tmpl := cj.Spec.JobTemplate.Spec
	names, images := containerCells(tmpl.Template.Spec.Containers)
	last := "<none>"
	if t := cj.Status.LastScheduleTime; t != nil {
		last = tableAge(*t, now)
	}
	tz := "<none>"
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	suspend := "<unset>"
	if cj.Spec.Suspend != nil {
		suspend = strconv.FormatBool(*cj.Spec.Suspend)
	}
	return []interface{}{
		cj.Name,
		cj.Spec.Schedule,
		tz,
		suspend,
		int64(len(cj.Status.Active)),
		last,
		tableAge(cj.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(tmpl.Selector),
	}
}

// --- endpointslices ---

func endpointSliceColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("AddressType", "string", "Type of the addresses (IPv4, IPv6, FQDN)."),
		tableColumn("Ports", "string", "Ports of the slice."),
		tableColumn("Endpoints", "string", "Addresses of the slice's endpoints."),
		tableAgeColumn(),
	}
}

func endpointSliceCells(es *discoveryv1.EndpointSlice, now time.Time) []interface{} {
	var ports []string
	for _, p := range es.Ports {
		if len(ports) == tableListLimit {
			break
		}
		switch {
		case p.Port != nil:
			ports = append(ports, strconv.Itoa(int(*p.Port)))
		case p.Name != nil:
			ports = append(ports, *p.Name)
		default:
			ports = append(ports, "*")
		}
	}
	var addrs []string
	total := 0
	for _, e := range es.Endpoints {
		for _, a := range e.Addresses {
			total++
			if len(addrs) < tableListLimit {
				addrs = append(addrs, a)
			}
		}
	}
	return []interface{}{
		es.Name,
		string(es.AddressType),
		listWithMore(ports, len(es.Ports), "<unset>"),
		listWithMore(addrs, total, "<unset>"),
		tableAge(es.CreationTimestamp, now),
	}
}

// --- leases ---

func leaseColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Holder", "string", "Identity of the lease's holder."),
		tableAgeColumn(),
	}
}

func leaseCells(l *coordinationv1.Lease, now time.Time) []interface{} {
	holder := ""
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	return []interface{}{l.Name, holder, tableAge(l.CreationTimestamp, now)}
}

// --- storageclasses ---

func storageClassColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Provisioner", "string", "Provisioner of the class's volumes."),
		tableColumn("ReclaimPolicy", "string", "Reclaim policy of the class's volumes."),
		tableColumn("VolumeBindingMode", "string", "When volumes are bound and provisioned."),
		tableColumn("AllowVolumeExpansion", "string", "Whether the class's volumes can be expanded."),
		tableAgeColumn(),
	}
}

func storageClassCells(sc *storagev1.StorageClass, now time.Time) []interface{} {
	name := sc.Name
	if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" ||
		sc.Annotations["storageclass.beta.kubernetes.io/is-default-class"] == "true" {
		name += " (default)"
	}
	reclaim := string(corev1.PersistentVolumeReclaimDelete)
	if sc.ReclaimPolicy != nil {
		reclaim = string(*sc.ReclaimPolicy)
	}
	binding := string(storagev1.VolumeBindingImmediate)
	if sc.VolumeBindingMode != nil {
		binding = string(*sc.VolumeBindingMode)
	}
	expand := false
	if sc.AllowVolumeExpansion != nil {
		expand = *sc.AllowVolumeExpansion
	}
	return []interface{}{name, sc.Provisioner, reclaim, binding, expand, tableAge(sc.CreationTimestamp, now)}
}
