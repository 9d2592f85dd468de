package registry

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Tables of the core ("") group.

// --- pods ---

func podColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Ready", "string", "Ready containers out of all containers of the pod."),
		tableColumn("Status", "string", "The aggregate status of the pod's containers."),
		tableColumn("Restarts", "string", "Container restarts in the pod, and how long ago the last one was."),
		tableAgeColumn(),
		tableWideColumn("IP", "string", "The pod's IP address."),
		tableWideColumn("Node", "string", "The node the pod is bound to."),
		tableWideColumn("Nominated Node", "string", "The node the scheduler nominated for the pod after preemption."),
		tableWideColumn("Readiness Gates", "string", "Readiness gates that are true out of all the pod's readiness gates."),
	}
}

func podCells(p *corev1.Pod, now time.Time) []interface{} {
	s := summarizePod(p)
	restarts := strconv.Itoa(s.restarts)
	if s.restarts != 0 && !s.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", s.restarts, tableAge(s.lastRestart, now))
	}
	ip := ""
	if len(p.Status.PodIPs) > 0 {
		ip = p.Status.PodIPs[0].IP
	}
	return []interface{}{
		p.Name,
		fmt.Sprintf("%d/%d", s.ready, s.total),
		s.status,
		restarts,
		tableAge(p.CreationTimestamp, now),
		cellOrNone(ip),
		cellOrNone(p.Spec.NodeName),
		cellOrNone(p.Status.NominatedNodeName),
		podReadinessGates(p),
	}
}

// podSummary is what the READY, STATUS and RESTARTS columns say of a pod.
type podSummary struct {
	ready, total int
	status       string
	restarts     int
	lastRestart  metav1.Time
}

// summarizePod works out a pod's status the way kubectl users know it: the
// phase (or status.reason), overridden while an init container has not
// finished ("Init:0/1", "Init:CrashLoopBackOff"), then by the reason a
// container waits or terminated for ("ContainerCreating", "CrashLoopBackOff",
// "Completed", "ExitCode:1"), and finally "Terminating" (or "Unknown" for a
// pod lost with its node) once the pod is being deleted.
func summarizePod(p *corev1.Pod) podSummary {
	s := podSummary{total: len(p.Spec.Containers), status: string(p.Status.Phase)}
	if p.Status.Reason != "" {
		s.status = p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			s.status = corev1.PodReasonSchedulingGated
		}
	}

	// Sidecars (init containers that keep running) count as containers of
	// the pod; their restarts count even once the pod is initialized.
	sidecar := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar[c.Name] = true
			s.total++
		}
	}

	var sidecarRestarts int
	var sidecarLastRestart metav1.Time
	initializing := false
	for i, c := range p.Status.InitContainerStatuses {
		s.restarts += int(c.RestartCount)
		noteLastRestart(&s.lastRestart, c)
		if sidecar[c.Name] {
			sidecarRestarts += int(c.RestartCount)
			noteLastRestart(&sidecarLastRestart, c)
		}
		term, wait := c.State.Terminated, c.State.Waiting
		switch {
		case term != nil && term.ExitCode == 0:
			continue // finished fine
		case sidecar[c.Name] && c.Started != nil && *c.Started:
			if c.Ready {
				s.ready++
			}
			continue
		case term != nil:
			s.status = "Init:" + terminatedReason(term)
		case wait != nil && wait.Reason != "" && wait.Reason != "PodInitializing":
			s.status = "Init:" + wait.Reason
		default:
			s.status = fmt.Sprintf("Init:%d/%d", i, len(p.Spec.InitContainers))
		}
		initializing = true
		break
	}

	if !initializing || tablePodCondition(p.Status.Conditions, corev1.PodInitialized) {
		s.restarts, s.lastRestart = sidecarRestarts, sidecarLastRestart
		running := false
		// Walk backwards so the first container's reason wins.
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			c := p.Status.ContainerStatuses[i]
			s.restarts += int(c.RestartCount)
			noteLastRestart(&s.lastRestart, c)
			term, wait := c.State.Terminated, c.State.Waiting
			switch {
			case wait != nil && wait.Reason != "":
				s.status = wait.Reason
			case term != nil:
				s.status = terminatedReason(term)
			case c.Ready && c.State.Running != nil:
				running = true
				s.ready++
			}
		}
		// Some containers completed while others still run.
		if s.status == "Completed" && running {
			if tablePodCondition(p.Status.Conditions, corev1.PodReady) {
				s.status = "Running"
			} else {
				s.status = "NotReady"
			}
		}
	}

	if p.DeletionTimestamp != nil {
		terminal := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		switch {
		case p.Status.Reason == "NodeLost":
			s.status = "Unknown"
		case !terminal:
			s.status = "Terminating"
		}
	}
	return s
}

