// Command bench measures a real `skiff server` process under load and
// prints a table. It starts the server from a binary (built from this
// repository unless -skiff names one) in a temp data dir on free loopback
// ports, then, with client-go:
//
//  1. opens -watchers watches on pods,
//  2. creates -pods pods with -workers concurrent workers (per-request
//     latency), while the watches measure delivery latency: from the start
//     of a pod's create call to its ADDED event, on every watch,
//  3. GETs every pod,
//  4. lists all pods -lists times: whole, whole without decoding, and in
//     pages of -page,
//  5. does the same with -custom objects of a CRD,
//
// and reports the server's RSS (fresh, after the load, after -idle of
// idling) and the binary's size. Timings never fail it: it exits non-zero
// only when something errs (a failed request, a missing watch event, a
// server that will not start or stop).
//
//	go run ./e2e/bench [-pods 10000] [-workers 16] [-watchers 1] [-skiff path] [-stripped]
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

type options struct {
	pods, workers, lists int
	custom               int
	watchers, page       int
	skiff                string
	stripped, keep       bool
	idle                 time.Duration
	// authorizationMode is the server's --authorization-mode ("" for its
	// default); user, when set, runs the load as that user (bound to
	// cluster-admin through RBAC) instead of the admin, whose group
	// system:masters skips the RBAC evaluation.
	authorizationMode, user string
}

const (
	namespace     = "bench"
	readyTimeout  = 90 * time.Second
	stopTimeout   = 30 * time.Second
	deliveryGrace = 60 * time.Second // how long the watch may lag behind the creates
)

