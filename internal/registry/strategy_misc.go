package registry

// The other kinds: Namespace, Node, ConfigMap, Secret, ServiceAccount,
// Events (core/v1 and events.k8s.io/v1), PersistentVolume,
// PersistentVolumeClaim, StorageClass, Lease, and the Scale subresource.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	// maxConfigDataSize bounds the data of a ConfigMap or Secret.
	maxConfigDataSize              = corev1.MaxSecretSize
	maxStorageClassParameters      = 512
	maxStorageClassParametersBytes = 256 * 1024
	maxEventFieldLength            = 128
	maxEventNoteLength             = 1024
)

// Namespace.

func prepareNamespaceForCreate(n *corev1.Namespace) {
	n.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	for _, f := range n.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			return
		}
	}
	n.Spec.Finalizers = append(n.Spec.Finalizers, corev1.FinalizerKubernetes)
}

// defaultNamespace labels a namespace with its name and sets the phase.
func defaultNamespace(n *corev1.Namespace) {
	if n.Name != "" {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelMetadataName] = n.Name
	}
	if n.Status.Phase == "" {
		n.Status.Phase = corev1.NamespaceActive
	}
}

func validateNamespace(n *corev1.Namespace) field.ErrorList {
	errs := validateMeta(&n.ObjectMeta, false, apimachineryvalidation.ValidateNamespaceName)
	for i, f := range n.Spec.Finalizers {
		fp := field.NewPath("spec", "finalizers").Index(i)
		errs = append(errs, apimachineryvalidation.ValidateFinalizerName(string(f), fp)...)
		if !strings.Contains(string(f), "/") && !standardFinalizers[string(f)] {
			errs = append(errs, field.Invalid(fp, f, "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

// standardFinalizers are the finalizer names without a domain.
var standardFinalizers = map[string]bool{
	string(corev1.FinalizerKubernetes): true,
	metav1.FinalizerOrphanDependents:   true,
	metav1.FinalizerDeleteDependents:   true,
}

// Node.

// defaultNode: podCIDR and podCIDRs say the same (the API keeps them in
// step), and what is allocatable defaults to the capacity.
func defaultNode(n *corev1.Node) {
	switch {
	case n.Spec.PodCIDR != "" && len(n.Spec.PodCIDRs) == 0:
		n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
	case n.Spec.PodCIDR == "" && len(n.Spec.PodCIDRs) > 0:
		n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
	}
	if n.Status.Allocatable == nil && n.Status.Capacity != nil {
		n.Status.Allocatable = n.Status.Capacity.DeepCopy()
	}
}

func validateNode(n *corev1.Node) field.ErrorList {
	errs := validateMeta(&n.ObjectMeta, false, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	cidrs := n.Spec.PodCIDRs
	if n.Spec.PodCIDR != "" && len(cidrs) == 0 {
		cidrs = []string{n.Spec.PodCIDR}
	}
	if n.Spec.PodCIDR != "" && len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		errs = append(errs, field.Invalid(spec.Child("podCIDRs"), n.Spec.PodCIDRs, "element [0] must match podCIDR"))
	}
	if len(cidrs) > 2 {
		errs = append(errs, field.Invalid(spec.Child("podCIDRs"), cidrs, "may specify no more than one CIDR for each IP family"))
	}
	families := map[bool]bool{}
	for i, c := range cidrs {
		cp := spec.Child("podCIDRs").Index(i)
		if ce := validation.IsValidCIDRForLegacyField(cp, c, false, nil); len(ce) > 0 {
			errs = append(errs, ce...)
			continue
		}
		if pfx, err := netip.ParsePrefix(c); err == nil {
			v4 := pfx.Addr().Unmap().Is4()
			if families[v4] {
				errs = append(errs, field.Invalid(cp, c, "may specify no more than one CIDR for each IP family"))
			}
			families[v4] = true
		}
	}
	seen := map[string]bool{}
	for i, t := range n.Spec.Taints {
		tp := spec.Child("taints").Index(i)
		if t.Key == "" {
			errs = append(errs, field.Required(tp.Child("key"), ""))
		} else {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		}
		errs = append(errs, validateLabelValue(t.Value, tp.Child("value"))...)
		errs = append(errs, validateEnum(t.Effect, tp.Child("effect"), corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute)...)
		key := t.Key + ":" + string(t.Effect)
		if seen[key] {
			errs = append(errs, field.Duplicate(tp, "taints must be unique by key and effect pair"))
		}
		seen[key] = true
	}
	return errs
}

// validateNodeUpdate: a pod CIDR and a provider ID may be set once.
func validateNodeUpdate(n, old *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if len(old.Spec.PodCIDRs) > 0 && !equality.Semantic.DeepEqual(n.Spec.PodCIDRs, old.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(spec.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && n.Spec.ProviderID != old.Spec.ProviderID {
		errs = append(errs, field.Forbidden(spec.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}

// ConfigMap and Secret.

func validateConfigMap(c *corev1.ConfigMap) field.ErrorList {
	errs := validateMeta(&c.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	size := 0
	for key, v := range c.Data {
		errs = append(errs, validateDataKey(key, field.NewPath("data").Key(key))...)
		size += len(v)
	}
	for key, v := range c.BinaryData {
		kp := field.NewPath("binaryData").Key(key)
		errs = append(errs, validateDataKey(key, kp)...)
		if _, dup := c.Data[key]; dup {
			errs = append(errs, field.Invalid(kp, key, "duplicate of key present in data"))
		}
		size += len(v)
	}
	if size > maxConfigDataSize {
		errs = append(errs, field.TooLong(field.NewPath("data"), "", maxConfigDataSize))
	}
	return errs
}

func validateDataKey(key string, p *field.Path) field.ErrorList {
	return invalidEach(p, key, validation.IsConfigMapKey(key))
}

func validateConfigMapUpdate(c, old *corev1.ConfigMap) field.ErrorList {
	if old.Immutable == nil || !*old.Immutable {
		return nil
	}
	var errs field.ErrorList
	if c.Immutable == nil || !*c.Immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if !equality.Semantic.DeepEqual(c.Data, old.Data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	if !equality.Semantic.DeepEqual(c.BinaryData, old.BinaryData) {
		errs = append(errs, field.Forbidden(field.NewPath("binaryData"), "field is immutable when `immutable` is set"))
	}
	return errs
}

// defaultSecret sets the type and, as the API does on every write, moves
// stringData (a write-only convenience) into data, where it wins.
func defaultSecret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	data := field.NewPath("data")
	size := 0
	for key, v := range s.Data {
		errs = append(errs, validateDataKey(key, data.Key(key))...)
		size += len(v)
	}
	if size > maxConfigDataSize {
		errs = append(errs, field.TooLong(data, "", maxConfigDataSize))
	}
	requireKey := func(key string) {
		if _, ok := s.Data[key]; !ok {
			errs = append(errs, field.Required(data.Key(key), ""))
		}
	}
	requireJSON := func(key string) {
		if v, ok := s.Data[key]; !ok {
			errs = append(errs, field.Required(data.Key(key), ""))
		} else if err := json.Unmarshal(v, new(map[string]interface{})); err != nil {
			errs = append(errs, field.Invalid(data.Key(key), "<secret contents redacted>", err.Error()))
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metadataPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		requireJSON(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		requireJSON(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, password := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !password {
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthUsernameKey), ""))
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		requireKey(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		requireKey(corev1.TLSCertKey)
		requireKey(corev1.TLSPrivateKeyKey)
	case "":
		errs = append(errs, field.Required(field.NewPath("type"), ""))
	}
	return errs
}

func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := apimachineryvalidation.ValidateImmutableField(s.Type, old.Type, field.NewPath("type"))
	if old.Immutable != nil && *old.Immutable {
		if s.Immutable == nil || !*s.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
		}
		if !equality.Semantic.DeepEqual(s.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
		}
	}
	return errs
}

func validateServiceAccount(s *corev1.ServiceAccount) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apimachineryvalidation.ValidateServiceAccountName)
	for i, r := range s.Secrets {
		if r.Name != "" {
			errs = append(errs, validateDNSSubdomain(r.Name, field.NewPath("secrets").Index(i).Child("name"))...)
		}
	}
	for i, r := range s.ImagePullSecrets {
		if r.Name != "" {
			errs = append(errs, validateDNSSubdomain(r.Name, field.NewPath("imagePullSecrets").Index(i).Child("name"))...)
		}
	}
	return errs
}

// Events.

// validateCoreEvent checks a core/v1 Event the lenient way Kubernetes keeps
// for that API: names need only be usable in a path, and the event's
// namespace must agree with its object's.
func validateCoreEvent(e *corev1.Event) field.ErrorList {
	errs := validateMeta(&e.ObjectMeta, true, pathSegmentName)
	ns := e.InvolvedObject.Namespace
	if e.EventTime.IsZero() {
		if ns == "" {
			if e.Namespace != metav1.NamespaceNone && e.Namespace != metav1.NamespaceDefault {
				errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
			}
		} else if e.Namespace != ns {
			errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
		}
		return errs
	}
	// Events written with eventTime (by the new API's clients) carry the
	// new API's required fields.
	if ns == "" && e.Namespace != metav1.NamespaceDefault && e.Namespace != metav1.NamespaceSystem {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ns, "does not match event.namespace"))
	}
	errs = append(errs, validateEventReporting(e.ReportingController, e.ReportingInstance, e.Action, e.Reason, e.Message,
		field.NewPath("reportingComponent"), field.NewPath("message"))...)
	return errs
}

// pathSegmentName accepts any name that can be a URL path segment.
func pathSegmentName(name string, prefix bool) []string {
	if prefix {
		return content.IsPathSegmentPrefix(name)
	}
	return content.IsPathSegmentName(name)
}

func validateEventReporting(controller, instance, action, reason, note string, controllerPath, notePath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if controller == "" {
		errs = append(errs, field.Required(controllerPath, ""))
	} else {
		errs = append(errs, validateQualifiedName(controller, controllerPath)...)
	}
	for _, f := range []struct {
		name, value string
	}{{"reportingInstance", instance}, {"action", action}, {"reason", reason}} {
		switch {
		case f.value == "":
			errs = append(errs, field.Required(field.NewPath(f.name), ""))
		case len(f.value) > maxEventFieldLength:
			errs = append(errs, field.TooLong(field.NewPath(f.name), "", maxEventFieldLength))
		}
	}
	if len(note) > maxEventNoteLength {
		errs = append(errs, field.TooLong(notePath, "", maxEventNoteLength))
	}
	return errs
}

// validateEventsV1Event checks an events.k8s.io/v1 Event, whose API requires
// the reporting fields and forbids the deprecated ones.
func validateEventsV1Event(e *eventsv1.Event) field.ErrorList {
	errs := validateMeta(&e.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	if e.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.Regarding.Namespace == "" && e.Namespace != metav1.NamespaceDefault && e.Namespace != metav1.NamespaceSystem {
		errs = append(errs, field.Invalid(field.NewPath("regarding", "namespace"), e.Regarding.Namespace, "does not match event.namespace"))
	}
	errs = append(errs, validateEnum(e.Type, field.NewPath("type"), corev1.EventTypeNormal, corev1.EventTypeWarning)...)
	errs = append(errs, validateEventReporting(e.ReportingController, e.ReportingInstance, e.Action, e.Reason, e.Note,
		field.NewPath("reportingController"), field.NewPath("note"))...)
	if !e.DeprecatedFirstTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedFirstTimestamp"), e.DeprecatedFirstTimestamp, "needs to be unset"))
	}
	if !e.DeprecatedLastTimestamp.IsZero() {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedLastTimestamp"), e.DeprecatedLastTimestamp, "needs to be unset"))
	}
	if e.DeprecatedCount != 0 {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedCount"), e.DeprecatedCount, "needs to be unset"))
	}
	if e.DeprecatedSource.Component != "" || e.DeprecatedSource.Host != "" {
		errs = append(errs, field.Invalid(field.NewPath("deprecatedSource"), e.DeprecatedSource, "needs to be unset"))
	}
	if s := e.Series; s != nil {
		if s.Count < 2 {
			errs = append(errs, field.Invalid(field.NewPath("series", "count"), s.Count, "should be at least 2"))
		}
		if s.LastObservedTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("series", "lastObservedTime"), ""))
		}
	}
	return errs
}

// validateEventsV1EventUpdate: an event may only be updated to record
// another occurrence (its series).
func validateEventsV1EventUpdate(e, old *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name     string
		now, was interface{}
	}{
		{"regarding", e.Regarding, old.Regarding},
		{"related", e.Related, old.Related},
		{"reason", e.Reason, old.Reason},
		{"note", e.Note, old.Note},
		{"type", e.Type, old.Type},
		{"action", e.Action, old.Action},
		{"reportingController", e.ReportingController, old.ReportingController},
		{"reportingInstance", e.ReportingInstance, old.ReportingInstance},
		{"eventTime", e.EventTime, old.EventTime},
	} {
		errs = append(errs, apimachineryvalidation.ValidateImmutableField(f.now, f.was, field.NewPath(f.name))...)
	}
	return errs
}

// Persistent volumes and claims.

var volumeAccessModes = []corev1.PersistentVolumeAccessMode{
	corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod,
}

func preparePersistentVolumeForCreate(v *corev1.PersistentVolume) {
	now := metav1.NewTime(time.Now())
	v.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending, LastPhaseTransitionTime: &now}
}

func defaultPersistentVolume(v *corev1.PersistentVolume) {
	if v.Status.Phase == "" {
		v.Status.Phase = corev1.VolumePending
	}
	if v.Spec.PersistentVolumeReclaimPolicy == "" {
		v.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if v.Spec.VolumeMode == nil {
		v.Spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
	}
	if h := v.Spec.HostPath; h != nil && h.Type == nil {
		h.Type = new(corev1.HostPathUnset)
	}
	if i := v.Spec.ISCSI; i != nil && i.ISCSIInterface == "" {
		i.ISCSIInterface = "default"
	}
}

func defaultPersistentVolumeClaim(c *corev1.PersistentVolumeClaim) {
	if c.Status.Phase == "" {
		c.Status.Phase = corev1.ClaimPending
	}
	defaultPersistentVolumeClaimSpec(&c.Spec)
}

func defaultPersistentVolumeClaimSpec(s *corev1.PersistentVolumeClaimSpec) {
	if s.VolumeMode == nil {
		s.VolumeMode = new(corev1.PersistentVolumeFilesystem)
	}
}

func validateAccessModes(modes []corev1.PersistentVolumeAccessMode, p *field.Path) field.ErrorList {
	if len(modes) == 0 {
		return field.ErrorList{field.Required(p, "at least 1 access mode is required")}
	}
	var errs field.ErrorList
	for _, m := range modes {
		errs = append(errs, validateEnum(m, p, volumeAccessModes...)...)
		if m == corev1.ReadWriteOncePod && len(modes) > 1 {
			errs = append(errs, field.Forbidden(p, "may not use ReadWriteOncePod with other access modes"))
		}
	}
	return errs
}

func validateVolumeMode(m *corev1.PersistentVolumeMode, p *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	return validateEnum(*m, p, corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem)
}

func validatePersistentVolume(v *corev1.PersistentVolume) field.ErrorList {
	errs := validateMeta(&v.ObjectMeta, false, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	errs = append(errs, validateAccessModes(v.Spec.AccessModes, spec.Child("accessModes"))...)

	cp := spec.Child("capacity")
	if len(v.Spec.Capacity) == 0 {
		errs = append(errs, field.Required(cp, ""))
	} else if _, ok := v.Spec.Capacity[corev1.ResourceStorage]; !ok || len(v.Spec.Capacity) > 1 {
		var keys []corev1.ResourceName
		for k := range v.Spec.Capacity {
			keys = append(keys, k)
		}
		errs = append(errs, field.NotSupported(cp, keys, []corev1.ResourceName{corev1.ResourceStorage}))
	}
	for name, q := range v.Spec.Capacity {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(cp.Key(string(name)), q.String(), apimachineryvalidation.IsNegativeErrorMsg))
		}
	}
	errs = append(errs, validateOptionalEnum(v.Spec.PersistentVolumeReclaimPolicy, spec.Child("persistentVolumeReclaimPolicy"),
		corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain)...)
	errs = append(errs, validateVolumeMode(v.Spec.VolumeMode, spec.Child("volumeMode"))...)
	if v.Spec.StorageClassName != "" {
		errs = append(errs, validateDNSSubdomain(v.Spec.StorageClassName, spec.Child("storageClassName"))...)
	}
	if r := v.Spec.ClaimRef; r != nil {
		if r.Name == "" {
			errs = append(errs, field.Required(spec.Child("claimRef", "name"), ""))
		}
		if r.Namespace == "" {
			errs = append(errs, field.Required(spec.Child("claimRef", "namespace"), ""))
		}
	}
	if na := v.Spec.NodeAffinity; na != nil && na.Required != nil {
		errs = append(errs, validateNodeSelector(na.Required, spec.Child("nodeAffinity", "required"))...)
	}

	src := &v.Spec.PersistentVolumeSource
	if oneOf := validateOneOf(src, spec, "volume type"); len(oneOf) > 0 {
		return append(errs, oneOf...)
	}
	switch {
	case src.HostPath != nil:
		errs = append(errs, validateHostPath(src.HostPath, spec.Child("hostPath"))...)
	case src.Local != nil:
		lp := spec.Child("local", "path")
		switch {
		case src.Local.Path == "":
			errs = append(errs, field.Required(lp, ""))
		case !path.IsAbs(src.Local.Path):
			errs = append(errs, field.Invalid(lp, src.Local.Path, "must be an absolute path"))
		}
		errs = append(errs, validateNoBacksteps(src.Local.Path, lp)...)
		if v.Spec.NodeAffinity == nil || v.Spec.NodeAffinity.Required == nil {
			errs = append(errs, field.Required(spec.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	case src.NFS != nil:
		errs = append(errs, validateNFS(src.NFS, spec.Child("nfs"))...)
	case src.CSI != nil:
		cp := spec.Child("csi")
		if src.CSI.Driver == "" {
			errs = append(errs, field.Required(cp.Child("driver"), ""))
		}
		if src.CSI.VolumeHandle == "" {
			errs = append(errs, field.Required(cp.Child("volumeHandle"), ""))
		}
	}
	return errs
}

// validatePersistentVolumeUpdate: a volume's source and mode are fixed at
// creation, and its node affinity once set.
func validatePersistentVolumeUpdate(v, old *corev1.PersistentVolume) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if !equality.Semantic.DeepEqual(v.Spec.PersistentVolumeSource, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(spec.Child("persistentvolumesource"), "spec.persistentvolumesource is immutable after creation"))
	}
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(v.Spec.VolumeMode, old.Spec.VolumeMode, spec.Child("volumeMode"))...)
	if old.Spec.NodeAffinity != nil {
		errs = append(errs, apimachineryvalidation.ValidateImmutableField(v.Spec.NodeAffinity, old.Spec.NodeAffinity, spec.Child("nodeAffinity"))...)
	}
	return errs
}

func validatePersistentVolumeClaim(c *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := validateMeta(&c.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	return append(errs, validatePersistentVolumeClaimSpec(&c.Spec, field.NewPath("spec"))...)
}

// validatePersistentVolumeClaimSpec checks a claim's spec, a claim's or a
// claim template's.
func validatePersistentVolumeClaimSpec(s *corev1.PersistentVolumeClaimSpec, p *field.Path) field.ErrorList {
	errs := validateAccessModes(s.AccessModes, p.Child("accessModes"))
	errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	rp := p.Child("resources")
	storage, ok := s.Resources.Requests[corev1.ResourceStorage]
	switch {
	case !ok:
		errs = append(errs, field.Required(rp.Child("requests").Key(string(corev1.ResourceStorage)), ""))
	case storage.Sign() <= 0:
		errs = append(errs, field.Invalid(rp.Child("requests").Key(string(corev1.ResourceStorage)), storage.String(), "must be greater than zero"))
	}
	for name, q := range s.Resources.Requests {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(rp.Child("requests").Key(string(name)), q.String(), apimachineryvalidation.IsNegativeErrorMsg))
		}
	}
	for name, q := range s.Resources.Limits {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(rp.Child("limits").Key(string(name)), q.String(), apimachineryvalidation.IsNegativeErrorMsg))
		}
	}
	if s.StorageClassName != nil && *s.StorageClassName != "" {
		errs = append(errs, validateDNSSubdomain(*s.StorageClassName, p.Child("storageClassName"))...)
	}
	if s.VolumeAttributesClassName != nil && *s.VolumeAttributesClassName != "" {
		errs = append(errs, validateDNSSubdomain(*s.VolumeAttributesClassName, p.Child("volumeAttributesClassName"))...)
	}
	errs = append(errs, validateVolumeMode(s.VolumeMode, p.Child("volumeMode"))...)
	if d := s.DataSource; d != nil {
		dp := p.Child("dataSource")
		if d.Name == "" {
			errs = append(errs, field.Required(dp.Child("name"), ""))
		}
		if d.Kind == "" {
			errs = append(errs, field.Required(dp.Child("kind"), ""))
		}
		if (d.APIGroup == nil || *d.APIGroup == "") && d.Kind != "" && d.Kind != "PersistentVolumeClaim" {
			errs = append(errs, field.Invalid(dp, d.Kind, "must be 'PersistentVolumeClaim' when referencing the default apiGroup"))
		}
	}
	if r := s.DataSourceRef; r != nil {
		rp := p.Child("dataSourceRef")
		if r.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), ""))
		}
		if r.Kind == "" {
			errs = append(errs, field.Required(rp.Child("kind"), ""))
		}
		if d := s.DataSource; d != nil && (d.Name != r.Name || d.Kind != r.Kind || !equality.Semantic.DeepEqual(d.APIGroup, r.APIGroup)) {
			errs = append(errs, field.Invalid(p, fmt.Sprintf("%s/%s", r.Kind, r.Name), "must match dataSourceRef when both dataSource and dataSourceRef are set"))
		}
	}
	return errs
}

