package cronjob

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// tooManyMissed is how many missed schedule times make the controller
// warn that the CronJob needs a startingDeadlineSeconds (or a clock fix).
const tooManyMissed = 100

// sync brings the CronJob named by key up to date with its schedule.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	cached, err := c.cronJobs.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.wake.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get cronjob %s: %w", key, err)
	}
	if cached.DeletionTimestamp != nil {
		c.wake.forget(key)
		return nil
	}
	cj := cached.DeepCopy()
	jobs, err := c.ownedJobs(cj)
	if err != nil {
		return err
	}
	now := c.clock.Now()
	st := cj.Status.DeepCopy()

	var errs []error
	errs = append(errs, c.trackJobs(ctx, cj, st, jobs))
	errs = append(errs, c.cleanupHistory(ctx, cj, jobs))
	next, err := c.runSchedule(ctx, cj, st, jobs, now)
	errs = append(errs, err)

	if !equality.Semantic.DeepEqual(&cj.Status, st) {
		cj.Status = *st
		if _, err := c.client.BatchV1().CronJobs(ns).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("update status of cronjob %s: %w", key, err))
		}
	}
	if next.IsZero() {
		c.wake.forget(key)
	} else {
		c.wake.set(key, next)
	}
	return errors.Join(errs...)
}

// ownedJobs lists the Jobs the CronJob controls.
func (c *Controller) ownedJobs(cj *batchv1.CronJob) ([]*batchv1.Job, error) {
	all, err := c.jobs.Jobs(cj.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list jobs of cronjob %s/%s: %w", cj.Namespace, cj.Name, err)
	}
	var out []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cj.UID {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out, nil
}

// jobFinished returns Complete or Failed for a finished Job, "" otherwise.
func jobFinished(j *batchv1.Job) batchv1.JobConditionType {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type
		}
	}
	return ""
}

// trackJobs keeps status.active equal to the CronJob's unfinished Jobs and
// lastSuccessfulTime at the latest completion.
func (c *Controller) trackJobs(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, jobs []*batchv1.Job) error {
	listed := map[types.UID]*batchv1.Job{}
	for _, j := range jobs {
		listed[j.UID] = j
	}
	inActive := map[types.UID]bool{}
	var keep []corev1.ObjectReference
	for _, ref := range st.Active {
		j := listed[ref.UID]
		if j == nil {
			// Not in the cache: maybe just created, maybe gone. Ask.
			live, err := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err) || (err == nil && live.UID != ref.UID):
				c.recorder.Eventf(cj, corev1.EventTypeNormal, "MissingJob", "Active job went missing: %v", ref.Name)
				continue
			case err != nil:
				return fmt.Errorf("get job %s/%s: %w", cj.Namespace, ref.Name, err)
			}
			j = live
		}
		if cond := jobFinished(j); cond != "" {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, condition: %v", j.Name, cond)
			continue
		}
		inActive[ref.UID] = true
		keep = append(keep, ref)
	}
	for _, j := range jobs {
		if jobFinished(j) != "" || inActive[j.UID] || j.DeletionTimestamp != nil {
			continue
		}
		// Ours and running but not listed: created just before a status
		// update was lost, or adopted from someone else.
		if _, ours := j.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; !ours {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnexpectedJob", "Saw a job that the controller did not create or forgot: %s", j.Name)
		}
		keep = append(keep, jobRef(j))
	}
	st.Active = keep
	for _, j := range jobs {
		if jobFinished(j) != batchv1.JobComplete {
			continue
		}
		done := j.Status.CompletionTime
		if done == nil {
			continue
		}
		if st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(done) {
			st.LastSuccessfulTime = done.DeepCopy()
		}
	}
	return nil
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{
		Kind: "Job", APIVersion: batchv1.SchemeGroupVersion.String(),
		Namespace: j.Namespace, Name: j.Name, UID: j.UID, ResourceVersion: j.ResourceVersion,
	}
}

