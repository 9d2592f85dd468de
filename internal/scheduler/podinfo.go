package scheduler

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// PodInfo is a pod with what the scheduler needs from it computed once:
// its requests, host ports, parsed affinity terms and controller.
type PodInfo struct {
	Pod *corev1.Pod
	// Requests is what the pod needs on a node (init containers, sidecars
	// and overhead included); NonZero is the same with the scoring
	// defaults for containers that ask for no cpu or memory.
	Requests Resource
	NonZero  Resource
	Ports    []HostPort

	RequiredAffinity      []AffinityTerm
	RequiredAntiAffinity  []AffinityTerm
	PreferredAffinity     []WeightedAffinityTerm
	PreferredAntiAffinity []WeightedAffinityTerm

	// Owner is the uid of the pod's controller (a ReplicaSet, a Job...),
	// empty if none; pods of one owner are spread across nodes and zones.
	Owner types.UID
	// ParseErr is set when the pod's affinity terms could not be parsed;
	// such a pod cannot be scheduled until it is fixed.
	ParseErr error
}

// HostPort is a port a pod takes on its node's network.
type HostPort struct {
	IP       string
	Protocol corev1.Protocol
	Port     int32
}

// AffinityTerm is a pod affinity term with its selectors parsed.
type AffinityTerm struct {
	// Namespaces the term looks in; NamespaceSelector widens it (nil: no
	// selector; labels.Everything(): all namespaces).
	Namespaces        map[string]struct{}
	NamespaceSelector labels.Selector
	Selector          labels.Selector
	TopologyKey       string
}

// WeightedAffinityTerm is a preferred term.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int64
}

// NewPodInfo computes the pod's info.
func NewPodInfo(pod *corev1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Requests, pi.NonZero = podRequests(pod)
	pi.Ports = hostPorts(pod)
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		pi.Owner = ref.UID
	}
	if a := pod.Spec.Affinity; a != nil {
		var errs []error
		if pa := a.PodAffinity; pa != nil {
			pi.RequiredAffinity = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, &errs)
			pi.PreferredAffinity = parseWeightedTerms(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution, &errs)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			pi.RequiredAntiAffinity = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, &errs)
			pi.PreferredAntiAffinity = parseWeightedTerms(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution, &errs)
		}
		if len(errs) > 0 {
			pi.ParseErr = fmt.Errorf("pod %s/%s: affinity: %w", pod.Namespace, pod.Name, errors.Join(errs...))
		}
	}
	return pi
}

// withNode returns a copy of pi for the pod assumed on node. The pod is
// copied shallowly: nothing the informer shares is written.
func (pi *PodInfo) withNode(node string) *PodInfo {
	p := *pi.Pod
	p.Spec.NodeName = node
	out := *pi
	out.Pod = &p
	return &out
}

func (pi *PodInfo) hasAffinity() bool {
	return len(pi.RequiredAffinity)+len(pi.RequiredAntiAffinity)+len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0
}

func hostPorts(pod *corev1.Pod) []HostPort {
	var out []HostPort
	add := func(cs []corev1.Container, sidecarsOnly bool) {
		for i := range cs {
			c := &cs[i]
			if sidecarsOnly && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			for _, p := range c.Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := HostPort{IP: p.HostIP, Protocol: p.Protocol, Port: p.HostPort}
				if hp.IP == "" {
					hp.IP = "0.0.0.0"
				}
				if hp.Protocol == "" {
					hp.Protocol = corev1.ProtocolTCP
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.Containers, false)
	add(pod.Spec.InitContainers, true)
	return out
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm, errs *[]error) []AffinityTerm {
	if len(terms) == 0 {
		return nil
	}
	out := make([]AffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := parseTerm(pod, &terms[i])
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		out = append(out, t)
	}
	return out
}

func parseWeightedTerms(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm, errs *[]error) []WeightedAffinityTerm {
	if len(terms) == 0 {
		return nil
	}
	out := make([]WeightedAffinityTerm, 0, len(terms))
	for i := range terms {
		t, err := parseTerm(pod, &terms[i].PodAffinityTerm)
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		out = append(out, WeightedAffinityTerm{AffinityTerm: t, Weight: int64(terms[i].Weight)})
	}
	return out
}

// parseTerm parses a term of pod. An empty namespace list with no
// namespace selector means the pod's own namespace; an empty namespace
// selector means every namespace. matchLabelKeys and mismatchLabelKeys take
// their values from the pod's own labels.
func parseTerm(pod *corev1.Pod, t *corev1.PodAffinityTerm) (AffinityTerm, error) {
	out := AffinityTerm{TopologyKey: t.TopologyKey}
	sel, err := labelSelector(t.LabelSelector)
	if err != nil {
		return out, err
	}
	for _, k := range t.MatchLabelKeys {
		if v, ok := pod.Labels[k]; ok {
			r, err := labels.NewRequirement(k, selection.In, []string{v})
			if err != nil {
				return out, err
			}
			sel = sel.Add(*r)
		}
	}
	for _, k := range t.MismatchLabelKeys {
		if v, ok := pod.Labels[k]; ok {
			r, err := labels.NewRequirement(k, selection.NotIn, []string{v})
			if err != nil {
				return out, err
			}
			sel = sel.Add(*r)
		}
	}
	out.Selector = sel
	out.Namespaces = map[string]struct{}{}
	for _, ns := range t.Namespaces {
		out.Namespaces[ns] = struct{}{}
	}
	if t.NamespaceSelector != nil {
		nss, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector)
		if err != nil {
			return out, err
		}
		out.NamespaceSelector = nss
	} else if len(t.Namespaces) == 0 {
		out.Namespaces[pod.Namespace] = struct{}{}
	}
	return out, nil
}

// labelSelector parses a selector; nil selects nothing (as for affinity
// terms and spread constraints), empty selects everything.
func labelSelector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Nothing(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// NamespaceLabels returns a namespace's labels (nil if unknown).
type NamespaceLabels func(namespace string) labels.Set

// Matches reports whether the term selects pod, whose namespace has the
// labels nsLabels returns.
func (t *AffinityTerm) Matches(pod *corev1.Pod, nsLabels NamespaceLabels) bool {
	if _, ok := t.Namespaces[pod.Namespace]; !ok {
		if t.NamespaceSelector == nil {
			return false
		}
		if !t.NamespaceSelector.Empty() && (nsLabels == nil || !t.NamespaceSelector.Matches(nsLabels(pod.Namespace))) {
			return false
		}
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}
