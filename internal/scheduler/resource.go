package scheduler

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Resource is an amount of the resources the scheduler accounts for, as
// integers so that sums are cheap: milli-cpu, bytes, and counts.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// Pods is only meaningful for allocatable (how many pods fit).
	Pods int64
	// Scalar holds extended resources and hugepages; nil when there are none.
	Scalar map[corev1.ResourceName]int64
}

// Defaults the scheduler assumes, for scoring only, for a container that
// requests no cpu or memory, so that many "free" pods do not pile up on one
// node. Kubernetes uses the same values.
const (
	defaultMilliCPURequest = 100
	defaultMemoryRequest   = 200 * 1024 * 1024
)

// resourceFromList converts a ResourceList.
func resourceFromList(rl corev1.ResourceList) Resource {
	var r Resource
	for name, q := range rl {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU = q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory = q.Value()
		case corev1.ResourceEphemeralStorage:
			r.EphemeralStorage = q.Value()
		case corev1.ResourcePods:
			r.Pods = q.Value()
		default:
			if isScalarResource(name) {
				if r.Scalar == nil {
					r.Scalar = map[corev1.ResourceName]int64{}
				}
				r.Scalar[name] = q.Value()
			}
		}
	}
	return r
}

// isScalarResource is true for the resources counted as whole integers
// besides the built-in ones: hugepages and domain-prefixed names
// (extended resources like example.com/gpu). Other names (say "storage")
// are not node resources and are ignored.
func isScalarResource(name corev1.ResourceName) bool {
	s := string(name)
	return strings.HasPrefix(s, corev1.ResourceHugePagesPrefix) || strings.Contains(s, "/")
}

// Add adds o to r.
func (r *Resource) Add(o *Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	r.Pods += o.Pods
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[k] += v
	}
}

// Sub subtracts o from r.
func (r *Resource) Sub(o *Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	r.Pods -= o.Pods
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		r.Scalar[k] -= v
		if r.Scalar[k] == 0 {
			delete(r.Scalar, k)
		}
	}
}

// setMax raises each of r's amounts to o's where o's is larger.
func (r *Resource) setMax(o *Resource) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, o.EphemeralStorage)
	r.Pods = max(r.Pods, o.Pods)
	for k, v := range o.Scalar {
		if r.Scalar == nil {
			r.Scalar = map[corev1.ResourceName]int64{}
		}
		if v > r.Scalar[k] {
			r.Scalar[k] = v
		}
	}
}

// IsZero is true when nothing is requested.
func (r *Resource) IsZero() bool {
	if r.MilliCPU != 0 || r.Memory != 0 || r.EphemeralStorage != 0 {
		return false
	}
	for _, v := range r.Scalar {
		if v != 0 {
			return false
		}
	}
	return true
}

func (r Resource) clone() Resource {
	out := r
	if r.Scalar != nil {
		out.Scalar = make(map[corev1.ResourceName]int64, len(r.Scalar))
		for k, v := range r.Scalar {
			out.Scalar[k] = v
		}
	}
	return out
}

// containerRequests is what a container asks for: its requests, with a
// limit standing in for a missing request (as API defaulting does).
func containerRequests(c *corev1.Container) Resource {
	r := resourceFromList(c.Resources.Requests)
	if len(c.Resources.Limits) > 0 {
		lim := resourceFromList(c.Resources.Limits)
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			r.MilliCPU = lim.MilliCPU
		}
		if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok {
			r.Memory = lim.Memory
		}
		if _, ok := c.Resources.Requests[corev1.ResourceEphemeralStorage]; !ok {
			r.EphemeralStorage = lim.EphemeralStorage
		}
		for k, v := range lim.Scalar {
			if _, ok := c.Resources.Requests[k]; !ok {
				if r.Scalar == nil {
					r.Scalar = map[corev1.ResourceName]int64{}
				}
				r.Scalar[k] = v
			}
		}
	}
	r.Pods = 0
	return r
}

// nonZero applies the scoring defaults to a container's cpu and memory.
func nonZero(c *corev1.Container, r Resource) Resource {
	_, hasCPU := c.Resources.Requests[corev1.ResourceCPU]
	_, hasCPULimit := c.Resources.Limits[corev1.ResourceCPU]
	if !hasCPU && !hasCPULimit {
		r.MilliCPU = defaultMilliCPURequest
	}
	_, hasMem := c.Resources.Requests[corev1.ResourceMemory]
	_, hasMemLimit := c.Resources.Limits[corev1.ResourceMemory]
	if !hasMem && !hasMemLimit {
		r.Memory = defaultMemoryRequest
	}
	return Resource{MilliCPU: r.MilliCPU, Memory: r.Memory}
}

// podRequests returns what the pod needs on a node, and the same with the
// scoring defaults for containers that request no cpu or memory.
//
// Regular containers run together, so their requests add up. Init
// containers run one at a time before them, so a pod needs the larger of
// the sum and the biggest init container. Sidecars (init containers with
// restartPolicy Always) keep running once started: they add to every init
// container after them and to the regular containers. Pod overhead is added
// on top. Pod-level requests (spec.resources), when set, replace the
// containers' cpu and memory.
func podRequests(pod *corev1.Pod) (req, nz Resource) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		r := containerRequests(c)
		req.Add(&r)
		n := nonZero(c, r)
		nz.Add(&n)
	}
	var sidecars, sidecarsNZ, initMax, initMaxNZ Resource
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := containerRequests(c)
		n := nonZero(c, r)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.Add(&r)
			sidecarsNZ.Add(&n)
			initMax.setMax(&sidecars)
			initMaxNZ.setMax(&sidecarsNZ)
			continue
		}
		step := sidecars.clone()
		step.Add(&r)
		initMax.setMax(&step)
		stepNZ := sidecarsNZ
		stepNZ.Add(&n)
		initMaxNZ.setMax(&stepNZ)
	}
	req.Add(&sidecars)
	req.setMax(&initMax)
	nz.Add(&sidecarsNZ)
	nz.setMax(&initMaxNZ)

	if pod.Spec.Resources != nil {
		if q, ok := pod.Spec.Resources.Requests[corev1.ResourceCPU]; ok {
			req.MilliCPU, nz.MilliCPU = q.MilliValue(), q.MilliValue()
		} else if q, ok := pod.Spec.Resources.Limits[corev1.ResourceCPU]; ok {
			req.MilliCPU, nz.MilliCPU = q.MilliValue(), q.MilliValue()
		}
		if q, ok := pod.Spec.Resources.Requests[corev1.ResourceMemory]; ok {
			req.Memory, nz.Memory = q.Value(), q.Value()
		} else if q, ok := pod.Spec.Resources.Limits[corev1.ResourceMemory]; ok {
			req.Memory, nz.Memory = q.Value(), q.Value()
		}
	}
	if len(pod.Spec.Overhead) > 0 {
		o := resourceFromList(pod.Spec.Overhead)
		o.Pods = 0
		req.Add(&o)
		nz.MilliCPU += o.MilliCPU
		nz.Memory += o.Memory
	}
	req.Pods, nz.Pods = 0, 0
	return req, nz
}
