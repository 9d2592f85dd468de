package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// PodWrapper builds a pod for tests: MakePod().Name("a").Req("1", "1Gi").Obj().
// It is exported (from a _test file) so the integration tests use it too.
type PodWrapper struct{ corev1.Pod }

// MakePod starts a pod in namespace default served by default-scheduler.
func MakePod() *PodWrapper {
	p := &PodWrapper{}
	p.Pod.Namespace = "default"
	p.Spec.SchedulerName = corev1.DefaultSchedulerName
	return p
}

// Obj returns the pod.
func (p *PodWrapper) Obj() *corev1.Pod { return p.Pod.DeepCopy() }

// Name sets the name (and a uid derived from namespace and name).
func (p *PodWrapper) Name(n string) *PodWrapper {
	p.Pod.Name = n
	p.UID = types.UID(p.Pod.Namespace + "-" + n)
	return p
}

// Namespace sets the namespace (before Name, so the uid follows).
func (p *PodWrapper) Namespace(ns string) *PodWrapper {
	p.Pod.Namespace = ns
	return p
}

// Node places the pod on a node.
func (p *PodWrapper) Node(n string) *PodWrapper { p.Spec.NodeName = n; return p }

// Label adds a label.
func (p *PodWrapper) Label(k, v string) *PodWrapper {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[k] = v
	return p
}

// Priority sets spec.priority.
func (p *PodWrapper) Priority(v int32) *PodWrapper { p.Spec.Priority = ptr.To(v); return p }

func resources(cpu, mem string) corev1.ResourceList {
	rl := corev1.ResourceList{}
	if cpu != "" {
		rl[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rl[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return rl
}

// Req adds a container requesting cpu and memory ("" for none).
func (p *PodWrapper) Req(cpu, mem string) *PodWrapper {
	return p.Container(corev1.ResourceRequirements{Requests: resources(cpu, mem)})
}

// Container adds a container with the given resources.
func (p *PodWrapper) Container(r corev1.ResourceRequirements) *PodWrapper {
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
		Name: fmt.Sprintf("c%d", len(p.Spec.Containers)), Image: "busybox", Resources: r})
	return p
}

// InitReq adds an init container requesting cpu and memory.
func (p *PodWrapper) InitReq(cpu, mem string) *PodWrapper {
	p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{
		Name: fmt.Sprintf("i%d", len(p.Spec.InitContainers)), Image: "busybox",
		Resources: corev1.ResourceRequirements{Requests: resources(cpu, mem)}})
	return p
}

// Sidecar adds a restartable init container requesting cpu and memory.
func (p *PodWrapper) Sidecar(cpu, mem string) *PodWrapper {
	p.InitReq(cpu, mem)
	p.Spec.InitContainers[len(p.Spec.InitContainers)-1].RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways)
	return p
}

// Overhead sets the pod overhead.
func (p *PodWrapper) Overhead(cpu, mem string) *PodWrapper {
	p.Spec.Overhead = resources(cpu, mem)
	return p
}

// HostPort adds a container port on the host (TCP, all addresses).
func (p *PodWrapper) HostPort(port int32) *PodWrapper { return p.HostPortOn("", "", port) }

// HostPortOn adds a host port on an address and protocol ("" for defaults).
func (p *PodWrapper) HostPortOn(ip string, proto corev1.Protocol, port int32) *PodWrapper {
	if len(p.Spec.Containers) == 0 {
		p.Req("", "")
	}
	c := &p.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: port, HostPort: port, HostIP: ip, Protocol: proto})
	return p
}

// NodeSelector adds a nodeSelector entry.
func (p *PodWrapper) NodeSelector(k, v string) *PodWrapper {
	if p.Spec.NodeSelector == nil {
		p.Spec.NodeSelector = map[string]string{}
	}
	p.Spec.NodeSelector[k] = v
	return p
}

func (p *PodWrapper) nodeAffinity() *corev1.NodeAffinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &corev1.Affinity{}
	}
	if p.Spec.Affinity.NodeAffinity == nil {
		p.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	return p.Spec.Affinity.NodeAffinity
}

// RequireNode adds a required node selector term (terms are ORed).
func (p *PodWrapper) RequireNode(t corev1.NodeSelectorTerm) *PodWrapper {
	na := p.nodeAffinity()
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = append(na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, t)
	return p
}

// PreferNode adds a preferred node selector term.
func (p *PodWrapper) PreferNode(weight int32, t corev1.NodeSelectorTerm) *PodWrapper {
	na := p.nodeAffinity()
	na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: weight, Preference: t})
	return p
}

// Expr is a node selector term of one label expression.
func Expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// Toleration adds a toleration (op Equal if value is set, else Exists).
func (p *PodWrapper) Toleration(key, value string, effect corev1.TaintEffect) *PodWrapper {
	t := corev1.Toleration{Key: key, Value: value, Effect: effect, Operator: corev1.TolerationOpEqual}
	if value == "" {
		t.Operator = corev1.TolerationOpExists
	}
	p.Spec.Tolerations = append(p.Spec.Tolerations, t)
	return p
}

func (p *PodWrapper) podAffinity() *corev1.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &corev1.Affinity{}
	}
	if p.Spec.Affinity.PodAffinity == nil {
		p.Spec.Affinity.PodAffinity = &corev1.PodAffinity{}
	}
	if p.Spec.Affinity.PodAntiAffinity == nil {
		p.Spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	return p.Spec.Affinity
}

