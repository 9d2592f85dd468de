package apiserver_test

import (
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/server/servertest"
)

// TestListPagination: limit and continue cut a list into pages read at
// one revision, so objects created between pages show up in none, and no
// object is returned twice or missed.
func TestListPagination(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	cms := c.CoreV1().ConfigMaps("default")
	want := map[string]bool{}
	for i := 0; i < 25; i++ {
		cm := configMap(fmt.Sprintf("cm-%02d", i), nil)
		if i%2 == 0 {
			cm.Labels["even"] = "yes"
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want[cm.Name] = true
	}
	// kube-root-ca.crt and the like: whatever the namespace already held.
	all, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range all.Items {
		want[cm.Name] = true
	}

	seen := map[string]bool{}
	opts := metav1.ListOptions{Limit: 10}
	var rv string
	pages := 0
	for {
		page, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		if rv == "" {
			rv = page.ResourceVersion
		} else if page.ResourceVersion != rv {
			t.Fatalf("page %d read at %s, the first at %s", pages, page.ResourceVersion, rv)
		}
		for _, cm := range page.Items {
			if seen[cm.Name] {
				t.Fatalf("%s returned twice", cm.Name)
			}
			seen[cm.Name] = true
		}
		left := len(want) - len(seen)
		if page.Continue == "" {
			if left != 0 {
				t.Fatalf("no continue token with %d objects left", left)
			}
			break
		}
		if len(page.Items) != 10 {
			t.Fatalf("page %d has %d items, want 10", pages, len(page.Items))
		}
		if page.RemainingItemCount == nil || *page.RemainingItemCount != int64(left) {
			t.Fatalf("page %d: remainingItemCount %v, want %d", pages, page.RemainingItemCount, left)
		}
		// Created between pages: in no page, as the pages are one list.
		if _, err := cms.Create(ctx, configMap(fmt.Sprintf("late-%d", pages), nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		opts.Continue = page.Continue
	}
	if len(seen) != len(want) {
		t.Fatalf("paged list returned %d objects, want %d", len(seen), len(want))
	}
	if wantPages := (len(want) + 9) / 10; pages != wantPages {
		t.Fatalf("%d pages, want %d", pages, wantPages)
	}

	// With a selector, pages are full of matches; no remainingItemCount.
	page, err := cms.List(ctx, metav1.ListOptions{Limit: 4, LabelSelector: "even=yes"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 4 || page.Continue == "" || page.RemainingItemCount != nil {
		t.Fatalf("selected page: %d items, continue %q, remaining %v", len(page.Items), page.Continue, page.RemainingItemCount)
	}
	n := len(page.Items)
	for page.Continue != "" {
		if page, err = cms.List(ctx, metav1.ListOptions{Limit: 4, LabelSelector: "even=yes", Continue: page.Continue}); err != nil {
			t.Fatal(err)
		}
		n += len(page.Items)
		for _, cm := range page.Items {
			if cm.Labels["even"] != "yes" {
				t.Fatalf("%s does not match the selector", cm.Name)
			}
		}
	}
	if n != 13 {
		t.Fatalf("selected pages hold %d objects, want 13", n)
	}

	// resourceVersion=0 (informers' first list) is answered whole.
	whole, err := cms.List(ctx, metav1.ListOptions{Limit: 10, ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if whole.Continue != "" || len(whole.Items) < len(want) {
		t.Fatalf("resourceVersion=0 with limit: %d items, continue %q", len(whole.Items), whole.Continue)
	}

	// Tables (kubectl get --chunk-size) carry the token too.
	body, err := c.CoreV1().RESTClient().Get().AbsPath("/api/v1/namespaces/default/configmaps").
		Param("limit", "2").SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(body, &table); err != nil {
		t.Fatal(err)
	}
	if table.Kind != "Table" || len(table.Rows) != 2 || table.Continue == "" || table.RemainingItemCount == nil {
		t.Fatalf("table page: kind %s, %d rows, continue %q, remaining %v", table.Kind, len(table.Rows), table.Continue, table.RemainingItemCount)
	}

	// A bad token, and a token with a resourceVersion, are refused.
	if _, err := cms.List(ctx, metav1.ListOptions{Continue: "not-a-token"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("bad continue token: %v, want BadRequest", err)
	}
	first, err := cms.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{Continue: first.Continue, ResourceVersion: "1"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("continue with a resourceVersion: %v, want BadRequest", err)
	}

	// A namespace's pages stay in the namespace.
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ConfigMaps("other").Create(ctx, configMap("x", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for opts := (metav1.ListOptions{Limit: 7}); ; {
		page, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range page.Items {
			if cm.Namespace != "default" {
				t.Fatalf("a page of default holds %s/%s", cm.Namespace, cm.Name)
			}
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
}

// TestListPaginationWhileCreating: 1,000 objects listed with limit=50 come
// back in 20 pages, each but the last with a continue token, with no
// object missing or repeated while more are being created.
func TestListPaginationWhileCreating(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1,000 objects")
	}
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	ctx := ctxT(t)
	const ns, n = "paging", 1000
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms := c.CoreV1().ConfigMaps(ns)
	create := func(from, to int) error {
		for i := from; i < to; i++ {
			if _, err := cms.Create(ctx, configMap(fmt.Sprintf("cm-%04d", i), nil), metav1.CreateOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() { errs <- create(w*n/4, (w+1)*n/4) }()
	}
	for w := 0; w < 4; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// kube-root-ca.crt, if anything publishes it.
	base, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := len(base.Items)

	opts := metav1.ListOptions{Limit: 50}
	seen := map[string]bool{}
	pages := 0
	creating := make(chan error, 1)
	for {
		page, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		if pages == 1 {
			// More objects arrive while the rest of the pages are read.
			go func() { creating <- create(n, n+200) }()
		}
		for _, cm := range page.Items {
			if seen[cm.Name] {
				t.Fatalf("%s listed twice", cm.Name)
			}
			seen[cm.Name] = true
		}
		if page.Continue == "" {
			break
		}
		opts.Continue = page.Continue
	}
	if err := <-creating; err != nil {
		t.Fatal(err)
	}
	if len(seen) != want {
		t.Fatalf("the pages held %d objects, want %d", len(seen), want)
	}
	if wantPages := (want + 49) / 50; pages != wantPages {
		t.Fatalf("%d pages, want %d", pages, wantPages)
	}
}
