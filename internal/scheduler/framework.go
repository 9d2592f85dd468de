package scheduler

import (
	"errors"
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
)

// maxNodeScore is the best score a score function gives a node.
const maxNodeScore = 100

// CycleState is one scheduling decision's state: the pod, the snapshot it
// is decided on, and what each plugin precomputed for the pod.
type CycleState struct {
	Pod      *PodInfo
	Snapshot *Snapshot
	Lookup   Lookup

	volumes        volumeState
	interPod       interPodState
	interPodScores topoCounts
	spread         spreadState
	spreadScore    spreadState
	ownerSpread    ownerSpreadState
}

// plugin is one filter and/or score. Every function is pure: it reads the
// cycle state and a node's info and changes nothing but its own part of
// the cycle state.
type plugin struct {
	id Plugin
	// preFilter runs once per pod before the filters; a rejection applies
	// to every node.
	preFilter func(st *CycleState) *Status
	// filter judges one node; nil is "fits".
	filter func(st *CycleState, n *NodeInfo) *Status
	// preScore runs once with the feasible nodes; false skips the score
	// for this pod.
	preScore func(st *CycleState, feasible []*NodeInfo) bool
	// score rates one feasible node.
	score func(st *CycleState, n *NodeInfo) int64
	// normalize maps the raw scores of the feasible nodes to 0-100 in place;
	// nil when score already is.
	normalize func(st *CycleState, scores []int64)
	weight    int64
}

// defaultPlugins are the filters, in the order they run (a node is
// rejected by the first that fails), and the scores with their weights,
// as in Kubernetes' default profile.
func defaultPlugins() []plugin {
	return []plugin{
		{id: PluginNodeUnschedulable, filter: filterNodeUnschedulable},
		{id: PluginTaintToleration, filter: filterTaintToleration,
			score: scoreTaintToleration, normalize: normalizeReverse, weight: 3},
		{id: PluginNodeAffinity, filter: filterNodeAffinity,
			preScore: preScoreNodeAffinity, score: scoreNodeAffinity, normalize: normalizeByMax, weight: 2},
		{id: PluginNodePorts, filter: filterNodePorts},
		{id: PluginNodeResourcesFit, filter: filterResources, score: scoreLeastAllocated, weight: 1},
		{id: PluginVolumeBinding, preFilter: preFilterVolumes, filter: filterVolumes},
		{id: PluginPodTopologySpread, preFilter: preFilterSpread, filter: filterSpread,
			preScore: preScoreSpread, score: scoreSpread, normalize: normalizeSpread, weight: 2},
		{id: PluginInterPodAffinity, preFilter: preFilterInterPod, filter: filterInterPod,
			preScore: preScoreInterPod, score: scoreInterPod, normalize: normalizeMinMax, weight: 2},
		{id: PluginBalancedAllocation, score: scoreBalancedAllocation, weight: 1},
		{id: PluginDefaultSpread, preScore: preScoreOwnerSpread, score: scoreOwnerSpread, weight: 2},
	}
}

// Framework decides where pods go. It keeps the position where the last
// search stopped, so it is used by one goroutine at a time.
type Framework struct {
	plugins []plugin
	// percentage of nodes to look at for feasible ones (0: adaptive).
	percentage int
	rand       *rand.Rand
	nextStart  int
}

// FrameworkOption configures a Framework.
type FrameworkOption func(*Framework)

// WithPercentageOfNodesToScore sets how many nodes, in percent, are
// searched for feasible ones once there are more than 100 (0 means
// adaptive: 50% at 100 nodes, falling to 5% at 5625 nodes and above).
func WithPercentageOfNodesToScore(p int) FrameworkOption {
	return func(f *Framework) { f.percentage = p }
}

// WithRand sets the source used to break ties between the best nodes.
func WithRand(r *rand.Rand) FrameworkOption { return func(f *Framework) { f.rand = r } }