// validatePersistentVolumeClaimUpdate: a claim's spec is fixed, except
// that the binder sets volumeName once, a missing storage class may be set,
// and a bound claim may grow (never shrink) its storage request.
func validatePersistentVolumeClaimUpdate(c, old *corev1.PersistentVolumeClaim) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	munged := c.Spec.DeepCopy()
	if old.Spec.VolumeName == "" {
		munged.VolumeName = old.Spec.VolumeName
	}
	if old.Spec.StorageClassName == nil {
		munged.StorageClassName = nil
	}
	bound := c.Status.Phase == corev1.ClaimBound
	if bound {
		munged.Resources.Requests = old.Spec.Resources.Requests
		munged.VolumeAttributesClassName = old.Spec.VolumeAttributesClassName
	}
	if !equality.Semantic.DeepEqual(munged, &old.Spec) {
		errs = append(errs, field.Forbidden(spec, "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"))
	}
	newSize := c.Spec.Resources.Requests[corev1.ResourceStorage]
	oldSize := old.Spec.Resources.Requests[corev1.ResourceStorage]
	if bound && newSize.Cmp(oldSize) < 0 {
		errs = append(errs, field.Forbidden(spec.Child("resources", "requests", "storage"), "field can not be less than previous value"))
	}
	return errs
}

