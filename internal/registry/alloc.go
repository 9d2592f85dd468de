package registry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"

	"skiff/internal/config"
)

// Allocations are one etcd key per taken IP or port, created only if absent
// (a transaction), so concurrent creates never get the same one. The key's
// value is the owning service's uid: a release never frees another's.
const (
	serviceIPPrefix   = "/registry/ranges/serviceips/"
	nodePortKeyPrefix = "/registry/ranges/servicenodeports/"
)

// IPAllocator hands out service cluster IPs.
type IPAllocator interface {
	// Allocate claims ip for owner, or any free address when ip is nil.
	Allocate(ctx context.Context, ip net.IP, owner string) (net.IP, error)
	Release(ctx context.Context, ip, owner string) error
}

// PortAllocator hands out service node ports.
type PortAllocator interface {
	// Allocate claims port for owner, or any free port when port is 0.
	Allocate(ctx context.Context, port int, owner string) (int, error)
	Release(ctx context.Context, port int, owner string) error
	// Contains reports whether port is in the range.
	Contains(port int) bool
	// String is the range ("30000-32767").
	String() string
}

type ipAllocator struct {
	client *clientv3.Client
	cidr   *net.IPNet
	base   uint32
	size   uint32
}

// NewServiceIPAllocator allocates addresses of cidr, one etcd key each.
func NewServiceIPAllocator(c *clientv3.Client, cidr *net.IPNet) (IPAllocator, error) {
	ip4 := cidr.IP.To4()
	ones, bits := cidr.Mask.Size()
	if ip4 == nil || bits != 32 {
		return nil, fmt.Errorf("service CIDR %s: only IPv4 is supported", cidr)
	}
	if ones > 29 {
		return nil, fmt.Errorf("service CIDR %s: too small, use at least a /29", cidr)
	}
	return &ipAllocator{client: c, cidr: cidr, base: binary.BigEndian.Uint32(ip4), size: 1 << (32 - ones)}, nil
}

func (a *ipAllocator) ipAt(offset uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, a.base+offset)
	return ip
}

// take claims key for owner if free; it reports whether it did.
func take(ctx context.Context, c *clientv3.Client, key, owner string) (bool, error) {
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, owner)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		return true, nil
	}
	// Already ours (a retried create): still ours.
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) > 0 && string(kvs[0].Value) == owner, nil
}

// release frees key if owner holds it.
func release(ctx context.Context, c *clientv3.Client, key, owner string) error {
	_, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", owner)).
		Then(clientv3.OpDelete(key)).
		Commit()
	return err
}

// Allocate claims ip for owner, or any free address when ip is nil.
// Dynamic allocation prefers the upper part of the range so that the low
// addresses stay free for services that ask for one (DNS at .10).
func (a *ipAllocator) Allocate(ctx context.Context, ip net.IP, owner string) (net.IP, error) {
	if ip != nil {
		if !a.cidr.Contains(ip) || ip.Equal(a.ipAt(0)) || ip.Equal(a.ipAt(a.size-1)) {
			return nil, fmt.Errorf("provided IP is not in the valid range. The range of valid IPs is %s", a.cidr)
		}
		ok, err := take(ctx, a.client, serviceIPPrefix+ip.String(), owner)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("provided IP is already allocated")
		}
		return ip, nil
	}
	usable := a.size - 2
	low := min(max(16, usable/16), 256)
	if low >= usable {
		low = 0
	}
	// Upper band first, from a random start; then the lower band.
	for _, band := range [][2]uint32{{low + 1, usable}, {1, low}} {
		n := band[1] - band[0] + 1
		if band[1] < band[0] {
			continue
		}
		start := rand.Uint32N(n)
		for i := uint32(0); i < n; i++ {
			candidate := a.ipAt(band[0] + (start+i)%n)
			ok, err := take(ctx, a.client, serviceIPPrefix+candidate.String(), owner)
			if err != nil {
				return nil, err
			}
			if ok {
				return candidate, nil
			}
		}
	}
	return nil, fmt.Errorf("range is full: no service IP left in %s", a.cidr)
}

func (a *ipAllocator) Release(ctx context.Context, ip, owner string) error {
	return release(ctx, a.client, serviceIPPrefix+ip, owner)
}

type portAllocator struct {
	client *clientv3.Client
	rng    config.PortRange
}

// NewNodePortAllocator allocates ports of r, one etcd key each.
func NewNodePortAllocator(c *clientv3.Client, r config.PortRange) PortAllocator {
	return &portAllocator{client: c, rng: r}
}

// Allocate claims port for owner, or any free port when port is 0.
func (a *portAllocator) Allocate(ctx context.Context, port int, owner string) (int, error) {
	if port != 0 {
		if !a.rng.Contains(port) {
			return 0, fmt.Errorf("provided port is not in the valid range. The range of valid ports is %s", a.rng)
		}
		ok, err := take(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(port), owner)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("provided port is already allocated")
		}
		return port, nil
	}
	start := rand.IntN(a.rng.Size)
	for i := 0; i < a.rng.Size; i++ {
		p := a.rng.Base + (start+i)%a.rng.Size
		ok, err := take(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(p), owner)
		if err != nil {
			return 0, err
		}
		if ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("range is full: no node port left in %s", a.rng)
}

func (a *portAllocator) Release(ctx context.Context, port int, owner string) error {
	return release(ctx, a.client, nodePortKeyPrefix+strconv.Itoa(port), owner)
}

// Contains reports whether port is in the range.
func (a *portAllocator) Contains(port int) bool { return a.rng.Contains(port) }

func (a *portAllocator) String() string { return a.rng.String() }