func main() {
	var o options
	flag.IntVar(&o.pods, "pods", 10000, "pods to create")
	flag.IntVar(&o.workers, "workers", 16, "concurrent client workers")
	flag.IntVar(&o.lists, "lists", 20, "times to list all pods")
	flag.IntVar(&o.custom, "custom", 10000, "custom objects (of a CRD) to create, watch, get and list after the pods; 0: none")
	flag.IntVar(&o.watchers, "watchers", 1, "watches on pods that measure delivery")
	flag.IntVar(&o.page, "page", 500, "limit of the paged lists (0: no paged lists)")
	flag.StringVar(&o.skiff, "skiff", "", "skiff binary to run (default: go build the repository into a temp dir)")
	flag.BoolVar(&o.stripped, "stripped", false, `also report the size of a stripped build (-ldflags "-s -w")`)
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "idle time before the second RSS reading")
	flag.StringVar(&o.authorizationMode, "authorization-mode", "", "the server's --authorization-mode (default: the server's default, Node,RBAC)")
	flag.StringVar(&o.user, "user", "", "run the load as this user, bound to cluster-admin by a ClusterRoleBinding, so that every request is authorized by RBAC (default: the admin, group system:masters)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir (data dir, server log)")
	flag.Parse()
	if o.pods < 1 || o.workers < 1 || o.lists < 0 || o.watchers < 1 || o.page < 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "bench: want -pods >= 1, -workers >= 1, -lists >= 0, -watchers >= 1, -page >= 0 and no arguments")
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, os.Stdout)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "bench: interrupted; the server was stopped and its temp dir removed")
		os.Exit(1)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "skiff-bench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(out, "\nkept %s (server log: %s)\n", dir, filepath.Join(dir, "skiff.log"))
			return
		}
		os.RemoveAll(dir)
	}()

	bin := o.skiff
	if bin == "" {
		bin = filepath.Join(dir, "skiff")
		t0 := time.Now()
		if err := build(ctx, bin, ""); err != nil {
			return err
		}
		fmt.Fprintf(out, "built %s in %v\n", bin, time.Since(t0).Round(time.Millisecond))
	} else if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	binInfo, err := os.Stat(bin)
	if err != nil {
		return err
	}

	t0 := time.Now()
	srv, err := startServer(bin, dir, o.authorizationMode)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = srv.stop(stopTimeout)
		}
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "skiff server log (tail):\n%s\n", srv.logTail(40))
		}
	}()
	client, restConfig, err := srv.waitReady(ctx, readyTimeout)
	if err != nil {
		return err
	}
	if o.user != "" {
		if client, restConfig, err = srv.asUser(ctx, client, o.user); err != nil {
			return err
		}
	}
	startup := time.Since(t0)
	fresh, err := readMemory(srv.pid())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "skiff server pid %d ready in %v; %d pods, %d workers, %d watchers, %d lists, client GOMAXPROCS %d, %d CPUs\n",
		srv.pid(), startup.Round(time.Millisecond), o.pods, o.workers, o.watchers, o.lists, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(out, "authorization mode %q, load as %q\n", o.authorizationMode, cmp.Or(o.user, "the admin (system:masters)"))

	results, loadErr := load(ctx, client, o)
	if loadErr == nil && o.custom > 0 {
		custom, err := loadCustom(ctx, restConfig, o)
		results, loadErr = append(results, custom...), err
	}

	afterLoad, err := readMemory(srv.pid())
	if err != nil {
		return errors.Join(loadErr, err)
	}
	section(out, "latency")
	printTable(out, results)

	if loadErr == nil {
		select {
		case <-time.After(o.idle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	idle, err := readMemory(srv.pid())
	if err != nil {
		return errors.Join(loadErr, err)
	}
	section(out, "skiff server memory (VmRSS)")
	fmt.Fprintf(out, "%-28s %s\n", "fresh (just ready):", mib(fresh.rss))
	fmt.Fprintf(out, "%-28s %s\n", "right after the load:", mib(afterLoad.rss))
	if loadErr == nil {
		fmt.Fprintf(out, "%-28s %s\n", fmt.Sprintf("after %v idle:", o.idle), mib(idle.rss))
	}
	fmt.Fprintf(out, "%-28s %s\n", "peak (VmHWM):", mib(idle.peak))

	took, stopErr := srv.stop(stopTimeout)
	stopped = true
	fmt.Fprintf(out, "\nstopped with SIGTERM in %v\n", took.Round(time.Millisecond))

	section(out, "binary")
	fmt.Fprintf(out, "%s: %s\n", bin, mib(binInfo.Size()))
	if o.stripped {
		sbin := filepath.Join(dir, "skiff-stripped")
		if err := build(ctx, sbin, "-s -w"); err != nil {
			return err
		}
		fi, err := os.Stat(sbin)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "stripped (-ldflags \"-s -w\"): %s\n", mib(fi.Size()))
	}
	return errors.Join(loadErr, stopErr)
}

// load runs the measured phases and returns a result per operation.
func load(ctx context.Context, c kubernetes.Interface, o options) ([]result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	initial, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}

	// (a) the watches, from the list's revision.
	starts := make([]atomic.Int64, o.pods) // unix nanos at each create's start
	ws := make([]*watcher, o.watchers)
	var watching sync.WaitGroup
	stopWatches := func() {
		for _, w := range ws {
			if w != nil {
				w.stop()
			}
		}
		watching.Wait()
	}
	for i := range ws {
		w := &watcher{c: c, starts: starts, rv: initial.ResourceVersion, delivery: make([]time.Duration, 0, o.pods)}
		if err := w.open(ctx); err != nil {
			stopWatches()
			return nil, err
		}
		ws[i] = w
		watching.Add(1)
		go func() { defer watching.Done(); w.run(ctx) }()
	}

	// (b) creates.
	createStart := time.Now()
	create := parallel(ctx, o.pods, o.workers, func(ctx context.Context, i int) error {
		starts[i].Store(time.Now().UnixNano())
		_, err := c.CoreV1().Pods(namespace).Create(ctx, benchPod(i), metav1.CreateOptions{})
		return err
	})
	create.name = "create pod"
	created := o.pods - create.errors
	if err := ctx.Err(); err != nil {
		stopWatches()
		return []result{create}, err
	}

	// Every watch must deliver every pod that was created.
	var watchErr error
	deadline := time.Now().Add(deliveryGrace)
	for _, w := range ws {
		for w.count() < created && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopWatches()
	delivery := result{name: "watch delivery"}
	opens := 0
	for _, w := range ws {
		delivery.latencies = append(delivery.latencies, w.delivery...)
		delivery.errors += w.errors
		if d := w.last.Sub(createStart); !w.last.IsZero() && d > delivery.wall {
			delivery.wall = d
		}
		if n := w.count(); n < created {
			watchErr = errors.Join(watchErr, fmt.Errorf("a watch delivered %d of %d created pods within %v of the last create", n, created, deliveryGrace))
			delivery.errors += created - n
		}
		opens += w.opens
		if w.err != nil {
			watchErr = errors.Join(watchErr, w.err)
		}
	}
	delivery.note = fmt.Sprintf("create call start → ADDED event, on %d watches; (re)opened %d time(s)", o.watchers, opens)

	// (c) a GET of every pod.
	get := parallel(ctx, o.pods, o.workers, func(ctx context.Context, i int) error {
		_, err := c.CoreV1().Pods(namespace).Get(ctx, benchName(i), metav1.GetOptions{})
		return err
	})
	get.name = "get pod"

	// (d) lists of all pods.
	list := result{name: "list all pods"}
	listStart := time.Now()
	var items int
	for i := 0; i < o.lists && ctx.Err() == nil; i++ {
		t0 := time.Now()
		l, err := c.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		d := time.Since(t0)
		if err != nil {
			list.errors++
			list.note = fmt.Sprintf("first error: %v", err)
			continue
		}
		list.latencies = append(list.latencies, d)
		items = len(l.Items)
		if items < created {
			list.errors++
			list.note = fmt.Sprintf("a list returned %d items, want at least %d", items, created)
		}
	}
	list.wall = time.Since(listStart)
	if list.note == "" {
		list.note = fmt.Sprintf("%d items per list", items)
	}

	// (e) the same lists, read but not decoded: the server's share.
	raw := result{name: "list all pods, undecoded"}
	rawStart := time.Now()
	for i := 0; i < o.lists && ctx.Err() == nil; i++ {
		t0 := time.Now()
		body, err := c.CoreV1().RESTClient().Get().AbsPath("/api/v1/pods").DoRaw(ctx)
		d := time.Since(t0)
		if err != nil {
			raw.errors++
			raw.note = fmt.Sprintf("first error: %v", err)
			continue
		}
		raw.latencies = append(raw.latencies, d)
		raw.note = fmt.Sprintf("%s per list, read without decoding", mib(int64(len(body))))
	}
	raw.wall = time.Since(rawStart)

	// (f) the same lists in pages of o.page.
	paged := result{name: fmt.Sprintf("list all pods, pages of %d", o.page)}
	pagedStart := time.Now()
	for i := 0; i < o.lists && o.page > 0 && ctx.Err() == nil; i++ {
		t0 := time.Now()
		n, pages, err := listPaged(ctx, c, int64(o.page))
		d := time.Since(t0)
		if err != nil {
			paged.errors++
			paged.note = fmt.Sprintf("first error: %v", err)
			continue
		}
		paged.latencies = append(paged.latencies, d)
		paged.note = fmt.Sprintf("%d items in %d pages per list", n, pages)
		if n < created {
			paged.errors++
			paged.note = fmt.Sprintf("a paged list returned %d items, want at least %d", n, created)
		}
	}
	paged.wall = time.Since(pagedStart)

	results := []result{create, delivery, get, list, raw}
	if o.page > 0 {
		results = append(results, paged)
	}
	var errs []error
	for _, r := range results {
		if r.errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d errors (%s)", r.name, r.errors, r.note))
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return results, errors.Join(append(errs, watchErr)...)
}

// listPaged lists all pods in pages of limit and returns how many there
// were and in how many pages; a pod returned twice is an error.
func listPaged(ctx context.Context, c kubernetes.Interface, limit int64) (int, int, error) {
	seen := map[string]bool{}
	opts := metav1.ListOptions{Limit: limit}
	for pages := 1; ; pages++ {
		l, err := c.CoreV1().Pods("").List(ctx, opts)
		if err != nil {
			return 0, 0, err
		}
		for _, p := range l.Items {
			k := p.Namespace + "/" + p.Name
			if seen[k] {
				return 0, 0, fmt.Errorf("page %d: %s listed twice", pages, k)
			}
			seen[k] = true
		}
		if l.Continue == "" {
			return len(seen), pages, nil
		}
		opts.Continue = l.Continue
	}
}

func benchName(i int) string { return fmt.Sprintf("bench-%06d", i) }

func benchIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "bench-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// benchPod is a small, realistic pod: one container, requests, labels.
func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   benchName(i),
			Labels: map[string]string{"app": "bench", "shard": strconv.Itoa(i % 16)},
		},
		Spec: corev1.PodSpec{
			// No node can run them, and the API server is what is measured:
			// a scheduler name nobody serves keeps the scheduler from adding
			// a FailedScheduling event and status write per pod. The
			// controllers still run and cache the pods, so RSS is real.
			SchedulerName: "bench-unscheduled",
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.local/bench/app:1.0",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env:   []corev1.EnvVar{{Name: "INDEX", Value: strconv.Itoa(i)}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("10m"),
					corev1.ResourceMemory: resource.MustParse("16Mi"),
				}},
			}},
		},
	}
}

