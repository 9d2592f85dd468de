package kubelet

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"skiff/internal/kubelet/downward"
	"skiff/internal/kubelet/probes"
	"skiff/internal/kubelet/runtime"
)

// sync drives the pod one step towards its spec. It returns when to sync
// again at the latest (0: the default interval) and whether the worker is
// finished (the pod was torn down).
func (w *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	pod, removed := w.snapshot()
	log := w.k.log.With("pod", podRef(pod, w.uid))
	inst, err := w.instances(ctx)
	if err != nil {
		log.Warn("list containers failed", "err", err)
		return 0, false
	}
	for _, list := range inst {
		for _, c := range list {
			w.watch(ctx, c)
		}
	}
	if pod == nil || removed {
		w.teardown(ctx, pod, inst, removed)
		return 0, true
	}
	if pod.DeletionTimestamp != nil {
		w.terminate(ctx, pod, inst)
		if inst, _ = w.instances(ctx); len(inst) > 0 {
			w.writeStatus(ctx, pod, inst)
		}
		// Release the node's resources before the pod leaves the API, so
		// that nothing is left behind if the agent stops right after.
		w.release(ctx, pod, inst)
		w.finishDeletion(ctx, pod)
		// The API's DELETE event (or, for static pods, the manifest's
		// removal) ends the worker through teardown.
		return time.Second, false
	}
	if err := w.k.state.putPod(pod); err != nil {
		log.Warn("record pod in local state failed", "err", err)
	}
	if isTerminal(pod.Status.Phase) {
		w.stopAll(ctx, pod, inst, 0)
		w.stopProbes()
		return 0, false
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && pod.Status.StartTime != nil &&
		time.Since(pod.Status.StartTime.Time) > time.Duration(*d)*time.Second {
		w.deadline = true
		w.k.recorder.Event(pod, corev1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
		w.stopAll(ctx, pod, inst, gracePeriod(pod))
		inst, _ = w.instances(ctx)
		w.writeStatus(ctx, pod, inst)
		return 0, false
	}

	next := w.reconcile(ctx, pod, inst)
	inst, _ = w.instances(ctx)
	w.writeStatus(ctx, pod, inst)
	if pod.Spec.ActiveDeadlineSeconds != nil && pod.Status.StartTime != nil {
		left := time.Until(pod.Status.StartTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second))
		if left > 0 && (next == 0 || left < next) {
			next = left + 100*time.Millisecond
		}
	}
	return next, false
}

// reconcile starts what should run: the sandbox, volumes, init containers in
// order, then the containers; it restarts exited ones by restart policy
// with back-off, and kills those that failed their liveness probe.
func (w *podWorker) reconcile(ctx context.Context, pod *corev1.Pod, inst instances) time.Duration {
	sb, err := w.k.rt.EnsureSandbox(ctx, sandboxSpec(pod))
	if err != nil {
		w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		w.setWaitingAll(pod, reason{"ContainerCreating", ""})
		return 5 * time.Second
	}
	if ok, err := w.connectPod(ctx, pod, sb); err != nil || !ok {
		if err != nil {
			w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		}
		w.setWaitingAll(pod, reason{"ContainerCreating", ""})
		return time.Second
	}
	w.fillAddresses(pod)
	vols, err := w.k.volumes.SetUp(ctx, pod)
	if err != nil {
		w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed: %v", err)
		w.setWaitingAll(pod, reason{"ContainerCreating", ""})
		return 5 * time.Second
	}
	env := podEnv{pod: pod, sandbox: sb, volumes: vols, podIP: w.podIP}

	// Init containers run one at a time, in order, each to success.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := inst.latest(c.Name)
		switch {
		case cur == nil:
			return w.start(ctx, pod, c, true, 0, env)
		case running(cur):
			return 0
		case cur.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return 0 // the pod has failed; writeStatus says so
		default:
			return w.restart(ctx, pod, c, true, cur, env)
		}
	}
	for _, name := range notStarted(pod, inst) {
		if _, ok := w.waiting[name]; !ok {
			w.waiting[name] = reason{"ContainerCreating", ""}
		}
	}

	var next time.Duration
	earliest := func(d time.Duration) {
		if d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cur := inst.latest(c.Name)
		switch {
		case cur == nil:
			earliest(w.start(ctx, pod, c, false, 0, env))
		case running(cur):
			w.ensureProbes(ctx, pod, c, *cur, sb)
			if msg, ok := w.liveFail[c.Name]; ok {
				delete(w.liveFail, c.Name)
				w.k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Container %s %s, will be restarted", c.Name, msg)
				w.stopContainer(ctx, pod, c, *cur, gracePeriod(pod))
				earliest(100 * time.Millisecond)
			}
		case shouldRestart(pod.Spec.RestartPolicy, cur.ExitCode):
			earliest(w.restart(ctx, pod, c, false, cur, env))
		}
	}
	return next
}

