package config

import "testing"

func TestParsePortRange(t *testing.T) {
	cases := []struct {
		in         string
		base, size int
		ok         bool
	}{
		{"30000-32767", 30000, 2768, true},
		{"30000+2767", 30000, 2768, true},
		{"8080", 8080, 1, true},
		{"32767-30000", 0, 0, false},
		{"0-100", 0, 0, false},
		{"1-65536", 0, 0, false},
		{"", 0, 0, false},
		{"30000-", 0, 0, false},
		{"30000-32767x", 0, 0, false},
	}
	for _, tc := range cases {
		r, err := ParsePortRange(tc.in)
		if (err == nil) != tc.ok {
			t.Fatalf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
		}
		if tc.ok && (r.Base != tc.base || r.Size != tc.size) {
			t.Fatalf("%q: %+v, want base %d size %d", tc.in, r, tc.base, tc.size)
		}
	}
	if r, _ := ParsePortRange(DefaultNodePortRange); !r.Contains(30000) || !r.Contains(32767) || r.Contains(32768) || r.String() != DefaultNodePortRange {
		t.Fatalf("default range %v", r)
	}
}