// parallel calls fn for 0..n-1 on workers goroutines and measures each call.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) result {
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var errCount atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				err := fn(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					errCount.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	r := result{wall: time.Since(start), errors: int(errCount.Load())}
	for i, d := range lat {
		if ok[i] {
			r.latencies = append(r.latencies, d)
		}
	}
	if firstErr != nil {
		r.note = fmt.Sprintf("first error: %v", firstErr)
	}
	return r
}

// watcher follows pod events and records, for each bench pod's first
// ADDED event, the time since its create call started. If the server ends
// the watch it reopens it from the last resourceVersion seen.
type watcher struct {
	c      kubernetes.Interface
	starts []atomic.Int64
	rv     string

	mu      sync.Mutex
	w       watch.Interface
	stopped bool

	seen     atomic.Int64
	delivery []time.Duration // owned by run
	last     time.Time       // owned by run: when the last new pod arrived
	opens    int
	errors   int
	err      error
}

var errStopped = errors.New("watcher stopped")

func (w *watcher) open(ctx context.Context) error {
	wi, err := w.c.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{ResourceVersion: w.rv})
	if err != nil {
		return fmt.Errorf("watch pods from resourceVersion %s: %w", w.rv, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		wi.Stop()
		return errStopped
	}
	w.w = wi
	w.opens++
	return nil
}