// terminatedReason is a terminated container's reason, or its signal or
// exit code when it has none.
func terminatedReason(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	default:
		return fmt.Sprintf("ExitCode:%d", t.ExitCode)
	}
}

// noteLastRestart moves *last forward to when c last terminated.
func noteLastRestart(last *metav1.Time, c corev1.ContainerStatus) {
	if t := c.LastTerminationState.Terminated; t != nil && last.Before(&t.FinishedAt) {
		*last = t.FinishedAt
	}
}

func tablePodCondition(conds []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range conds {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func podReadinessGates(p *corev1.Pod) string {
	if len(p.Spec.ReadinessGates) == 0 {
		return "<none>"
	}
	met := 0
	for _, g := range p.Spec.ReadinessGates {
		for _, c := range p.Status.Conditions {
			if c.Type == g.ConditionType {
				if c.Status == corev1.ConditionTrue {
					met++
				}
				break
			}
		}
	}
	return fmt.Sprintf("%d/%d", met, len(p.Spec.ReadinessGates))
}

// --- nodes ---

func nodeColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Status", "string", "The status of the node."),
		tableColumn("Roles", "string", "The roles of the node."),
		tableAgeColumn(),
		tableColumn("Version", "string", "Kubelet version reported by the node."),
		tableWideColumn("Internal-IP", "string", "The node's first internal IP address."),
		tableWideColumn("External-IP", "string", "The node's first external IP address."),
		tableWideColumn("OS-Image", "string", "OS image reported by the node."),
		tableWideColumn("Kernel-Version", "string", "Kernel version reported by the node."),
		tableWideColumn("Container-Runtime", "string", "Container runtime version reported by the node."),
	}
}

func nodeCells(n *corev1.Node, now time.Time) []interface{} {
	var status []string
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		status = []string{"NotReady"}
		if c.Status == corev1.ConditionTrue {
			status = []string{"Ready"}
		}
	}
	if len(status) == 0 {
		status = []string{"Unknown"}
	}
	if n.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}
	info := n.Status.NodeInfo
	return []interface{}{
		n.Name,
		strings.Join(status, ","),
		cellOrNone(strings.Join(nodeRoles(n), ",")),
		tableAge(n.CreationTimestamp, now),
		info.KubeletVersion,
		nodeAddress(n, corev1.NodeInternalIP),
		nodeAddress(n, corev1.NodeExternalIP),
		cellOrUnknown(info.OSImage),
		cellOrUnknown(info.KernelVersion),
		cellOrUnknown(info.ContainerRuntimeVersion),
	}
}

// nodeRoles returns the sorted roles named by node-role.kubernetes.io/<role>
// label keys and by the value of a kubernetes.io/role label.
func nodeRoles(n *corev1.Node) []string {
	const prefix = "node-role.kubernetes.io/"
	set := map[string]bool{}
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, prefix):
			if role := strings.TrimPrefix(k, prefix); role != "" {
				set[role] = true
			}
		case k == "kubernetes.io/role" && v != "":
			set[v] = true
		}
	}
	roles := make([]string, 0, len(set))
	for r := range set {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	return roles
}

