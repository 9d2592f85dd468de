package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// NodeInfo is a node with the sums over the pods placed on it (bound, or
// assumed while their binding is in flight), kept up to date as pods come
// and go so that filters never walk the pods for resources or ports.
type NodeInfo struct {
	// Node is nil while pods name a node the scheduler has not seen (or no
	// longer sees); such an entry is never offered to a pod.
	Node *corev1.Node
	Name string
	Pods []*PodInfo
	// PodsWithAffinity have any pod affinity or anti-affinity term;
	// PodsWithRequiredAntiAffinity have a required anti-affinity term.
	PodsWithAffinity             []*PodInfo
	PodsWithRequiredAntiAffinity []*PodInfo

	Requested        Resource
	NonZeroRequested Resource
	Allocatable      Resource

	// taints are the node's taints plus the ones its conditions imply
	// (not-ready, unreachable) when the node controller has not added them.
	taints []corev1.Taint
	// usedPorts counts, per protocol and port, the host IPs taken.
	usedPorts map[protoPort]map[string]int
	// owners counts the pods of each controller on the node.
	owners map[types.UID]int
	// index is the node's position in Snapshot.list, -1 if not listed.
	index int
}

type protoPort struct {
	protocol corev1.Protocol
	port     int32
}

func newNodeInfo(name string) *NodeInfo {
	return &NodeInfo{Name: name, index: -1}
}

// Labels are the node's labels (nil for an unknown node).
func (n *NodeInfo) Labels() map[string]string {
	if n.Node == nil {
		return nil
	}
	return n.Node.Labels
}

// Taints are the taints filters and scores see: the node's own and the
// ones its Ready condition implies.
func (n *NodeInfo) Taints() []corev1.Taint { return n.taints }

// OwnerCount is how many pods of controller uid are on the node.
func (n *NodeInfo) OwnerCount(uid types.UID) int { return n.owners[uid] }

func (n *NodeInfo) setNode(node *corev1.Node) {
	n.Node = node
	n.Allocatable = resourceFromList(node.Status.Allocatable)
	n.taints = effectiveTaints(node)
}

// Well-known taints the node controller puts on nodes whose Ready
// condition is False (not-ready) or Unknown (unreachable).
const (
	taintNotReady      = "node.kubernetes.io/not-ready"
	taintUnreachable   = "node.kubernetes.io/unreachable"
	taintUnschedulable = "node.kubernetes.io/unschedulable"
)

// effectiveTaints adds a NoSchedule not-ready (or unreachable) taint when
// the node is not Ready and does not carry that taint yet, so a node is
// only offered to pods once its Ready condition is True, unless the pod
// tolerates the taint, exactly as with Kubernetes' taint-based conditions.
func effectiveTaints(node *corev1.Node) []corev1.Taint {
	status := corev1.ConditionUnknown
	found := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status, found = c.Status, true
			break
		}
	}
	var key string
	switch {
	case status == corev1.ConditionTrue:
		return node.Spec.Taints
	case status == corev1.ConditionFalse || !found:
		key = taintNotReady
	default:
		key = taintUnreachable
	}
	for _, t := range node.Spec.Taints {
		if t.Key == key && t.Effect == corev1.TaintEffectNoSchedule {
			return node.Spec.Taints
		}
	}
	out := make([]corev1.Taint, 0, len(node.Spec.Taints)+1)
	out = append(out, node.Spec.Taints...)
	return append(out, corev1.Taint{Key: key, Effect: corev1.TaintEffectNoSchedule})
}

func (n *NodeInfo) addPod(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if pi.hasAffinity() {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinity) > 0 {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
	}
	n.Requested.Add(&pi.Requests)
	n.NonZeroRequested.Add(&pi.NonZero)
	n.Requested.Pods++
	for _, p := range pi.Ports {
		if n.usedPorts == nil {
			n.usedPorts = map[protoPort]map[string]int{}
		}
		k := protoPort{p.Protocol, p.Port}
		if n.usedPorts[k] == nil {
			n.usedPorts[k] = map[string]int{}
		}
		n.usedPorts[k][p.IP]++
	}
	if pi.Owner != "" {
		if n.owners == nil {
			n.owners = map[types.UID]int{}
		}
		n.owners[pi.Owner]++
	}
}

func removeFrom(list []*PodInfo, uid types.UID) ([]*PodInfo, *PodInfo) {
	for i, p := range list {
		if p.Pod.UID == uid {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last], p
		}
	}
	return list, nil
}

