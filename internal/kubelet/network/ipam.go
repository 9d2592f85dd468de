package network

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket layout of the state file. Both directions are stored so that an
// address can never be handed out twice even if a pod record is rewritten.
var (
	bucketPods = []byte("pods") // pod UID → JSON podRecord
	bucketIPs  = []byte("ips")  // IP (text) → pod UID
	bucketMeta = []byte("meta") // "last" → last address handed out
	keyLast    = []byte("last")
)

// errPoolExhausted is returned when every usable address is taken.
var errPoolExhausted = errors.New("no free address in the pod CIDR")

// podRecord is what the node remembers about a connected pod, so that a
// restarted agent gets the same address back and can rebuild its host-port
// rules without asking anyone.
type podRecord struct {
	IP    string        `json:"ip"`
	Ports []PortMapping `json:"ports,omitempty"`
}

// ipam hands out addresses of one pod CIDR, persisted in bbolt.
type ipam struct {
	db   *bolt.DB
	cidr *net.IPNet
}

func openIPAM(path string, cidr *net.IPNet) (*ipam, error) {
	if cidr == nil || cidr.IP.To4() == nil {
		return nil, fmt.Errorf("pod CIDR %v: only IPv4 is supported", cidr)
	}
	if ones, bits := cidr.Mask.Size(); bits-ones < 2 {
		return nil, fmt.Errorf("pod CIDR %v is too small", cidr)
	}
	// The timeout matters when a previous agent (or Network) still holds the
	// file lock: fail with an error rather than hang forever.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open network state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketPods, bucketIPs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init network state %s: %w", path, err)
	}
	return &ipam{db: db, cidr: &net.IPNet{IP: cidr.IP.Mask(cidr.Mask).To4(), Mask: cidr.Mask}}, nil
}

func (a *ipam) close() error { return a.db.Close() }

// allocate returns the pod's address, reusing the one it already holds.
// Addresses are handed out round-robin after the last one given, so a freed
// address is not reused at once (a peer may still have it cached).
func (a *ipam) allocate(uid string, ports []PortMapping) (net.IP, error) {
	var ip net.IP
	err := a.db.Update(func(tx *bolt.Tx) error {
		pods, ips, meta := tx.Bucket(bucketPods), tx.Bucket(bucketIPs), tx.Bucket(bucketMeta)
		if rec, ok := getRecord(pods, uid); ok {
			if old := net.ParseIP(rec.IP).To4(); old != nil && a.usable(old) {
				ip = old
				rec.Ports = ports
				return putRecord(pods, uid, rec)
			}
			// The node's pod CIDR changed: the old address is useless.
			if err := ips.Delete([]byte(rec.IP)); err != nil {
				return err
			}
		}
		first, size := a.span()
		start := first
		if last := net.ParseIP(string(meta.Get(keyLast))).To4(); last != nil && a.cidr.Contains(last) {
			start = ipToUint(last) + 1
		}
		for i := uint32(0); i < size; i++ {
			cand := uintToIP(first + (start-first+i)%size)
			if !a.usable(cand) || ips.Get([]byte(cand.String())) != nil {
				continue
			}
			ip = cand
			if err := ips.Put([]byte(cand.String()), []byte(uid)); err != nil {
				return err
			}
			if err := meta.Put(keyLast, []byte(cand.String())); err != nil {
				return err
			}
			return putRecord(pods, uid, podRecord{IP: cand.String(), Ports: ports})
		}
		return errPoolExhausted
	})
	if err != nil {
		return nil, fmt.Errorf("allocate address for pod %s in %s: %w", uid, a.cidr, err)
	}
	return ip, nil
}

// release frees the pod's address; releasing an unknown pod is fine.
func (a *ipam) release(uid string) error {
	err := a.db.Update(func(tx *bolt.Tx) error {
		pods, ips := tx.Bucket(bucketPods), tx.Bucket(bucketIPs)
		rec, ok := getRecord(pods, uid)
		if !ok {
			return nil
		}
		if owner := ips.Get([]byte(rec.IP)); string(owner) == uid {
			if err := ips.Delete([]byte(rec.IP)); err != nil {
				return err
			}
		}
		return pods.Delete([]byte(uid))
	})
	if err != nil {
		return fmt.Errorf("release address of pod %s: %w", uid, err)
	}
	return nil
}

func (a *ipam) get(uid string) (podRecord, bool) {
	var rec podRecord
	var ok bool
	_ = a.db.View(func(tx *bolt.Tx) error {
		rec, ok = getRecord(tx.Bucket(bucketPods), uid)
		return nil
	})
	return rec, ok
}

// all returns every connected pod by UID.
func (a *ipam) all() (map[string]podRecord, error) {
	out := map[string]podRecord{}
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPods).ForEach(func(k, v []byte) error {
			var rec podRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("pod %s: %w", k, err)
			}
			out[string(k)] = rec
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read network state: %w", err)
	}
	return out, nil
}

// span is the first address of the CIDR and the number of addresses in it.
func (a *ipam) span() (first, size uint32) {
	ones, bits := a.cidr.Mask.Size()
	return ipToUint(a.cidr.IP), uint32(1) << uint(bits-ones)
}

// usable excludes the network address, the gateway (first host) and the
// broadcast address.
func (a *ipam) usable(ip net.IP) bool {
	if !a.cidr.Contains(ip) {
		return false
	}
	first, size := a.span()
	v := ipToUint(ip)
	return v != first && v != first+1 && v != first+size-1
}

func getRecord(b *bolt.Bucket, uid string) (podRecord, bool) {
	v := b.Get([]byte(uid))
	if v == nil {
		return podRecord{}, false
	}
	var rec podRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return podRecord{}, false
	}
	return rec, true
}

func putRecord(b *bolt.Bucket, uid string, rec podRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Put([]byte(uid), v)
}

func ipToUint(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func uintToIP(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// nthIP returns the n-th address of a CIDR (0 = network address).
func nthIP(cidr *net.IPNet, n uint32) net.IP {
	return uintToIP(ipToUint(cidr.IP.Mask(cidr.Mask)) + n)
}
