package kubelet

// Offline start. A node that restarts (or reboots) while no server answers
// runs again what it ran before, from what it keeps on local disk: the pods
// recorded in the state database, the Node as last seen (its podCIDR, for
// the pod network with the same pod addresses) and the contents of the
// pods' volumes. Once a server answers, the API wins: the informers hand
// every worker the API's pod (same UID: nothing is started twice), and
// adoptOrphans tears down the pods deleted meanwhile.

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
	corev1 "k8s.io/api/core/v1"
)

var nodeBucket = []byte("node")

// putNode keeps the node's last known spec (its podCIDR) for an offline
// start.
func (s *stateDB) putNode(n *corev1.Node) error {
	keep := corev1.Node{ObjectMeta: *n.ObjectMeta.DeepCopy(), Spec: *n.Spec.DeepCopy()}
	keep.ManagedFields = nil
	b, err := json.Marshal(&keep)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		return bk.Put([]byte(n.Name), b)
	})
}

// node is the node as last kept, if it was.
func (s *stateDB) node(name string) (*corev1.Node, bool) {
	var n *corev1.Node
	_ = s.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(nodeBucket)
		if bk == nil {
			return nil
		}
		if b := bk.Get([]byte(name)); b != nil {
			var node corev1.Node
			if json.Unmarshal(b, &node) == nil {
				n = &node
			}
		}
		return nil
	})
	return n, n != nil
}

// startFromState hands every pod this node last ran (and that was not
// finished or being deleted) to its worker, with the spec it was recorded
// with. Static pods are not among them: runStaticPods starts those from
// their manifests.
func (k *Kubelet) startFromState() int {
	n := 0
	for _, p := range k.state.pods() {
		if p.Annotations[annotationSource] == "file" || p.DeletionTimestamp != nil || isTerminal(p.Status.Phase) {
			continue
		}
		k.workerFor(p.UID, false).update(p)
		n++
	}
	return n
}
