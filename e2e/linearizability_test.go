package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The register the clients of TestLinearizability share: ConfigMap
// default/lin, its data.v. Every write sets a value never written before,
// so a value names one write, and so one resourceVersion: an Update with
// the resourceVersion a read returned is a compare-and-swap on the value
// that read saw.

type linInput struct {
	cas      bool
	old, new string // for a CAS: the value read before it, the value written
}

type linOutcome int

const (
	casOK       linOutcome = iota // 2xx: applied
	casConflict                   // 409: the resourceVersion was stale, a definite no-op
	casUnknown                    // timeout, 5xx, broken connection: applied or not
)

type linOutput struct {
	value   string // what a read saw
	outcome linOutcome
}

var registerModel = porcupine.Model{
	Init: func() interface{} { return "0" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(string), input.(linInput), output.(linOutput)
		if !in.cas {
			return out.value == st, st
		}
		switch out.outcome {
		case casOK:
			return st == in.old, in.new
		case casConflict:
			return st != in.old, st
		default:
			// An operation of unknown outcome has an infinite return time,
			// so it may be placed after every other operation, where it
			// changes nothing anyone saw: that covers "not applied". Where
			// the state is the value it expects, it applies.
			if st == in.old {
				return true, in.new
			}
			return true, st
		}
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(linInput), output.(linOutput)
		if !in.cas {
			return "read → " + out.value
		}
		return fmt.Sprintf("cas(%s→%s) %s", in.old, in.new, [...]string{"ok", "conflict", "unknown"}[out.outcome])
	},
	DescribeState: func(state interface{}) string { return state.(string) },
}

// TestLinearizability has six clients do read-then-compare-and-swap
// updates of one ConfigMap key through three servers, kills one server
// (the etcd leader, if the test can tell) in the middle, and checks the
// history of reads and swaps with porcupine: reads and updates through
// any server must behave as one register.
func TestLinearizability(t *testing.T) {
	start := time.Now()
	t.Cleanup(func() { t.Logf("TestLinearizability took %s with its cleanup", secs(time.Since(start))) })
	nc := startNetNodes(t, "l", "host-gw", []netNodeSpec{
		{name: "s1", server: true, args: []string{"--cluster-init", "--disable-agent"}},
		{name: "s2", server: true, args: []string{"--disable-agent"}},
		{name: "s3", server: true, args: []string{"--disable-agent"}},
	})
	c := newHACluster(nc)
	servers := c.servers()
	t.Logf("3 servers up in %s", secs(time.Since(start)))
	ctx := context.Background()
	if _, err := c.client(servers[0]).CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "lin"}, Data: map[string]string{"v": "0"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Clients of their own, without client-go's retries: a retried update
	// could report a conflict for an update its first attempt applied.
	clients := make([]kubernetes.Interface, len(servers))
	for i, s := range servers {
		rc := c.restConfig(s)
		rc.Timeout = 3 * time.Second
		cl, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
	}

	const (
		nClients = 6
		runFor   = 30 * time.Second
	)
	begin := time.Now()
	now := func() int64 { return int64(time.Since(begin)) }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		dropped int
	)
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	// notSent: the request never left the client (the connection was
	// refused), so the operation did not happen.
	notSent := func(err error) bool {
		var op *net.OpError
		return errors.As(err, &op) && op.Op == "dial"
	}
	var wg sync.WaitGroup
	for id := 0; id < nClients; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := id % len(servers)
			next := func() { srv = (srv + 1) % len(servers) }
			for seq := 0; time.Since(begin) < runFor; seq++ {
				cl := clients[srv].CoreV1().RESTClient()
				call := now()
				var cm corev1.ConfigMap
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := cl.Get().Namespace("default").Resource("configmaps").Name("lin").MaxRetries(0).Do(rctx).Into(&cm)
				cancel()
				if err != nil {
					// A failed read tells nothing: leave it out.
					mu.Lock()
					dropped++
					mu.Unlock()
					next()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				old := cm.Data["v"]
				record(porcupine.Operation{ClientId: id, Input: linInput{}, Call: call, Output: linOutput{value: old}, Return: now()})

				nv := fmt.Sprintf("c%d-%d", id, seq)
				cm.Data = map[string]string{"v": nv}
				call = now()
				wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err = cl.Put().Namespace("default").Resource("configmaps").Name("lin").Body(&cm).MaxRetries(0).Do(wctx).Error()
				cancel()
				ret := now()
				var out linOutcome
				switch {
				case err == nil:
					out = casOK
				case apierrors.IsConflict(err):
					out = casConflict
				case notSent(err):
					mu.Lock()
					dropped++
					mu.Unlock()
					next()
					continue
				default:
					out, ret = casUnknown, math.MaxInt64
					next()
				}
				record(porcupine.Operation{ClientId: id, Input: linInput{cas: true, old: old, new: nv}, Call: call, Output: linOutput{outcome: out}, Return: ret})
			}
		}()
	}

	// Kill a server in the middle of the run: the etcd leader if the test
	// can tell which it is.
	time.Sleep(runFor / 2)
	victim := servers[1]
	if _, leaderID, err := c.etcdStatus(servers[0]); err == nil {
		for _, s := range servers {
			if m, _, err := c.etcdStatus(s); err == nil && m == leaderID {
				victim = s
			}
		}
	}
	c.kill(victim)
	t.Logf("killed %s (kill -9) %s into the run", victim.name, secs(time.Since(begin)))
	wg.Wait()

	var reads, cas, ok, conflicts, unknown int
	for _, op := range history {
		if !op.Input.(linInput).cas {
			reads++
			continue
		}
		cas++
		switch op.Output.(linOutput).outcome {
		case casOK:
			ok++
		case casConflict:
			conflicts++
		default:
			unknown++
		}
	}
	if ok == 0 {
		t.Fatalf("no update succeeded in %d operations", len(history))
	}
	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 2*time.Minute)
	t.Logf("porcupine checked %d operations in %s", len(history), secs(time.Since(checkStart)))
	switch res {
	case porcupine.Ok:
		t.Logf("linearizability: %d operations (%d reads, %d CAS: %d ok, %d conflict, %d unknown), no violation; %d failed or unsent operations left out",
			len(history), reads, cas, ok, conflicts, unknown, dropped)
	default:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("skiff-linearizability-%d.html", os.Getpid()))
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		t.Errorf("linearizability check: %s for %d operations (%d reads, %d CAS: %d ok, %d conflict, %d unknown); see %s",
			res, len(history), reads, cas, ok, conflicts, unknown, path)
	}
}