// StorageClass.

func defaultStorageClass(s *storagev1.StorageClass) {
	if s.ReclaimPolicy == nil {
		s.ReclaimPolicy = new(corev1.PersistentVolumeReclaimDelete)
	}
	if s.VolumeBindingMode == nil {
		s.VolumeBindingMode = new(storagev1.VolumeBindingImmediate)
	}
}

func validateStorageClass(s *storagev1.StorageClass) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, false, apimachineryvalidation.NameIsDNSSubdomain)
	pp := field.NewPath("provisioner")
	if s.Provisioner == "" {
		errs = append(errs, field.Required(pp, ""))
	} else {
		errs = append(errs, validateQualifiedName(strings.ToLower(s.Provisioner), pp)...)
	}
	params := field.NewPath("parameters")
	if len(s.Parameters) > maxStorageClassParameters {
		errs = append(errs, field.TooMany(params, len(s.Parameters), maxStorageClassParameters))
	}
	size := 0
	for k, v := range s.Parameters {
		if k == "" {
			errs = append(errs, field.Invalid(params, k, "field can not be empty."))
		}
		size += len(k) + len(v)
	}
	if size > maxStorageClassParametersBytes {
		errs = append(errs, field.TooLong(params, "", maxStorageClassParametersBytes))
	}
	if r := s.ReclaimPolicy; r != nil {
		errs = append(errs, validateEnum(*r, field.NewPath("reclaimPolicy"), corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain)...)
	}
	if m := s.VolumeBindingMode; m != nil {
		errs = append(errs, validateEnum(*m, field.NewPath("volumeBindingMode"), storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer)...)
	}
	for i, t := range s.AllowedTopologies {
		tp := field.NewPath("allowedTopologies").Index(i)
		if len(t.MatchLabelExpressions) == 0 {
			errs = append(errs, field.Required(tp.Child("matchLabelExpressions"), "must contain at least one requirement"))
		}
		for j, r := range t.MatchLabelExpressions {
			rp := tp.Child("matchLabelExpressions").Index(j)
			errs = append(errs, metav1validation.ValidateLabelName(r.Key, rp.Child("key"))...)
			if len(r.Values) == 0 {
				errs = append(errs, field.Required(rp.Child("values"), "must specify as least one value"))
			}
		}
	}
	return errs
}

// validateStorageClassUpdate: everything that shapes the volumes a class
// provisions is fixed.
func validateStorageClassUpdate(s, old *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	if !equality.Semantic.DeepEqual(s.Parameters, old.Parameters) {
		errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if s.Provisioner != old.Provisioner {
		errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !equality.Semantic.DeepEqual(s.ReclaimPolicy, old.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(s.VolumeBindingMode, old.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
	return errs
}

// Lease.

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	errs := validateMeta(&l.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(spec.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	errs = append(errs, validateOptionalNonNegative(l.Spec.LeaseTransitions, spec.Child("leaseTransitions"))...)
	if s := l.Spec.Strategy; s != nil {
		errs = append(errs, validateEnum(*s, spec.Child("strategy"), coordinationv1.OldestEmulationVersion)...)
	}
	if l.Spec.PreferredHolder != nil && *l.Spec.PreferredHolder != "" && l.Spec.Strategy == nil {
		errs = append(errs, field.Forbidden(spec.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

// Scale (the scale subresource of Deployments, ReplicaSets, StatefulSets).

func validateScale(s *autoscalingv1.Scale) field.ErrorList {
	return validateNonNegative(s.Spec.Replicas, field.NewPath("spec", "replicas"))
}