func (w *watcher) count() int { return int(w.seen.Load()) }

// stop ends the watch; run returns.
func (w *watcher) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.w != nil {
		w.w.Stop()
	}
}

func (w *watcher) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

func (w *watcher) run(ctx context.Context) {
	seen := make([]bool, len(w.starts))
	for {
		w.mu.Lock()
		ch := w.w.ResultChan()
		w.mu.Unlock()
		for ev := range ch {
			now := time.Now()
			switch ev.Type {
			case watch.Added:
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				w.rv = pod.ResourceVersion
				i, ok := benchIndex(pod.Name)
				if !ok || i >= len(seen) || seen[i] {
					continue
				}
				start := w.starts[i].Load()
				if start == 0 {
					w.errors++
					w.err = errors.Join(w.err, fmt.Errorf("ADDED event for %s before its create started", pod.Name))
					continue
				}
				seen[i] = true
				w.delivery = append(w.delivery, now.Sub(time.Unix(0, start)))
				w.last = now
				w.seen.Add(1)
			case watch.Modified, watch.Deleted, watch.Bookmark:
				if m, ok := ev.Object.(metav1.Object); ok {
					w.rv = m.GetResourceVersion()
				}
			case watch.Error:
				if w.isStopped() {
					// Closing the stream on our side can surface as an error.
					continue
				}
				w.errors++
				w.err = errors.Join(w.err, fmt.Errorf("watch error event: %v", apierrors.FromObject(ev.Object)))
			}
		}
		if w.isStopped() || ctx.Err() != nil {
			return
		}
		// The server closed the watch (timeout, error): resume.
		if err := w.open(ctx); err != nil {
			if errors.Is(err, errStopped) {
				return
			}
			w.errors++
			w.err = errors.Join(w.err, err)
			return
		}
	}
}
