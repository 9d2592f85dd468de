// Command schedbench measures skiff's scheduler: it starts a server in this
// process (temp data dir, free loopback ports), creates -nodes fake Ready
// nodes, then -pods pending pods with -workers concurrent clients, and
// follows a watch on pods to time each pod from the start of its create
// call to the event showing it bound. It prints a table: pods bound per
// second, create→bound latency percentiles, CPU used.
//
// Modes:
//   - server (default): the scheduler the server runs as composed by
//     `skiff server`, with the server's in-process client and its limits;
//   - standalone: the server runs without a scheduler and this command runs
//     one through the controller manager with its own client, rate-limited
//     at -qps (0: unlimited). With -backlog, every pod is created first and
//     the scheduler starts afterwards, which times the scheduler alone.
//
// Timings never fail it; it exits non-zero only when something errs.
//
// The benchmark's own clients and a standalone scheduler each get their own
// connection to the API server, as separate processes would; the server's
// controllers share the server's in-process client.
//
//	go run ./e2e/schedbench [-nodes 1000] [-pods 10000] [-mode server|standalone]
//	    [-qps 0] [-bind-workers 16] [-backlog] [-spread] [-cpuprofile f] [-pprof addr]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"skiff/internal/controller"
	"skiff/internal/controller/manager"
	"skiff/internal/scheduler"
)

type options struct {
	nodes, pods, workers int
	mode                 string
	qps                  float64
	bindWorkers          int
	backlog              bool
	controllers          bool
	spread               bool
	cpuprofile           string
	pprofAddr            string
	serverLog            bool
	timeout              time.Duration
}

const (
	namespace = "schedbench"
	podPrefix = "pod-"
	zones     = 10
)

