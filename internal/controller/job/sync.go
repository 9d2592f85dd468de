package job

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
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Condition reasons and messages this controller writes.
const (
	reasonSuspended = "JobSuspended"
	reasonResumed   = "JobResumed"
	msgBackoff      = "Job has reached the specified backoff limit"
	msgDeadline     = "Job was active longer than specified deadline"
	msgCompletions  = "Reached expected number of succeeded pods"
)

// sync brings the Job named by key one step closer to its spec.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		c.log.Warn("dropping malformed key", "key", key, "err", err)
		return nil
	}
	cached, err := c.jobs.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		c.queueStalePods(ns, name, "")
		return nil
	}
	if err != nil {
		return fmt.Errorf("get job %s: %w", key, err)
	}
	job := c.written.freshest(key, cached)
	if job.Spec.ManagedBy != nil && *job.Spec.ManagedBy != managedBy {
		return nil
	}
	return c.syncJob(ctx, key, job.DeepCopy())
}

func (c *Controller) forget(key string) {
	c.expect.Forget(key)
	c.removals.forget(key)
	c.stopped.forget(key)
	c.written.forget(key)
	c.backoff.forget(key)
}

// syncJob works on a private copy of the Job.
func (c *Controller) syncJob(ctx context.Context, key string, job *batchv1.Job) error {
	now := c.now()
	pods, err := c.podsOf(job)
	if err != nil {
		c.log.Warn("cannot find the pods of job", "job", key, "err", err)
		return nil
	}
	if finishedCondition(&job.Status) != nil || job.DeletionTimestamp != nil {
		// Nothing is counted any more: let every pod go.
		c.expect.Forget(key)
		c.stopped.forget(key)
		c.backoff.forget(key)
		removed := c.removals.pending(key, job.Namespace, c.pods)
		var errs []error
		for _, p := range pods {
			if !hasTrackingFinalizer(p) || removed[p.UID] {
				continue
			}
			if err := c.removeFinalizer(ctx, p); err != nil {
				errs = append(errs, err)
				continue
			}
			c.removals.add(key, p.Name, p.UID)
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if job.DeletionTimestamp != nil {
			return nil
		}
		return c.expireIfDue(ctx, key, job, now)
	}

	st := job.Status.DeepCopy()
	if st.UncountedTerminatedPods == nil {
		st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	suspended := ptr.Deref(job.Spec.Suspend, false)
	indexed := isIndexed(job)
	completions := int(ptr.Deref(job.Spec.Completions, 0))
	completed := indexSet{}
	if indexed {
		if completed, err = parseIndexes(st.CompletedIndexes, completions); err != nil {
			c.log.Warn("ignoring unreadable completedIndexes", "job", key, "err", err)
			completed = indexSet{}
		}
	}
	target := targetCondition(st)

	// 1. Sort the pods and note those that finished since the last sync
	// in uncountedTerminatedPods, before their finalizers go: a crash
	// between the two steps cannot lose or double-count a pod.
	removed := c.removals.pending(key, job.Namespace, c.pods)
	uncountedUIDs := map[types.UID]bool{}
	for _, u := range st.UncountedTerminatedPods.Succeeded {
		uncountedUIDs[u] = true
	}
	for _, u := range st.UncountedTerminatedPods.Failed {
		uncountedUIDs[u] = true
	}
	sort.SliceStable(pods, func(i, j int) bool {
		return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp)
	})
	var active, terminating, release []*corev1.Pod
	newlyCounted := false
	for _, p := range pods {
		terminal := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		switch {
		case terminal:
		case p.DeletionTimestamp != nil:
			terminating = append(terminating, p)
		default:
			active = append(active, p)
		}
		if !hasTrackingFinalizer(p) || removed[p.UID] {
			continue
		}
		if uncountedUIDs[p.UID] {
			release = append(release, p)
			continue
		}
		// A pod this controller stopped did not fail, unless it was
		// stopped because the Job is failing (as in Kubernetes, the Job's
		// failed count then includes the pods it killed).
		failing := target != nil && target.Type == batchv1.JobFailureTarget
		stoppedByUs := p.DeletionTimestamp != nil && !failing && (suspended || c.stopped.has(key, p.UID))
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			if indexed {
				ix := podIndex(p, completions)
				if ix < 0 || completed.has(ix) {
					release = append(release, p) // a duplicate: nothing to count
					continue
				}
				completed[ix] = struct{}{}
			}
			st.UncountedTerminatedPods.Succeeded = append(st.UncountedTerminatedPods.Succeeded, p.UID)
			c.backoff.succeeded(key, now)
		case p.Status.Phase == corev1.PodFailed || (p.DeletionTimestamp != nil && (replacesTerminating(job) || target != nil || stoppedByUs)):
			if p.Status.Phase != corev1.PodFailed && stoppedByUs {
				// Stopped by this controller, not failed.
				release = append(release, p)
				continue
			}
			verdict := judgeFailure(job, p)
			if verdict.action == batchv1.PodFailurePolicyActionIgnore {
				release = append(release, p)
				continue
			}
			st.UncountedTerminatedPods.Failed = append(st.UncountedTerminatedPods.Failed, p.UID)
			c.backoff.failed(key, p.UID, now)
			if verdict.action == batchv1.PodFailurePolicyActionFailJob && target == nil {
				setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonPodFailurePolicy, verdict.message, now)
				target = targetCondition(st)
			}
		default:
			continue // still running
		}
		newlyCounted = true
		release = append(release, p)
	}
	if indexed {
		st.CompletedIndexes = completed.String()
	}
	if newlyCounted {
		if job, err = c.writeStatus(ctx, key, job, st); err != nil {
			return err
		}
		st = job.Status.DeepCopy()
		if st.UncountedTerminatedPods == nil {
			st.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
		}
		target = targetCondition(st)
	}

	// 2. Drop the finalizers of the noted pods, then move them from
	// uncountedTerminatedPods to the counters.
	var errs []error
	released := map[types.UID]bool{}
	for _, p := range release {
		if err := c.removeFinalizer(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		c.removals.add(key, p.Name, p.UID)
		c.stopped.remove(key, p.UID)
		released[p.UID] = true
	}
	held := map[types.UID]bool{}
	for _, p := range pods {
		if hasTrackingFinalizer(p) && !removed[p.UID] && !released[p.UID] {
			held[p.UID] = true
		}
	}
	st.UncountedTerminatedPods.Succeeded = countReleased(st.UncountedTerminatedPods.Succeeded, held, &st.Succeeded)
	st.UncountedTerminatedPods.Failed = countReleased(st.UncountedTerminatedPods.Failed, held, &st.Failed)
	uncounted := len(st.UncountedTerminatedPods.Succeeded) + len(st.UncountedTerminatedPods.Failed)
	succeeded := int(st.Succeeded) + len(st.UncountedTerminatedPods.Succeeded)
	failed := int(st.Failed) + len(st.UncountedTerminatedPods.Failed)

	// 3. Suspension and resumption.
	if target == nil {
		if suspended {
			if setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, reasonSuspended, "Job suspended", now) {
				c.recorder.Event(job, corev1.EventTypeNormal, "Suspended", "Job suspended")
			}
		} else if cond := findCondition(st, batchv1.JobSuspended); cond != nil && cond.Status == corev1.ConditionTrue {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, reasonResumed, "Job resumed", now)
			// The active deadline counts from the resumption.
			st.StartTime = &metav1.Time{Time: now}
			c.recorder.Event(job, corev1.EventTypeNormal, "Resumed", "Job resumed")
		}
		if !suspended && st.StartTime == nil {
			st.StartTime = &metav1.Time{Time: now}
		}
	}

	// 4. Has the Job failed or succeeded? Then it gets the interim
	// condition (FailureTarget or SuccessCriteriaMet) first.
	if target == nil {
		switch {
		case exceedsBackoffLimit(job, failed, active):
			setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonBackoffLimitExceeded, msgBackoff, now)
		case !suspended && pastDeadline(job, st, now):
			setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, batchv1.JobReasonDeadlineExceeded, msgDeadline, now)
		default:
			if i := successRuleMatched(job, completed, completions); i >= 0 {
				setCondition(st, batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, batchv1.JobReasonSuccessPolicy, fmt.Sprintf("Matched rules at index %d", i), now)
			} else if successReached(job, succeeded, len(completed), len(active)) {
				setCondition(st, batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, batchv1.JobReasonCompletionsReached, msgCompletions, now)
			}
		}
		target = targetCondition(st)
	}

	// 5. Create or delete pods.
	ready := countReady(active)
	var created, deleted int
	var wait time.Duration
	var manageErr error
	switch {
	case !c.expect.Satisfied(key, job.Namespace, c.pods):
		// The cache is behind this controller's own creates or deletes:
		// acting on it could create or delete a pod twice.
	case target != nil || suspended:
		var gone []*corev1.Pod
		gone, manageErr = c.deletePods(ctx, key, job, active)
		deleted = len(gone)
		ready -= countReady(gone)
	default:
		var gone []*corev1.Pod
		created, gone, wait, manageErr = c.manage(ctx, key, job, active, terminating, succeeded, completed)
		deleted = len(gone)
		ready -= countReady(gone)
	}
	errs = append(errs, manageErr)
	activeNow := len(active) - deleted + created
	terminatingNow := len(terminating) + deleted
	st.Active = int32(activeNow)
	st.Ready = ptr.To(int32(ready))
	st.Terminating = ptr.To(int32(terminatingNow))

	// 6. Once nothing runs and every pod is counted, the Job is finished.
	finishedNow := false
	if target != nil && activeNow == 0 && terminatingNow == 0 && uncounted == 0 && len(held) == 0 {
		if target.Type == batchv1.JobSuccessCriteriaMet {
			setCondition(st, batchv1.JobComplete, corev1.ConditionTrue, target.Reason, target.Message, now)
			st.CompletionTime = &metav1.Time{Time: now}
		} else {
			setCondition(st, batchv1.JobFailed, corev1.ConditionTrue, target.Reason, target.Message, now)
		}
		finishedNow = true
	}
	out, err := c.writeStatus(ctx, key, job, st)
	if err != nil {
		return err
	}
	if finishedNow {
		if cond := findCondition(&out.Status, batchv1.JobComplete); cond != nil && cond.Status == corev1.ConditionTrue {
			c.recorder.Event(out, corev1.EventTypeNormal, "Completed", "Job completed")
		} else {
			c.recorder.Event(out, corev1.EventTypeWarning, target.Reason, target.Message)
		}
		c.log.Info("job finished", "job", key, "reason", target.Reason, "succeeded", out.Status.Succeeded, "failed", out.Status.Failed)
	}

	// 7. Come back when a backoff or the active deadline runs out.
	if wait > 0 {
		c.queue.AddAfter(key, wait)
	}
	if d := job.Spec.ActiveDeadlineSeconds; d != nil && target == nil && !suspended && st.StartTime != nil {
		if left := st.StartTime.Add(time.Duration(*d) * time.Second).Sub(now); left > 0 {
			c.queue.AddAfter(key, left)
		}
	}
	return errors.Join(errs...)
}

