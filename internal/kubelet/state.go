package kubelet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// stateDB remembers the pods this node runs, so that a restarted agent
// knows what its containers belong to even when the API server is
// unreachable or the pod was deleted while the agent was away. Container
// state itself lives with the runtime (written by each container's shim).
type stateDB struct{ db *bolt.DB }

var podsBucket = []byte("pods")

func openState(path string) (*stateDB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("kubelet state: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("kubelet state %s: %w (is another agent using this data dir?)", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(podsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("kubelet state %s: %w", path, err)
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) Close() error { return s.db.Close() }

func (s *stateDB) putPod(p *corev1.Pod) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(podsBucket).Put([]byte(p.UID), b) })
}

func (s *stateDB) deletePod(uid types.UID) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(podsBucket).Delete([]byte(uid)) })
}

func (s *stateDB) pod(uid types.UID) (*corev1.Pod, bool) {
	var p *corev1.Pod
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(podsBucket).Get([]byte(uid))
		if b == nil {
			return nil
		}
		var pod corev1.Pod
		if json.Unmarshal(b, &pod) == nil {
			p = &pod
		}
		return nil
	})
	return p, p != nil
}

// pods lists every pod recorded on this node.
func (s *stateDB) pods() []*corev1.Pod {
	var out []*corev1.Pod
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(podsBucket).ForEach(func(_, v []byte) error {
			var pod corev1.Pod
			if json.Unmarshal(v, &pod) == nil {
				out = append(out, &pod)
			}
			return nil
		})
	})
	return out
}