// cleanupHistory deletes the oldest finished Jobs beyond
// successfulJobsHistoryLimit and failedJobsHistoryLimit.
func (c *Controller) cleanupHistory(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range jobs {
		if j.DeletionTimestamp != nil {
			continue
		}
		switch jobFinished(j) {
		case batchv1.JobComplete:
			ok = append(ok, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	var errs []error
	if l := cj.Spec.SuccessfulJobsHistoryLimit; l != nil {
		errs = append(errs, c.deleteOldest(ctx, cj, ok, int(*l)))
	}
	if l := cj.Spec.FailedJobsHistoryLimit; l != nil {
		errs = append(errs, c.deleteOldest(ctx, cj, failed, int(*l)))
	}
	return errors.Join(errs...)
}

func (c *Controller) deleteOldest(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, keep int) error {
	if len(jobs) <= keep {
		return nil
	}
	started := func(j *batchv1.Job) time.Time {
		if j.Status.StartTime != nil {
			return j.Status.StartTime.Time
		}
		return j.CreationTimestamp.Time
	}
	sort.SliceStable(jobs, func(i, k int) bool { return started(jobs[i]).Before(started(jobs[k])) })
	var errs []error
	for _, j := range jobs[:len(jobs)-keep] {
		errs = append(errs, c.deleteJob(ctx, cj, j))
	}
	return errors.Join(errs...)
}

// deleteJob deletes a Job of cj; its pods follow through the garbage
// collector.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, j *batchv1.Job) error {
	policy := metav1.DeletePropagationBackground
	uid := j.UID
	err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Error deleting job %s: %v", j.Name, err)
		return fmt.Errorf("delete job %s/%s: %w", j.Namespace, j.Name, err)
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	return nil
}

// runSchedule starts the Job for the most recent schedule time if that is
// due, and returns when the schedule comes round next (zero: never, or
// only after a change to the CronJob).
func (c *Controller) runSchedule(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, jobs []*batchv1.Job, now time.Time) (time.Time, error) {
	if ptr.Deref(cj.Spec.Suspend, false) {
		return time.Time{}, nil
	}
	sched, err := ParseSchedule(cj.Spec.Schedule)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %q : %v", cj.Spec.Schedule, err)
		return time.Time{}, nil
	}
	loc := time.Local
	if tz := cj.Spec.TimeZone; tz != nil {
		if *tz == "" {
			err = errors.New("empty time zone name")
		} else {
			loc, err = time.LoadLocation(*tz)
		}
		if err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnknownTimeZone", "invalid timeZone: %q: %v", *tz, err)
			return time.Time{}, nil
		}
	}
	now = now.In(loc)
	earliest := cj.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		earliest = st.LastScheduleTime.Time
	}
	next := sched.Next(now)
	scheduled, missed := mostRecent(sched, earliest.In(loc), now)
	if scheduled.IsZero() {
		return next, nil
	}
	if missed > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes",
			"too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && scheduled.Add(time.Duration(*d)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", scheduled.UTC().Format(time.RFC1123Z))
		return next, nil
	}
	name := jobName(cj, scheduled)
	for _, ref := range st.Active {
		if ref.Name == name {
			return next, nil
		}
	}
	for _, j := range jobs {
		if j.Name == name {
			// Ran already (and finished): only the status lagged.
			setLastSchedule(st, scheduled)
			return next, nil
		}
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(st.Active) > 0 {
			c.recorder.Event(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return next, nil
		}
	case batchv1.ReplaceConcurrent:
		var keep []corev1.ObjectReference
		var errs []error
		for _, ref := range st.Active {
			j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}}
			if err := c.deleteJob(ctx, cj, j); err != nil {
				errs = append(errs, err)
				keep = append(keep, ref)
			}
		}
		st.Active = keep
		if err := errors.Join(errs...); err != nil {
			return next, err
		}
	}
	job := newJob(cj, scheduled, name)
	out, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, job, metav1.CreateOptions{})
	created := err == nil
	if apierrors.IsAlreadyExists(err) {
		live, getErr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, name, metav1.GetOptions{})
		if getErr != nil {
			return next, fmt.Errorf("get job %s/%s: %w", cj.Namespace, name, getErr)
		}
		if ref := metav1.GetControllerOf(live); ref == nil || ref.UID != cj.UID {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %s exists and is not ours", name)
			return next, nil
		}
		out, err = live, nil
	}
	if err != nil {
		if ctx.Err() == nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		}
		return next, fmt.Errorf("create job %s/%s: %w", cj.Namespace, name, err)
	}
	if created {
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", out.Name)
		c.log.Info("started scheduled job", "cronjob", cj.Namespace+"/"+cj.Name, "job", out.Name, "scheduled", scheduled)
	}
	if jobFinished(out) == "" {
		st.Active = append(st.Active, jobRef(out))
	}
	setLastSchedule(st, scheduled)
	return next, nil
}

func setLastSchedule(st *batchv1.CronJobStatus, t time.Time) {
	if st.LastScheduleTime == nil || st.LastScheduleTime.Time.Before(t) {
		st.LastScheduleTime = &metav1.Time{Time: t}
	}
}

// jobName is <cronjob>-<scheduled time in minutes since the epoch>: the
// same schedule time always gives the same name, so a Job is never
// started twice for it.
func jobName(cj *batchv1.CronJob, scheduled time.Time) string {
	return fmt.Sprintf("%s-%d", cj.Name, scheduled.Unix()/60)
}

// newJob builds the Job of cj for its schedule time.
func newJob(cj *batchv1.CronJob, scheduled time.Time, name string) *batchv1.Job {
	t := cj.Spec.JobTemplate.DeepCopy()
	annotations := t.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduled.Format(time.RFC3339)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       cj.Namespace,
			Labels:          t.Labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: t.Spec,
	}
}

// mostRecent returns the latest activation of s in (earliest, now] and how
// many activations fell in that interval (counted exactly up to
// tooManyMissed+1); zero if there was none.
func mostRecent(s *Schedule, earliest, now time.Time) (time.Time, int) {
	t := s.Next(earliest)
	if t.IsZero() || t.After(now) {
		return time.Time{}, 0
	}
	if s.every > 0 {
		k := int(now.Sub(t) / s.every)
		return t.Add(time.Duration(k) * s.every), k + 1
	}
	n := 1
	for n <= tooManyMissed {
		nt := s.Next(t)
		if nt.IsZero() || nt.After(now) {
			return t, n
		}
		t, n = nt, n+1
	}
	// Many activations were missed: look for the latest in windows of
	// growing size ending at now, rather than walking through all of them.
	for _, w := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour} {
		from := now.Add(-w)
		if from.Before(t) {
			from = t
		}
		last := time.Time{}
		for x := s.Next(from); !x.IsZero() && !x.After(now); x = s.Next(x) {
			last = x
		}
		if !last.IsZero() {
			return last, n + 1
		}
	}
	return t, n + 1
}