// countReleased moves the uids that no longer hold a finalizer from list
// into *counter and returns the rest.
func countReleased(list []types.UID, held map[types.UID]bool, counter *int32) []types.UID {
	var keep []types.UID
	for _, u := range list {
		if held[u] {
			keep = append(keep, u)
		} else {
			*counter++
		}
	}
	return keep
}

// manage creates and deletes pods so that the Job runs as many as it
// should. It returns the pods created, those deleted, and how long to
// wait for a backoff before creating more.
func (c *Controller) manage(ctx context.Context, key string, job *batchv1.Job, active, terminating []*corev1.Pod, succeeded int, completed indexSet) (int, []*corev1.Pod, time.Duration, error) {
	parallelism := int(ptr.Deref(job.Spec.Parallelism, 1))
	completions := int(ptr.Deref(job.Spec.Completions, 0))
	ranked := append([]*corev1.Pod(nil), active...)
	sort.SliceStable(ranked, func(i, j int) bool { return keepBefore(ranked[i], ranked[j]) })

	var excess []*corev1.Pod
	var indexes []int // one entry per pod to create; -1 for NonIndexed
	if isIndexed(job) {
		want := max(0, min(parallelism, completions-len(completed)))
		keep := map[int]*corev1.Pod{}
		var kept []int
		for _, p := range ranked {
			ix := podIndex(p, completions)
			if ix < 0 || completed.has(ix) || keep[ix] != nil {
				excess = append(excess, p)
				continue
			}
			keep[ix] = p
			kept = append(kept, ix)
		}
		sort.Ints(kept)
		for len(kept) > want {
			last := kept[len(kept)-1]
			excess = append(excess, keep[last])
			delete(keep, last)
			kept = kept[:len(kept)-1]
		}
		busy := indexSet{}
		for ix := range keep {
			busy[ix] = struct{}{}
		}
		slots := want - len(keep)
		if !replacesTerminating(job) {
			for _, p := range terminating {
				if ix := podIndex(p, completions); ix >= 0 && !busy.has(ix) {
					busy[ix] = struct{}{}
					slots--
				}
			}
		}
		for ix := 0; ix < completions && len(indexes) < slots; ix++ {
			if !completed.has(ix) && !busy.has(ix) {
				indexes = append(indexes, ix)
			}
		}
	} else {
		want := parallelism
		switch {
		case job.Spec.Completions == nil && succeeded > 0:
			want = len(active) // one pod succeeded: let the others finish, start none
		case job.Spec.Completions != nil:
			want = max(0, min(parallelism, completions-succeeded))
		}
		if len(ranked) > want {
			excess = ranked[want:]
		}
		slots := want - len(active)
		if !replacesTerminating(job) {
			slots -= len(terminating)
		}
		for i := 0; i < slots; i++ {
			indexes = append(indexes, -1)
		}
	}

	var errs []error
	gone, err := c.deletePods(ctx, key, job, excess)
	errs = append(errs, err)
	created := 0
	var wait time.Duration
	if len(indexes) > 0 {
		if wait = c.backoff.remaining(key, c.now(), c.opts.BackoffBase, c.opts.BackoffMax); wait == 0 {
			if len(indexes) > maxCreatesPerSync {
				indexes = indexes[:maxCreatesPerSync]
			}
			created, err = c.createPods(ctx, key, job, indexes)
			errs = append(errs, err)
		}
	}
	return created, gone, wait, errors.Join(errs...)
}

