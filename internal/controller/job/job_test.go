package job

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestIndexSetRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
	}{
		{"", -1, ""},
		{"0", -1, "0"},
		{"0,1,2", -1, "0-2"},
		{"5,1-3,7", -1, "1-3,5,7"},
		{"0-4,2", -1, "0-4"},
		{"1-9", 5, "1-4"},
		{"3,8", 5, "3"},
	} {
		s, err := parseIndexes(tc.in, tc.limit)
		if err != nil {
			t.Errorf("parseIndexes(%q): %v", tc.in, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("parseIndexes(%q, %d) = %q, want %q", tc.in, tc.limit, got, tc.want)
		}
	}
	for _, bad := range []string{"a", "3-1", "-1", "1,,2"} {
		if _, err := parseIndexes(bad, -1); err == nil {
			t.Errorf("parseIndexes(%q): no error", bad)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	base, max := 10*time.Second, 6*time.Minute
	for n, want := range map[int]time.Duration{
		0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second,
		6: 320 * time.Second, 7: 6 * time.Minute, 40: 6 * time.Minute,
	} {
		if got := backoffDelay(n, base, max); got != want {
			t.Errorf("backoffDelay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestBackoffsResetOnSuccess(t *testing.T) {
	b := newBackoffs()
	t0 := time.Unix(1000, 0)
	b.failed("ns/j", "a", t0)
	b.failed("ns/j", "b", t0.Add(time.Second))
	if got := b.remaining("ns/j", t0.Add(time.Second), time.Second, time.Minute); got != 2*time.Second {
		t.Errorf("after two failures: wait %v, want 2s", got)
	}
	b.succeeded("ns/j", t0.Add(2*time.Second))
	if got := b.remaining("ns/j", t0.Add(2*time.Second), time.Second, time.Minute); got != 0 {
		t.Errorf("after a success: wait %v, want 0", got)
	}
	b.failed("ns/j", "c", t0.Add(3*time.Second))
	if got := b.remaining("ns/j", t0.Add(3*time.Second), time.Second, time.Minute); got != time.Second {
		t.Errorf("one failure after the success: wait %v, want 1s", got)
	}
}

func failedPod(containers ...corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
		Status:     corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: containers},
	}
}

func exited(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func TestJudgeFailure(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget}}},
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr.To("main"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{1}}},
	}}}}
	disrupted := failedPod(exited("main", 42))
	disrupted.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}
	for name, tc := range map[string]struct {
		pod  *corev1.Pod
		want batchv1.PodFailurePolicyAction
	}{
		"condition first":           {disrupted, batchv1.PodFailurePolicyActionIgnore},
		"exit code in":              {failedPod(exited("main", 42)), batchv1.PodFailurePolicyActionFailJob},
		"other container":           {failedPod(exited("side", 42)), batchv1.PodFailurePolicyActionCount},
		"not in":                    {failedPod(exited("main", 3)), batchv1.PodFailurePolicyActionCount},
		"no rule":                   {failedPod(exited("main", 1)), ""},
		"exit 0 never matches":      {failedPod(exited("main", 0)), ""},
		"running pod is not judged": {&corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, ""},
	} {
		if got := judgeFailure(job, tc.pod).action; got != tc.want {
			t.Errorf("%s: action %q, want %q", name, got, tc.want)
		}
	}
}

func TestSuccessPolicy(t *testing.T) {
	job := &batchv1.Job{Spec: batchv1.JobSpec{
		CompletionMode: ptr.To(batchv1.IndexedCompletion),
		Completions:    ptr.To(int32(10)),
		SuccessPolicy: &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{
			{SucceededIndexes: ptr.To("0,2")},
			{SucceededIndexes: ptr.To("5-9"), SucceededCount: ptr.To(int32(2))},
			{SucceededCount: ptr.To(int32(4))},
		}},
	}}
	for in, want := range map[string]int{"": -1, "0": -1, "0,2": 0, "5,9": 1, "1,3,4,6": 2, "6,7": 1} {
		set, _ := parseIndexes(in, -1)
		if got := successRuleMatched(job, set, 10); got != want {
			t.Errorf("completed %q: rule %d, want %d", in, got, want)
		}
	}
}

func TestNewIndexedPod(t *testing.T) {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "work", UID: "u1"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec:       corev1.PodSpec{Subdomain: "svc", Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		}},
	}
	p := newPod(job, 3)
	if p.Annotations[indexAnnotation] != "3" || p.Labels[indexLabel] != "3" || p.Labels["a"] != "b" {
		t.Errorf("labels %v annotations %v", p.Labels, p.Annotations)
	}
	if p.Spec.Hostname != "work-3" || p.Spec.Subdomain != "svc" {
		t.Errorf("hostname %q subdomain %q", p.Spec.Hostname, p.Spec.Subdomain)
	}
	if len(p.Spec.Containers[0].Env) != 1 || p.Spec.Containers[0].Env[0].Name != indexEnv {
		t.Errorf("env %v", p.Spec.Containers[0].Env)
	}
	if !hasTrackingFinalizer(p) || metav1.GetControllerOf(p) == nil || metav1.GetControllerOf(p).UID != "u1" {
		t.Errorf("finalizers %v owners %v", p.Finalizers, p.OwnerReferences)
	}
	if job.Spec.Template.Labels[indexLabel] != "" || len(job.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Errorf("the template was changed")
	}
	if podIndex(p, 4) != 3 || podIndex(p, 3) != -1 {
		t.Errorf("podIndex")
	}
}

func TestExceedsBackoffLimit(t *testing.T) {
	restarting := func(n int32) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", RestartCount: n}}}}
	}
	job := func(policy corev1.RestartPolicy, limit int32) *batchv1.Job {
		return &batchv1.Job{Spec: batchv1.JobSpec{BackoffLimit: ptr.To(limit),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: policy}}}}
	}
	for name, tc := range map[string]struct {
		job    *batchv1.Job
		failed int
		active []*corev1.Pod
		want   bool
	}{
		"Never, within the limit":     {job(corev1.RestartPolicyNever, 2), 2, nil, false},
		"Never, beyond the limit":     {job(corev1.RestartPolicyNever, 2), 3, nil, true},
		"Never ignores restarts":      {job(corev1.RestartPolicyNever, 2), 0, []*corev1.Pod{restarting(5)}, false},
		"OnFailure, restarts below":   {job(corev1.RestartPolicyOnFailure, 3), 0, []*corev1.Pod{restarting(1), restarting(1)}, false},
		"OnFailure, restarts reach":   {job(corev1.RestartPolicyOnFailure, 3), 0, []*corev1.Pod{restarting(2), restarting(1)}, true},
		"OnFailure, limit 0":          {job(corev1.RestartPolicyOnFailure, 0), 0, []*corev1.Pod{restarting(1)}, true},
		"OnFailure, limit 0, healthy": {job(corev1.RestartPolicyOnFailure, 0), 0, []*corev1.Pod{restarting(0)}, false},
	} {
		if got := exceedsBackoffLimit(tc.job, tc.failed, tc.active); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}
