package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// topoCounts counts (or scores) per topology domain: key → value → n.
type topoCounts map[string]map[string]int64

func (c topoCounts) add(key, value string, n int64) {
	m := c[key]
	if m == nil {
		m = map[string]int64{}
		c[key] = m
	}
	m[value] += n
}

func (c topoCounts) get(key, value string) int64 { return c[key][value] }

// hardPodAffinityWeight is what an existing pod's required affinity term
// that selects the incoming pod adds to the score of its domain.
const hardPodAffinityWeight = 1

// interPodState is what the inter-pod affinity filter precomputed.
type interPodState struct {
	// existingAnti are the domains where an existing pod has a required
	// anti-affinity term selecting the incoming pod.
	existingAnti topoCounts
	// affinity counts, per domain of each required affinity term, the
	// pods that match all the incoming pod's required affinity terms.
	affinity topoCounts
	// anti counts, per domain of each required anti-affinity term, the
	// pods that term selects.
	anti topoCounts
	// selfMatch: the pod matches all its own required affinity terms, so
	// the first pod of a group that wants to be together can go anywhere.
	selfMatch bool
}

func (st *CycleState) nsLabels() NamespaceLabels {
	if st.Lookup == nil {
		return nil
	}
	return st.Lookup.NamespaceLabels
}

// preFilterInterPod counts matching pods per topology domain once, so the
// filter is a few map lookups per node. The snapshot's label indexes limit
// the pods and terms looked at to those a selector may match.
func preFilterInterPod(st *CycleState) *Status {
	pi := st.Pod
	if pi.ParseErr != nil {
		return asError(PluginInterPodAffinity, pi.ParseErr)
	}
	nsl := st.nsLabels()
	s := &st.interPod
	s.existingAnti = topoCounts{}
	st.Snapshot.antiTermsSelecting(pi.Pod.Labels, func(ref termRef, n *NodeInfo) {
		t := ref.term
		if v, ok := n.Node.Labels[t.TopologyKey]; ok && t.Matches(pi.Pod, nsl) {
			s.existingAnti.add(t.TopologyKey, v, 1)
		}
	})
	if len(pi.RequiredAffinity) == 0 && len(pi.RequiredAntiAffinity) == 0 {
		return nil
	}
	s.affinity, s.anti = topoCounts{}, topoCounts{}
	s.selfMatch = termsMatchAll(pi.RequiredAffinity, pi.Pod, nsl)
	if len(pi.RequiredAffinity) > 0 {
		// A pod counts if it matches every term; the first term's
		// candidates are enough to look at.
		st.Snapshot.candidates(pi.RequiredAffinity[0].Selector, func(ep *PodInfo, n *NodeInfo) {
			if !termsMatchAll(pi.RequiredAffinity, ep.Pod, nsl) {
				return
			}
			for i := range pi.RequiredAffinity {
				t := &pi.RequiredAffinity[i]
				if v, ok := n.Node.Labels[t.TopologyKey]; ok {
					s.affinity.add(t.TopologyKey, v, 1)
				}
			}
		})
	}
	for i := range pi.RequiredAntiAffinity {
		t := &pi.RequiredAntiAffinity[i]
		st.Snapshot.candidates(t.Selector, func(ep *PodInfo, n *NodeInfo) {
			if v, ok := n.Node.Labels[t.TopologyKey]; ok && t.Matches(ep.Pod, nsl) {
				s.anti.add(t.TopologyKey, v, 1)
			}
		})
	}
	return nil
}

func termsMatchAll(terms []AffinityTerm, pod *corev1.Pod, nsl NamespaceLabels) bool {
	for i := range terms {
		if !terms[i].Matches(pod, nsl) {
			return false
		}
	}
	return true
}