func term(key string, sel map[string]string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

// PodAffinity adds a required pod affinity term: near pods with labels sel
// in the same domain of key.
func (p *PodWrapper) PodAffinity(key string, sel map[string]string) *PodWrapper {
	a := p.podAffinity()
	a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(key, sel))
	return p
}

// PodAntiAffinity adds a required pod anti-affinity term.
func (p *PodWrapper) PodAntiAffinity(key string, sel map[string]string) *PodWrapper {
	a := p.podAffinity()
	a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(key, sel))
	return p
}

// PreferPodAffinity adds a preferred pod affinity term.
func (p *PodWrapper) PreferPodAffinity(weight int32, key string, sel map[string]string) *PodWrapper {
	a := p.podAffinity()
	a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: term(key, sel)})
	return p
}

// PreferPodAntiAffinity adds a preferred pod anti-affinity term.
func (p *PodWrapper) PreferPodAntiAffinity(weight int32, key string, sel map[string]string) *PodWrapper {
	a := p.podAffinity()
	a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: term(key, sel)})
	return p
}

// Spread adds a topology spread constraint over pods with labels sel.
func (p *PodWrapper) Spread(maxSkew int32, key string, when corev1.UnsatisfiableConstraintAction, sel map[string]string) *PodWrapper {
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}})
	return p
}

// Owner sets the pod's controller.
func (p *PodWrapper) Owner(kind, name string, uid types.UID) *PodWrapper {
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: uid, Controller: ptr.To(true)}}
	return p
}

// Claim adds a volume using a PersistentVolumeClaim.
func (p *PodWrapper) Claim(name string) *PodWrapper {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "v-" + name,
		VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}})
	return p
}

// NodeWrapper builds a node for tests: MakeNode().Name("n1").Capacity("4", "8Gi", 110).Obj().
type NodeWrapper struct{ corev1.Node }

// MakeNode starts a Ready node with 4 cpu, 8Gi and 110 pods.
func MakeNode() *NodeWrapper {
	n := &NodeWrapper{}
	n.Labels = map[string]string{}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	return n.Capacity("4", "8Gi", 110)
}

// Obj returns the node.
func (n *NodeWrapper) Obj() *corev1.Node { return n.Node.DeepCopy() }

// Name sets the name and the hostname label.
func (n *NodeWrapper) Name(name string) *NodeWrapper {
	n.Node.Name = name
	n.Labels[corev1.LabelHostname] = name
	return n
}

// Capacity sets capacity and allocatable.
func (n *NodeWrapper) Capacity(cpu, mem string, pods int64) *NodeWrapper {
	rl := resources(cpu, mem)
	rl[corev1.ResourcePods] = *resource.NewQuantity(pods, resource.DecimalSI)
	rl[corev1.ResourceEphemeralStorage] = resource.MustParse("100Gi")
	n.Status.Capacity, n.Status.Allocatable = rl, rl.DeepCopy()
	return n
}

// Extended adds an extended resource to capacity and allocatable.
func (n *NodeWrapper) Extended(name corev1.ResourceName, v int64) *NodeWrapper {
	n.Status.Capacity[name] = *resource.NewQuantity(v, resource.DecimalSI)
	n.Status.Allocatable[name] = *resource.NewQuantity(v, resource.DecimalSI)
	return n
}

// Label adds a label.
func (n *NodeWrapper) Label(k, v string) *NodeWrapper { n.Labels[k] = v; return n }

// Zone sets topology.kubernetes.io/zone.
func (n *NodeWrapper) Zone(z string) *NodeWrapper { return n.Label(labelZone, z) }

// Taint adds a taint.
func (n *NodeWrapper) Taint(key, value string, effect corev1.TaintEffect) *NodeWrapper {
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	return n
}

// Unschedulable cordons the node.
func (n *NodeWrapper) Unschedulable() *NodeWrapper { n.Spec.Unschedulable = true; return n }

// Ready sets the Ready condition's status.
func (n *NodeWrapper) Ready(s corev1.ConditionStatus) *NodeWrapper {
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: s}}
	return n
}

// fakeLookup answers Lookup from maps.
type fakeLookup struct {
	pvcs       []*corev1.PersistentVolumeClaim
	pvs        []*corev1.PersistentVolume
	classes    []*storagev1.StorageClass
	namespaces map[string]labels.Set
}

func (f *fakeLookup) PVC(ns, name string) (*corev1.PersistentVolumeClaim, error) {
	for _, p := range f.pvcs {
		if p.Namespace == ns && p.Name == name {
			return p, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "persistentvolumeclaims"}, name)
}

func (f *fakeLookup) PV(name string) (*corev1.PersistentVolume, error) {
	for _, p := range f.pvs {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "persistentvolumes"}, name)
}

func (f *fakeLookup) StorageClass(name string) (*storagev1.StorageClass, error) {
	for _, c := range f.classes {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, name)
}

func (f *fakeLookup) NamespaceLabels(ns string) labels.Set { return f.namespaces[ns] }

func makePVC(name, volume, class string) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	c.Spec.VolumeName = volume
	if class != "" {
		c.Spec.StorageClassName = ptr.To(class)
	}
	return c
}

func makePV(name string, affinity *corev1.NodeSelector) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if affinity != nil {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: affinity}
	}
	return pv
}

func makeClass(name string, mode storagev1.VolumeBindingMode) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/p", VolumeBindingMode: ptr.To(mode)}
}
