package registry

// Pods: creation status, defaults (also those of pod templates), validation
// of pod specs (shared by every workload kind) and the rules of pod updates.
// Volumes, containers and scheduling constraints have files of their own.

import (
	"math"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Well-known values of the admission plugins skiff folds into defaulting.
const (
	defaultServiceAccountName = "default"
	// defaultNotReadyTolerationSeconds is how long a pod stays bound to a
	// node that is not ready or unreachable (DefaultTolerationSeconds).
	defaultNotReadyTolerationSeconds int64 = 300
	systemNodeCritical                     = "system-node-critical"
	systemClusterCritical                  = "system-cluster-critical"
	systemNodeCriticalPriority       int32 = 2000001000
	systemClusterCriticalPriority    int32 = 2000000000
)

// preparePodForCreate: a new pod is Pending, with its QoS class, and marked
// SchedulingGated when it has scheduling gates.
func preparePodForCreate(p *corev1.Pod) {
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podQOSClass(&p.Spec)}
	if len(p.Spec.SchedulingGates) > 0 {
		p.Status.Conditions = []corev1.PodCondition{{
			Type:    corev1.PodScheduled,
			Status:  corev1.ConditionFalse,
			Reason:  corev1.PodReasonSchedulingGated,
			Message: "Scheduling is blocked due to non-empty scheduling gates",
		}}
	}
	p.Generation = 1
}

// podQOSClass computes a pod's QoS class from the CPU and memory requests and
// limits of its containers (or of the pod, when pod-level resources are set).
// A limit without a request counts as the request, as defaulting makes it.
func podQOSClass(spec *corev1.PodSpec) corev1.PodQOSClass {
	requests := corev1.ResourceList{}
	limits := corev1.ResourceList{}
	guaranteed := true
	add := func(r corev1.ResourceRequirements) {
		effective := corev1.ResourceList{}
		for name, q := range r.Limits {
			effective[name] = q
		}
		for name, q := range r.Requests {
			effective[name] = q
		}
		for name, q := range effective {
			if qosResource(name) && q.Sign() > 0 {
				sum := requests[name]
				sum.Add(q)
				requests[name] = sum
			}
		}
		limited := 0
		for name, q := range r.Limits {
			if qosResource(name) && q.Sign() > 0 {
				limited++
				sum := limits[name]
				sum.Add(q)
				limits[name] = sum
			}
		}
		if limited != 2 {
			guaranteed = false
		}
	}
	if spec.Resources != nil && (hasQOSResource(spec.Resources.Requests) || hasQOSResource(spec.Resources.Limits)) {
		add(*spec.Resources)
	} else {
		for _, c := range spec.InitContainers {
			add(c.Resources)
		}
		for _, c := range spec.Containers {
			add(c.Resources)
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func qosResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory
}

func hasQOSResource(l corev1.ResourceList) bool {
	for name := range l {
		if qosResource(name) {
			return true
		}
	}
	return false
}

// Defaults.

// defaultPod applies the pod spec defaults, those Kubernetes applies to pods
// only (not to templates), and those of the ServiceAccount, Priority and
// DefaultTolerationSeconds admission plugins.
func defaultPod(p *corev1.Pod, opts Options) {
	spec := &p.Spec
	defaultPodSpec(spec)
	for i := range spec.Containers {
		c := &spec.Containers[i]
		defaultRequestsFromLimits(&c.Resources)
		defaultResizePolicy(c)
	}
	for i := range spec.InitContainers {
		defaultRequestsFromLimits(&spec.InitContainers[i].Resources)
	}
	if spec.EnableServiceLinks == nil {
		spec.EnableServiceLinks = new(corev1.DefaultEnableServiceLinks)
	}
	if spec.HostNetwork {
		defaultHostNetworkPorts(spec.Containers)
		defaultHostNetworkPorts(spec.InitContainers)
	}

	// Admission.
	if spec.ServiceAccountName == "" && p.Annotations[corev1.MirrorPodAnnotationKey] == "" {
		spec.ServiceAccountName = defaultServiceAccountName
		spec.DeprecatedServiceAccount = defaultServiceAccountName
	}
	switch spec.PriorityClassName {
	case systemNodeCritical:
		spec.Priority = new(systemNodeCriticalPriority)
	case systemClusterCritical:
		spec.Priority = new(systemClusterCriticalPriority)
	default:
		if spec.Priority == nil {
			spec.Priority = new(int32(0))
		}
	}
	if spec.PreemptionPolicy == nil {
		spec.PreemptionPolicy = new(corev1.PreemptLowerPriority)
	}
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		if !toleratesNoExecuteTaint(spec.Tolerations, key) {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
				Key:               key,
				Operator:          corev1.TolerationOpExists,
				Effect:            corev1.TaintEffectNoExecute,
				TolerationSeconds: new(opts.notReadyTolerationSeconds()),
			})
		}
	}
}