// filterInterPod applies, in order: the pod's required affinity (every
// term's domain on this node must hold a matching pod, unless no pod
// matches anywhere and the pod matches its own terms), its required
// anti-affinity (no term's domain may hold a selected pod), and the
// required anti-affinity of existing pods (the node must not be in a
// domain where an existing pod refuses the incoming one).
func filterInterPod(st *CycleState, n *NodeInfo) *Status {
	pi, s := st.Pod, &st.interPod
	lbls := n.Node.Labels
	if len(pi.RequiredAffinity) > 0 {
		ok := true
		for i := range pi.RequiredAffinity {
			t := &pi.RequiredAffinity[i]
			v, has := lbls[t.TopologyKey]
			if !has {
				return unresolvable(PluginInterPodAffinity, reasonAffinityRules)
			}
			if s.affinity.get(t.TopologyKey, v) <= 0 {
				ok = false
			}
		}
		if !ok && !(len(s.affinity) == 0 && s.selfMatch) {
			return unresolvable(PluginInterPodAffinity, reasonAffinityRules)
		}
	}
	for i := range pi.RequiredAntiAffinity {
		t := &pi.RequiredAntiAffinity[i]
		if v, has := lbls[t.TopologyKey]; has && s.anti.get(t.TopologyKey, v) > 0 {
			return unschedulable(PluginInterPodAffinity, reasonAntiAffinityRules)
		}
	}
	for key, values := range s.existingAnti {
		if v, has := lbls[key]; has && values[v] > 0 {
			return unschedulable(PluginInterPodAffinity, reasonExistingAntiAffinity)
		}
	}
	return nil
}

// preScoreInterPod sums preferences per topology domain: the pod's
// preferred (anti-)affinity terms for the pods they select, and the terms
// of existing pods that select the incoming pod (their preferred terms by
// weight, their required affinity terms by hardPodAffinityWeight).
func preScoreInterPod(st *CycleState, _ []*NodeInfo) bool {
	pi := st.Pod
	if pi.ParseErr != nil {
		return false
	}
	nsl := st.nsLabels()
	scores := topoCounts{}
	addAt := func(n *NodeInfo, t *AffinityTerm, w int64) {
		if v, ok := n.Node.Labels[t.TopologyKey]; ok {
			scores.add(t.TopologyKey, v, w)
		}
	}
	for i := range pi.PreferredAffinity {
		t := &pi.PreferredAffinity[i]
		st.Snapshot.candidates(t.Selector, func(ep *PodInfo, n *NodeInfo) {
			if t.Matches(ep.Pod, nsl) {
				addAt(n, &t.AffinityTerm, t.Weight)
			}
		})
	}
	for i := range pi.PreferredAntiAffinity {
		t := &pi.PreferredAntiAffinity[i]
		st.Snapshot.candidates(t.Selector, func(ep *PodInfo, n *NodeInfo) {
			if t.Matches(ep.Pod, nsl) {
				addAt(n, &t.AffinityTerm, -t.Weight)
			}
		})
	}
	for _, n := range st.Snapshot.list {
		for _, ep := range n.PodsWithAffinity {
			for i := range ep.RequiredAffinity {
				if t := &ep.RequiredAffinity[i]; t.Matches(pi.Pod, nsl) {
					addAt(n, t, hardPodAffinityWeight)
				}
			}
			for i := range ep.PreferredAffinity {
				if t := &ep.PreferredAffinity[i]; t.Matches(pi.Pod, nsl) {
					addAt(n, &t.AffinityTerm, t.Weight)
				}
			}
			for i := range ep.PreferredAntiAffinity {
				if t := &ep.PreferredAntiAffinity[i]; t.Matches(pi.Pod, nsl) {
					addAt(n, &t.AffinityTerm, -t.Weight)
				}
			}
		}
	}
	st.interPodScores = scores
	return len(scores) > 0
}

// scoreInterPod is the sum of the scores of the node's domains;
// normalizeMinMax scales them to 0-100.
func scoreInterPod(st *CycleState, n *NodeInfo) int64 {
	var sum int64
	for key, values := range st.interPodScores {
		if v, ok := n.Node.Labels[key]; ok {
			sum += values[v]
		}
	}
	return sum
}