func notStarted(pod *corev1.Pod, inst instances) []string {
	var out []string
	for _, c := range pod.Spec.Containers {
		if inst.latest(c.Name) == nil {
			out = append(out, c.Name)
		}
	}
	return out
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// restart starts the next attempt of an exited container unless it is in
// crash-loop back-off (10 s doubling to 5 min; reset after 10 min running).
func (w *podWorker) restart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, init bool, last *runtime.ContainerState, env podEnv) time.Duration {
	key := fmt.Sprintf("%s/%s", w.uid, c.Name)
	if last.FinishedAt.Sub(last.StartedAt) > 10*time.Minute {
		w.k.backoff.reset(key)
	}
	if wait, delay := w.k.backoff.wait(key, last.FinishedAt); wait > 0 {
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, pod.Name, pod.Namespace, pod.UID)
		if w.waiting[c.Name].Reason != "CrashLoopBackOff" {
			w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID)
		}
		w.waiting[c.Name] = reason{"CrashLoopBackOff", msg}
		return wait
	}
	w.k.backoff.next(key)
	return w.start(ctx, pod, c, init, attemptOf(*last)+1, env)
}

// start pulls the image if needed, builds the container and starts it.
// Failures become the container's waiting reason, as the kubelet reports.
func (w *podWorker) start(ctx context.Context, pod *corev1.Pod, c *corev1.Container, init bool, attempt int, env podEnv) time.Duration {
	img, why, retry := w.k.ensureImage(ctx, pod, c)
	if img == nil {
		// While backing off, keep telling the user why the last pull failed.
		if prev := w.waiting[c.Name]; why.Reason == "ImagePullBackOff" {
			switch prev.Reason {
			case "ErrImagePull":
				why.Message += ": ErrImagePull: " + prev.Message
			case "ImagePullBackOff":
				why.Message = prev.Message
			}
		}
		w.waiting[c.Name] = why
		return retry
	}
	spec, err := w.k.containerSpec(ctx, env, c, img, attempt, init)
	if err != nil {
		w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		w.waiting[c.Name] = reason{"CreateContainerConfigError", err.Error()}
		return 5 * time.Second
	}
	// Only the newest exited instance is kept, for `logs --previous`.
	if inst, err := w.instances(ctx); err == nil {
		for i, old := range inst[c.Name] {
			if i >= 1 && !running(&old) {
				_ = w.k.rt.Remove(ctx, old.ID)
			}
		}
	}
	if err := w.k.startContainer(ctx, spec); err != nil {
		w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		w.waiting[c.Name] = reason{"RunContainerError", err.Error()}
		_ = w.k.rt.Remove(ctx, spec.ID)
		key := fmt.Sprintf("%s/%s", w.uid, c.Name)
		wait, _ := w.k.backoff.wait(key, time.Now())
		w.k.backoff.next(key)
		return max(wait, 10*time.Second)
	}
	delete(w.waiting, c.Name)
	w.k.recorder.Eventf(pod, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	if st, err := w.k.rt.State(ctx, spec.ID); err == nil {
		w.watch(ctx, st)
		if !init {
			w.ensureProbes(ctx, pod, c, st, env.sandbox)
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := w.k.runHandler(ctx, pod, c, spec.ID, env.sandbox, c.Lifecycle.PostStart); err != nil {
			msg := fmt.Sprintf("PostStartHookError: %v", err)
			w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedPostStartHook", "%s", msg)
			if st, err := w.k.rt.State(ctx, spec.ID); err == nil {
				w.stopContainer(ctx, pod, c, st, gracePeriod(pod))
			}
		}
	}
	return 0
}

func (w *podWorker) setWaitingAll(pod *corev1.Pod, r reason) {
	for _, c := range pod.Spec.InitContainers {
		if _, ok := w.waiting[c.Name]; !ok {
			w.waiting[c.Name] = r
		}
	}
	for _, c := range pod.Spec.Containers {
		if _, ok := w.waiting[c.Name]; !ok {
			w.waiting[c.Name] = r
		}
	}
}

func (w *podWorker) ensureProbes(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cur runtime.ContainerState, sb *runtime.Sandbox) {
	if w.probed[cur.ID] {
		return
	}
	w.probed[cur.ID] = true
	w.k.probes.Add(ctx, probes.Key{PodUID: string(w.uid), Container: c.Name, ContainerID: cur.ID}, c, w.k.probeTarget(cur.ID, sb))
}

func (w *podWorker) stopProbes() {
	if len(w.probed) > 0 {
		w.k.probes.RemovePod(string(w.uid))
		w.probed = map[string]bool{}
	}
}

// stopContainer runs the preStop hook, then stops the container with what
// is left of the grace period.
func (w *podWorker) stopContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cur runtime.ContainerState, grace time.Duration) {
	deadline := time.Now().Add(grace)
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		sb, _ := w.k.rt.EnsureSandbox(hctx, sandboxSpec(pod))
		if err := w.k.runHandler(hctx, pod, c, cur.ID, sb, c.Lifecycle.PreStop); err != nil {
			w.k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
		cancel()
	}
	left := time.Until(deadline)
	if left < 0 {
		left = 0
	}
	if err := w.k.rt.Stop(ctx, cur.ID, left); err != nil && ctx.Err() == nil {
		w.k.log.Warn("stop container failed", "pod", podRef(pod, w.uid), "container", cur.Labels[labelContainer], "err", err)
	}
	w.k.probes.Remove(probes.Key{PodUID: string(w.uid), Container: cur.Labels[labelContainer], ContainerID: cur.ID})
	delete(w.probed, cur.ID)
}

// stopAll stops every running container of the pod in parallel, each with
// its preStop hook and the grace period.
func (w *podWorker) stopAll(ctx context.Context, pod *corev1.Pod, inst instances, grace time.Duration) {
	done := make(chan struct{})
	n := 0
	for name, list := range inst {
		for _, c := range list {
			if !running(&c) {
				continue
			}
			var spec *corev1.Container
			if pod != nil {
				spec = downward.Container(pod, name)
			}
			n++
			go func() {
				defer func() { done <- struct{}{} }()
				if spec != nil {
					w.k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", name)
				}
				w.stopContainer(ctx, pod, spec, c, grace)
			}()
		}
	}
	for ; n > 0; n-- {
		<-done
	}
}

// terminate stops a pod being deleted, within its deletion grace period.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod, inst instances) {
	grace := gracePeriod(pod)
	if pod.DeletionGracePeriodSeconds != nil {
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	w.stopAll(ctx, pod, inst, grace)
	w.stopProbes()
}

// finishDeletion completes a graceful deletion in the API once every
// container has stopped: the kubelet's final delete with grace 0.
func (w *podWorker) finishDeletion(ctx context.Context, pod *corev1.Pod) {
	if w.static {
		return
	}
	err := w.k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.k.log.Warn("complete pod deletion failed", "pod", podRef(pod, w.uid), "err", err)
	}
}