// toleratesNoExecuteTaint reports whether tolerations already cover a
// NoExecute taint with key (the DefaultTolerationSeconds plugin's test).
func toleratesNoExecuteTaint(tolerations []corev1.Toleration, key string) bool {
	for _, t := range tolerations {
		if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
			return true
		}
	}
	return false
}

// defaultRequestsFromLimits sets each request that is missing to its limit.
func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	if r.Limits == nil {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for name, q := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			r.Requests[name] = q.DeepCopy()
		}
	}
}

// defaultResizePolicy gives CPU and memory requests the in-place resize
// policy NotRequired unless the container names one.
func defaultResizePolicy(c *corev1.Container) {
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[name]; !ok {
			continue
		}
		found := false
		for _, p := range c.ResizePolicy {
			found = found || p.ResourceName == name
		}
		if !found {
			c.ResizePolicy = append(c.ResizePolicy, corev1.ContainerResizePolicy{ResourceName: name, RestartPolicy: corev1.NotRequired})
		}
	}
}

// defaultHostNetworkPorts: with host networking a container port is a host
// port.
func defaultHostNetworkPorts(containers []corev1.Container) {
	for i := range containers {
		for j := range containers[i].Ports {
			if p := &containers[i].Ports[j]; p.HostPort == 0 {
				p.HostPort = p.ContainerPort
			}
		}
	}
}