// NewFramework returns a framework with the default plugins.
func NewFramework(opts ...FrameworkOption) *Framework {
	f := &Framework{plugins: defaultPlugins()}
	for _, o := range opts {
		o(f)
	}
	if f.rand == nil {
		f.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return f
}

// Result is a decision.
type Result struct {
	Node string
	// Evaluated is how many nodes were filtered, Feasible how many passed.
	Evaluated, Feasible int
	// ClaimsToAnnotate are unbound WaitForFirstConsumer claims that must be
	// annotated with the chosen node before the pod is bound.
	ClaimsToAnnotate []*corev1.PersistentVolumeClaim
}

// Minimums of the adaptive node search, as in Kubernetes.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// numFeasibleNodesToFind is how many feasible nodes are enough to choose
// from: all of them in small clusters, a shrinking share of large ones.
func (f *Framework) numFeasibleNodesToFind(all int) int {
	if all < minFeasibleNodesToFind {
		return all
	}
	p := f.percentage
	if p <= 0 {
		p = 50 - all/125
		if p < minFeasibleNodesPercentageToFind {
			p = minFeasibleNodesPercentageToFind
		}
	}
	if p >= 100 {
		return all
	}
	n := all * p / 100
	if n < minFeasibleNodesToFind {
		return minFeasibleNodesToFind
	}
	return n
}

// Schedule chooses a node for pi on snap. A pod that fits nowhere gets a
// *FitError; any other error means the decision could not be made.
func (f *Framework) Schedule(snap *Snapshot, pi *PodInfo, lookup Lookup) (Result, error) {
	nodes := snap.list
	if len(nodes) == 0 {
		return Result{}, &FitError{}
	}
	st := &CycleState{Pod: pi, Snapshot: snap, Lookup: lookup}
	for i := range f.plugins {
		p := &f.plugins[i]
		if p.preFilter == nil {
			continue
		}
		if s := p.preFilter(st); !s.IsSuccess() {
			if s.Code == Error {
				return Result{}, fmt.Errorf("%s: %w", p.id, s.Err)
			}
			return Result{}, &FitError{NumAllNodes: len(nodes), PreFilter: s}
		}
	}

	want := f.numFeasibleNodesToFind(len(nodes))
	feasible := make([]*NodeInfo, 0, min(want, len(nodes)))
	var statuses map[string]*Status
	start := f.nextStart % len(nodes)
	evaluated := 0
	for i := 0; i < len(nodes) && len(feasible) < want; i++ {
		n := nodes[(start+i)%len(nodes)]
		evaluated++
		if s := f.filter(st, n); s != nil {
			if s.Code == Error {
				return Result{}, fmt.Errorf("%s on node %s: %w", s.Plugin, n.Name, s.Err)
			}
			if statuses == nil {
				statuses = map[string]*Status{}
			}
			statuses[n.Name] = s
			continue
		}
		feasible = append(feasible, n)
	}
	f.nextStart = (start + evaluated) % len(nodes)
	if len(feasible) == 0 {
		return Result{}, &FitError{NumAllNodes: len(nodes), NodeStatuses: statuses}
	}
	res := Result{Evaluated: evaluated, Feasible: len(feasible), ClaimsToAnnotate: st.volumes.toAnnotate}
	if len(feasible) == 1 {
		res.Node = feasible[0].Name
		return res, nil
	}
	totals := f.score(st, feasible)
	res.Node = feasible[f.pickBest(totals)].Name
	return res, nil
}

// filter runs the filters on one node; the first rejection wins.
func (f *Framework) filter(st *CycleState, n *NodeInfo) *Status {
	for i := range f.plugins {
		p := &f.plugins[i]
		if p.filter == nil {
			continue
		}
		if s := p.filter(st, n); s != nil && s.Code != Success {
			if s.Plugin == 0 {
				s.Plugin = p.id
			}
			return s
		}
	}
	return nil
}

// Filter runs the filters for pi on one node of snap (pre-filters
// included), for tests and diagnostics.
func (f *Framework) Filter(snap *Snapshot, pi *PodInfo, lookup Lookup, node string) *Status {
	n := snap.Node(node)
	if n == nil {
		return asError(0, fmt.Errorf("node %q not in the snapshot", node))
	}
	st := &CycleState{Pod: pi, Snapshot: snap, Lookup: lookup}
	for i := range f.plugins {
		if p := &f.plugins[i]; p.preFilter != nil {
			if s := p.preFilter(st); !s.IsSuccess() {
				return s
			}
		}
	}
	return f.filter(st, n)
}

// score returns the weighted sum of the normalised scores per node.
func (f *Framework) score(st *CycleState, feasible []*NodeInfo) []int64 {
	totals := make([]int64, len(feasible))
	raw := make([]int64, len(feasible))
	for i := range f.plugins {
		p := &f.plugins[i]
		if p.score == nil || p.weight == 0 {
			continue
		}
		if p.preScore != nil && !p.preScore(st, feasible) {
			continue
		}
		for j, n := range feasible {
			raw[j] = p.score(st, n)
		}
		if p.normalize != nil {
			p.normalize(st, raw)
		}
		for j := range raw {
			totals[j] += raw[j] * p.weight
		}
	}
	return totals
}

// Scores returns each node's weighted total for pi, for tests and
// diagnostics. Nodes that do not pass the filters are left out.
func (f *Framework) Scores(snap *Snapshot, pi *PodInfo, lookup Lookup) (map[string]int64, error) {
	st := &CycleState{Pod: pi, Snapshot: snap, Lookup: lookup}
	for i := range f.plugins {
		if p := &f.plugins[i]; p.preFilter != nil {
			if s := p.preFilter(st); !s.IsSuccess() {
				return nil, errors.New(s.String())
			}
		}
	}
	var feasible []*NodeInfo
	for _, n := range snap.list {
		if f.filter(st, n) == nil {
			feasible = append(feasible, n)
		}
	}
	totals := f.score(st, feasible)
	out := make(map[string]int64, len(feasible))
	for i, n := range feasible {
		out[n.Name] = totals[i]
	}
	return out, nil
}

// pickBest returns the index of a highest total, choosing uniformly among
// ties so that equal nodes share the load.
func (f *Framework) pickBest(totals []int64) int {
	best, ties := 0, 1
	for i := 1; i < len(totals); i++ {
		switch {
		case totals[i] > totals[best]:
			best, ties = i, 1
		case totals[i] == totals[best]:
			ties++
			if f.rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// normalizeByMax scales raw scores so that the highest is 100.
func normalizeByMax(_ *CycleState, scores []int64) {
	var hi int64
	for _, s := range scores {
		hi = max(hi, s)
	}
	for i := range scores {
		if hi > 0 {
			scores[i] = scores[i] * maxNodeScore / hi
		} else {
			scores[i] = 0
		}
	}
}

// normalizeReverse scales counts of something bad so that the lowest is
// 100 and the highest 0 (all 100 when there is nothing bad anywhere).
func normalizeReverse(_ *CycleState, scores []int64) {
	var hi int64
	for _, s := range scores {
		hi = max(hi, s)
	}
	for i := range scores {
		if hi > 0 {
			scores[i] = maxNodeScore - scores[i]*maxNodeScore/hi
		} else {
			scores[i] = maxNodeScore
		}
	}
}

// normalizeMinMax maps the lowest raw score to 0 and the highest to 100;
// all 0 when they are equal.
func normalizeMinMax(_ *CycleState, scores []int64) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0], scores[0]
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	for i := range scores {
		if hi > lo {
			scores[i] = maxNodeScore * (scores[i] - lo) / (hi - lo)
		} else {
			scores[i] = 0
		}
	}
}