// keepBefore orders active pods from the most to the least worth keeping:
// ready, then scheduled, then running, then older.
func keepBefore(a, b *corev1.Pod) bool {
	if ra, rb := isReady(a), isReady(b); ra != rb {
		return ra
	}
	if sa, sb := a.Spec.NodeName != "", b.Spec.NodeName != ""; sa != sb {
		return sa
	}
	if ra, rb := a.Status.Phase == corev1.PodRunning, b.Status.Phase == corev1.PodRunning; ra != rb {
		return ra
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func countReady(pods []*corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if isReady(p) {
			n++
		}
	}
	return n
}

// exceedsBackoffLimit: more failed pods than backoffLimit allows or, for
// restartPolicy OnFailure, as many container restarts in running pods.
func exceedsBackoffLimit(job *batchv1.Job, failed int, active []*corev1.Pod) bool {
	limit := int(ptr.Deref(job.Spec.BackoffLimit, 6))
	if failed > limit {
		return true
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	restarts := 0
	for _, p := range active {
		if p.Status.Phase != corev1.PodPending && p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
			for _, cs := range list {
				restarts += int(cs.RestartCount)
			}
		}
	}
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

func pastDeadline(job *batchv1.Job, st *batchv1.JobStatus, now time.Time) bool {
	d := job.Spec.ActiveDeadlineSeconds
	return d != nil && st.StartTime != nil && now.Sub(st.StartTime.Time) >= time.Duration(*d)*time.Second
}

// successReached: enough pods (or indexes) succeeded; without
// completions, one pod succeeded and none still runs.
func successReached(job *batchv1.Job, succeeded, completedIndexes, active int) bool {
	switch {
	case isIndexed(job):
		return completedIndexes >= int(ptr.Deref(job.Spec.Completions, 0))
	case job.Spec.Completions != nil:
		return succeeded >= int(*job.Spec.Completions)
	default:
		return succeeded > 0 && active == 0
	}
}

func isIndexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
}

// replacesTerminating: a pod being deleted counts as failed (and is
// replaced) at once, rather than once it reaches phase Failed.
func replacesTerminating(job *batchv1.Job) bool {
	p := job.Spec.PodReplacementPolicy
	return p == nil || *p == batchv1.TerminatingOrFailed
}

func findCondition(st *batchv1.JobStatus, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// finishedCondition returns the Complete or Failed condition if it is true.
func finishedCondition(st *batchv1.JobStatus) *batchv1.JobCondition {
	for _, t := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed} {
		if c := findCondition(st, t); c != nil && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// targetCondition returns the FailureTarget or SuccessCriteriaMet
// condition if it is true.
func targetCondition(st *batchv1.JobStatus) *batchv1.JobCondition {
	for _, t := range []batchv1.JobConditionType{batchv1.JobFailureTarget, batchv1.JobSuccessCriteriaMet} {
		if c := findCondition(st, t); c != nil && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

// setCondition sets a condition; it reports whether anything changed.
func setCondition(st *batchv1.JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	ts := metav1.NewTime(now)
	if c := findCondition(st, t); c != nil {
		if c.Status == status && c.Reason == reason && c.Message == message {
			return false
		}
		if c.Status != status {
			c.LastTransitionTime = ts
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, message, ts
		return true
	}
	st.Conditions = append(st.Conditions, batchv1.JobCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastProbeTime: ts, LastTransitionTime: ts,
	})
	return true
}

// writeStatus stores st as the Job's status if it changed and returns the
// Job as stored.
func (c *Controller) writeStatus(ctx context.Context, key string, job *batchv1.Job, st *batchv1.JobStatus) (*batchv1.Job, error) {
	if equality.Semantic.DeepEqual(&job.Status, st) {
		return job, nil
	}
	next := job.DeepCopy()
	next.Status = *st
	out, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update status of job %s: %w", key, err)
	}
	c.written.put(key, out)
	return out, nil
}

// expireIfDue deletes a finished Job once ttlSecondsAfterFinished has
// passed, or comes back then.
func (c *Controller) expireIfDue(ctx context.Context, key string, job *batchv1.Job, now time.Time) error {
	at, ok := expiry(job, now)
	if !ok {
		return nil
	}
	if now.Before(at) {
		c.queue.AddAfter(key, at.Sub(now))
		return nil
	}
	// The cache may be behind a change of the TTL: decide on the Job as
	// stored, and delete exactly that version.
	fresh, err := c.client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get job %s: %w", key, err)
	}
	if fresh.UID != job.UID || fresh.DeletionTimestamp != nil {
		return nil
	}
	if at, ok = expiry(fresh, now); !ok {
		return nil
	}
	if now.Before(at) {
		c.queue.AddAfter(key, at.Sub(now))
		return nil
	}
	policy := metav1.DeletePropagationBackground
	err = c.client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &fresh.UID, ResourceVersion: &fresh.ResourceVersion},
	})
	if err != nil {
		return fmt.Errorf("delete expired job %s: %w", key, err)
	}
	c.log.Info("deleted finished job after its ttlSecondsAfterFinished", "job", key)
	return nil
}

// expiry is when a finished Job with ttlSecondsAfterFinished is due for
// deletion.
func expiry(job *batchv1.Job, now time.Time) (time.Time, bool) {
	ttl := job.Spec.TTLSecondsAfterFinished
	cond := finishedCondition(&job.Status)
	if ttl == nil || cond == nil {
		return time.Time{}, false
	}
	finished := cond.LastTransitionTime.Time
	if job.Status.CompletionTime != nil && cond.Type == batchv1.JobComplete {
		finished = job.Status.CompletionTime.Time
	}
	if finished.IsZero() {
		finished = now
	}
	return finished.Add(time.Duration(*ttl) * time.Second), true
}
