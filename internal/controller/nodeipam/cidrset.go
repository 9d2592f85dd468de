package nodeipam

import (
	"errors"
	"fmt"
	"net/netip"
)

// errFull: every node-sized block of the cluster CIDR is taken.
var errFull = errors.New("no pod CIDR left in the cluster CIDR")

// maxIndexBits bounds how many node blocks a cluster CIDR may be split
// into (2^maxIndexBits), so that a misconfiguration cannot make the set
// huge.
const maxIndexBits = 24

// cidrSet hands out the node-sized blocks of one cluster CIDR. It is not
// safe for concurrent use; the controller serialises access to it.
type cidrSet struct {
	cluster  netip.Prefix
	nodeBits int
	// indexBits is nodeBits - cluster.Bits(): block i is the cluster's
	// address with i written into those bits.
	indexBits int
	size      uint64
	used      map[uint64]struct{}
	// next is where the search for a free block starts, so that a block
	// just released is not handed out again at once.
	next uint64
}

// newCIDRSet splits cluster into blocks of nodeBits.
func newCIDRSet(cluster netip.Prefix, nodeBits int) (*cidrSet, error) {
	cluster = cluster.Masked()
	if !cluster.IsValid() {
		return nil, fmt.Errorf("cluster CIDR %v is not valid", cluster)
	}
	if nodeBits < cluster.Bits() || nodeBits > cluster.Addr().BitLen() {
		return nil, fmt.Errorf("node mask /%d does not fit in cluster CIDR %v", nodeBits, cluster)
	}
	ib := nodeBits - cluster.Bits()
	if ib > maxIndexBits {
		return nil, fmt.Errorf("cluster CIDR %v split into /%d blocks gives 2^%d blocks; at most 2^%d are supported (use a longer cluster prefix)",
			cluster, nodeBits, ib, maxIndexBits)
	}
	return &cidrSet{cluster: cluster, nodeBits: nodeBits, indexBits: ib, size: 1 << ib, used: map[uint64]struct{}{}}, nil
}

// block returns block i.
func (s *cidrSet) block(i uint64) netip.Prefix {
	b := s.cluster.Addr().AsSlice()
	setBits(b, s.cluster.Bits(), s.indexBits, i)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, s.nodeBits)
}

// indexes returns the blocks p covers, or an error when p is not inside
// the cluster CIDR.
func (s *cidrSet) indexes(p netip.Prefix) (first, count uint64, err error) {
	p = p.Masked()
	if p.Addr().Is4() != s.cluster.Addr().Is4() || p.Bits() < s.cluster.Bits() || !s.cluster.Contains(p.Addr()) {
		return 0, 0, fmt.Errorf("%v is not inside the cluster CIDR %v", p, s.cluster)
	}
	b := p.Addr().AsSlice()
	if p.Bits() >= s.nodeBits {
		// A block or a part of one: the block holding it.
		return getBits(b, s.cluster.Bits(), s.indexBits), 1, nil
	}
	// Wider than a block: every block inside it.
	first = getBits(b, s.cluster.Bits(), s.indexBits)
	return first, 1 << (s.nodeBits - p.Bits()), nil
}

// occupy marks the blocks of p as used (a node that already has them).
func (s *cidrSet) occupy(p netip.Prefix) error {
	first, n, err := s.indexes(p)
	if err != nil {
		return err
	}
	for i := first; i < first+n; i++ {
		s.used[i] = struct{}{}
	}
	return nil
}

// release frees the blocks of p.
func (s *cidrSet) release(p netip.Prefix) {
	first, n, err := s.indexes(p)
	if err != nil {
		return
	}
	for i := first; i < first+n; i++ {
		delete(s.used, i)
	}
}

// allocate takes the next free block.
func (s *cidrSet) allocate() (netip.Prefix, error) {
	if uint64(len(s.used)) >= s.size {
		return netip.Prefix{}, errFull
	}
	for n := uint64(0); n < s.size; n++ {
		i := (s.next + n) % s.size
		if _, taken := s.used[i]; !taken {
			s.used[i] = struct{}{}
			s.next = (i + 1) % s.size
			return s.block(i), nil
		}
	}
	return netip.Prefix{}, errFull
}

// free is how many blocks are left.
func (s *cidrSet) free() uint64 { return s.size - uint64(len(s.used)) }

// getBits reads n bits of b starting at bit from (0 = most significant).
func getBits(b []byte, from, n int) uint64 {
	var v uint64
	for k := 0; k < n; k++ {
		bit := from + k
		v <<= 1
		if b[bit/8]&(0x80>>(bit%8)) != 0 {
			v |= 1
		}
	}
	return v
}

// setBits writes the low n bits of v into b starting at bit from.
func setBits(b []byte, from, n int, v uint64) {
	for k := 0; k < n; k++ {
		bit := from + k
		mask := byte(0x80 >> (bit % 8))
		if v&(1<<(n-1-k)) != 0 {
			b[bit/8] |= mask
		} else {
			b[bit/8] &^= mask
		}
	}
}
