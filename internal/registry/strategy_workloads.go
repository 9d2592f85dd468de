package registry

// Workloads: Deployment, ReplicaSet, DaemonSet, StatefulSet (apps/v1), Job
// and CronJob (batch/v1). Their pod templates get the pod spec defaults and
// validation of strategy_pod.go, without the pod-only ones (requests from
// limits, admission defaults).

import (
	"fmt"
	"math"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Job labels and limits.
const (
	jobControllerUIDLabel       = batchv1.ControllerUidLabel // batch.kubernetes.io/controller-uid
	jobNameLabel                = batchv1.JobNameLabel       // batch.kubernetes.io/job-name
	legacyJobControllerUIDLabel = "controller-uid"
	legacyJobNameLabel          = "job-name"
	defaultJobBackoffLimit      = 6
	maxIndexedJobParallelism    = 100000
	maxPodFailurePolicyRules    = 20
	// maxCronJobNameLength leaves room for the 11-character suffix of the
	// Jobs a CronJob creates.
	maxCronJobNameLength = validation.DNS1035LabelMaxLength - 11
)

// Defaults.

func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = new(int32(1))
	}
	s := &d.Spec.Strategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = new(intstr.FromString("25%"))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = new(intstr.FromString("25%"))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = new(int32(10))
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = new(int32(600))
	}
	defaultPodSpec(&d.Spec.Template.Spec)
}

func defaultReplicaSet(r *appsv1.ReplicaSet) {
	if r.Spec.Replicas == nil {
		r.Spec.Replicas = new(int32(1))
	}
	defaultPodSpec(&r.Spec.Template.Spec)
}

func defaultDaemonSet(d *appsv1.DaemonSet) {
	s := &d.Spec.UpdateStrategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(1))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = new(intstr.FromInt32(0))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = new(int32(10))
	}
	defaultPodSpec(&d.Spec.Template.Spec)
}

