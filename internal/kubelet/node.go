package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Node labels and the lease namespace, as Kubernetes names them.
const (
	labelHostname = "kubernetes.io/hostname"
	labelOS       = "kubernetes.io/os"
	labelArch     = "kubernetes.io/arch"
	nodeLeaseNS   = "kube-node-lease"
	leaseDuration = 40 // seconds, the kubelet's default
	// evictionHardMemory is held back from allocatable, like the kubelet's
	// default memory.available<100Mi eviction threshold.
	evictionHardMemory = 100 << 20
)

// machine is what the node reports about the host; read once at start.
type machine struct {
	capacity corev1.ResourceList
	info     corev1.NodeSystemInfo
}

func readMachine(dataDir string, maxPods int, version string) machine {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	var fs unix.Statfs_t
	storage := int64(0)
	if unix.Statfs(dataDir, &fs) == nil {
		storage = int64(fs.Blocks) * fs.Bsize
	}
	memTotal, _ := meminfo()["MemTotal"]
	return machine{
		capacity: corev1.ResourceList{
			corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
			corev1.ResourceMemory:           *resource.NewQuantity(memTotal, resource.BinarySI),
			corev1.ResourceEphemeralStorage: *resource.NewQuantity(storage, resource.BinarySI),
			corev1.ResourcePods:             *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
		},
		info: corev1.NodeSystemInfo{
			MachineID:               firstLine("/etc/machine-id"),
			SystemUUID:              firstLine("/sys/class/dmi/id/product_uuid"),
			BootID:                  firstLine("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           unix.ByteSliceToString(uts.Release[:]),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: "skiff://" + version,
			KubeletVersion:          version,
			KubeProxyVersion:        version,
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
	}
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// osImage is PRETTY_NAME from os-release, as the kubelet reports it.
func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// meminfo returns /proc/meminfo in bytes.
func meminfo() map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out
}

func (k *Kubelet) nodeLabels() map[string]string {
	l := map[string]string{
		labelHostname: k.nodeName,
		labelOS:       goruntime.GOOS,
		labelArch:     goruntime.GOARCH,
	}
	for key, v := range k.cfg.Agent.NodeLabels {
		l[key] = v
	}
	return l
}

func (k *Kubelet) allocatable() corev1.ResourceList {
	a := k.machine.capacity.DeepCopy()
	mem := a[corev1.ResourceMemory]
	if v := mem.Value() - evictionHardMemory; v > 0 {
		a[corev1.ResourceMemory] = *resource.NewQuantity(v, resource.BinarySI)
	}
	return a
}

func (k *Kubelet) addresses() []corev1.NodeAddress {
	return []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: k.nodeIP.String()},
		{Type: corev1.NodeHostName, Address: k.hostname},
	}
}

// conditions reports the node's health; pressure thresholds follow the
// kubelet's hard eviction defaults.
func (k *Kubelet) conditions(now metav1.Time, old []corev1.NodeCondition) []corev1.NodeCondition {
	mem := meminfo()
	memPressure := mem["MemAvailable"] > 0 && mem["MemAvailable"] < evictionHardMemory
	var fs unix.Statfs_t
	diskPressure := false
	if unix.Statfs(k.cfg.Agent.DataDir, &fs) == nil && fs.Blocks > 0 {
		diskPressure = float64(fs.Bavail)/float64(fs.Blocks) < 0.10
	}
	pidPressure := false
	if max, err := strconv.ParseInt(firstLine("/proc/sys/kernel/pid_max"), 10, 64); err == nil {
		if ents, err := os.ReadDir("/proc"); err == nil {
			pidPressure = float64(len(ents)) > 0.9*float64(max)
		}
	}
	cond := func(t corev1.NodeConditionType, bad bool, badReason, badMsg, okReason, okMsg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: okReason, Message: okMsg}
		if bad {
			c.Status, c.Reason, c.Message = corev1.ConditionTrue, badReason, badMsg
		}
		if t == corev1.NodeReady {
			c.Status = corev1.ConditionTrue
		}
		c.LastHeartbeatTime = now
		c.LastTransitionTime = now
		for _, o := range old {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	out := []corev1.NodeCondition{
		cond(corev1.NodeMemoryPressure, memPressure, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, diskPressure, "KubeletHasDiskPressure", "kubelet has disk pressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, pidPressure, "KubeletHasInsufficientPID", "kubelet has insufficient PID available", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(corev1.NodeReady, false, "", "", "KubeletReady", "kubelet is posting ready status"),
	}
	if !k.offlineFrom.IsZero() {
		// Only a connected node writes its status: the condition tells,
		// once it is back, that it ran alone.
		until := k.offlineUntil
		if until.IsZero() {
			until = now.Time // the registration that ends it
		}
		out = append(out, corev1.NodeCondition{
			Type: NodeOffline, Status: corev1.ConditionFalse, Reason: "ServerReachable",
			Message: fmt.Sprintf("no server answered from %s to %s: the node ran its pods from local state",
				k.offlineFrom.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339)),
			LastHeartbeatTime: now, LastTransitionTime: metav1.NewTime(until),
		})
	}
	return out
}

// NodeOffline is the condition of a node that started while no server
// answered and ran its pods from local state.
const NodeOffline corev1.NodeConditionType = "Offline"

func (k *Kubelet) desiredStatus(old corev1.NodeStatus) corev1.NodeStatus {
	st := old
	st.Capacity = k.machine.capacity
	st.Allocatable = k.allocatable()
	st.Addresses = k.addresses()
	st.NodeInfo = k.machine.info
	st.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.cfg.Agent.KubeletPort)}}
	st.Conditions = k.conditions(metav1.Now(), old.Conditions)
	st.Images = k.nodeImages()
	return st
}

