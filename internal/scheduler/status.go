package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Code says how a filter judged a node.
type Code int

const (
	// Success: the pod fits.
	Success Code = iota
	// Unschedulable: the pod does not fit now; a change on the node (pods
	// leaving it) could make it fit.
	Unschedulable
	// UnschedulableAndUnresolvable: the pod does not fit and removing pods
	// from the node would not help (labels, taints, a missing claim...).
	UnschedulableAndUnresolvable
	// Error: something broke; the answer says nothing about the pod.
	Error
)

func (c Code) String() string {
	switch c {
	case Success:
		return "Success"
	case Unschedulable:
		return "Unschedulable"
	case UnschedulableAndUnresolvable:
		return "UnschedulableAndUnresolvable"
	case Error:
		return "Error"
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Plugin names one filter or score. Plugins is a set of them; the queue
// uses it to move a pod back only on the cluster events that may help.
type Plugin uint32

// The plugins, in the order filters run.
const (
	PluginNodeUnschedulable Plugin = 1 << iota
	PluginTaintToleration
	PluginNodeAffinity
	PluginNodePorts
	PluginNodeResourcesFit
	PluginVolumeBinding
	PluginPodTopologySpread
	PluginInterPodAffinity
	PluginBalancedAllocation
	PluginDefaultSpread

	// AllPlugins is every plugin: the set for events that may help any pod.
	AllPlugins Plugin = 1<<iota - 1
)

// name is the plugin's name as Kubernetes calls the matching plugin.
func (p Plugin) name() string {
	switch p {
	case PluginNodeUnschedulable:
		return "NodeUnschedulable"
	case PluginTaintToleration:
		return "TaintToleration"
	case PluginNodeAffinity:
		return "NodeAffinity"
	case PluginNodePorts:
		return "NodePorts"
	case PluginNodeResourcesFit:
		return "NodeResourcesFit"
	case PluginVolumeBinding:
		return "VolumeBinding"
	case PluginPodTopologySpread:
		return "PodTopologySpread"
	case PluginInterPodAffinity:
		return "InterPodAffinity"
	case PluginBalancedAllocation:
		return "NodeResourcesBalancedAllocation"
	case PluginDefaultSpread:
		return "DefaultPodSpread"
	}
	return ""
}

func (p Plugin) String() string {
	var names []string
	for bit := Plugin(1); bit != 0 && bit <= p; bit <<= 1 {
		if p&bit != 0 {
			if n := bit.name(); n != "" {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

// Status is a filter's answer for one node. A nil *Status is success, so
// the common path allocates nothing.
type Status struct {
	Code    Code
	Reasons []string
	Plugin  Plugin
	Err     error
}

// unschedulable is a "does not fit" answer with kubectl-visible reasons.
func unschedulable(p Plugin, reasons ...string) *Status {
	return &Status{Code: Unschedulable, Plugin: p, Reasons: reasons}
}

// unresolvable is a "does not fit, and evicting pods would not help" answer.
func unresolvable(p Plugin, reasons ...string) *Status {
	return &Status{Code: UnschedulableAndUnresolvable, Plugin: p, Reasons: reasons}
}

// asError is a "something broke" answer.
func asError(p Plugin, err error) *Status {
	return &Status{Code: Error, Plugin: p, Err: err, Reasons: []string{err.Error()}}
}

// IsSuccess is true for nil and for Code Success.
func (s *Status) IsSuccess() bool { return s == nil || s.Code == Success }

// IsRejected is true when the pod does not fit (as opposed to an error).
func (s *Status) IsRejected() bool {
	return s != nil && (s.Code == Unschedulable || s.Code == UnschedulableAndUnresolvable)
}

// Message joins the reasons.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.Reasons, ", ")
}

func (s *Status) String() string {
	if s == nil {
		return "Success"
	}
	return fmt.Sprintf("%s(%s): %s", s.Code, s.Plugin, s.Message())
}

// Reasons shown to users, in Kubernetes' words so that people (and tools)
// that know kubectl's output recognise them.
const (
	reasonUnschedulable          = "node(s) were unschedulable"
	reasonNodeAffinity           = "node(s) didn't match Pod's node affinity/selector"
	reasonNodePorts              = "node(s) didn't have free ports for the requested pod ports"
	reasonTooManyPods            = "Too many pods"
	reasonVolumeNodeConflict     = "node(s) had volume node affinity conflict"
	reasonVolumeSelectedNode     = "node(s) didn't match the node selected for a volume being provisioned"
	reasonBoundToMissingPV       = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	reasonUnboundImmediatePVC    = "pod has unbound immediate PersistentVolumeClaims"
	reasonSpreadConstraints      = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel     = "node(s) didn't match pod topology spread constraints (missing required label)"
	reasonAffinityRules          = "node(s) didn't match pod affinity rules"
	reasonAntiAffinityRules      = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinity   = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonNoNodes                = "no nodes available to schedule pods"
	reasonPreemptionNotAvailable = "Preemption is not helpful for scheduling"
)

func reasonInsufficient(resource string) string { return "Insufficient " + resource }

func reasonUntoleratedTaint(key, value string) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", key, value)
}

// FitError is the answer for a pod that fits no node. Its message is the
// one kubectl users know from FailedScheduling events.
type FitError struct {
	// NumAllNodes is how many nodes there were.
	NumAllNodes int
	// PreFilter is set when the pod was rejected before any node was
	// looked at (for example a missing claim); it applies to every node.
	PreFilter *Status
	// NodeStatuses has the rejecting status of each node.
	NodeStatuses map[string]*Status
}

// Plugins is the set of plugins that rejected the pod somewhere.
func (f *FitError) Plugins() Plugin {
	var p Plugin
	if f.PreFilter != nil {
		p |= f.PreFilter.Plugin
	}
	for _, s := range f.NodeStatuses {
		p |= s.Plugin
	}
	return p
}

// Error is "0/3 nodes are available: 1 node(s) had untolerated taint
// {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.
// preemption: 0/3 nodes are available: 3 Preemption is not helpful for
// scheduling." The histogram is sorted as strings, as Kubernetes does.
// skiff does not preempt, so the preemption part always says it would not
// help.
func (f *FitError) Error() string {
	if f.NumAllNodes == 0 {
		return reasonNoNodes
	}
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes are available:", f.NumAllNodes)
	if f.PreFilter != nil {
		fmt.Fprintf(&b, " %s.", f.PreFilter.Message())
	} else {
		counts := map[string]int{}
		for _, s := range f.NodeStatuses {
			for _, r := range s.Reasons {
				counts[r]++
			}
		}
		hist := make([]string, 0, len(counts))
		for r, n := range counts {
			hist = append(hist, fmt.Sprintf("%d %s", n, r))
		}
		sort.Strings(hist)
		fmt.Fprintf(&b, " %s.", strings.Join(hist, ", "))
	}
	fmt.Fprintf(&b, " preemption: 0/%d nodes are available: %d %s.", f.NumAllNodes, f.NumAllNodes, reasonPreemptionNotAvailable)
	return b.String()
}

// IsFitError reports whether err says the pod fits no node.
func IsFitError(err error) bool {
	var fe *FitError
	return errors.As(err, &fe)
}
