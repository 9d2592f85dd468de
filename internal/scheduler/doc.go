// Package scheduler assigns pending pods to nodes, with the behaviour of
// Kubernetes' default-scheduler.
//
// The package is two layers:
//
//   - A library over a node snapshot: Snapshot holds one NodeInfo per node
//     (the node, the resources its pods request, their host ports, the pods
//     with affinity terms) and is updated incrementally. Framework runs
//     filter functions (does the pod fit this node?) and score functions
//     (how good is this node?) over it; every one of them is a pure function
//     of the pod, the node's info and state precomputed once per pod, so it
//     is tested with built objects and no API.
//   - A thin shell, Scheduler: informers feed the Cache (a locked Snapshot)
//     and the scheduling Queue; one goroutine pops a pod, decides on the
//     snapshot and assumes the pod on the chosen node at once, so the next
//     decision sees its resources; a pool of goroutines binds through
//     pods/binding and reports failures (PodScheduled=False, a
//     FailedScheduling event) while the next pod is being decided.
//
// Pods that do not fit wait in the queue's unschedulable set until a
// cluster event that may help them (a node added or changed, a pod deleted,
// a volume object changed), with a per-pod backoff of 1 s doubling to 10 s.
package scheduler
