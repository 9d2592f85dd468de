package job_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/job"
	"skiff/internal/controller/manager"
	"skiff/internal/server/servertest"
)

const ns = "default"

// startJobController starts a server without its own controllers and runs
// a Job controller with opts against it.
func startJobController(t *testing.T, opts job.Options) kubernetes.Interface {
	t.Helper()
	s := servertest.Start(t, "", func(c *config.Server) { c.DisableControllerManager = true })
	client := s.Client(t)
	s.RunController(t, "job", func(c *controller.Context) (manager.Runner, error) {
		return job.New(c, opts)
	})
	return client
}

func newJob(name string, mutate func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
		}}},
	}
	if mutate != nil {
		mutate(j)
	}
	return j
}

// waitFor is servertest.Eventually for a condition that reports whether
// it holds and, if it can tell, what went wrong.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	servertest.Eventually(t, timeout, what, func() error {
		if ok, err := cond(); !ok {
			return cmp.Or(err, errors.New("condition not met"))
		}
		return nil
	})
}

// jobPods lists the pods of the Job named name.
func jobPods(t *testing.T, c kubernetes.Interface, name string) []corev1.Pod {
	t.Helper()
	l, err := c.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + name})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

func running(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// finishPod plays the kubelet: the pod's container exits with code and
// the pod becomes Succeeded (code 0) or Failed.
func finishPod(t *testing.T, c kubernetes.Interface, name string, code int32) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		p.Status.Phase = corev1.PodSucceeded
		reason := "Completed"
		if code != 0 {
			p.Status.Phase, reason = corev1.PodFailed, "Error"
		}
		p.Status.StartTime = &now
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{
			Name: "main", Image: "busybox",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: code, Reason: reason, StartedAt: now, FinishedAt: now}},
		}}
		_, err = c.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("finish pod %s: %v", name, err)
	}
}

func getJob(t *testing.T, c kubernetes.Interface, name string) *batchv1.Job {
	t.Helper()
	j, err := c.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	return j
}

func hasCondition(j *batchv1.Job, ct batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if c := &j.Status.Conditions[i]; c.Type == ct && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func waitCondition(t *testing.T, c kubernetes.Interface, name string, ct batchv1.JobConditionType) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	waitFor(t, fmt.Sprintf("job %s to be %s", name, ct), 30*time.Second, func() (bool, error) {
		j = getJob(t, c, name)
		return hasCondition(j, ct) != nil, nil
	})
	return j
}

func eventReasons(t *testing.T, c kubernetes.Interface, name string) map[string]bool {
	t.Helper()
	l, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": "Job", "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	out := map[string]bool{}
	for _, e := range l.Items {
		out[e.Reason] = true
	}
	return out
}

func waitEvent(t *testing.T, c kubernetes.Interface, name, reason string) {
	t.Helper()
	waitFor(t, "event "+reason, 10*time.Second, func() (bool, error) { return eventReasons(t, c, name)[reason], nil })
}

