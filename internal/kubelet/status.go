package kubelet

import (
	"context"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/kubelet/probes"
	"skiff/internal/kubelet/runtime"
)

// containerStatus is a container's status as the kubelet reports it.
func (w *podWorker) containerStatus(pod *corev1.Pod, c *corev1.Container, inst instances) corev1.ContainerStatus {
	st := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	cur, prev := inst.latest(c.Name), inst.previous(c.Name)
	if cur != nil {
		st.RestartCount = int32(attemptOf(*cur))
		st.ContainerID = "skiff://" + cur.ID
		st.ImageID = cur.Labels[labelImageRef]
		if st.ImageID == "" {
			st.ImageID = cur.Labels[labelImageID]
		}
	}
	if prev != nil {
		st.LastTerminationState = terminatedState(*prev)
	}
	key := probes.Key{PodUID: string(w.uid), Container: c.Name}
	switch {
	case cur == nil:
		r := w.waiting[c.Name]
		if r.Reason == "" {
			r.Reason = "ContainerCreating"
			if len(pod.Spec.InitContainers) > 0 && !isInit(pod, c.Name) {
				r.Reason = "PodInitializing"
			}
		}
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: r.Reason, Message: r.Message}
	case running(cur):
		key.ContainerID = cur.ID
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(cur.StartedAt)}
		st.Started = ptrBool(w.k.probes.Started(key))
		st.Ready = *st.Started && w.k.probes.Ready(key)
	default:
		st.Started = ptrBool(false)
		if r, ok := w.waiting[c.Name]; ok && shouldRestart(pod.Spec.RestartPolicy, cur.ExitCode) && !w.deadline {
			// Waiting to be restarted: the exited instance is the last state.
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: r.Reason, Message: r.Message}
			st.LastTerminationState = terminatedState(*cur)
		} else {
			st.State = terminatedState(*cur)
		}
	}
	return st
}

func ptrBool(b bool) *bool { return &b }

func isInit(pod *corev1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func terminatedState(c runtime.ContainerState) corev1.ContainerState {
	reason := "Completed"
	switch {
	case c.OOMKilled:
		reason = "OOMKilled"
	case c.ExitCode != 0:
		reason = "Error"
	}
	t := &corev1.ContainerStateTerminated{
		ExitCode:    int32(c.ExitCode),
		Reason:      reason,
		Message:     terminationMessage(c),
		StartedAt:   metav1.NewTime(c.StartedAt),
		FinishedAt:  metav1.NewTime(c.FinishedAt),
		ContainerID: "skiff://" + c.ID,
	}
	if c.Signal != "" {
		t.Signal = signalNumber(c.Signal)
	}
	return corev1.ContainerState{Terminated: t}
}

// terminationMessage is what the container wrote to its
// terminationMessagePath (at most 4 KiB, as Kubernetes keeps).
func terminationMessage(c runtime.ContainerState) string {
	path := c.Labels[labelTermMsgPath]
	if path == "" {
		return c.Message
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return c.Message
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}

func signalNumber(name string) int32 {
	signals := map[string]int32{"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGABRT": 6, "SIGKILL": 9, "SIGSEGV": 11, "SIGPIPE": 13, "SIGTERM": 15}
	return signals[strings.ToUpper(name)]
}

// podStatus computes the pod's status from its containers, as the kubelet
// does: phase, conditions, container statuses, IPs and start time.
func (w *podWorker) podStatus(pod *corev1.Pod, inst instances) corev1.PodStatus {
	old := pod.Status
	st := corev1.PodStatus{
		HostIP:    w.k.nodeIP.String(),
		HostIPs:   []corev1.HostIP{{IP: w.k.nodeIP.String()}},
		StartTime: old.StartTime,
		QOSClass:  old.QOSClass,
	}
	if st.StartTime == nil {
		now := metav1.Now()
		st.StartTime = &now
	}
	switch {
	case pod.Spec.HostNetwork:
		st.PodIP = w.k.nodeIP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	case w.podIP != nil:
		st.PodIP = w.podIP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	case old.PodIP != "":
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs
	}
	for i := range pod.Spec.InitContainers {
		st.InitContainerStatuses = append(st.InitContainerStatuses, w.containerStatus(pod, &pod.Spec.InitContainers[i], inst))
	}
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, w.containerStatus(pod, &pod.Spec.Containers[i], inst))
	}
	st.Phase = phase(pod, st)
	if w.deadline {
		st.Phase, st.Reason, st.Message = corev1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
	}

	initialized := true
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			initialized = false
		}
	}
	containersReady := initialized && len(st.ContainerStatuses) > 0
	var notReady []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			containersReady = false
			notReady = append(notReady, cs.Name)
		}
	}
	terminal := isTerminal(st.Phase)
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		return c
	}
	notReadyMsg := "containers with unready status: [" + strings.Join(notReady, " ") + "]"
	var uninit []string
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			uninit = append(uninit, cs.Name)
		}
	}
	ready := containersReady && !terminal
	ready2 := cond(corev1.PodReady, ready, "ContainersNotReady", notReadyMsg)
	cr := cond(corev1.ContainersReady, containersReady && !terminal, "ContainersNotReady", notReadyMsg)
	if terminal {
		ready2.Reason, cr.Reason = "PodCompleted", "PodCompleted"
		ready2.Message, cr.Message = "", ""
	}
	ours := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, !terminal, "", ""),
		cond(corev1.PodInitialized, initialized, "ContainersNotInitialized", "containers with incomplete status: ["+strings.Join(uninit, " ")+"]"),
		ready2,
		cr,
	}
	// Conditions owned by others (PodScheduled, DisruptionTarget, readiness
	// gates) are kept; ours keep their transition time while unchanged.
	for _, c := range old.Conditions {
		switch c.Type {
		case corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady:
		default:
			st.Conditions = append(st.Conditions, c)
		}
	}
	if !hasCondition(st.Conditions, corev1.PodScheduled) {
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
	}
	for _, c := range ours {
		c.LastTransitionTime = metav1.Now()
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		st.Conditions = append(st.Conditions, c)
	}
	return st
}

