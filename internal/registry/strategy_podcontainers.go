package registry

// Validation of a pod spec's containers: ports, environment, mounts,
// probes, lifecycle hooks, resources and security contexts.

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateContainers checks init or regular containers; names collects the
// container names of the pod, which must be unique across both lists.
func validateContainers(containers []corev1.Container, init bool, spec *corev1.PodSpec, volumes map[string]corev1.VolumeSource, names map[string]bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range containers {
		c := &containers[i]
		cp := p.Index(i)
		switch {
		case c.Name == "":
			errs = append(errs, field.Required(cp.Child("name"), ""))
		case names[c.Name]:
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		default:
			errs = append(errs, validateDNSLabel(c.Name, cp.Child("name"))...)
		}
		names[c.Name] = true
		errs = append(errs, validateContainer(c, spec, volumes, cp)...)

		sidecar := init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		switch {
		case init && c.RestartPolicy != nil:
			errs = append(errs, validateEnum(*c.RestartPolicy, cp.Child("restartPolicy"), corev1.ContainerRestartPolicyAlways)...)
		case !init && c.RestartPolicy != nil:
			errs = append(errs, field.Forbidden(cp.Child("restartPolicy"), "may not be set for non-init containers"))
		}
		if init && !sidecar {
			const msg = "may not be set for init containers without restartPolicy=Always"
			if c.Lifecycle != nil {
				errs = append(errs, field.Forbidden(cp.Child("lifecycle"), msg))
			}
			if c.LivenessProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("livenessProbe"), msg))
			}
			if c.ReadinessProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("readinessProbe"), msg))
			}
			if c.StartupProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("startupProbe"), msg))
			}
		}
	}
	return errs
}

// validateContainer checks what init and regular containers have in common.
func validateContainer(c *corev1.Container, spec *corev1.PodSpec, volumes map[string]corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case c.Image == "":
		errs = append(errs, field.Required(p.Child("image"), ""))
	case c.Image != strings.TrimSpace(c.Image):
		errs = append(errs, field.Invalid(p.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	errs = append(errs, validateEnum(c.ImagePullPolicy, p.Child("imagePullPolicy"), corev1.PullAlways, corev1.PullNever, corev1.PullIfNotPresent)...)
	errs = append(errs, validateEnum(c.TerminationMessagePolicy, p.Child("terminationMessagePolicy"), corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError)...)
	errs = append(errs, validateContainerPorts(c.Ports, spec.HostNetwork, p.Child("ports"))...)
	errs = append(errs, validateEnv(c.Env, p.Child("env"))...)
	errs = append(errs, validateEnvFrom(c.EnvFrom, p.Child("envFrom"))...)
	errs = append(errs, validateVolumeMounts(c, volumes, p.Child("volumeMounts"))...)
	for i, d := range c.VolumeDevices {
		dp := p.Child("volumeDevices").Index(i)
		if d.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		} else if _, ok := volumes[d.Name]; !ok {
			errs = append(errs, field.NotFound(dp.Child("name"), d.Name))
		}
		if d.DevicePath == "" {
			errs = append(errs, field.Required(dp.Child("devicePath"), ""))
		}
	}
	errs = append(errs, validateProbe(c.LivenessProbe, true, p.Child("livenessProbe"))...)
	errs = append(errs, validateProbe(c.ReadinessProbe, false, p.Child("readinessProbe"))...)
	errs = append(errs, validateProbe(c.StartupProbe, true, p.Child("startupProbe"))...)
	if c.Lifecycle != nil {
		errs = append(errs, validateLifecycleHandler(c.Lifecycle.PostStart, p.Child("lifecycle", "postStart"))...)
		errs = append(errs, validateLifecycleHandler(c.Lifecycle.PreStop, p.Child("lifecycle", "preStop"))...)
	}
	errs = append(errs, validateResources(&c.Resources, p.Child("resources"))...)
	for i, rp := range c.ResizePolicy {
		rpp := p.Child("resizePolicy").Index(i)
		errs = append(errs, validateEnum(rp.ResourceName, rpp.Child("resourceName"), corev1.ResourceCPU, corev1.ResourceMemory)...)
		errs = append(errs, validateEnum(rp.RestartPolicy, rpp.Child("restartPolicy"), corev1.NotRequired, corev1.RestartContainer)...)
	}
	errs = append(errs, validateSecurityContext(c.SecurityContext, p.Child("securityContext"))...)
	return errs
}

func validateContainerPorts(ports []corev1.ContainerPort, hostNetwork bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, port := range ports {
		pp := p.Index(i)
		if port.Name != "" {
			errs = append(errs, invalidEach(pp.Child("name"), port.Name, validation.IsValidPortName(port.Name))...)
			if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(pp.Child("containerPort"), ""))
		} else {
			errs = append(errs, invalidEach(pp.Child("containerPort"), port.ContainerPort, validation.IsValidPortNum(int(port.ContainerPort)))...)
		}
		if port.HostPort != 0 {
			errs = append(errs, invalidEach(pp.Child("hostPort"), port.HostPort, validation.IsValidPortNum(int(port.HostPort)))...)
			if hostNetwork && port.HostPort != port.ContainerPort {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
			}
		}
		errs = append(errs, validateEnum(port.Protocol, pp.Child("protocol"), corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)...)
		if port.HostIP != "" {
			errs = append(errs, validation.IsValidIPForLegacyField(pp.Child("hostIP"), port.HostIP, false, nil)...)
		}
	}
	return errs
}