func (n *NodeInfo) removePod(uid types.UID) bool {
	var pi *PodInfo
	n.Pods, pi = removeFrom(n.Pods, uid)
	if pi == nil {
		return false
	}
	n.PodsWithAffinity, _ = removeFrom(n.PodsWithAffinity, uid)
	n.PodsWithRequiredAntiAffinity, _ = removeFrom(n.PodsWithRequiredAntiAffinity, uid)
	n.Requested.Sub(&pi.Requests)
	n.NonZeroRequested.Sub(&pi.NonZero)
	n.Requested.Pods--
	for _, p := range pi.Ports {
		k := protoPort{p.Protocol, p.Port}
		if ips := n.usedPorts[k]; ips != nil {
			if ips[p.IP]--; ips[p.IP] <= 0 {
				delete(ips, p.IP)
			}
			if len(ips) == 0 {
				delete(n.usedPorts, k)
			}
		}
	}
	if pi.Owner != "" {
		if n.owners[pi.Owner]--; n.owners[pi.Owner] <= 0 {
			delete(n.owners, pi.Owner)
		}
	}
	return true
}

// portFree reports whether hp can be taken: no pod holds the same protocol
// and port on the same IP, and neither side binds all addresses (0.0.0.0).
func (n *NodeInfo) portFree(hp HostPort) bool {
	ips := n.usedPorts[protoPort{hp.Protocol, hp.Port}]
	if len(ips) == 0 {
		return true
	}
	if hp.IP == "0.0.0.0" {
		return false
	}
	return ips[hp.IP] == 0 && ips["0.0.0.0"] == 0
}

// Snapshot is the scheduler's picture of the cluster: every node's info
// and every placed pod, with indexes so that affinity and spreading look
// at the pods a selector may match rather than at every pod. It is not
// safe for concurrent use; Cache guards it.
type Snapshot struct {
	nodes map[string]*NodeInfo
	// list holds the nodes with a Node, in the order they are searched.
	list []*NodeInfo
	// pods are the placed pods by uid.
	pods map[types.UID]*PodInfo
	// byLabel indexes placed pods by each of their labels.
	byLabel map[labelPair]map[types.UID]*PodInfo
	// antiByLabel indexes the required anti-affinity terms of placed pods
	// by the label values their selector requires (a pod they select has
	// one of them); antiAny holds the terms that require no label value.
	antiByLabel map[labelPair]map[termID]termRef
	antiAny     map[termID]termRef
}

type labelPair struct{ key, value string }

// termID names term i of a pod's required anti-affinity.
type termID struct {
	uid types.UID
	i   int
}

type termRef struct {
	pod  *PodInfo
	term *AffinityTerm
}

// NewSnapshot returns a snapshot of nodes with pods placed on them (pods
// without a node name are ignored).
func NewSnapshot(nodes []*corev1.Node, pods []*corev1.Pod) *Snapshot {
	s := &Snapshot{
		nodes:       map[string]*NodeInfo{},
		pods:        map[types.UID]*PodInfo{},
		byLabel:     map[labelPair]map[types.UID]*PodInfo{},
		antiByLabel: map[labelPair]map[termID]termRef{},
		antiAny:     map[termID]termRef{},
	}
	for _, n := range nodes {
		s.SetNode(n)
	}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			s.AddPod(NewPodInfo(p))
		}
	}
	return s
}

// Nodes are the nodes pods may be placed on. The slice is the snapshot's:
// do not change it.
func (s *Snapshot) Nodes() []*NodeInfo { return s.list }

// Node returns the info of a node, nil if unknown.
func (s *Snapshot) Node(name string) *NodeInfo {
	if n := s.nodes[name]; n != nil && n.Node != nil {
		return n
	}
	return nil
}

// Pod returns a placed pod by uid, nil if none.
func (s *Snapshot) Pod(uid types.UID) *PodInfo { return s.pods[uid] }

// NumPods is how many pods are placed.
func (s *Snapshot) NumPods() int { return len(s.pods) }

// SetNode adds a node or replaces it with a newer version.
func (s *Snapshot) SetNode(node *corev1.Node) {
	n := s.nodes[node.Name]
	if n == nil {
		n = newNodeInfo(node.Name)
		s.nodes[node.Name] = n
	}
	n.setNode(node)
	if n.index < 0 {
		n.index = len(s.list)
		s.list = append(s.list, n)
	}
}

// RemoveNode removes a node. Its pods stay accounted for (under an entry
// with no Node) until they are removed, in case the node comes back.
func (s *Snapshot) RemoveNode(name string) {
	n := s.nodes[name]
	if n == nil {
		return
	}
	s.unlist(n)
	n.Node = nil
	if len(n.Pods) == 0 {
		delete(s.nodes, name)
	}
}

func (s *Snapshot) unlist(n *NodeInfo) {
	if n.index < 0 {
		return
	}
	last := len(s.list) - 1
	s.list[n.index] = s.list[last]
	s.list[n.index].index = n.index
	s.list[last] = nil
	s.list = s.list[:last]
	n.index = -1
}