func main() {
	var o options
	flag.IntVar(&o.nodes, "nodes", 1000, "fake nodes to create")
	flag.IntVar(&o.pods, "pods", 10000, "pending pods to create")
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients creating nodes and pods")
	flag.StringVar(&o.mode, "mode", "server", "server: the server's own scheduler; standalone: a scheduler run by this command with its own client")
	flag.Float64Var(&o.qps, "qps", 0, "standalone mode: the scheduler's client rate limit (0: unlimited)")
	flag.IntVar(&o.bindWorkers, "bind-workers", 0, "standalone mode: the scheduler's concurrent bindings (0: its default)")
	flag.BoolVar(&o.backlog, "backlog", false, "standalone mode: create every pod before the scheduler starts")
	flag.BoolVar(&o.controllers, "controllers", true, "run the server's other controllers too")
	flag.BoolVar(&o.spread, "spread", false, "give pods a ScheduleAnyway topology spread constraint over zones")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the pod phase (server and scheduler) to this file")
	flag.StringVar(&o.pprofAddr, "pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) while running")
	flag.BoolVar(&o.serverLog, "log", false, "show the server's log on stderr")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if o.nodes < 1 || o.pods < 1 || o.workers < 1 || flag.NArg() > 0 ||
		(o.mode != "server" && o.mode != "standalone") || (o.backlog && o.mode != "standalone") {
		fmt.Fprintln(os.Stderr, "schedbench: want -nodes, -pods, -workers >= 1, -mode server or standalone (-backlog needs standalone), no arguments")
		flag.Usage()
		os.Exit(2)
	}
	if !o.serverLog {
		// client-go logs through klog; keep the table readable.
		klog.SetLogger(logr.Discard())
	}
	if o.pprofAddr != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond))
		runtime.SetMutexProfileFraction(100)
		go func() {
			if err := http.ListenAndServe(o.pprofAddr, nil); err != nil {
				fmt.Fprintf(os.Stderr, "schedbench: pprof: %v\n", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	err := run(ctx, o, os.Stdout)
	cancel()
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "schedbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var logOut io.Writer
	if o.serverLog {
		logOut = os.Stderr
	}
	fmt.Fprintf(out, "schedbench: starting a server in %s\n", dir)
	srv, err := startServer(ctx, serverOptions{dir: dir, scheduler: o.mode == "server", controllers: o.controllers, logOut: logOut})
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop server: %w", serr)
		}
	}()
	c, err := srv.client(0)
	if err != nil {
		return err
	}
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}

	var rows []row
	start := time.Now()
	if err := parallel(ctx, o.nodes, o.workers, func(ctx context.Context, i int) error { return createNode(ctx, c, i) }); err != nil {
		return fmt.Errorf("create nodes: %w", err)
	}
	rows = append(rows, rateRow("create nodes", o.nodes, time.Since(start)))

	schedCtx, stopScheduler := context.WithCancel(ctx)
	var schedDone chan error
	defer func() {
		stopScheduler()
		if schedDone != nil {
			<-schedDone
		}
	}()
	startScheduler := func() error {
		if o.mode != "standalone" {
			return nil
		}
		rc, err := srv.restConfig(float32(o.qps))
		if err != nil {
			return err
		}
		schedDone = make(chan error, 1)
		go func() {
			schedDone <- manager.Run(schedCtx, manager.Config{
				RESTConfig: rc,
				Logger:     slog.New(slog.NewTextHandler(orDiscard(logOut), &slog.HandlerOptions{Level: slog.LevelInfo})),
				Controllers: []manager.Entry{{Name: "scheduler", New: func(cctx *controller.Context) (manager.Runner, error) {
					return scheduler.New(cctx, scheduler.Config{BindWorkers: o.bindWorkers})
				}}},
			})
		}()
		return nil
	}
	if !o.backlog {
		if err := startScheduler(); err != nil {
			return err
		}
		start = time.Now()
		if err := probe(ctx, c); err != nil {
			return err
		}
		rows = append(rows, row{name: "scheduler up (probe pod bound)", took: time.Since(start)})
	}

	w, err := newWatcher(ctx, c, o.pods)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile(o.cpuprofile)
	if err != nil {
		return err
	}
	cpuStart := cpuTime()
	podsStart := time.Now()
	if err := parallel(ctx, o.pods, o.workers, func(ctx context.Context, i int) error {
		w.created[i].Store(time.Now().UnixNano())
		return createPod(ctx, c, i, o.spread)
	}); err != nil {
		stopProfile()
		return fmt.Errorf("create pods: %w", err)
	}
	createdAll := time.Now()
	rows = append(rows, rateRow("create pods", o.pods, createdAll.Sub(podsStart)))
	schedStart := podsStart
	if o.backlog {
		schedStart, cpuStart = time.Now(), cpuTime()
		if err := startScheduler(); err != nil {
			stopProfile()
			return err
		}
	}
	waitErr := w.wait(ctx)
	wall := time.Since(schedStart)
	cpu := cpuTime() - cpuStart
	stopProfile()
	if waitErr != nil {
		return fmt.Errorf("%d of %d pods bound: %w", w.count.Load(), o.pods, waitErr)
	}

	first, last, lat := w.stats()
	rows = append(rows,
		rateRow("bound, first→last bound", o.pods, last.Sub(first)),
		rateRow("bound, scheduling start→last bound", o.pods, last.Sub(schedStart)),
	)
	if !o.backlog {
		rows = append(rows, rateRow("end to end, first create→last bound", o.pods, last.Sub(podsStart)))
	}
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	rows = append(rows,
		row{name: "create→bound latency p50", took: pct(0.50)},
		row{name: "create→bound latency p90", took: pct(0.90)},
		row{name: "create→bound latency p99", took: pct(0.99)},
		row{name: "create→bound latency max", took: lat[len(lat)-1]},
		row{name: "CPU used, whole process (cores)", value: fmt.Sprintf("%.2f", cpu.Seconds()/wall.Seconds())},
		row{name: "CPU per bound pod, whole process", took: cpu / time.Duration(o.pods)},
		row{name: "bound/s if CPU-bound on 2 idle cores", value: fmt.Sprintf("~%.0f", 2/(cpu.Seconds()/float64(o.pods)))},
	)

	mode := "server (the server's own scheduler and in-process client)"
	if o.mode == "standalone" {
		q := "unlimited"
		if o.qps > 0 {
			q = fmt.Sprintf("%g qps", o.qps)
		}
		mode = fmt.Sprintf("standalone scheduler, client %s", q)
		if o.backlog {
			mode += ", backlog (pods created first)"
		}
	}
	fmt.Fprintf(out, "\nschedbench: %d nodes, %d pods, %d workers, GOMAXPROCS=%d, controllers=%v, spread=%v\nmode: %s\n\n",
		o.nodes, o.pods, o.workers, runtime.GOMAXPROCS(0), o.controllers, o.spread, mode)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tcount\ttime\tper second\t")
	for _, r := range rows {
		fmt.Fprintln(tw, r.String())
	}
	return tw.Flush()
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type row struct {
	name  string
	count int
	took  time.Duration
	value string
}

func rateRow(name string, n int, d time.Duration) row { return row{name: name, count: n, took: d} }

