package nodeipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCIDRSet(t *testing.T) {
	s, err := newCIDRSet(netip.MustParsePrefix("10.42.0.0/22"), 24)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.occupy(netip.MustParsePrefix("10.42.1.0/24")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		p, err := s.allocate()
		if errors.Is(err, errFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String())
	}
	want := []string{"10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"}
	if len(got) != len(want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	s.release(netip.MustParsePrefix("10.42.2.0/24"))
	if p, err := s.allocate(); err != nil || p.String() != "10.42.2.0/24" {
		t.Fatalf("after release: %v %v", p, err)
	}
	if err := s.occupy(netip.MustParsePrefix("10.43.0.0/24")); err == nil {
		t.Fatal("a CIDR outside the cluster CIDR was accepted")
	}
	if err := s.occupy(netip.MustParsePrefix("fd00::/64")); err == nil {
		t.Fatal("a CIDR of another family was accepted")
	}
}

func TestCIDRSetWideOccupyAndIPv6(t *testing.T) {
	s, err := newCIDRSet(netip.MustParsePrefix("10.42.0.0/16"), 24)
	if err != nil {
		t.Fatal(err)
	}
	// A /23 held by a node covers two blocks.
	if err := s.occupy(netip.MustParsePrefix("10.42.0.0/23")); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.allocate(); p.String() != "10.42.2.0/24" {
		t.Fatalf("first free block %v, want 10.42.2.0/24", p)
	}
	if s.free() != 256-3 {
		t.Fatalf("free %d", s.free())
	}

	v6, err := newCIDRSet(netip.MustParsePrefix("fd00:42::/56"), 64)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v6.allocate()
	b, _ := v6.allocate()
	if a.String() != "fd00:42::/64" || b.String() != "fd00:42:0:1::/64" {
		t.Fatalf("IPv6 blocks %v %v", a, b)
	}

	if _, err := newCIDRSet(netip.MustParsePrefix("10.0.0.0/8"), 7); err == nil {
		t.Fatal("a node mask wider than the cluster CIDR was accepted")
	}
	if _, err := newCIDRSet(netip.MustParsePrefix("fd00::/32"), 64); err == nil {
		t.Fatal("2^32 blocks were accepted")
	}
}