func defaultStatefulSet(s *appsv1.StatefulSet) {
	if s.Spec.PodManagementPolicy == "" {
		s.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	u := &s.Spec.UpdateStrategy
	if u.Type == "" {
		u.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if u.RollingUpdate == nil {
			u.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if u.Type == appsv1.RollingUpdateStatefulSetStrategyType && u.RollingUpdate != nil {
		if u.RollingUpdate.Partition == nil {
			u.RollingUpdate.Partition = new(int32(0))
		}
		if u.RollingUpdate.MaxUnavailable == nil {
			u.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(1))
		}
	}
	if s.Spec.PersistentVolumeClaimRetentionPolicy == nil {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p.WhenDeleted == "" {
		p.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p.WhenScaled == "" {
		p.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if s.Spec.Replicas == nil {
		s.Spec.Replicas = new(int32(1))
	}
	if s.Spec.RevisionHistoryLimit == nil {
		s.Spec.RevisionHistoryLimit = new(int32(10))
	}
	for i := range s.Spec.VolumeClaimTemplates {
		defaultPersistentVolumeClaim(&s.Spec.VolumeClaimTemplates[i])
	}
	defaultPodSpec(&s.Spec.Template.Spec)
}

// defaultJob applies batch/v1's Job defaults and, unless the user asked for
// a manual selector, generates the selector and pod labels from the Job's
// uid (set by the server before defaulting). Labels of a Job that has none
// are the template's, as in batch/v1.
func defaultJob(j *batchv1.Job) {
	s := &j.Spec
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = new(int32(1))
		s.Parallelism = new(int32(1))
	}
	if s.Parallelism == nil {
		s.Parallelism = new(int32(1))
	}
	if s.BackoffLimit == nil {
		if s.BackoffLimitPerIndex != nil {
			s.BackoffLimit = new(int32(math.MaxInt32))
		} else {
			s.BackoffLimit = new(int32(defaultJobBackoffLimit))
		}
	}
	if s.CompletionMode == nil {
		s.CompletionMode = new(batchv1.NonIndexedCompletion)
	}
	if s.Suspend == nil {
		s.Suspend = new(false)
	}
	if s.PodFailurePolicy != nil {
		for i := range s.PodFailurePolicy.Rules {
			for k := range s.PodFailurePolicy.Rules[i].OnPodConditions {
				if c := &s.PodFailurePolicy.Rules[i].OnPodConditions[k]; c.Status == "" {
					c.Status = corev1.ConditionTrue
				}
			}
		}
	}
	if s.PodReplacementPolicy == nil {
		if s.PodFailurePolicy != nil {
			s.PodReplacementPolicy = new(batchv1.Failed)
		} else {
			s.PodReplacementPolicy = new(batchv1.TerminatingOrFailed)
		}
	}
	if s.ManualSelector == nil {
		s.ManualSelector = new(false)
	}
	if !*s.ManualSelector && j.UID != "" {
		generateJobSelector(j)
	}
	if len(j.Labels) == 0 && s.Template.Labels != nil {
		j.Labels = map[string]string{}
		for k, v := range s.Template.Labels {
			j.Labels[k] = v
		}
	}
	defaultPodSpec(&s.Template.Spec)
}

// generateJobSelector labels the Job's pods with its name and uid and
// selects them by uid, leaving labels the user set alone (validation
// rejects a uid label that is not the Job's).
func generateJobSelector(j *batchv1.Job) {
	t := &j.Spec.Template
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for key, value := range map[string]string{
		legacyJobNameLabel:          j.Name,
		jobNameLabel:                j.Name,
		legacyJobControllerUIDLabel: string(j.UID),
		jobControllerUIDLabel:       string(j.UID),
	} {
		if _, ok := t.Labels[key]; !ok {
			t.Labels[key] = value
		}
	}
	if j.Spec.Selector == nil {
		j.Spec.Selector = &metav1.LabelSelector{}
	}
	if j.Spec.Selector.MatchLabels == nil {
		j.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := j.Spec.Selector.MatchLabels[jobControllerUIDLabel]; !ok {
		j.Spec.Selector.MatchLabels[jobControllerUIDLabel] = string(j.UID)
	}
}

// defaultCronJob applies batch/v1's CronJob defaults; the Job template's
// spec gets only the pod spec defaults (it is not a Job yet).
func defaultCronJob(c *batchv1.CronJob) {
	s := &c.Spec
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if s.Suspend == nil {
		s.Suspend = new(false)
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		s.SuccessfulJobsHistoryLimit = new(int32(3))
	}
	if s.FailedJobsHistoryLimit == nil {
		s.FailedJobsHistoryLimit = new(int32(1))
	}
	defaultPodSpec(&s.JobTemplate.Spec.Template.Spec)
}

// Validation.

// validateControllerTemplate checks the selector and pod template of an
// apps/v1 controller: the selector matches the template, whose pods restart
// Always and have no active deadline.
func validateControllerTemplate(sel *metav1.LabelSelector, t *corev1.PodTemplateSpec, spec *field.Path, extraVolumes []string) field.ErrorList {
	tp := spec.Child("template")
	errs := validateSelectorForTemplate(sel, t.Labels, spec.Child("selector"), tp.Child("metadata", "labels"))
	errs = append(errs, validatePodTemplate(t, tp, extraVolumes)...)
	if rp := t.Spec.RestartPolicy; rp != "" && rp != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(tp.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return errs
}

func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	errs := validateMeta(&d.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	errs = append(errs, validateOptionalNonNegative(d.Spec.Replicas, spec.Child("replicas"))...)
	errs = append(errs, validateControllerTemplate(d.Spec.Selector, &d.Spec.Template, spec, nil)...)
	errs = append(errs, validateNonNegative(d.Spec.MinReadySeconds, spec.Child("minReadySeconds"))...)
	errs = append(errs, validateOptionalNonNegative(d.Spec.RevisionHistoryLimit, spec.Child("revisionHistoryLimit"))...)

	sp := spec.Child("strategy")
	s := d.Spec.Strategy
	errs = append(errs, validateEnum(s.Type, sp.Child("type"), appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType)...)
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(sp.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if s.RollingUpdate == nil {
			errs = append(errs, field.Required(sp.Child("rollingUpdate"), "this should be defaulted and never be nil"))
			break
		}
		rp := sp.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(s.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateNotMoreThan100Percent(s.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(s.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		if isZeroIntOrPercent(s.RollingUpdate.MaxUnavailable) && isZeroIntOrPercent(s.RollingUpdate.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), s.RollingUpdate.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
		}
	}
	if p := d.Spec.ProgressDeadlineSeconds; p != nil {
		errs = append(errs, validateNonNegative(*p, spec.Child("progressDeadlineSeconds"))...)
		if *p <= d.Spec.MinReadySeconds {
			errs = append(errs, field.Invalid(spec.Child("progressDeadlineSeconds"), *p, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateReplicaSet(r *appsv1.ReplicaSet) field.ErrorList {
	errs := validateMeta(&r.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	errs = append(errs, validateOptionalNonNegative(r.Spec.Replicas, spec.Child("replicas"))...)
	errs = append(errs, validateNonNegative(r.Spec.MinReadySeconds, spec.Child("minReadySeconds"))...)
	return append(errs, validateControllerTemplate(r.Spec.Selector, &r.Spec.Template, spec, nil)...)
}

func validateDaemonSet(d *appsv1.DaemonSet) field.ErrorList {
	errs := validateMeta(&d.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	errs = append(errs, validateControllerTemplate(d.Spec.Selector, &d.Spec.Template, spec, nil)...)
	errs = append(errs, validateNonNegative(d.Spec.MinReadySeconds, spec.Child("minReadySeconds"))...)
	errs = append(errs, validateOptionalNonNegative(d.Spec.RevisionHistoryLimit, spec.Child("revisionHistoryLimit"))...)

	up := spec.Child("updateStrategy")
	u := d.Spec.UpdateStrategy
	errs = append(errs, validateEnum(u.Type, up.Child("type"), appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType)...)
	if u.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if u.RollingUpdate == nil {
			return append(errs, field.Required(up.Child("rollingUpdate"), ""))
		}
		rp := up.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(u.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateNotMoreThan100Percent(u.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(u.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		errs = append(errs, validateNotMoreThan100Percent(u.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		noUnavailable := u.RollingUpdate.MaxUnavailable == nil || isZeroIntOrPercent(u.RollingUpdate.MaxUnavailable)
		noSurge := u.RollingUpdate.MaxSurge == nil || isZeroIntOrPercent(u.RollingUpdate.MaxSurge)
		switch {
		case noUnavailable && noSurge:
			errs = append(errs, field.Required(rp.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		case !noUnavailable && !noSurge:
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), u.RollingUpdate.MaxSurge.String(), "may not be set when maxUnavailable is non-zero"))
		}
	}
	return errs
}

func validateStatefulSet(s *appsv1.StatefulSet) field.ErrorList {
	errs := validateMeta(&s.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	errs = append(errs, validateEnum(s.Spec.PodManagementPolicy, spec.Child("podManagementPolicy"),
		appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)...)

	up := spec.Child("updateStrategy")
	u := s.Spec.UpdateStrategy
	errs = append(errs, validateEnum(u.Type, up.Child("type"), appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)...)
	switch {
	case u.Type == appsv1.OnDeleteStatefulSetStrategyType && u.RollingUpdate != nil:
		errs = append(errs, field.Invalid(up.Child("rollingUpdate"), u.RollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"))
	case u.Type == appsv1.RollingUpdateStatefulSetStrategyType && u.RollingUpdate != nil:
		rp := up.Child("rollingUpdate")
		errs = append(errs, validateOptionalNonNegative(u.RollingUpdate.Partition, rp.Child("partition"))...)
		if m := u.RollingUpdate.MaxUnavailable; m != nil {
			errs = append(errs, validateIntOrPercent(m, rp.Child("maxUnavailable"))...)
			errs = append(errs, validateNotMoreThan100Percent(m, rp.Child("maxUnavailable"))...)
			if isZeroIntOrPercent(m) {
				errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), m.String(), "must be greater than 0"))
			}
		}
	}
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pp := spec.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, validateEnum(p.WhenDeleted, pp.Child("whenDeleted"), appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)...)
		errs = append(errs, validateEnum(p.WhenScaled, pp.Child("whenScaled"), appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType)...)
	}
	errs = append(errs, validateOptionalNonNegative(s.Spec.Replicas, spec.Child("replicas"))...)
	errs = append(errs, validateNonNegative(s.Spec.MinReadySeconds, spec.Child("minReadySeconds"))...)
	errs = append(errs, validateOptionalNonNegative(s.Spec.RevisionHistoryLimit, spec.Child("revisionHistoryLimit"))...)
	if s.Spec.Ordinals != nil {
		errs = append(errs, validateNonNegative(s.Spec.Ordinals.Start, spec.Child("ordinals", "start"))...)
	}
	if s.Spec.ServiceName != "" {
		errs = append(errs, invalidEach(spec.Child("serviceName"), s.Spec.ServiceName, apimachineryvalidation.NameIsDNS1035Label(s.Spec.ServiceName, false))...)
	}
	var claims []string
	for i := range s.Spec.VolumeClaimTemplates {
		c := &s.Spec.VolumeClaimTemplates[i]
		cp := spec.Child("volumeClaimTemplates").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("metadata", "name"), ""))
		} else {
			errs = append(errs, validateDNSLabel(c.Name, cp.Child("metadata", "name"))...)
			claims = append(claims, c.Name)
		}
		errs = append(errs, metav1validation.ValidateLabels(c.Labels, cp.Child("metadata", "labels"))...)
		errs = append(errs, validatePersistentVolumeClaimSpec(&c.Spec, cp.Child("spec"))...)
	}
	return append(errs, validateControllerTemplate(s.Spec.Selector, &s.Spec.Template, spec, claims)...)
}

// validateStatefulSetUpdate: only some of a StatefulSet's spec may change.
func validateStatefulSetUpdate(s, old *appsv1.StatefulSet) field.ErrorList {
	munged := s.Spec.DeepCopy()
	munged.Replicas = old.Spec.Replicas
	munged.Ordinals = old.Spec.Ordinals
	munged.Template = old.Spec.Template
	munged.UpdateStrategy = old.Spec.UpdateStrategy
	munged.RevisionHistoryLimit = old.Spec.RevisionHistoryLimit
	munged.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	munged.MinReadySeconds = old.Spec.MinReadySeconds
	if !equality.Semantic.DeepEqual(munged, &old.Spec) {
		return field.ErrorList{field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than "+
			"'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "+
			"'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")}
	}
	return nil
}

func validateJob(j *batchv1.Job) field.ErrorList {
	errs := validateMeta(&j.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")
	manual := j.Spec.ManualSelector != nil && *j.Spec.ManualSelector
	if !manual && j.UID != "" {
		errs = append(errs, validateGeneratedJobSelector(j, spec)...)
	}
	errs = append(errs, validateSelectorForTemplate(j.Spec.Selector, j.Spec.Template.Labels, spec.Child("selector"), spec.Child("template", "metadata", "labels"))...)
	return append(errs, validateJobSpec(&j.Spec, spec)...)
}

// validateGeneratedJobSelector: the selector and pod labels generated from
// the Job's uid must not have been replaced by others.
func validateGeneratedJobSelector(j *batchv1.Job, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	uid := string(j.UID)
	lp := spec.Child("template", "metadata", "labels")
	for _, key := range []string{jobControllerUIDLabel, legacyJobControllerUIDLabel} {
		if v, ok := j.Spec.Template.Labels[key]; ok && v != uid {
			errs = append(errs, field.Invalid(lp.Key(key), v, fmt.Sprintf("must be '%s'", uid)))
		}
	}
	if j.Spec.Selector != nil && j.Spec.Selector.MatchLabels[jobControllerUIDLabel] != uid {
		errs = append(errs, field.Invalid(spec.Child("selector"), j.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

// validateJobSpec checks a Job's spec, or a CronJob's Job template spec,
// except the selector.
func validateJobSpec(s *batchv1.JobSpec, spec *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateOptionalNonNegative(s.Parallelism, spec.Child("parallelism"))...)
	errs = append(errs, validateOptionalNonNegative(s.Completions, spec.Child("completions"))...)
	errs = append(errs, validateOptionalNonNegative(s.ActiveDeadlineSeconds, spec.Child("activeDeadlineSeconds"))...)
	errs = append(errs, validateOptionalNonNegative(s.BackoffLimit, spec.Child("backoffLimit"))...)
	errs = append(errs, validateOptionalNonNegative(s.TTLSecondsAfterFinished, spec.Child("ttlSecondsAfterFinished"))...)

	indexed := s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion
	if s.CompletionMode != nil {
		errs = append(errs, validateEnum(*s.CompletionMode, spec.Child("completionMode"), batchv1.NonIndexedCompletion, batchv1.IndexedCompletion)...)
	}
	if indexed {
		if s.Completions == nil {
			errs = append(errs, field.Required(spec.Child("completions"), "when completion mode is Indexed"))
		}
		if s.Parallelism != nil && *s.Parallelism > maxIndexedJobParallelism {
			errs = append(errs, field.Invalid(spec.Child("parallelism"), *s.Parallelism, fmt.Sprintf("must be less than or equal to %d when completion mode is Indexed", maxIndexedJobParallelism)))
		}
	}
	if s.BackoffLimitPerIndex != nil {
		errs = append(errs, validateNonNegative(*s.BackoffLimitPerIndex, spec.Child("backoffLimitPerIndex"))...)
		if !indexed {
			errs = append(errs, field.Forbidden(spec.Child("backoffLimitPerIndex"), "requires indexed completion mode"))
		}
	}
	if s.MaxFailedIndexes != nil {
		errs = append(errs, validateNonNegative(*s.MaxFailedIndexes, spec.Child("maxFailedIndexes"))...)
		if s.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Required(spec.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
		}
	}
	if s.SuccessPolicy != nil && !indexed {
		errs = append(errs, field.Invalid(spec.Child("successPolicy"), s.SuccessPolicy, "requires indexed completion mode"))
	}
	if s.PodReplacementPolicy != nil {
		pp := spec.Child("podReplacementPolicy")
		errs = append(errs, validateEnum(*s.PodReplacementPolicy, pp, batchv1.TerminatingOrFailed, batchv1.Failed)...)
		if s.PodFailurePolicy != nil && *s.PodReplacementPolicy != batchv1.Failed {
			errs = append(errs, field.NotSupported(pp, *s.PodReplacementPolicy, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	errs = append(errs, validatePodFailurePolicy(s, spec)...)
	if s.ManagedBy != nil {
		errs = append(errs, validation.IsDomainPrefixedPath(spec.Child("managedBy"), *s.ManagedBy)...)
	}

	tp := spec.Child("template")
	errs = append(errs, validatePodTemplate(&s.Template, tp, nil)...)
	if rp := s.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever && rp != "" {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	return errs
}

// validatePodFailurePolicy checks the podFailurePolicy of the Job spec at
// specPath.
func validatePodFailurePolicy(s *batchv1.JobSpec, specPath *field.Path) field.ErrorList {
	pfp := s.PodFailurePolicy
	if pfp == nil {
		return nil
	}
	var errs field.ErrorList
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		errs = append(errs, field.Invalid(specPath.Child("template", "spec", "restartPolicy"), s.Template.Spec.RestartPolicy, "only \"Never\" is supported when podFailurePolicy is specified"))
	}
	rp := specPath.Child("podFailurePolicy", "rules")
	if len(pfp.Rules) > maxPodFailurePolicyRules {
		errs = append(errs, field.TooMany(rp, len(pfp.Rules), maxPodFailurePolicyRules))
	}
	for i, r := range pfp.Rules {
		ip := rp.Index(i)
		errs = append(errs, validateEnum(r.Action, ip.Child("action"), batchv1.PodFailurePolicyActionFailJob,
			batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount)...)
		if r.Action == batchv1.PodFailurePolicyActionFailIndex && s.BackoffLimitPerIndex == nil {
			errs = append(errs, field.Invalid(ip.Child("action"), r.Action, "requires the backoffLimitPerIndex to be set"))
		}
		switch {
		case r.OnExitCodes != nil && len(r.OnPodConditions) > 0:
			errs = append(errs, field.Invalid(ip, r, "specifying both OnExitCodes and OnPodConditions is not supported"))
		case r.OnExitCodes == nil && len(r.OnPodConditions) == 0:
			errs = append(errs, field.Invalid(ip, r, "specifying one of OnExitCodes and OnPodConditions is required"))
		case r.OnExitCodes != nil:
			ep := ip.Child("onExitCodes")
			errs = append(errs, validateEnum(r.OnExitCodes.Operator, ep.Child("operator"), batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn)...)
			if len(r.OnExitCodes.Values) == 0 {
				errs = append(errs, field.Invalid(ep.Child("values"), r.OnExitCodes.Values, "at least one value is required"))
			}
			seen := map[int32]bool{}
			for k, v := range r.OnExitCodes.Values {
				if r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && v == 0 {
					errs = append(errs, field.Invalid(ep.Child("values").Index(k), v, "must not be 0 for the In operator"))
				}
				if seen[v] {
					errs = append(errs, field.Duplicate(ep.Child("values").Index(k), v))
				}
				seen[v] = true
			}
		default:
			for k, c := range r.OnPodConditions {
				cp := ip.Child("onPodConditions").Index(k)
				errs = append(errs, validateQualifiedName(string(c.Type), cp.Child("type"))...)
				errs = append(errs, validateEnum(c.Status, cp.Child("status"), corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown)...)
			}
		}
	}
	return errs
}

// validateJobUpdate: a Job's selector, completion mode, failure policy and
// (most of) its template may not change; completions may only change with
// parallelism for an elastic Indexed Job. While a Job is suspended and has
// never started, the scheduling directives of its template may change.
func validateJobUpdate(j, old *batchv1.Job) field.ErrorList {
	spec := field.NewPath("spec")
	errs := apimachineryvalidation.ValidateImmutableField(j.Spec.Selector, old.Spec.Selector, spec.Child("selector"))
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(j.Spec.CompletionMode, old.Spec.CompletionMode, spec.Child("completionMode"))...)
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(j.Spec.PodFailurePolicy, old.Spec.PodFailurePolicy, spec.Child("podFailurePolicy"))...)
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(j.Spec.BackoffLimitPerIndex, old.Spec.BackoffLimitPerIndex, spec.Child("backoffLimitPerIndex"))...)
	errs = append(errs, apimachineryvalidation.ValidateImmutableField(j.Spec.ManagedBy, old.Spec.ManagedBy, spec.Child("managedBy"))...)
	if !equality.Semantic.DeepEqual(j.Spec.Completions, old.Spec.Completions) && !elasticIndexedJob(j, old) {
		errs = append(errs, field.Invalid(spec.Child("completions"), j.Spec.Completions, apimachineryvalidation.FieldImmutableErrorMsg))
	}

	template := j.Spec.Template.DeepCopy()
	suspendedNeverStarted := old.Spec.Suspend != nil && *old.Spec.Suspend && old.Status.StartTime == nil
	if suspendedNeverStarted {
		o := old.Spec.Template
		template.Labels, template.Annotations = o.Labels, o.Annotations
		template.Spec.NodeSelector = o.Spec.NodeSelector
		template.Spec.Affinity = o.Spec.Affinity
		template.Spec.Tolerations = o.Spec.Tolerations
		template.Spec.SchedulingGates = o.Spec.SchedulingGates
	}
	if !equality.Semantic.DeepEqual(template, &old.Spec.Template) {
		errs = append(errs, field.Invalid(spec.Child("template"), j.Spec.Template, apimachineryvalidation.FieldImmutableErrorMsg))
	}
	return errs
}

// elasticIndexedJob: an Indexed Job whose completions equal its parallelism
// may scale both together.
func elasticIndexedJob(j, old *batchv1.Job) bool {
	indexed := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
	equal := func(s batchv1.JobSpec) bool {
		return s.Completions != nil && s.Parallelism != nil && *s.Completions == *s.Parallelism
	}
	return indexed && equal(j.Spec) && equal(old.Spec)
}

func validateCronJob(c *batchv1.CronJob) field.ErrorList {
	errs := validateMeta(&c.ObjectMeta, true, apimachineryvalidation.NameIsDNSSubdomain)
	if len(c.Name) > maxCronJobNameLength {
		errs = append(errs, field.Invalid(metadataPath.Child("name"), c.Name, fmt.Sprintf("must be no more than %d characters", maxCronJobNameLength)))
	}
	spec := field.NewPath("spec")
	sp := spec.Child("schedule")
	switch {
	case c.Spec.Schedule == "":
		errs = append(errs, field.Required(sp, ""))
	case hasCronTimeZone(c.Spec.Schedule):
		errs = append(errs, field.Invalid(sp, c.Spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	default:
		if err := validateCronSchedule(c.Spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(sp, c.Spec.Schedule, err.Error()))
		}
	}
	if tz := c.Spec.TimeZone; tz != nil {
		if _, err := time.LoadLocation(*tz); err != nil || *tz == "" || *tz == "Local" {
			errs = append(errs, field.Invalid(spec.Child("timeZone"), *tz, "unknown time zone "+*tz))
		}
	}
	errs = append(errs, validateEnum(c.Spec.ConcurrencyPolicy, spec.Child("concurrencyPolicy"), batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent)...)
	errs = append(errs, validateOptionalNonNegative(c.Spec.StartingDeadlineSeconds, spec.Child("startingDeadlineSeconds"))...)
	errs = append(errs, validateOptionalNonNegative(c.Spec.SuccessfulJobsHistoryLimit, spec.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, validateOptionalNonNegative(c.Spec.FailedJobsHistoryLimit, spec.Child("failedJobsHistoryLimit"))...)

	jp := spec.Child("jobTemplate")
	jt := &c.Spec.JobTemplate
	errs = append(errs, metav1validation.ValidateLabels(jt.Labels, jp.Child("metadata", "labels"))...)
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(jt.Annotations, jp.Child("metadata", "annotations"))...)
	if jt.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jp.Child("spec", "selector"), jt.Spec.Selector, "`selector` will be auto-generated"))
	}
	if m := jt.Spec.ManualSelector; m != nil && *m {
		errs = append(errs, field.NotSupported(jp.Child("spec", "manualSelector"), *m, []string{"nil", "false"}))
	}
	return append(errs, validateJobSpec(&jt.Spec, jp.Child("spec"))...)
}
