package storage

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestRawObjectWithResourceVersion(t *testing.T) {
	cases := []struct {
		data string
		ok   bool
	}{
		{`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web","namespace":"default"},"spec":{}}`, true},
		{`{"kind":"Pod","apiVersion":"v1","metadata":{},"spec":{}}`, true},
		{`{"kind":"Pod","apiVersion":"v1","spec":{}}`, false},
	}
	for _, tc := range cases {
		out, ok := RawObject{Data: []byte(tc.data), Revision: 42}.WithResourceVersion()
		if ok != tc.ok {
			t.Fatalf("%s: ok=%v, want %v", tc.data, ok, tc.ok)
		}
		if !ok {
			continue
		}
		var pod corev1.Pod
		if err := json.Unmarshal(out, &pod); err != nil {
			t.Fatalf("%s: result is not JSON: %v (%s)", tc.data, err, out)
		}
		if pod.ResourceVersion != "42" {
			t.Fatalf("%s: resourceVersion %q, want 42", tc.data, pod.ResourceVersion)
		}
		// Everything else is kept: the input with the revision removed again.
		pod.ResourceVersion = ""
		var want corev1.Pod
		if err := json.Unmarshal([]byte(tc.data), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pod, want) {
			t.Fatalf("%s: object changed: %s", tc.data, out)
		}
	}
}

func TestDecodeCacheSharesAndEvicts(t *testing.T) {
	c := newDecodeCache(2)
	decodes := 0
	decode := func(name string) func() (runtime.Object, error) {
		return func() (runtime.Object, error) {
			decodes++
			return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
		}
	}
	a1, _ := c.get(decodeKey{key: "a", rev: 1, value: 1}, decode("a"))
	a2, _ := c.get(decodeKey{key: "a", rev: 1, value: 1}, decode("a"))
	if a1 != a2 || decodes != 1 {
		t.Fatalf("same key decoded %d times, shared=%v", decodes, a1 == a2)
	}
	// A deletion carries another revision: another entry.
	if _, err := c.get(decodeKey{key: "a", rev: 2, value: 1}, decode("a")); err != nil || decodes != 2 {
		t.Fatalf("deleted object: %v, decodes %d", err, decodes)
	}
	// A third entry evicts the oldest.
	_, _ = c.get(decodeKey{key: "b", rev: 3, value: 3}, decode("b"))
	_, _ = c.get(decodeKey{key: "a", rev: 1, value: 1}, decode("a"))
	if decodes != 4 {
		t.Fatalf("evicted entry not decoded again: %d decodes", decodes)
	}
	// A failed decode is not cached.
	boom := errors.New("boom")
	if _, err := c.get(decodeKey{key: "x", rev: 9, value: 9}, func() (runtime.Object, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("decode error: %v", err)
	}
	if _, ok := c.entries[decodeKey{key: "x", rev: 9, value: 9}]; ok {
		t.Fatal("a failed decode was cached")
	}
}