// teardown stops and removes everything of a pod that is gone: containers,
// sandbox, volumes, local state.
func (w *podWorker) teardown(ctx context.Context, pod *corev1.Pod, inst instances, removed bool) {
	if pod == nil {
		pod, _ = w.k.state.pod(w.uid)
	}
	w.release(ctx, pod, inst)
	w.k.backoff.forgetPrefix(string(w.uid) + "/")
	_ = w.k.state.deletePod(w.uid)
	w.k.log.Debug("pod torn down", "pod", podRef(pod, w.uid))
}

// release stops and removes the pod's containers, and frees its sandbox,
// address and volumes. Idempotent.
func (w *podWorker) release(ctx context.Context, pod *corev1.Pod, inst instances) {
	w.stopAll(ctx, pod, inst, 0)
	w.stopProbes()
	for _, list := range inst {
		for _, c := range list {
			if err := w.k.rt.Remove(ctx, c.ID); err != nil && !errors.Is(err, runtime.ErrNotFound) {
				w.k.log.Warn("remove container failed", "container", c.ID, "err", err)
			}
		}
	}
	w.disconnectPod(ctx)
	if err := w.k.rt.RemoveSandbox(ctx, string(w.uid)); err != nil {
		w.k.log.Warn("remove pod sandbox failed", "pod", w.uid, "err", err)
	}
	if err := w.k.volumes.TearDown(ctx, string(w.uid)); err != nil {
		w.k.log.Warn("tear down pod volumes failed", "pod", w.uid, "err", err)
	}
}

