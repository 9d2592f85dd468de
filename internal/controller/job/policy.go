package job

import (
	"fmt"
	"slices"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// failureVerdict is what the Job's podFailurePolicy says about a failed pod.
type failureVerdict struct {
	// action is the matching rule's action; "" when no rule matched
	// (the failure counts).
	action  batchv1.PodFailurePolicyAction
	message string
}

// judgeFailure applies the Job's podFailurePolicy to a pod in phase
// Failed: the first rule that matches decides.
func judgeFailure(job *batchv1.Job, pod *corev1.Pod) failureVerdict {
	pfp := job.Spec.PodFailurePolicy
	if pfp == nil || pod.Status.Phase != corev1.PodFailed {
		return failureVerdict{}
	}
	for i, rule := range pfp.Rules {
		if r := rule.OnExitCodes; r != nil {
			if name, code, ok := matchExitCodes(r, pod); ok {
				return failureVerdict{action: rule.Action, message: fmt.Sprintf(
					"Container %s of pod %s/%s exited with code %d, matching the %s rule at index %d",
					name, pod.Namespace, pod.Name, code, rule.Action, i)}
			}
		}
		for _, pattern := range rule.OnPodConditions {
			if cond, ok := matchCondition(pattern, pod); ok {
				return failureVerdict{action: rule.Action, message: fmt.Sprintf(
					"Pod %s/%s has condition %s, matching the %s rule at index %d",
					pod.Namespace, pod.Name, cond, rule.Action, i)}
			}
		}
	}
	return failureVerdict{}
}

// matchExitCodes finds a container of pod that terminated with a non-zero
// exit code the requirement selects.
func matchExitCodes(r *batchv1.PodFailurePolicyOnExitCodesRequirement, pod *corev1.Pod) (string, int32, bool) {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			if r.ContainerName != nil && *r.ContainerName != cs.Name {
				continue
			}
			in := slices.Contains(r.Values, t.ExitCode)
			if (r.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in) ||
				(r.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in) {
				return cs.Name, t.ExitCode, true
			}
		}
	}
	return "", 0, false
}

func matchCondition(p batchv1.PodFailurePolicyOnPodConditionsPattern, pod *corev1.Pod) (corev1.PodConditionType, bool) {
	want := p.Status
	if want == "" {
		want = corev1.ConditionTrue
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == p.Type && c.Status == want {
			return c.Type, true
		}
	}
	return "", false
}

// successRuleMatched returns the index of the first successPolicy rule the
// completed indexes of an Indexed Job satisfy, or -1.
func successRuleMatched(job *batchv1.Job, completed indexSet, completions int) int {
	sp := job.Spec.SuccessPolicy
	if sp == nil || !isIndexed(job) {
		return -1
	}
	for i, rule := range sp.Rules {
		switch {
		case rule.SucceededIndexes != nil:
			want, err := parseIndexes(*rule.SucceededIndexes, completions)
			if err != nil || len(want) == 0 {
				continue
			}
			n := 0
			for ix := range want {
				if completed.has(ix) {
					n++
				}
			}
			if (rule.SucceededCount == nil && n == len(want)) || (rule.SucceededCount != nil && n >= int(*rule.SucceededCount)) {
				return i
			}
		case rule.SucceededCount != nil:
			if len(completed) >= int(*rule.SucceededCount) {
				return i
			}
		}
	}
	return -1
}