func (r row) String() string {
	count, rate := "", ""
	if r.count > 0 {
		count = strconv.Itoa(r.count)
		if r.took > 0 {
			rate = fmt.Sprintf("%.0f", float64(r.count)/r.took.Seconds())
		}
	}
	took := ""
	switch {
	case r.took >= time.Second:
		took = r.took.Round(time.Millisecond).String()
	case r.took > 0:
		took = r.took.Round(10 * time.Microsecond).String()
	}
	if r.value != "" {
		took = r.value
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t", r.name, count, took, rate)
}

// parallel runs f for 0..n-1 on workers goroutines; the first error stops it.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func createNode(ctx context.Context, c kubernetes.Interface, i int) error {
	name := fmt.Sprintf("node-%05d", i)
	rl := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	now := metav1.Now()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
			corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%zones)}},
		Status: corev1.NodeStatus{
			Capacity: rl, Allocatable: rl.DeepCopy(),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: now, LastTransitionTime: now, Reason: "KubeletReady"}},
		},
	}
	if _, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	return nil
}

func podSpec(spread bool) corev1.PodSpec {
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}}}
	if spread {
		spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone,
			WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "schedbench"}}}}
	}
	return spec
}

func createPod(ctx context.Context, c kubernetes.Interface, i int, spread bool) error {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podPrefix + strconv.Itoa(i), Namespace: namespace, Labels: map[string]string{"app": "schedbench"}},
		Spec:       podSpec(spread),
	}
	if _, err := c.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("pod %s: %w", p.Name, err)
	}
	return nil
}

// probe creates a pod and waits for it to be bound, so the scheduler is
// known to be up before the clock starts; then deletes it.
func probe(ctx context.Context, c kubernetes.Interface) error {
	pods := c.CoreV1().Pods(metav1.NamespaceDefault)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "schedbench-probe"}, Spec: podSpec(false)}
	if _, err := pods.Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create probe pod: %w", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get probe pod: %w", err)
		}
		if got.Spec.NodeName != "" {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the probe pod was not bound within 2 minutes: is the scheduler running?")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete probe pod: %w", err)
	}
	return nil
}

// watcher follows the benchmark's pods and records when each is bound.
type watcher struct {
	n       int
	created []atomic.Int64
	bound   []atomic.Int64
	count   atomic.Int64
	done    chan struct{}
	errc    chan error
}

func newWatcher(ctx context.Context, c kubernetes.Interface, n int) (*watcher, error) {
	l, err := c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	w := &watcher{n: n, created: make([]atomic.Int64, n), bound: make([]atomic.Int64, n), done: make(chan struct{}), errc: make(chan error, 1)}
	go w.loop(ctx, c, l.ResourceVersion)
	return w, nil
}

func (w *watcher) loop(ctx context.Context, c kubernetes.Interface, rv string) {
	for ctx.Err() == nil {
		wi, err := c.CoreV1().Pods(namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() == nil {
				w.errc <- fmt.Errorf("watch pods: %w", err)
			}
			return
		}
		for ev := range wi.ResultChan() {
			if ev.Type == watch.Error {
				wi.Stop()
				w.errc <- fmt.Errorf("watch pods: %v", apierrors.FromObject(ev.Object))
				return
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if p.Spec.NodeName == "" {
				continue
			}
			idx, ok := strings.CutPrefix(p.Name, podPrefix)
			if !ok {
				continue
			}
			i, err := strconv.Atoi(idx)
			if err != nil || i < 0 || i >= w.n {
				continue
			}
			if w.bound[i].CompareAndSwap(0, time.Now().UnixNano()) {
				if w.count.Add(1) == int64(w.n) {
					wi.Stop()
					close(w.done)
					return
				}
			}
		}
	}
}

// wait waits until every pod is bound, the watch fails, or ctx ends.
func (w *watcher) wait(ctx context.Context) error {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return nil
		case err := <-w.errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			fmt.Fprintf(os.Stderr, "schedbench: %d/%d pods bound\n", w.count.Load(), w.n)
		}
	}
}

// stats returns the first and last bind times and the sorted
// create→bound latencies.
func (w *watcher) stats() (first, last time.Time, lat []time.Duration) {
	var lo, hi int64
	lat = make([]time.Duration, 0, w.n)
	for i := 0; i < w.n; i++ {
		b := w.bound[i].Load()
		if lo == 0 || b < lo {
			lo = b
		}
		hi = max(hi, b)
		lat = append(lat, time.Duration(b-w.created[i].Load()))
	}
	slices.Sort(lat)
	return time.Unix(0, lo), time.Unix(0, hi), lat
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startProfile starts a CPU profile into path ("" for none); the returned
// function stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