// Field paths the downward API may expose, through env and through volumes.
var (
	envFieldPaths = []string{
		"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
		"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
	}
	downwardAPIVolumeFieldPaths = []string{
		"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations",
	}
	resourceFieldRefResources = []string{
		"limits.cpu", "limits.memory", "limits.ephemeral-storage",
		"requests.cpu", "requests.memory", "requests.ephemeral-storage",
	}
)

func validateFieldRef(f *corev1.ObjectFieldSelector, supported []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch f.APIVersion {
	case "", "v1":
	default:
		errs = append(errs, field.NotSupported(p.Child("apiVersion"), f.APIVersion, []string{"v1"}))
	}
	fp := p.Child("fieldPath")
	if f.FieldPath == "" {
		return append(errs, field.Required(fp, ""))
	}
	for _, prefix := range []string{"metadata.labels", "metadata.annotations"} {
		if key, ok := strings.CutPrefix(f.FieldPath, prefix+"['"); ok {
			key, ok = strings.CutSuffix(key, "']")
			if !ok {
				return append(errs, field.Invalid(fp, f.FieldPath, "invalid subscript; expected ['key']"))
			}
			k := key
			if prefix == "metadata.annotations" {
				k = strings.ToLower(k)
			}
			return append(errs, invalidEach(fp, f.FieldPath, validationMessages(validateQualifiedName(k, fp)))...)
		}
	}
	for _, s := range supported {
		if f.FieldPath == s {
			return errs
		}
	}
	return append(errs, field.NotSupported(fp, f.FieldPath, append(append([]string{}, supported...), "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']")))
}

// validationMessages returns the details of errs.
func validationMessages(errs field.ErrorList) []string {
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Detail)
	}
	return msgs
}