// defaultPodSpec applies the defaults of every pod spec, a pod's or a
// template's.
func defaultPodSpec(spec *corev1.PodSpec) {
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = new(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	// serviceAccount is the deprecated spelling of serviceAccountName; the
	// API keeps the two equal.
	if spec.ServiceAccountName == "" {
		spec.ServiceAccountName = spec.DeprecatedServiceAccount
	}
	spec.DeprecatedServiceAccount = spec.ServiceAccountName

	for i := range spec.Volumes {
		defaultVolumeSource(&spec.Volumes[i].VolumeSource)
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		defaultContainer((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	roundResourceList(spec.Overhead)
	if spec.Resources != nil {
		roundResourceList(spec.Resources.Limits)
		roundResourceList(spec.Resources.Requests)
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		if imageTag(c.Image) == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil {
			defaultFieldRef(vf.FieldRef)
		}
	}
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
	roundResourceList(c.Resources.Limits)
	roundResourceList(c.Resources.Requests)
}

// imageTag returns the tag of an image reference: "latest" when it has
// neither tag nor digest, "" when it has only a digest or is empty.
func imageTag(image string) string {
	if image == "" {
		return ""
	}
	name, _, digested := strings.Cut(image, "@")
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	if digested {
		return ""
	}
	return "latest"
}

// roundResourceList rounds quantities up to milli-units, as the API does.
func roundResourceList(l corev1.ResourceList) {
	for name, q := range l {
		q.RoundUp(-3)
		l[name] = q
	}
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

func defaultFieldRef(f *corev1.ObjectFieldSelector) {
	if f != nil && f.APIVersion == "" {
		f.APIVersion = "v1"
	}
}

func defaultVolumeSource(v *corev1.VolumeSource) {
	if len(setPointerFields(v)) == 0 {
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if v.HostPath != nil && v.HostPath.Type == nil {
		v.HostPath.Type = new(corev1.HostPathUnset)
	}
	if v.Secret != nil && v.Secret.DefaultMode == nil {
		v.Secret.DefaultMode = new(int32(corev1.SecretVolumeSourceDefaultMode))
	}
	if v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil {
		v.ConfigMap.DefaultMode = new(int32(corev1.ConfigMapVolumeSourceDefaultMode))
	}
	if d := v.DownwardAPI; d != nil {
		if d.DefaultMode == nil {
			d.DefaultMode = new(int32(corev1.DownwardAPIVolumeSourceDefaultMode))
		}
		for i := range d.Items {
			defaultFieldRef(d.Items[i].FieldRef)
		}
	}
	if pr := v.Projected; pr != nil {
		if pr.DefaultMode == nil {
			pr.DefaultMode = new(int32(corev1.ProjectedVolumeSourceDefaultMode))
		}
		for i := range pr.Sources {
			s := &pr.Sources[i]
			if s.DownwardAPI != nil {
				for j := range s.DownwardAPI.Items {
					defaultFieldRef(s.DownwardAPI.Items[j].FieldRef)
				}
			}
			if s.ServiceAccountToken != nil && s.ServiceAccountToken.ExpirationSeconds == nil {
				s.ServiceAccountToken.ExpirationSeconds = new(int64(3600))
			}
		}
	}
	if v.ISCSI != nil && v.ISCSI.ISCSIInterface == "" {
		v.ISCSI.ISCSIInterface = "default"
	}
	if e := v.Ephemeral; e != nil && e.VolumeClaimTemplate != nil {
		defaultPersistentVolumeClaimSpec(&e.VolumeClaimTemplate.Spec)
	}
}

// Validation.

func validatePod(p *corev1.Pod) field.ErrorList {
	errs := validateMeta(&p.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	return append(errs, validatePodSpec(&p.Spec, field.NewPath("spec"), nil)...)
}

// validatePodTemplate validates a pod template of a workload: its labels and
// annotations and its spec. extraVolumes names volumes the controller adds
// to each pod (a StatefulSet's claim templates).
func validatePodTemplate(t *corev1.PodTemplateSpec, p *field.Path, extraVolumes []string) field.ErrorList {
	errs := metav1validation.ValidateLabels(t.Labels, p.Child("metadata", "labels"))
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(t.Annotations, p.Child("metadata", "annotations"))...)
	return append(errs, validatePodSpec(&t.Spec, p.Child("spec"), extraVolumes)...)
}

// validatePodSpec validates a pod spec at path p.
func validatePodSpec(spec *corev1.PodSpec, p *field.Path, extraVolumes []string) field.ErrorList {
	volumes, errs := validateVolumes(spec.Volumes, p.Child("volumes"))
	for _, name := range extraVolumes {
		if _, ok := volumes[name]; !ok {
			volumes[name] = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}
		}
	}
	names := map[string]bool{}
	errs = append(errs, validateContainers(spec.InitContainers, true, spec, volumes, names, p.Child("initContainers"))...)
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	errs = append(errs, validateContainers(spec.Containers, false, spec, volumes, names, p.Child("containers"))...)
	if len(spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("ephemeralContainers"), "cannot be set on create; use the pods/ephemeralcontainers subresource"))
	}

	errs = append(errs, validateEnum(spec.RestartPolicy, p.Child("restartPolicy"),
		corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)...)
	errs = append(errs, validateEnum(spec.DNSPolicy, p.Child("dnsPolicy"),
		corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone)...)
	errs = append(errs, validateDNSConfig(spec.DNSConfig, spec.DNSPolicy, p.Child("dnsConfig"))...)
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, p.Child("nodeSelector"))...)
	if spec.ServiceAccountName != "" {
		errs = append(errs, invalidEach(p.Child("serviceAccountName"), spec.ServiceAccountName, apimachineryvalidation.ValidateServiceAccountName(spec.ServiceAccountName, false))...)
	}
	if spec.NodeName != "" {
		errs = append(errs, validateDNSSubdomain(spec.NodeName, p.Child("nodeName"))...)
	}
	if v := spec.ActiveDeadlineSeconds; v != nil && (*v < 1 || *v > math.MaxInt32) {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *v, validation.InclusiveRangeError(1, math.MaxInt32)))
	}
	if spec.Hostname != "" {
		errs = append(errs, validateDNSLabel(spec.Hostname, p.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, validateDNSLabel(spec.Subdomain, p.Child("subdomain"))...)
	}
	errs = append(errs, validateTolerations(spec.Tolerations, p.Child("tolerations"))...)
	for i, s := range spec.ImagePullSecrets {
		if s.Name != "" {
			errs = append(errs, validateDNSSubdomain(s.Name, p.Child("imagePullSecrets").Index(i).Child("name"))...)
		}
	}
	if spec.PriorityClassName != "" {
		errs = append(errs, validateDNSSubdomain(spec.PriorityClassName, p.Child("priorityClassName"))...)
	}
	if spec.SchedulerName != "" {
		errs = append(errs, validateDNSSubdomain(spec.SchedulerName, p.Child("schedulerName"))...)
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, validateDNSSubdomain(*spec.RuntimeClassName, p.Child("runtimeClassName"))...)
	}
	if spec.PreemptionPolicy != nil {
		errs = append(errs, validateEnum(*spec.PreemptionPolicy, p.Child("preemptionPolicy"), corev1.PreemptLowerPriority, corev1.PreemptNever)...)
	}
	for i, h := range spec.HostAliases {
		hp := p.Child("hostAliases").Index(i)
		errs = append(errs, validation.IsValidIPForLegacyField(hp.Child("ip"), h.IP, false, nil)...)
		for j, name := range h.Hostnames {
			errs = append(errs, validateDNSSubdomain(name, hp.Child("hostnames").Index(j))...)
		}
	}
	errs = append(errs, validatePodSecurityContext(spec, p.Child("securityContext"))...)
	errs = append(errs, validateAffinity(spec.Affinity, p.Child("affinity"))...)
	errs = append(errs, validateTopologySpreadConstraints(spec.TopologySpreadConstraints, p.Child("topologySpreadConstraints"))...)
	for i, g := range spec.ReadinessGates {
		errs = append(errs, validateQualifiedName(string(g.ConditionType), p.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	gates := map[string]bool{}
	for i, g := range spec.SchedulingGates {
		gp := p.Child("schedulingGates").Index(i).Child("name")
		errs = append(errs, validateQualifiedName(g.Name, gp)...)
		if gates[g.Name] {
			errs = append(errs, field.Duplicate(gp, g.Name))
		}
		gates[g.Name] = true
	}
	errs = append(errs, validateResourceList(spec.Overhead, p.Child("overhead"))...)
	if spec.Resources != nil {
		errs = append(errs, validateResources(spec.Resources, p.Child("resources"))...)
	}
	if spec.OS != nil {
		errs = append(errs, validateEnum(spec.OS.Name, p.Child("os", "name"), corev1.Linux, corev1.Windows)...)
	}
	return errs
}

// validateDNSConfig checks a pod's DNS settings; the None policy takes all
// of them from dnsConfig.
func validateDNSConfig(c *corev1.PodDNSConfig, policy corev1.DNSPolicy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if policy == corev1.DNSNone && (c == nil || len(c.Nameservers) == 0) {
		if c == nil {
			return append(errs, field.Required(p, "must provide `dnsConfig` when `dnsPolicy` is None"))
		}
		errs = append(errs, field.Required(p.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
	}
	if c == nil {
		return errs
	}
	if len(c.Nameservers) > 3 {
		errs = append(errs, field.TooMany(p.Child("nameservers"), len(c.Nameservers), 3))
	}
	for i, ns := range c.Nameservers {
		errs = append(errs, validation.IsValidIPForLegacyField(p.Child("nameservers").Index(i), ns, false, nil)...)
	}
	if len(c.Searches) > 32 {
		errs = append(errs, field.TooMany(p.Child("searches"), len(c.Searches), 32))
	}
	for i, s := range c.Searches {
		if s == "." {
			continue
		}
		errs = append(errs, validateDNSSubdomain(strings.TrimSuffix(s, "."), p.Child("searches").Index(i))...)
	}
	for i, o := range c.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(p.Child("options").Index(i).Child("name"), ""))
		}
	}
	return errs
}

// Updates.

// podMutableFieldsMessage lists what an update of a pod may change.
const podMutableFieldsMessage = "pod updates may not change fields other than `spec.containers[*].image`, " +
	"`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations), " +
	"`spec.terminationGracePeriodSeconds` (only from a negative value to 1), `spec.schedulingGates` (only removals) " +
	"and, while scheduling gates remain, additions to `spec.nodeSelector`"

// validatePodUpdate enforces the immutability of a pod's spec.
func validatePodUpdate(p, old *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")

	if o := old.Spec.ActiveDeadlineSeconds; o != nil {
		ap := spec.Child("activeDeadlineSeconds")
		switch n := p.Spec.ActiveDeadlineSeconds; {
		case n == nil:
			errs = append(errs, field.Invalid(ap, n, "must not update from a positive integer to nil value"))
		case *n > *o:
			errs = append(errs, field.Invalid(ap, *n, "must be less than or equal to previous value"))
		}
	}
	errs = append(errs, validateTolerationsUpdate(p.Spec.Tolerations, old.Spec.Tolerations, spec.Child("tolerations"))...)
	newGates := map[string]bool{}
	for _, g := range p.Spec.SchedulingGates {
		newGates[g.Name] = true
	}
	oldGates := map[string]bool{}
	for _, g := range old.Spec.SchedulingGates {
		oldGates[g.Name] = true
	}
	for name := range newGates {
		if !oldGates[name] {
			errs = append(errs, field.Forbidden(spec.Child("schedulingGates"), "only deletion is allowed, but found new scheduling gate '"+name+"'"))
		}
	}

	// Compare the specs with the mutable fields taken from the old one.
	munged := p.Spec.DeepCopy()
	for i := range munged.Containers {
		if i < len(old.Spec.Containers) {
			munged.Containers[i].Image = old.Spec.Containers[i].Image
		}
	}
	for i := range munged.InitContainers {
		if i < len(old.Spec.InitContainers) {
			munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
		}
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.Tolerations = old.Spec.Tolerations
	munged.SchedulingGates = old.Spec.SchedulingGates
	if o, n := old.Spec.TerminationGracePeriodSeconds, p.Spec.TerminationGracePeriodSeconds; o != nil && *o < 0 && n != nil && *n == 1 {
		munged.TerminationGracePeriodSeconds = o
	}
	if len(old.Spec.SchedulingGates) > 0 && nodeSelectorOnlyAdds(p.Spec.NodeSelector, old.Spec.NodeSelector) {
		munged.NodeSelector = old.Spec.NodeSelector
	}
	if !equality.Semantic.DeepEqual(munged, &old.Spec) {
		errs = append(errs, field.Forbidden(spec, podMutableFieldsMessage))
	}
	return errs
}

// nodeSelectorOnlyAdds reports whether n keeps every entry of old.
func nodeSelectorOnlyAdds(n, old map[string]string) bool {
	for k, v := range old {
		if nv, ok := n[k]; !ok || nv != v {
			return false
		}
	}
	return true
}

// validateTolerationsUpdate: existing tolerations may not be removed or
// changed, except for their tolerationSeconds.
func validateTolerationsUpdate(n, old []corev1.Toleration, p *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, t := range n {
			t.TolerationSeconds = o.TolerationSeconds
			if equality.Semantic.DeepEqual(o, t) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return nil
}