func nodeAddress(n *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range n.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

func cellOrUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

// --- namespaces ---

func namespaceColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Status", "string", "The status of the namespace."),
		tableAgeColumn(),
	}
}

func namespaceCells(ns *corev1.Namespace, now time.Time) []interface{} {
	return []interface{}{ns.Name, string(ns.Status.Phase), tableAge(ns.CreationTimestamp, now)}
}

// --- services ---

func serviceColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Type", "string", "How the service is exposed."),
		tableColumn("Cluster-IP", "string", "The service's cluster IP."),
		tableColumn("External-IP", "string", "External IPs or load balancer ingress of the service."),
		tableColumn("Port(s)", "string", "Ports the service exposes."),
		tableAgeColumn(),
		tableWideColumn("Selector", "string", "Labels of the pods the service routes to."),
	}
}

func serviceCells(svc *corev1.Service, now time.Time) []interface{} {
	clusterIP := svc.Spec.ClusterIP
	if len(svc.Spec.ClusterIPs) > 0 {
		clusterIP = svc.Spec.ClusterIPs[0]
	}
	return []interface{}{
		svc.Name,
		string(svc.Spec.Type),
		cellOrNone(clusterIP),
		serviceExternalIP(svc),
		cellOrNone(servicePorts(svc.Spec.Ports)),
		tableAge(svc.CreationTimestamp, now),
		labels.FormatLabels(svc.Spec.Selector),
	}
}

// serviceExternalIP is the EXTERNAL-IP column. The server's table is the
// wide one, so load balancer addresses are not clipped.
func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		return cellOrNone(strings.Join(svc.Spec.ExternalIPs, ","))
	case corev1.ServiceTypeLoadBalancer:
		ips := loadBalancerAddresses(svc.Status.LoadBalancer)
		ips = append(ips, svc.Spec.ExternalIPs...)
		if len(ips) == 0 {
			return "<pending>"
		}
		return strings.Join(ips, ",")
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerAddresses returns the sorted, distinct ingress IPs (or
// hostnames, for ingress points without an IP).
func loadBalancerAddresses(lb corev1.LoadBalancerStatus) []string {
	seen := map[string]bool{}
	var out []string
	for _, in := range lb.Ingress {
		a := in.IP
		if a == "" {
			a = in.Hostname
		}
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// servicePorts renders ports as "80/TCP" or, with a node port, "80:30080/TCP".
func servicePorts(ports []corev1.ServicePort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		if p.NodePort > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			parts = append(parts, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	return strings.Join(parts, ",")
}

// --- endpoints ---

func endpointsColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Endpoints", "string", "Ready addresses (and ports) of the endpoints."),
		tableAgeColumn(),
	}
}

func endpointsCells(ep *corev1.Endpoints, now time.Time) []interface{} {
	return []interface{}{ep.Name, endpointsAddresses(ep), tableAge(ep.CreationTimestamp, now)}
}

// tableListLimit is how many items a list cell shows before "+ N more...".
const tableListLimit = 3

// endpointsAddresses lists up to three ready "ip:port" pairs (bare IPs for a
// subset without ports), then how many more there are.
func endpointsAddresses(ep *corev1.Endpoints) string {
	var shown []string
	total := 0
	add := func(s string) {
		total++
		if len(shown) < tableListLimit {
			shown = append(shown, s)
		}
	}
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return listWithMore(shown, total, "<none>")
}

// listWithMore joins shown and, when total exceeds it, appends
// " + N more..."; empty is what an empty list shows.
func listWithMore(shown []string, total int, empty string) string {
	s := strings.Join(shown, ",")
	if total > len(shown) {
		return fmt.Sprintf("%s + %d more...", s, total-len(shown))
	}
	if s == "" {
		return empty
	}
	return s
}

// --- configmaps, secrets, serviceaccounts ---

func configMapColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Data", "string", "Number of keys in data and binaryData."),
		tableAgeColumn(),
	}
}