func validateResourceFieldRef(r *corev1.ResourceFieldSelector, p *field.Path) field.ErrorList {
	rp := p.Child("resource")
	switch {
	case r.Resource == "":
		return field.ErrorList{field.Required(rp, "")}
	case strings.HasPrefix(r.Resource, "limits.hugepages-"), strings.HasPrefix(r.Resource, "requests.hugepages-"):
		return nil
	}
	for _, s := range resourceFieldRefResources {
		if r.Resource == s {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(rp, r.Resource, resourceFieldRefResources)}
}

func validateEnv(env []corev1.EnvVar, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range env {
		ep := p.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		} else {
			errs = append(errs, invalidEach(ep.Child("name"), ev.Name, validation.IsRelaxedEnvVarName(ev.Name))...)
		}
		vf := ev.ValueFrom
		if vf == nil {
			continue
		}
		vp := ep.Child("valueFrom")
		set := setPointerFields(vf)
		switch {
		case ev.Value != "" && len(set) > 0:
			errs = append(errs, field.Invalid(vp, "", "may not be specified when `value` is not empty"))
			continue
		case len(set) == 0:
			errs = append(errs, field.Invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`"))
			continue
		case len(set) > 1:
			errs = append(errs, field.Invalid(vp, "", "may not have more than one field specified at a time"))
			continue
		}
		switch {
		case vf.FieldRef != nil:
			errs = append(errs, validateFieldRef(vf.FieldRef, envFieldPaths, vp.Child("fieldRef"))...)
		case vf.ResourceFieldRef != nil:
			errs = append(errs, validateResourceFieldRef(vf.ResourceFieldRef, vp.Child("resourceFieldRef"))...)
		case vf.ConfigMapKeyRef != nil:
			errs = append(errs, validateKeySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, vp.Child("configMapKeyRef"))...)
		case vf.SecretKeyRef != nil:
			errs = append(errs, validateKeySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, vp.Child("secretKeyRef"))...)
		case vf.FileKeyRef != nil:
			fp := vp.Child("fileKeyRef")
			if vf.FileKeyRef.VolumeName == "" {
				errs = append(errs, field.Required(fp.Child("volumeName"), ""))
			}
			if vf.FileKeyRef.Path == "" {
				errs = append(errs, field.Required(fp.Child("path"), ""))
			}
			if vf.FileKeyRef.Key == "" {
				errs = append(errs, field.Required(fp.Child("key"), ""))
			}
		}
	}
	return errs
}

func validateKeySelector(name, key string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	if key == "" {
		errs = append(errs, field.Required(p.Child("key"), ""))
	} else {
		errs = append(errs, invalidEach(p.Child("key"), key, validation.IsConfigMapKey(key))...)
	}
	return errs
}

func validateEnvFrom(envFrom []corev1.EnvFromSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range envFrom {
		ep := p.Index(i)
		if ef.Prefix != "" {
			errs = append(errs, invalidEach(ep.Child("prefix"), ef.Prefix, validation.IsRelaxedEnvVarName(ef.Prefix))...)
		}
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef != nil:
			errs = append(errs, field.Invalid(ep, "", "may not have more than one field specified at a time"))
		case ef.ConfigMapRef != nil:
			errs = append(errs, validateEnvFromName(ef.ConfigMapRef.Name, ep.Child("configMapRef", "name"))...)
		case ef.SecretRef != nil:
			errs = append(errs, validateEnvFromName(ef.SecretRef.Name, ep.Child("secretRef", "name"))...)
		default:
			errs = append(errs, field.Invalid(ep, "", "must specify one of: `configMapRef` or `secretRef`"))
		}
	}
	return errs
}

func validateEnvFromName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return invalidEach(p, name, apimachineryvalidation.NameIsDNSSubdomain(name, true))
}

func validateVolumeMounts(c *corev1.Container, volumes map[string]corev1.VolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := map[string]bool{}
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	for i, m := range c.VolumeMounts {
		mp := p.Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(mp.Child("name"), ""))
		} else if _, ok := volumes[m.Name]; !ok {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		switch {
		case m.MountPath == "":
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		case paths[m.MountPath]:
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths[m.MountPath] = true
		if m.SubPath != "" {
			errs = append(errs, validateRelativePath(m.SubPath, mp.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(mp.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, validateRelativePath(m.SubPathExpr, mp.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			errs = append(errs, validateEnum(*m.MountPropagation, mp.Child("mountPropagation"),
				corev1.MountPropagationNone, corev1.MountPropagationHostToContainer, corev1.MountPropagationBidirectional)...)
			if *m.MountPropagation == corev1.MountPropagationBidirectional && !privileged {
				errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "Bidirectional mount propagation is available only to privileged containers"))
			}
		}
		if m.RecursiveReadOnly != nil {
			errs = append(errs, validateEnum(*m.RecursiveReadOnly, mp.Child("recursiveReadOnly"),
				corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyIfPossible, corev1.RecursiveReadOnlyEnabled)...)
			if *m.RecursiveReadOnly != corev1.RecursiveReadOnlyDisabled && !m.ReadOnly {
				errs = append(errs, field.Forbidden(mp.Child("recursiveReadOnly"), "may only be specified when readOnly is true"))
			}
		}
	}
	return errs
}

// validateProbe checks a probe; liveness and startup probes must have a
// success threshold of 1.
func validateProbe(pr *corev1.Probe, mustSucceedOnce bool, p *field.Path) field.ErrorList {
	if pr == nil {
		return nil
	}
	errs := validateOneOf(&pr.ProbeHandler, p, "handler type")
	if len(errs) == 0 {
		errs = append(errs, validateHandler(pr.Exec, pr.HTTPGet, pr.TCPSocket, p)...)
		if g := pr.GRPC; g != nil {
			errs = append(errs, invalidEach(p.Child("grpc", "port"), g.Port, validation.IsValidPortNum(int(g.Port)))...)
		}
	}
	errs = append(errs, validateNonNegative(pr.InitialDelaySeconds, p.Child("initialDelaySeconds"))...)
	errs = append(errs, validateNonNegative(pr.TimeoutSeconds, p.Child("timeoutSeconds"))...)
	errs = append(errs, validateNonNegative(pr.PeriodSeconds, p.Child("periodSeconds"))...)
	errs = append(errs, validateNonNegative(pr.SuccessThreshold, p.Child("successThreshold"))...)
	errs = append(errs, validateNonNegative(pr.FailureThreshold, p.Child("failureThreshold"))...)
	if mustSucceedOnce && pr.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	if t := pr.TerminationGracePeriodSeconds; t != nil {
		switch {
		case !mustSucceedOnce:
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *t, "must not be set for readinessProbes"))
		case *t <= 0:
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *t, "must be greater than 0"))
		}
	}
	return errs
}

func validateLifecycleHandler(h *corev1.LifecycleHandler, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	errs := validateOneOf(h, p, "handler type")
	if len(errs) > 0 {
		return errs
	}
	errs = validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, p)
	if h.Sleep != nil {
		errs = append(errs, validateNonNegative(h.Sleep.Seconds, p.Child("sleep", "seconds"))...)
	}
	return errs
}

// validateHandler checks the exec, httpGet and tcpSocket actions of probes
// and lifecycle hooks.
func validateHandler(exec *corev1.ExecAction, get *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if exec != nil && len(exec.Command) == 0 {
		errs = append(errs, field.Required(p.Child("exec", "command"), ""))
	}
	if get != nil {
		gp := p.Child("httpGet")
		errs = append(errs, validatePortNumOrName(get.Port, gp.Child("port"))...)
		errs = append(errs, validateOptionalEnum(get.Scheme, gp.Child("scheme"), corev1.URISchemeHTTP, corev1.URISchemeHTTPS)...)
		for i, h := range get.HTTPHeaders {
			errs = append(errs, invalidEach(gp.Child("httpHeaders").Index(i).Child("name"), h.Name, validation.IsHTTPHeaderName(h.Name))...)
		}
	}
	if tcp != nil {
		errs = append(errs, validatePortNumOrName(tcp.Port, p.Child("tcpSocket", "port"))...)
	}
	return errs
}

// validateResources checks resource names and quantities, and that no
// request exceeds its limit. Resources that may not be overcommitted
// (extended resources, hugepages) need a limit equal to the request.
func validateResources(r *corev1.ResourceRequirements, p *field.Path) field.ErrorList {
	errs := validateResourceList(r.Limits, p.Child("limits"))
	errs = append(errs, validateResourceList(r.Requests, p.Child("requests"))...)
	for name, req := range r.Requests {
		rp := p.Child("requests").Key(string(name))
		lim, limited := r.Limits[name]
		switch {
		case !overcommitAllowed(name) && !limited:
			errs = append(errs, field.Required(p.Child("limits"), "Limit must be set for non overcommitable resources"))
		case !overcommitAllowed(name) && req.Cmp(lim) != 0:
			errs = append(errs, field.Invalid(rp, req.String(), fmt.Sprintf("must be equal to %s limit of %s", name, lim.String())))
		case limited && req.Cmp(lim) > 0:
			errs = append(errs, field.Invalid(rp, req.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
		}
	}
	return errs
}

// overcommitAllowed: the native resources other than hugepages may be
// requested below their limit.
func overcommitAllowed(name corev1.ResourceName) bool {
	s := string(name)
	native := !strings.Contains(s, "/") || strings.HasPrefix(s, "kubernetes.io/")
	return native && !strings.HasPrefix(s, corev1.ResourceHugePagesPrefix)
}

func validateResourceList(l corev1.ResourceList, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range l {
		np := p.Key(string(name))
		errs = append(errs, validateResourceName(name, np)...)
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(np, q.String(), apimachineryvalidation.IsNegativeErrorMsg))
		}
		if strings.Contains(string(name), "/") && q.MilliValue()%1000 != 0 {
			errs = append(errs, field.Invalid(np, q.String(), "must be an integer"))
		}
	}
	return errs
}

// validateResourceName accepts the standard container resources and
// domain-prefixed extended resources.
func validateResourceName(name corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := validateQualifiedName(string(name), p)
	if len(errs) > 0 {
		return errs
	}
	switch {
	case name == corev1.ResourceCPU, name == corev1.ResourceMemory, name == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix), strings.Contains(string(name), "/"):
		return nil
	}
	return field.ErrorList{field.Invalid(p, name, "must be a standard resource for containers")}
}

func validateSecurityContext(sc *corev1.SecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	if sc.RunAsUser != nil {
		errs = append(errs, invalidEach(p.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
	}
	if sc.RunAsGroup != nil {
		errs = append(errs, invalidEach(p.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			errs = append(errs, field.Invalid(p, sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				if c == "CAP_SYS_ADMIN" || c == "SYS_ADMIN" {
					errs = append(errs, field.Invalid(p, sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
				}
			}
		}
	}
	if sc.ProcMount != nil {
		errs = append(errs, validateEnum(*sc.ProcMount, p.Child("procMount"), corev1.DefaultProcMount, corev1.UnmaskedProcMount)...)
	}
	errs = append(errs, validateSeccompProfile(sc.SeccompProfile, p.Child("seccompProfile"))...)
	return errs
}

func validateSeccompProfile(sp *corev1.SeccompProfile, p *field.Path) field.ErrorList {
	if sp == nil {
		return nil
	}
	errs := validateEnum(sp.Type, p.Child("type"), corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined, corev1.SeccompProfileTypeLocalhost)
	if sp.Type == corev1.SeccompProfileTypeLocalhost {
		if sp.LocalhostProfile == nil || *sp.LocalhostProfile == "" {
			errs = append(errs, field.Required(p.Child("localhostProfile"), "must be set when seccomp type is Localhost"))
		}
	} else if sp.LocalhostProfile != nil {
		errs = append(errs, field.Invalid(p.Child("localhostProfile"), *sp.LocalhostProfile, "can only be set when seccomp type is Localhost"))
	}
	return errs
}

func validatePodSecurityContext(spec *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace && spec.HostPID {
		errs = append(errs, field.Invalid(p.Child("shareProcessNamespace"), true, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	sc := spec.SecurityContext
	if sc == nil {
		return errs
	}
	if sc.RunAsUser != nil {
		errs = append(errs, invalidEach(p.Child("runAsUser"), *sc.RunAsUser, validation.IsValidUserID(*sc.RunAsUser))...)
	}
	if sc.RunAsGroup != nil {
		errs = append(errs, invalidEach(p.Child("runAsGroup"), *sc.RunAsGroup, validation.IsValidGroupID(*sc.RunAsGroup))...)
	}
	if sc.FSGroup != nil {
		errs = append(errs, invalidEach(p.Child("fsGroup"), *sc.FSGroup, validation.IsValidGroupID(*sc.FSGroup))...)
	}
	for i, g := range sc.SupplementalGroups {
		errs = append(errs, invalidEach(p.Child("supplementalGroups").Index(i), g, validation.IsValidGroupID(g))...)
	}
	if sc.FSGroupChangePolicy != nil {
		errs = append(errs, validateEnum(*sc.FSGroupChangePolicy, p.Child("fsGroupChangePolicy"), corev1.FSGroupChangeOnRootMismatch, corev1.FSGroupChangeAlways)...)
	}
	for i, s := range sc.Sysctls {
		sp := p.Child("sysctls").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
	}
	errs = append(errs, validateSeccompProfile(sc.SeccompProfile, p.Child("seccompProfile"))...)
	return errs
}
