package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// spreadConstraint is a topology spread constraint with its selector parsed.
type spreadConstraint struct {
	maxSkew     int64
	key         string
	selector    labels.Selector
	minDomains  int64
	honorAffin  bool
	honorTaints bool
}

// spreadState is what the spread filter (DoNotSchedule constraints) or
// score (ScheduleAnyway constraints) precomputed.
type spreadState struct {
	constraints []spreadConstraint
	// counts[i] counts, per domain of constraint i, the pods it selects on
	// eligible nodes (every eligible domain is present, maybe with 0).
	counts []map[string]int64
	// minMatch[i] is the smallest count of constraint i (0 when there are
	// fewer domains than minDomains).
	minMatch []int64
	// selfMatch[i] is 1 if the pod itself is selected by constraint i.
	selfMatch []int64
	// weights[i] weighs constraint i's counts when scoring: domains with
	// many values (hostname) matter more, as log(domains + 2).
	weights []float64
}

// parseSpread parses the pod's constraints with the given action.
// matchLabelKeys take their values from the pod's labels.
func parseSpread(pod *corev1.Pod, when corev1.UnsatisfiableConstraintAction) ([]spreadConstraint, error) {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != when {
			continue
		}
		sel, err := labelSelector(c.LabelSelector)
		if err != nil {
			return nil, err
		}
		for _, k := range c.MatchLabelKeys {
			if v, ok := pod.Labels[k]; ok {
				r, err := labels.NewRequirement(k, selection.Equals, []string{v})
				if err != nil {
					return nil, err
				}
				sel = sel.Add(*r)
			}
		}
		sc := spreadConstraint{
			maxSkew:     int64(c.MaxSkew),
			key:         c.TopologyKey,
			selector:    sel,
			minDomains:  1,
			honorAffin:  c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints: c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor,
		}
		if c.MinDomains != nil && when == corev1.DoNotSchedule {
			sc.minDomains = int64(*c.MinDomains)
		}
		out = append(out, sc)
	}
	return out, nil
}

// eligible says whether node n counts for the constraints: it has all
// their topology keys and passes the node inclusion policies.
func spreadEligible(st *CycleState, cs []spreadConstraint, n *NodeInfo) bool {
	for i := range cs {
		if _, ok := n.Node.Labels[cs[i].key]; !ok {
			return false
		}
	}
	for i := range cs {
		if cs[i].honorAffin && !podMatchesNodeAffinity(st.Pod.Pod, n.Node) {
			return false
		}
		if cs[i].honorTaints && filterTaintToleration(st, n) != nil {
			return false
		}
	}
	return true
}

// countSpread fills s.counts, minMatch, selfMatch and weights for cs over
// the nodes of the snapshot.
func countSpread(st *CycleState, cs []spreadConstraint, s *spreadState) {
	pod := st.Pod.Pod
	s.constraints = cs
	s.counts = make([]map[string]int64, len(cs))
	s.minMatch = make([]int64, len(cs))
	s.selfMatch = make([]int64, len(cs))
	s.weights = make([]float64, len(cs))
	podLabels := labels.Set(pod.Labels)
	for i := range cs {
		s.counts[i] = map[string]int64{}
		if cs[i].selector.Matches(podLabels) {
			s.selfMatch[i] = 1
		}
	}
	eligible := make([]bool, len(st.Snapshot.list))
	for _, n := range st.Snapshot.list {
		if !spreadEligible(st, cs, n) {
			continue
		}
		eligible[n.index] = true
		for i := range cs {
			// Every eligible domain counts, even with no pods yet.
			v := n.Node.Labels[cs[i].key]
			if _, ok := s.counts[i][v]; !ok {
				s.counts[i][v] = 0
			}
		}
	}
	for i := range cs {
		c := &cs[i]
		st.Snapshot.candidates(c.selector, func(ep *PodInfo, n *NodeInfo) {
			p := ep.Pod
			if eligible[n.index] && p.Namespace == pod.Namespace && p.DeletionTimestamp == nil && c.selector.Matches(labels.Set(p.Labels)) {
				s.counts[i][n.Node.Labels[c.key]]++
			}
		})
	}
	for i := range cs {
		first := true
		for _, c := range s.counts[i] {
			if first || c < s.minMatch[i] {
				s.minMatch[i], first = c, false
			}
		}
		if int64(len(s.counts[i])) < cs[i].minDomains {
			s.minMatch[i] = 0
		}
		s.weights[i] = math.Log(float64(len(s.counts[i]) + 2))
	}
}