func hasCondition(cs []corev1.PodCondition, t corev1.PodConditionType) bool {
	for _, c := range cs {
		if c.Type == t {
			return true
		}
	}
	return false
}

// phase follows the kubelet's rules: Pending until every init container
// succeeded and every container started; Running while any runs or will be
// restarted; Succeeded or Failed once all have exited for good.
func phase(pod *corev1.Pod, st corev1.PodStatus) corev1.PodPhase {
	for _, cs := range st.InitContainerStatuses {
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			return corev1.PodPending
		}
	}
	var running, waiting, succeeded, failed, restarting int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && shouldRestart(pod.Spec.RestartPolicy, int(cs.State.Terminated.ExitCode)):
			// Exited, and about to be restarted by its policy.
			restarting++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		case cs.LastTerminationState.Terminated != nil:
			restarting++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0 || restarting > 0:
		return corev1.PodRunning
	case failed > 0 && pod.Spec.RestartPolicy != corev1.RestartPolicyAlways:
		return corev1.PodFailed
	case succeeded+failed > 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
		return corev1.PodRunning
	case succeeded+failed > 0:
		return corev1.PodSucceeded
	}
	return corev1.PodPending
}

// writeStatus writes the pod's status through pods/status when it changed,
// retrying on conflicts with the pod's latest version.
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, inst instances) {
	st := w.podStatus(pod, inst)
	if w.written != nil && apiequality.Semantic.DeepEqual(*w.written, st) {
		return
	}
	if apiequality.Semantic.DeepEqual(pod.Status, st) {
		w.written = &st
		return
	}
	if w.static {
		w.k.updateMirrorStatus(ctx, pod, st)
		w.written = &st
		return
	}
	pods := w.k.client.CoreV1().Pods(pod.Namespace)
	latest := pod
	for attempt := 0; attempt < 5; attempt++ {
		next := latest.DeepCopy()
		next.Status = mergeForeign(st, latest.Status)
		updated, err := pods.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if err == nil {
			w.written = &st
			w.mu.Lock()
			if w.pod != nil && w.pod.UID == updated.UID {
				w.pod.Status = updated.Status
				w.pod.ResourceVersion = updated.ResourceVersion
			}
			w.mu.Unlock()
			return
		}
		if apierrors.IsNotFound(err) {
			return
		}
		if !apierrors.IsConflict(err) {
			w.k.log.Warn("update pod status failed", "pod", podRef(pod, w.uid), "err", err)
			return
		}
		if latest, err = pods.Get(ctx, pod.Name, metav1.GetOptions{}); err != nil || latest.UID != pod.UID {
			return
		}
	}
}

// mergeForeign keeps conditions that others wrote since our snapshot.
func mergeForeign(ours, theirs corev1.PodStatus) corev1.PodStatus {
	for _, c := range theirs.Conditions {
		if !hasCondition(ours.Conditions, c.Type) {
			ours.Conditions = append(ours.Conditions, c)
		}
	}
	if ours.PodIP == "" && theirs.PodIP != "" {
		ours.PodIP, ours.PodIPs = theirs.PodIP, theirs.PodIPs
	}
	return ours
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