func gracePeriod(pod *corev1.Pod) time.Duration {
	if pod != nil && pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func isTerminal(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// fillAddresses puts the pod's and node's addresses into this sync's copy
// of the pod before the API hears of them, so env fieldRefs and the
// downward API see them from the first container on.
func (w *podWorker) fillAddresses(pod *corev1.Pod) {
	node := w.k.nodeIP.String()
	if pod.Status.HostIP == "" {
		pod.Status.HostIP = node
		pod.Status.HostIPs = []corev1.HostIP{{IP: node}}
	}
	ip := ""
	switch {
	case pod.Spec.HostNetwork:
		ip = node
	case w.podIP != nil:
		ip = w.podIP.String()
	}
	if ip != "" && pod.Status.PodIP == "" {
		pod.Status.PodIP = ip
		pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
}

func podRef(pod *corev1.Pod, uid any) string {
	if pod == nil {
		return fmt.Sprint(uid)
	}
	return pod.Namespace + "/" + pod.Name
}

func sandboxSpec(pod *corev1.Pod) runtime.SandboxSpec {
	host := pod.Spec.Hostname
	if host == "" {
		host = pod.Name
	}
	if len(host) > 63 {
		host = host[:63]
	}
	return runtime.SandboxSpec{
		PodUID:      string(pod.UID),
		Hostname:    host,
		HostNetwork: pod.Spec.HostNetwork,
		HostIPC:     pod.Spec.HostIPC,
		HostPID:     pod.Spec.HostPID,
	}
}

// onProbeChange is the probe manager's callback: a failed liveness probe
// restarts the container; readiness changes update the pod's status.
func (k *Kubelet) onProbeChange(key probes.Key, kind probes.Kind, result probes.Result, message string) {
	k.mu.Lock()
	w := k.workers[types.UID(key.PodUID)]
	k.mu.Unlock()
	if w == nil {
		return
	}
	if pod := w.current(); pod != nil && result == probes.Failure {
		k.recorder.Eventf(pod, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", capitalize(string(kind)), message)
	}
	if result == probes.Failure && (kind == probes.Liveness || kind == probes.Startup) {
		w.markLivenessFailed(key.Container, fmt.Sprintf("failed %s probe", kind))
	}
	w.kick()
}

func (w *podWorker) markLivenessFailed(container, msg string) {
	// liveFail is read by the worker goroutine; hand it over through the
	// worker's lock.
	w.mu.Lock()
	w.pendingLive = append(w.pendingLive, [2]string{container, msg})
	w.mu.Unlock()
}