// TestLinearizabilityModel checks the register model on histories small
// enough to reason about by hand, without a cluster.
func TestLinearizabilityModel(t *testing.T) {
	read := func(client int, call, ret int64, v string) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{}, Call: call, Output: linOutput{value: v}, Return: ret}
	}
	cas := func(client int, call, ret int64, old, nv string, out linOutcome) porcupine.Operation {
		if out == casUnknown {
			ret = math.MaxInt64
		}
		return porcupine.Operation{ClientId: client, Input: linInput{cas: true, old: old, new: nv}, Call: call, Output: linOutput{outcome: out}, Return: ret}
	}
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{"sequential", []porcupine.Operation{read(0, 0, 1, "0"), cas(0, 2, 3, "0", "a", casOK), read(1, 4, 5, "a")}, true},
		{"stale read after an acknowledged write", []porcupine.Operation{cas(0, 0, 1, "0", "a", casOK), read(1, 2, 3, "0")}, false},
		{"two swaps from one value", []porcupine.Operation{cas(0, 0, 1, "0", "a", casOK), cas(1, 2, 3, "0", "b", casOK)}, false},
		{"conflict although the value matched", []porcupine.Operation{read(0, 0, 1, "0"), cas(0, 2, 3, "0", "a", casConflict), read(1, 4, 5, "0")}, false},
		{"unknown, applied", []porcupine.Operation{cas(0, 0, 0, "0", "a", casUnknown), read(1, 5, 6, "a")}, true},
		{"unknown, not applied", []porcupine.Operation{cas(0, 0, 0, "0", "a", casUnknown), read(1, 5, 6, "0"), cas(1, 7, 8, "0", "b", casOK), read(1, 9, 10, "b")}, true},
		{"unknown, applied after a read saw it not applied", []porcupine.Operation{cas(0, 0, 0, "0", "a", casUnknown), read(1, 5, 6, "0"), read(1, 7, 8, "a")}, true},
		{"unknown cannot undo", []porcupine.Operation{cas(0, 0, 0, "0", "a", casUnknown), read(1, 5, 6, "a"), read(1, 7, 8, "0")}, false},
	} {
		if got := porcupine.CheckOperations(registerModel, tc.history); got != tc.ok {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.ok)
		}
	}
}