func configMapCells(cm *corev1.ConfigMap, now time.Time) []interface{} {
	return []interface{}{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), tableAge(cm.CreationTimestamp, now)}
}

func secretColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Type", "string", "The secret's type."),
		tableColumn("Data", "string", "Number of keys in data."),
		tableAgeColumn(),
	}
}

func secretCells(s *corev1.Secret, now time.Time) []interface{} {
	return []interface{}{s.Name, string(s.Type), int64(len(s.Data)), tableAge(s.CreationTimestamp, now)}
}

func serviceAccountColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Secrets", "string", "Number of secrets listed in the service account."),
		tableAgeColumn(),
	}
}

func serviceAccountCells(sa *corev1.ServiceAccount, now time.Time) []interface{} {
	return []interface{}{sa.Name, int64(len(sa.Secrets)), tableAge(sa.CreationTimestamp, now)}
}

// --- events (core/v1 and events.k8s.io/v1 share one table) ---

func eventColumns() []metav1.TableColumnDefinition {
	name := tableNameColumn()
	name.Priority = 1
	return []metav1.TableColumnDefinition{
		tableColumn("Last Seen", "string", "Time since the event was last seen."),
		tableColumn("Type", "string", "Type of the event (Normal, Warning)."),
		tableColumn("Reason", "string", "Why the event happened, in CamelCase."),
		tableColumn("Object", "string", "The object the event is about."),
		tableWideColumn("Subobject", "string", "The part of the object the event is about."),
		tableWideColumn("Source", "string", "The component (and host) that reported the event."),
		tableColumn("Message", "string", "Human-readable description of the event."),
		tableWideColumn("First Seen", "string", "Time since the event was first seen."),
		tableWideColumn("Count", "string", "How many times the event happened."),
		name,
	}
}

// eventRow holds what an event table row needs, whichever API it came from.
type eventRow struct {
	name, typ, reason, message string
	regarding                  corev1.ObjectReference
	first, last                metav1.Time
	eventTime                  metav1.MicroTime
	count                      int32
	series                     *eventsv1.EventSeries
	component, host            string
}

func coreEventCells(e *corev1.Event, now time.Time) []interface{} {
	r := eventRow{
		name: e.Name, typ: e.Type, reason: e.Reason, message: e.Message,
		regarding: e.InvolvedObject,
		first:     e.FirstTimestamp, last: e.LastTimestamp, eventTime: e.EventTime,
		count:     e.Count,
		component: cellFirstNonEmpty(e.Source.Component, e.ReportingController),
		host:      cellFirstNonEmpty(e.Source.Host, e.ReportingInstance),
	}
	if e.Series != nil {
		r.series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return r.cells(now)
}

func eventsV1Cells(e *eventsv1.Event, now time.Time) []interface{} {
	r := eventRow{
		name: e.Name, typ: e.Type, reason: e.Reason, message: e.Note,
		regarding: e.Regarding,
		first:     e.DeprecatedFirstTimestamp, last: e.DeprecatedLastTimestamp, eventTime: e.EventTime,
		count:     e.DeprecatedCount,
		series:    e.Series,
		component: cellFirstNonEmpty(e.DeprecatedSource.Component, e.ReportingController),
		host:      cellFirstNonEmpty(e.DeprecatedSource.Host, e.ReportingInstance),
	}
	return r.cells(now)
}

func (r eventRow) cells(now time.Time) []interface{} {
	first := tableAge(r.first, now)
	if r.first.IsZero() {
		first = tableMicroAge(r.eventTime, now)
	}
	last := tableAge(r.last, now)
	if r.last.IsZero() {
		last = first
	}
	count := r.count
	if r.series != nil {
		last = tableMicroAge(r.series.LastObservedTime, now)
		count = r.series.Count
	} else if count == 0 {
		count = 1 // a singleton event of the events.k8s.io API
	}
	object := strings.ToLower(r.regarding.Kind)
	if r.regarding.Name != "" {
		object += "/" + r.regarding.Name
	}
	source := r.component
	if r.host != "" {
		source += ", " + r.host
	}
	return []interface{}{
		last,
		r.typ,
		r.reason,
		object,
		r.regarding.FieldPath,
		source,
		strings.TrimSpace(r.message),
		first,
		int64(count),
		r.name,
	}
}

func cellFirstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// --- persistentvolumes, persistentvolumeclaims ---

func persistentVolumeColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Capacity", "string", "Storage capacity of the volume."),
		tableColumn("Access Modes", "string", "Ways the volume can be mounted."),
		tableColumn("Reclaim Policy", "string", "What happens to the volume when its claim is released."),
		tableColumn("Status", "string", "Phase of the volume."),
		tableColumn("Claim", "string", "The claim bound to the volume."),
		tableColumn("StorageClass", "string", "StorageClass of the pv."),
		tableColumn("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv."),
		tableColumn("Reason", "string", "Why the volume is in its phase, if failed."),
		tableAgeColumn(),
		tableWideColumn("VolumeMode", "string", "Filesystem or Block."),
	}
}

