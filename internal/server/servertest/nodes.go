package servertest

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// NodeOption changes a fake node before it is created.
type NodeOption func(*corev1.Node)

// WithCapacity sets the node's cpu, memory and pod capacity (= allocatable).
func WithCapacity(cpu, memory string, pods int64) NodeOption {
	return func(n *corev1.Node) {
		rl := corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse(cpu),
			corev1.ResourceMemory:           resource.MustParse(memory),
			corev1.ResourcePods:             *resource.NewQuantity(pods, resource.DecimalSI),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}
		n.Status.Capacity, n.Status.Allocatable = rl, rl.DeepCopy()
	}
}

// WithLabels adds labels to the node.
func WithLabels(l map[string]string) NodeOption {
	return func(n *corev1.Node) {
		for k, v := range l {
			n.Labels[k] = v
		}
	}
}

// WithTaints sets the node's taints.
func WithTaints(t ...corev1.Taint) NodeOption { return func(n *corev1.Node) { n.Spec.Taints = t } }

// AddNode creates a Ready node with 4 cpu, 8Gi and 110 pods unless options
// say otherwise, and a lease in kube-node-lease renewed now.
func AddNode(t testing.TB, c kubernetes.Interface, name string, opts ...NodeOption) *corev1.Node {
	t.Helper()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}},
		},
	}
	WithCapacity("4", "8Gi", 110)(n)
	for _, o := range opts {
		o(n)
	}
	ctx := context.Background()
	out, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	RenewLease(t, c, name)
	return out
}

// RenewLease renews the node's lease in kube-node-lease, as a kubelet does
// every 10 s.
func RenewLease(t testing.TB, c kubernetes.Interface, node string) {
	t.Helper()
	ctx := context.Background()
	leases := c.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node), LeaseDurationSeconds: ptr.To(int32(40)), RenewTime: &now},
		}, metav1.CreateOptions{})
	} else if err == nil {
		l.Spec.RenewTime = &now
		_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Errorf("renew lease of %s: %v", node, err)
	}
}

// FakeKubelet plays the kubelet of node until ctx is done: pods bound to
// it become Running and Ready with a pod IP, and pods being deleted are
// removed at once. Failing tests report through t.
func FakeKubelet(ctx context.Context, t testing.TB, c kubernetes.Interface, node string) {
	go func() {
		for ctx.Err() == nil {
			w, err := c.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				p, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted {
					continue
				}
				runPod(ctx, c, p)
			}
		}
	}()
}

// fakePodIP derives a stable pod IP in 10.42.0.0/16 from the pod's uid.
func fakePodIP(p *corev1.Pod) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(p.UID))
	v := h.Sum32()
	return fmt.Sprintf("10.42.%d.%d", (v>>8)%256, v%254+1)
}

func runPod(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) {
	pods := c.CoreV1().Pods(p.Namespace)
	if p.DeletionTimestamp != nil {
		_ = pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0)), Preconditions: &metav1.Preconditions{UID: &p.UID}})
		return
	}
	if p.Status.Phase != corev1.PodPending {
		return
	}
	now := metav1.Now()
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = fakePodIP(p)
	p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, ctr := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, Ready: true, Started: ptr.To(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	_, _ = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
}
