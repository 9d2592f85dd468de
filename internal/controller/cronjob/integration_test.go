package cronjob_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/cronjob"
	"skiff/internal/controller/manager"
	"skiff/internal/server/servertest"
)

const ns = "default"

// startCronJobController starts a server without its own controllers and
// runs a CronJob controller on a fake clock set to the current time.
func startCronJobController(t *testing.T) (kubernetes.Interface, *clocktesting.FakeClock) {
	t.Helper()
	s := servertest.Start(t, "", func(c *config.Server) { c.DisableControllerManager = true })
	client := s.Client(t)
	fake := clocktesting.NewFakeClock(time.Now())
	s.RunController(t, "cronjob", func(c *controller.Context) (manager.Runner, error) {
		return cronjob.New(c, cronjob.Options{Clock: fake})
	})
	return client, fake
}

func newCronJob(name, schedule string, mutate func(*batchv1.CronJob)) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
				}}},
			},
		},
	}
	if mutate != nil {
		mutate(cj)
	}
	return cj
}

func create(t *testing.T, c kubernetes.Interface, cj *batchv1.CronJob) *batchv1.CronJob {
	t.Helper()
	out, err := c.BatchV1().CronJobs(ns).Create(context.Background(), cj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create cronjob: %v", err)
	}
	return out
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

// advance waits until the controller has armed its timer, then moves the
// fake clock to one second past at.
func advance(t *testing.T, fake *clocktesting.FakeClock, at time.Time) {
	t.Helper()
	waitFor(t, "the controller's timer", 10*time.Second, func() (bool, error) { return fake.HasWaiters(), nil })
	fake.SetTime(at.Add(time.Second))
}

// nextMinute is the first whole minute after t.
func nextMinute(t time.Time) time.Time { return t.Truncate(time.Minute).Add(time.Minute) }

func jobsOf(t *testing.T, c kubernetes.Interface) map[string]batchv1.Job {
	t.Helper()
	l, err := c.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	out := map[string]batchv1.Job{}
	for _, j := range l.Items {
		if j.DeletionTimestamp == nil {
			out[j.Name] = j
		}
	}
	return out
}

func jobFor(name string, at time.Time) string { return fmt.Sprintf("%s-%d", name, at.Unix()/60) }

func waitJob(t *testing.T, c kubernetes.Interface, name string) batchv1.Job {
	t.Helper()
	var j batchv1.Job
	waitFor(t, "job "+name, 20*time.Second, func() (bool, error) {
		var ok bool
		j, ok = jobsOf(t, c)[name]
		return ok, nil
	})
	return j
}

// completeJob plays the Job controller: the Job succeeded.
func completeJob(t *testing.T, c kubernetes.Interface, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		j, err := c.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		j.Status.StartTime, j.Status.CompletionTime, j.Status.Succeeded = &now, &now, 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		_, err = c.BatchV1().Jobs(ns).UpdateStatus(context.Background(), j, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("complete job %s: %v", name, err)
	}
}

func getCronJob(t *testing.T, c kubernetes.Interface, name string) *batchv1.CronJob {
	t.Helper()
	cj, err := c.BatchV1().CronJobs(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get cronjob: %v", err)
	}
	return cj
}

func waitEvent(t *testing.T, c kubernetes.Interface, name, reason string) {
	t.Helper()
	waitFor(t, "event "+reason, 10*time.Second, func() (bool, error) {
		l, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.kind": "CronJob", "involvedObject.name": name, "reason": reason}.String()})
		return err == nil && len(l.Items) > 0, err
	})
}

func TestCronJobFiresOnFakeClock(t *testing.T) {
	c, fake := startCronJobController(t)
	cj := create(t, c, newCronJob("tick", "* * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.TimeZone = ptr.To("Asia/Kolkata")
		cj.Spec.SuccessfulJobsHistoryLimit = ptr.To(int32(1))
	}))
	t1 := nextMinute(cj.CreationTimestamp.Time)
	time.Sleep(300 * time.Millisecond)
	if n := len(jobsOf(t, c)); n != 0 {
		t.Fatalf("%d jobs before the schedule came round", n)
	}

	advance(t, fake, t1)
	j := waitJob(t, c, jobFor("tick", t1))
	if ref := metav1.GetControllerOf(&j); ref == nil || ref.Kind != "CronJob" || ref.UID != cj.UID {
		t.Errorf("owner %+v", j.OwnerReferences)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	if got, want := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation], t1.In(kolkata).Format(time.RFC3339); got != want {
		t.Errorf("scheduled-timestamp annotation %q, want %q", got, want)
	}
	if j.Labels["app"] != "tick" {
		t.Errorf("labels %v", j.Labels)
	}
	waitFor(t, "status.active", 10*time.Second, func() (bool, error) {
		st := getCronJob(t, c, "tick").Status
		return len(st.Active) == 1 && st.Active[0].Name == j.Name && st.LastScheduleTime != nil && st.LastScheduleTime.Time.Equal(t1), nil
	})
	waitEvent(t, c, "tick", "SuccessfulCreate")

	completeJob(t, c, j.Name)
	waitFor(t, "the job out of status.active", 10*time.Second, func() (bool, error) {
		st := getCronJob(t, c, "tick").Status
		return len(st.Active) == 0 && st.LastSuccessfulTime != nil, nil
	})

	// The next minute: a second Job; the first, finished, goes (history limit 1).
	t2 := t1.Add(time.Minute)
	advance(t, fake, t2)
	j2 := waitJob(t, c, jobFor("tick", t2))
	completeJob(t, c, j2.Name)
	waitFor(t, "the older job deleted", 10*time.Second, func() (bool, error) {
		jobs := jobsOf(t, c)
		_, old := jobs[j.Name]
		_, cur := jobs[j2.Name]
		return !old && cur, nil
	})
}