func TestParallelJobCompletes(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("par", func(j *batchv1.Job) {
		j.Spec.Parallelism, j.Spec.Completions = ptr.To(int32(2)), ptr.To(int32(4))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	finished := 0
	for finished < 4 {
		var run []corev1.Pod
		waitFor(t, "two running pods", 20*time.Second, func() (bool, error) {
			run = running(jobPods(t, c, "par"))
			return len(run) == 2 || (finished == 3 && len(run) == 1), nil
		})
		for _, p := range run {
			if !hasFinalizer(p) {
				t.Errorf("pod %s has no tracking finalizer: %v", p.Name, p.Finalizers)
			}
		}
		if len(run) > 2 {
			t.Fatalf("%d pods run at once, parallelism is 2", len(run))
		}
		finishPod(t, c, run[0].Name, 0)
		finished++
		waitFor(t, "the success counted", 20*time.Second, func() (bool, error) {
			return getJob(t, c, "par").Status.Succeeded == int32(finished), nil
		})
	}
	j := waitCondition(t, c, "par", batchv1.JobComplete)
	if hasCondition(j, batchv1.JobSuccessCriteriaMet) == nil {
		t.Errorf("no SuccessCriteriaMet condition: %+v", j.Status.Conditions)
	}
	if j.Status.Succeeded != 4 || j.Status.Failed != 0 || j.Status.Active != 0 || j.Status.CompletionTime == nil || j.Status.StartTime == nil {
		t.Errorf("status %+v", j.Status)
	}
	if u := j.Status.UncountedTerminatedPods; u != nil && len(u.Succeeded)+len(u.Failed) > 0 {
		t.Errorf("uncounted pods left: %+v", u)
	}
	pods := jobPods(t, c, "par")
	if len(pods) != 4 {
		t.Errorf("%d pods, want 4", len(pods))
	}
	for _, p := range pods {
		if hasFinalizer(p) {
			t.Errorf("pod %s still has the tracking finalizer", p.Name)
		}
	}
	waitEvent(t, c, "par", "Completed")
	if !eventReasons(t, c, "par")["SuccessfulCreate"] {
		t.Errorf("no SuccessfulCreate event")
	}
}

func hasFinalizer(p corev1.Pod) bool {
	for _, f := range p.Finalizers {
		if f == batchv1.JobTrackingFinalizer {
			return true
		}
	}
	return false
}

func TestJobFailsAfterBackoffLimit(t *testing.T) {
	c := startJobController(t, job.Options{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("flaky", func(j *batchv1.Job) {
		j.Spec.BackoffLimit = ptr.To(int32(2))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var created []time.Time
	for i := 0; i < 3; i++ {
		var run []corev1.Pod
		waitFor(t, fmt.Sprintf("pod %d", i+1), 20*time.Second, func() (bool, error) {
			run = running(jobPods(t, c, "flaky"))
			return len(run) == 1, nil
		})
		created = append(created, time.Now())
		finishPod(t, c, run[0].Name, 1)
	}
	j := waitCondition(t, c, "flaky", batchv1.JobFailed)
	cond := hasCondition(j, batchv1.JobFailed)
	if cond.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Errorf("Failed reason %q", cond.Reason)
	}
	if hasCondition(j, batchv1.JobFailureTarget) == nil {
		t.Errorf("no FailureTarget condition: %+v", j.Status.Conditions)
	}
	if j.Status.Failed != 3 || j.Status.Succeeded != 0 || j.Status.Active != 0 {
		t.Errorf("status %+v", j.Status)
	}
	if n := len(jobPods(t, c, "flaky")); n != 3 {
		t.Errorf("%d pods, want 3 (backoffLimit 2 allows two retries)", n)
	}
	// The second retry waited about twice as long as the first.
	if d := created[2].Sub(created[1]); d < 150*time.Millisecond {
		t.Errorf("second retry after %v, want at least ~200ms of backoff", d)
	}
	waitEvent(t, c, "flaky", batchv1.JobReasonBackoffLimitExceeded)
}

func TestIndexedJob(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("idx", func(j *batchv1.Job) {
		j.Spec.Parallelism, j.Spec.Completions = ptr.To(int32(3)), ptr.To(int32(3))
		j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		j.Spec.Template.Spec.Subdomain = "workers"
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var run []corev1.Pod
	waitFor(t, "three pods", 20*time.Second, func() (bool, error) {
		run = running(jobPods(t, c, "idx"))
		return len(run) == 3, nil
	})
	seen := map[string]bool{}
	for _, p := range run {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		seen[ix] = true
		if p.Labels[batchv1.JobCompletionIndexAnnotation] != ix {
			t.Errorf("pod %s: label %q, annotation %q", p.Name, p.Labels[batchv1.JobCompletionIndexAnnotation], ix)
		}
		if p.Spec.Hostname != "idx-"+ix || p.Spec.Subdomain != "workers" {
			t.Errorf("pod %s: hostname %q subdomain %q", p.Name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		env := p.Spec.Containers[0].Env
		if len(env) != 1 || env[0].Name != "JOB_COMPLETION_INDEX" || env[0].ValueFrom == nil || env[0].ValueFrom.FieldRef == nil {
			t.Errorf("pod %s: env %+v", p.Name, env)
		}
	}
	if !seen["0"] || !seen["1"] || !seen["2"] {
		t.Fatalf("indexes %v, want 0, 1 and 2", seen)
	}
	// Index 1 fails once and is retried with the same index.
	byIndex := map[string]string{}
	for _, p := range run {
		byIndex[p.Annotations[batchv1.JobCompletionIndexAnnotation]] = p.Name
	}
	finishPod(t, c, byIndex["1"], 1)
	finishPod(t, c, byIndex["0"], 0)
	waitFor(t, "index 1 replaced", 20*time.Second, func() (bool, error) {
		for _, p := range running(jobPods(t, c, "idx")) {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "1" {
				byIndex["1"] = p.Name
				return true, nil
			}
		}
		return false, nil
	})
	waitFor(t, "completedIndexes 0", 20*time.Second, func() (bool, error) {
		return getJob(t, c, "idx").Status.CompletedIndexes == "0", nil
	})
	finishPod(t, c, byIndex["2"], 0)
	finishPod(t, c, byIndex["1"], 0)
	j := waitCondition(t, c, "idx", batchv1.JobComplete)
	if j.Status.CompletedIndexes != "0-2" || j.Status.Succeeded != 3 || j.Status.Failed != 1 {
		t.Errorf("status %+v", j.Status)
	}
}

func TestSuspendAndResume(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("sus", func(j *batchv1.Job) {
		j.Spec.Parallelism, j.Spec.Completions = ptr.To(int32(2)), ptr.To(int32(2))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two pods", 20*time.Second, func() (bool, error) { return len(running(jobPods(t, c, "sus"))) == 2, nil })
	setSuspend(t, c, "sus", true)
	waitCondition(t, c, "sus", batchv1.JobSuspended)
	waitFor(t, "pods gone", 20*time.Second, func() (bool, error) {
		j := getJob(t, c, "sus")
		return len(jobPods(t, c, "sus")) == 0 && j.Status.Active == 0, nil
	})
	if j := getJob(t, c, "sus"); j.Status.Failed != 0 {
		t.Errorf("pods stopped by the suspension counted as failed: %+v", j.Status)
	}
	waitEvent(t, c, "sus", "Suspended")
	setSuspend(t, c, "sus", false)
	waitFor(t, "pods back", 20*time.Second, func() (bool, error) { return len(running(jobPods(t, c, "sus"))) == 2, nil })
	waitFor(t, "the Suspended condition false", 20*time.Second, func() (bool, error) {
		for _, cond := range getJob(t, c, "sus").Status.Conditions {
			if cond.Type == batchv1.JobSuspended {
				return cond.Status == corev1.ConditionFalse && cond.Reason == "JobResumed", nil
			}
		}
		return false, nil
	})
	waitEvent(t, c, "sus", "Resumed")
}

func setSuspend(t *testing.T, c kubernetes.Interface, name string, v bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j := getJob(t, c, name)
		j.Spec.Suspend = ptr.To(v)
		_, err := c.BatchV1().Jobs(ns).Update(context.Background(), j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("suspend=%v: %v", v, err)
	}
}

func TestActiveDeadlineAndTTL(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("late", func(j *batchv1.Job) {
		j.Spec.ActiveDeadlineSeconds = ptr.To(int64(1))
		j.Spec.TTLSecondsAfterFinished = ptr.To(int32(1))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j := waitCondition(t, c, "late", batchv1.JobFailed)
	if r := hasCondition(j, batchv1.JobFailed).Reason; r != batchv1.JobReasonDeadlineExceeded {
		t.Errorf("reason %q", r)
	}
	if j.Status.Failed != 1 || j.Status.Active != 0 || hasCondition(j, batchv1.JobFailureTarget) == nil {
		t.Errorf("status %+v: the pod stopped at the deadline counts as failed", j.Status)
	}
	waitEvent(t, c, "late", batchv1.JobReasonDeadlineExceeded)
	waitFor(t, "the job deleted after its TTL", 20*time.Second, func() (bool, error) {
		_, err := c.BatchV1().Jobs(ns).Get(ctx, "late", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
}

func TestPodFailurePolicyFailJob(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("pfp", func(j *batchv1.Job) {
		j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action:      batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}},
		}}}
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var run []corev1.Pod
	waitFor(t, "a pod", 20*time.Second, func() (bool, error) {
		run = running(jobPods(t, c, "pfp"))
		return len(run) == 1, nil
	})
	finishPod(t, c, run[0].Name, 42)
	j := waitCondition(t, c, "pfp", batchv1.JobFailed)
	if r := hasCondition(j, batchv1.JobFailed).Reason; r != batchv1.JobReasonPodFailurePolicy {
		t.Errorf("reason %q", r)
	}
	if n := len(jobPods(t, c, "pfp")); n != 1 {
		t.Errorf("%d pods: the failure should not have been retried", n)
	}
}

// TestOrphanPodsReleased: deleting a Job lets go of its pods' finalizers.
func TestOrphanPodsReleased(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("gone", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a pod", 20*time.Second, func() (bool, error) { return len(running(jobPods(t, c, "gone"))) == 1, nil })
	if err := c.BatchV1().Jobs(ns).Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the finalizer removed", 20*time.Second, func() (bool, error) {
		pods := jobPods(t, c, "gone")
		return len(pods) == 1 && !hasFinalizer(pods[0]), nil
	})
}

// TestRegisteredInServer runs the Job controller as the server registers
// it, next to the other controllers: a finished Job with
// ttlSecondsAfterFinished 0 is deleted, and the garbage collector takes
// its pods.
func TestRegisteredInServer(t *testing.T) {
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("reg", func(j *batchv1.Job) {
		j.Spec.TTLSecondsAfterFinished = ptr.To(int32(0))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var run []corev1.Pod
	waitFor(t, "a pod", 30*time.Second, func() (bool, error) {
		run = running(jobPods(t, c, "reg"))
		return len(run) == 1, nil
	})
	finishPod(t, c, run[0].Name, 0)
	waitFor(t, "the job and its pod gone", 30*time.Second, func() (bool, error) {
		_, err := c.BatchV1().Jobs(ns).Get(ctx, "reg", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && len(jobPods(t, c, "reg")) == 0, err
	})
}

// TestParallelismDecrease: pods deleted because parallelism went down are
// not failures.
func TestParallelismDecrease(t *testing.T) {
	c := startJobController(t, job.Options{})
	ctx := context.Background()
	_, err := c.BatchV1().Jobs(ns).Create(ctx, newJob("shrink", func(j *batchv1.Job) {
		j.Spec.Parallelism, j.Spec.Completions = ptr.To(int32(3)), ptr.To(int32(6))
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three pods", 20*time.Second, func() (bool, error) { return len(running(jobPods(t, c, "shrink"))) == 3, nil })
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j := getJob(t, c, "shrink")
		j.Spec.Parallelism = ptr.To(int32(1))
		_, err := c.BatchV1().Jobs(ns).Update(ctx, j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one pod left", 20*time.Second, func() (bool, error) {
		j := getJob(t, c, "shrink")
		return len(jobPods(t, c, "shrink")) == 1 && j.Status.Active == 1 && ptr.Deref(j.Status.Terminating, -1) == 0, nil
	})
	if j := getJob(t, c, "shrink"); j.Status.Failed != 0 {
		t.Errorf("status.failed %d: pods deleted for parallelism counted as failures", j.Status.Failed)
	}
}