// AddPod places pi on pi.Pod.Spec.NodeName, replacing any pod with the
// same uid.
func (s *Snapshot) AddPod(pi *PodInfo) {
	s.RemovePod(pi.Pod.UID)
	name := pi.Pod.Spec.NodeName
	n := s.nodes[name]
	if n == nil {
		n = newNodeInfo(name)
		s.nodes[name] = n
	}
	n.addPod(pi)
	s.pods[pi.Pod.UID] = pi
	s.index(pi, true)
}

// RemovePod takes a pod off its node; false if it was not placed.
func (s *Snapshot) RemovePod(uid types.UID) bool {
	pi := s.pods[uid]
	if pi == nil {
		return false
	}
	delete(s.pods, uid)
	s.index(pi, false)
	name := pi.Pod.Spec.NodeName
	if n := s.nodes[name]; n != nil {
		n.removePod(uid)
		if n.Node == nil && len(n.Pods) == 0 {
			delete(s.nodes, name)
		}
	}
	return true
}

// index adds pi to the label indexes, or removes it.
func (s *Snapshot) index(pi *PodInfo, add bool) {
	uid := pi.Pod.UID
	for k, v := range pi.Pod.Labels {
		p := labelPair{k, v}
		if add {
			m := s.byLabel[p]
			if m == nil {
				m = map[types.UID]*PodInfo{}
				s.byLabel[p] = m
			}
			m[uid] = pi
		} else if m := s.byLabel[p]; m != nil {
			delete(m, uid)
			if len(m) == 0 {
				delete(s.byLabel, p)
			}
		}
	}
	for i := range pi.RequiredAntiAffinity {
		t := &pi.RequiredAntiAffinity[i]
		id := termID{uid, i}
		pairs, any, matchesNothing := requiredPairs(t.Selector)
		switch {
		case matchesNothing:
		case any:
			if add {
				s.antiAny[id] = termRef{pi, t}
			} else {
				delete(s.antiAny, id)
			}
		default:
			for _, p := range pairs {
				if add {
					m := s.antiByLabel[p]
					if m == nil {
						m = map[termID]termRef{}
						s.antiByLabel[p] = m
					}
					m[id] = termRef{pi, t}
				} else if m := s.antiByLabel[p]; m != nil {
					delete(m, id)
					if len(m) == 0 {
						delete(s.antiByLabel, p)
					}
				}
			}
		}
	}
}

// requiredPairs returns label pairs one of which every pod sel matches
// has (from its first In or = requirement). any is true when sel requires
// no particular value, matchesNothing when sel selects nothing.
func requiredPairs(sel labels.Selector) (pairs []labelPair, any, matchesNothing bool) {
	reqs, selectable := sel.Requirements()
	if !selectable {
		return nil, false, true
	}
	for _, r := range reqs {
		switch r.Operator() {
		case selection.In, selection.Equals, selection.DoubleEquals:
			for _, v := range r.ValuesUnsorted() {
				pairs = append(pairs, labelPair{r.Key(), v})
			}
			return pairs, false, false
		}
	}
	return nil, true, false
}

// candidates calls f with every placed pod on a listed node that sel may
// match (a superset: callers still match), using the label index when sel
// requires a label value.
func (s *Snapshot) candidates(sel labels.Selector, f func(pi *PodInfo, n *NodeInfo)) {
	pairs, any, none := requiredPairs(sel)
	if none {
		return
	}
	visit := func(pi *PodInfo) {
		if n := s.nodes[pi.Pod.Spec.NodeName]; n != nil && n.index >= 0 {
			f(pi, n)
		}
	}
	size := 0
	for _, p := range pairs {
		size += len(s.byLabel[p])
	}
	if any || size > len(s.pods)/2 {
		// Walking the nodes' pod lists is faster than a large index entry.
		for _, n := range s.list {
			for _, pi := range n.Pods {
				f(pi, n)
			}
		}
		return
	}
	for _, p := range pairs {
		for _, pi := range s.byLabel[p] {
			visit(pi)
		}
	}
}

// antiTermsSelecting calls f with every required anti-affinity term of a
// placed pod on a listed node that may select a pod with the given labels.
func (s *Snapshot) antiTermsSelecting(podLabels map[string]string, f func(ref termRef, n *NodeInfo)) {
	visit := func(ref termRef) {
		if n := s.nodes[ref.pod.Pod.Spec.NodeName]; n != nil && n.index >= 0 {
			f(ref, n)
		}
	}
	for _, ref := range s.antiAny {
		visit(ref)
	}
	for k, v := range podLabels {
		for _, ref := range s.antiByLabel[labelPair{k, v}] {
			visit(ref)
		}
	}
}