func persistentVolumeCells(pv *corev1.PersistentVolume, now time.Time) []interface{} {
	claim := ""
	if ref := pv.Spec.ClaimRef; ref != nil {
		claim = ref.Namespace + "/" + ref.Name
	}
	phase := string(pv.Status.Phase)
	if pv.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	class := pv.Spec.StorageClassName
	if a, ok := pv.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = a
	}
	capacity := pv.Spec.Capacity[corev1.ResourceStorage]
	return []interface{}{
		pv.Name,
		capacity.String(),
		accessModesString(pv.Spec.AccessModes),
		string(pv.Spec.PersistentVolumeReclaimPolicy),
		phase,
		claim,
		class,
		cellOrUnset(pv.Spec.VolumeAttributesClassName),
		pv.Status.Reason,
		tableAge(pv.CreationTimestamp, now),
		volumeModeString(pv.Spec.VolumeMode),
	}
}

func persistentVolumeClaimColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		tableNameColumn(),
		tableColumn("Status", "string", "Phase of the claim."),
		tableColumn("Volume", "string", "The volume bound to the claim."),
		tableColumn("Capacity", "string", "Storage capacity of the bound volume."),
		tableColumn("Access Modes", "string", "Ways the bound volume can be mounted."),
		tableColumn("StorageClass", "string", "StorageClass of the pvc."),
		tableColumn("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc."),
		tableAgeColumn(),
		tableWideColumn("VolumeMode", "string", "Filesystem or Block."),
	}
}

func persistentVolumeClaimCells(pvc *corev1.PersistentVolumeClaim, now time.Time) []interface{} {
	phase := string(pvc.Status.Phase)
	if pvc.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	capacity, modes := "", ""
	if pvc.Spec.VolumeName != "" {
		q := pvc.Status.Capacity[corev1.ResourceStorage]
		capacity = q.String()
		modes = accessModesString(pvc.Status.AccessModes)
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	if a, ok := pvc.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = a
	}
	return []interface{}{
		pvc.Name,
		phase,
		pvc.Spec.VolumeName,
		capacity,
		modes,
		class,
		cellOrUnset(pvc.Spec.VolumeAttributesClassName),
		tableAge(pvc.CreationTimestamp, now),
		volumeModeString(pvc.Spec.VolumeMode),
	}
}

// accessModesString abbreviates access modes (RWO, ROX, RWX, RWOP) in that
// fixed order, each once.
func accessModesString(modes []corev1.PersistentVolumeAccessMode) string {
	has := map[corev1.PersistentVolumeAccessMode]bool{}
	for _, m := range modes {
		has[m] = true
	}
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"},
		{corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"},
		{corev1.ReadWriteOncePod, "RWOP"},
	} {
		if has[m.mode] {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

func volumeModeString(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return "<unset>"
	}
	return string(*m)
}

func cellOrUnset(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}