// nodeImages lists the images on the node for the scheduler's image
// locality score, largest first as the kubelet does (at most 50).
func (k *Kubelet) nodeImages() []corev1.ContainerImage {
	imgs, err := k.images.List()
	if err != nil {
		return nil
	}
	var out []corev1.ContainerImage
	for _, img := range imgs {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			names = []string{img.ID}
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: img.Size})
	}
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

// registerNode creates the Node, or adopts an existing one of the same name
// (a restarted agent), refreshing its labels and status.
func (k *Kubelet) registerNode(ctx context.Context) error {
	nodes := k.client.CoreV1().Nodes()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Labels: k.nodeLabels(), Annotations: k.cfg.Agent.NodeAnnotations},
	}
	node.Status = k.desiredStatus(corev1.NodeStatus{})
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		created.Status = node.Status
		_, err = nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("register node %s: status: %w", k.nodeName, err)
		}
	case apierrors.IsAlreadyExists(err):
		existing, err := nodes.Get(ctx, k.nodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("register node %s: %w", k.nodeName, err)
		}
		if existing.Labels == nil {
			existing.Labels = map[string]string{}
		}
		for key, v := range k.nodeLabels() {
			existing.Labels[key] = v
		}
		if len(k.cfg.Agent.NodeAnnotations) > 0 && existing.Annotations == nil {
			existing.Annotations = map[string]string{}
		}
		for key, v := range k.cfg.Agent.NodeAnnotations {
			existing.Annotations[key] = v
		}
		updated, err := nodes.Update(ctx, existing, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("register node %s: labels: %w", k.nodeName, err)
		}
		if err := k.updateNodeStatus(ctx, updated); err != nil {
			return err
		}
	default:
		return fmt.Errorf("register node %s: %w", k.nodeName, err)
	}
	k.log.Info("node registered", "node", k.nodeName, "ip", k.nodeIP)
	return nil
}

func (k *Kubelet) updateNodeStatus(ctx context.Context, node *corev1.Node) error {
	nodes := k.client.CoreV1().Nodes()
	for attempt := 0; attempt < 5; attempt++ {
		if node == nil {
			var err error
			if node, err = nodes.Get(ctx, k.nodeName, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("node %s status: %w", k.nodeName, err)
			}
		}
		node.Status = k.desiredStatus(node.Status)
		_, err := nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			k.lastStatus = node.Status
			k.lastStatusAt = time.Now()
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("node %s status: %w", k.nodeName, err)
		}
		node = nil
	}
	return fmt.Errorf("node %s status: too many conflicts", k.nodeName)
}

// statusChanged reports whether the node's status differs from what was
// last written, ignoring heartbeat times, so unchanged status is not
// rewritten every few seconds (the lease is the heartbeat).
func (k *Kubelet) statusChanged() bool {
	want := k.desiredStatus(k.lastStatus)
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !apiequality.Semantic.DeepEqual(strip(want), strip(k.lastStatus))
}

// runNodeStatus keeps the node lease fresh and writes full status when it
// changed or every NodeStatusReportInterval.
func (k *Kubelet) runNodeStatus(ctx context.Context) {
	tick := time.NewTicker(k.cfg.Agent.NodeLeaseRenewInterval)
	defer tick.Stop()
	for {
		if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("renew node lease failed; the node turns NotReady if this persists", "err", err)
		}
		if k.statusChanged() || time.Since(k.lastStatusAt) >= k.cfg.Agent.NodeStatusReportInterval {
			if err := k.updateNodeStatus(ctx, nil); err != nil && ctx.Err() == nil {
				k.log.Warn("update node status failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(nodeLeaseNS)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, k.nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.nodeName, Namespace: nodeLeaseNS},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(k.nodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration)),
				RenewTime:            &now,
			},
		}
		if node, err := k.client.CoreV1().Nodes().Get(ctx, k.nodeName, metav1.GetOptions{}); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(k.nodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration))
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}