// preFilterSpread counts the pods the DoNotSchedule constraints select.
func preFilterSpread(st *CycleState) *Status {
	cs, err := parseSpread(st.Pod.Pod, corev1.DoNotSchedule)
	if err != nil {
		return asError(PluginPodTopologySpread, err)
	}
	if len(cs) == 0 {
		return nil
	}
	countSpread(st, cs, &st.spread)
	return nil
}

// filterSpread rejects a node where placing the pod would make its domain
// exceed maxSkew over the least loaded domain, and nodes without the
// constraint's topology label.
func filterSpread(st *CycleState, n *NodeInfo) *Status {
	s := &st.spread
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := n.Node.Labels[c.key]
		if !ok {
			return unresolvable(PluginPodTopologySpread, reasonSpreadMissingLabel)
		}
		if s.counts[i][v]+s.selfMatch[i]-s.minMatch[i] > c.maxSkew {
			return unschedulable(PluginPodTopologySpread, reasonSpreadConstraints)
		}
	}
	return nil
}

// preScoreSpread counts the pods the ScheduleAnyway constraints select.
func preScoreSpread(st *CycleState, _ []*NodeInfo) bool {
	cs, err := parseSpread(st.Pod.Pod, corev1.ScheduleAnyway)
	if err != nil || len(cs) == 0 {
		return false
	}
	countSpread(st, cs, &st.spreadScore)
	return true
}

// scoreSpread is the weighted count of selected pods in the node's
// domains (fewer is better; normalizeSpread inverts it), or -1 for a node
// lacking a topology key, which scores 0.
func scoreSpread(st *CycleState, n *NodeInfo) int64 {
	s := &st.spreadScore
	var sum float64
	for i := range s.constraints {
		v, ok := n.Node.Labels[s.constraints[i].key]
		if !ok {
			return -1
		}
		sum += float64(s.counts[i][v]) * s.weights[i]
	}
	return int64(math.Round(sum * 100))
}

// normalizeSpread maps the least crowded node to 100 and the most crowded
// to 0; nodes without the topology keys get 0.
func normalizeSpread(_ *CycleState, scores []int64) {
	lo, hi := int64(math.MaxInt64), int64(-1)
	for _, s := range scores {
		if s < 0 {
			continue
		}
		lo, hi = min(lo, s), max(hi, s)
	}
	for i, s := range scores {
		switch {
		case s < 0:
			scores[i] = 0
		case hi == lo:
			scores[i] = maxNodeScore
		default:
			scores[i] = maxNodeScore * (hi - s) / (hi - lo)
		}
	}
}

// Zone labels, current and deprecated.
const (
	labelZone     = "topology.kubernetes.io/zone"
	labelZoneBeta = "failure-domain.beta.kubernetes.io/zone"
)

func zoneOf(n *corev1.Node) string {
	if z := n.Labels[labelZone]; z != "" {
		return z
	}
	return n.Labels[labelZoneBeta]
}

// ownerSpreadState is the default spreading of a controller's pods.
type ownerSpreadState struct {
	maxNode  int64
	zones    map[string]int64
	maxZone  int64
	useZones bool
}

// preScoreOwnerSpread is active for a pod that has a controller and no
// spread constraints of its own: it then spreads like its siblings, by
// node and (when nodes have zones) by zone.
func preScoreOwnerSpread(st *CycleState, feasible []*NodeInfo) bool {
	pi := st.Pod
	if pi.Owner == "" || len(pi.Pod.Spec.TopologySpreadConstraints) > 0 {
		return false
	}
	s := &st.ownerSpread
	*s = ownerSpreadState{zones: map[string]int64{}}
	for _, n := range st.Snapshot.list {
		if z := zoneOf(n.Node); z != "" {
			s.zones[z] += int64(n.OwnerCount(pi.Owner))
		}
	}
	for _, n := range feasible {
		s.maxNode = max(s.maxNode, int64(n.OwnerCount(pi.Owner)))
		if z := zoneOf(n.Node); z != "" {
			s.useZones = true
			s.maxZone = max(s.maxZone, s.zones[z])
		}
	}
	return true
}

// scoreOwnerSpread: 100 for a node (and zone) with none of the owner's
// pods, 0 for the most crowded; the zone weighs two thirds when known.
func scoreOwnerSpread(st *CycleState, n *NodeInfo) int64 {
	s := &st.ownerSpread
	score := int64(maxNodeScore)
	if s.maxNode > 0 {
		score = maxNodeScore * (s.maxNode - int64(n.OwnerCount(st.Pod.Owner))) / s.maxNode
	}
	if z := zoneOf(n.Node); s.useZones && z != "" {
		zs := int64(maxNodeScore)
		if s.maxZone > 0 {
			zs = maxNodeScore * (s.maxZone - s.zones[z]) / s.maxZone
		}
		score = (score + 2*zs) / 3
	}
	return score
}
