package expectations

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestPodName(t *testing.T) {
	if got := PodName("web"); !strings.HasPrefix(got, "web-") || len(got) != len("web-")+5 {
		t.Errorf("PodName(web) = %q", got)
	}
	long := strings.Repeat("a", 60) + "-.b"
	got := PodName(long)
	if errs := validation.IsDNS1123Label(got); len(errs) != 0 {
		t.Errorf("PodName(%q) = %q, not a DNS label: %v", long, got, errs)
	}
	if PodName("web") == PodName("web") {
		t.Error("two names alike: the suffix is not random")
	}
}

func TestSatisfied(t *testing.T) {
	now := time.Unix(1000, 0)
	e := New(time.Minute, func() time.Time { return now })
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pods := corelisters.NewPodLister(idx)

	e.ExpectAdd("ns/o", "p1")
	if e.Satisfied("ns/o", "ns", pods) {
		t.Fatal("satisfied before the created pod is in the cache")
	}
	if err := idx.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p1", UID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	if !e.Satisfied("ns/o", "ns", pods) {
		t.Fatal("not satisfied with the created pod in the cache")
	}

	e.ExpectDelete("ns/o", "p1", "u1")
	if e.Satisfied("ns/o", "ns", pods) {
		t.Fatal("satisfied while the deleted pod is still in the cache")
	}
	now = now.Add(2 * time.Minute)
	if !e.Satisfied("ns/o", "ns", pods) {
		t.Fatal("an expectation older than the ttl still blocks")
	}
}