func TestCronJobForbidSkipsWhileActive(t *testing.T) {
	c, fake := startCronJobController(t)
	cj := create(t, c, newCronJob("solo", "* * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
	}))
	t1 := nextMinute(cj.CreationTimestamp.Time)
	advance(t, fake, t1)
	first := waitJob(t, c, jobFor("solo", t1))

	// The first Job still runs when the schedule comes round again.
	t2 := t1.Add(time.Minute)
	advance(t, fake, t2)
	waitEvent(t, c, "solo", "JobAlreadyActive")
	time.Sleep(300 * time.Millisecond)
	if jobs := jobsOf(t, c); len(jobs) != 1 {
		t.Fatalf("jobs %v: Forbid must not start a second one", keys(jobs))
	}
	// Once it finishes, the skipped run starts (no startingDeadlineSeconds
	// says it is too late), as in Kubernetes.
	completeJob(t, c, first.Name)
	waitJob(t, c, jobFor("solo", t2))
}

func TestCronJobReplace(t *testing.T) {
	c, fake := startCronJobController(t)
	cj := create(t, c, newCronJob("swap", "* * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
	}))
	t1 := nextMinute(cj.CreationTimestamp.Time)
	advance(t, fake, t1)
	first := waitJob(t, c, jobFor("swap", t1))
	t2 := t1.Add(time.Minute)
	advance(t, fake, t2)
	waitJob(t, c, jobFor("swap", t2))
	waitFor(t, "the first job replaced", 10*time.Second, func() (bool, error) {
		_, ok := jobsOf(t, c)[first.Name]
		return !ok, nil
	})
	waitFor(t, "status.active naming the second job", 10*time.Second, func() (bool, error) {
		a := getCronJob(t, c, "swap").Status.Active
		return len(a) == 1 && a[0].Name == jobFor("swap", t2), nil
	})
}

func TestCronJobStartingDeadlineAndSuspend(t *testing.T) {
	c, fake := startCronJobController(t)
	cj := create(t, c, newCronJob("late", "*/5 * * * *", func(cj *batchv1.CronJob) {
		cj.Spec.StartingDeadlineSeconds = ptr.To(int64(10))
	}))
	sched, err := cronjob.ParseSchedule("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	t1 := sched.Next(cj.CreationTimestamp.Time)
	// The controller only looks again 30 s after the schedule time.
	waitFor(t, "the controller's timer", 10*time.Second, func() (bool, error) { return fake.HasWaiters(), nil })
	fake.SetTime(t1.Add(30 * time.Second))
	waitEvent(t, c, "late", "MissSchedule")
	if jobs := jobsOf(t, c); len(jobs) != 0 {
		t.Fatalf("jobs %v started too late", keys(jobs))
	}

	// Suspended, it does not fire at all.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := getCronJob(t, c, "late")
		cur.Spec.Suspend = ptr.To(true)
		_, err := c.BatchV1().CronJobs(ns).Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	t2 := t1.Add(5 * time.Minute)
	fake.SetTime(t2.Add(time.Second))
	time.Sleep(500 * time.Millisecond)
	if jobs := jobsOf(t, c); len(jobs) != 0 {
		t.Fatalf("a suspended cronjob started %v", keys(jobs))
	}
}

func keys(m map[string]batchv1.Job) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
