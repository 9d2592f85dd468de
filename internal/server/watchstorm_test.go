package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"skiff/internal/server/servertest"
)

// stormWatches is how many watches each round of the storm opens and then
// closes all at once.
const stormWatches = 300

// TestWatchStorm opens many watches on one resource, each on its own
// connection, and closes them all at once, three times. The control plane
// must keep working afterwards: a new watch sees an event, a new Deployment
// gets its ReplicaSet, and the connections' file descriptors are freed.
func TestWatchStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("opens hundreds of connections")
	}
	s := servertest.Start(t, "")
	c := s.Client(t)
	ctx := context.Background()
	const ns = "storm"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rc := s.RESTConfig(t)
	tlsCfg, err := rest.TLSConfigFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	url := rc.Host + "/api/v1/namespaces/" + ns + "/configmaps?watch=1"

	before := openFDs(t)
	for round := 1; round <= 3; round++ {
		// HTTP/1.1, one connection per watch, as many separate clients
		// would have.
		tr := &http.Transport{TLSClientConfig: tlsCfg.Clone(), DisableKeepAlives: true}
		hc := &http.Client{Transport: tr}
		stormCtx, closeAll := context.WithCancel(ctx)
		var opened sync.WaitGroup
		errs := make(chan error, stormWatches)
		for i := 0; i < stormWatches; i++ {
			opened.Add(1)
			go func() {
				defer opened.Done()
				req, _ := http.NewRequestWithContext(stormCtx, http.MethodGet, url, nil)
				resp, err := hc.Do(req)
				if err != nil {
					errs <- err
					return
				}
				if resp.StatusCode != http.StatusOK {
					resp.Body.Close()
					errs <- fmt.Errorf("watch: %s", resp.Status)
					return
				}
				// Read until the storm ends it.
				go func() {
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					for sc.Scan() {
					}
				}()
			}()
		}
		opened.Wait()
		close(errs)
		for err := range errs {
			closeAll()
			t.Fatalf("round %d: open a watch: %v", round, err)
		}
		// One change every watcher sees, so the etcd watches have traffic
		// in flight when they are cancelled.
		if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("round-%d", round)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		closeAll()
		tr.CloseIdleConnections()
	}

	// A new watch sees an event within 2 s.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	w, err := c.CoreV1().ConfigMaps(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatalf("a watch after the storm: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen := false
	for ev := range w.ResultChan() {
		if cm, ok := ev.Object.(*corev1.ConfigMap); ok && ev.Type == watch.Added && cm.Name == "after" {
			seen = true
			break
		}
	}
	w.Stop()
	if !seen {
		t.Fatal("a watch opened after the storm saw no event within 2s")
	}

	// A new Deployment gets its ReplicaSet within 5 s.
	one := int32(1)
	labels := map[string]string{"app": "after-storm"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after-storm"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	servertest.Eventually(t, 5*time.Second, "a ReplicaSet for the Deployment created after the storm", func() error {
		rss, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(rss.Items) == 0 {
			return fmt.Errorf("no ReplicaSet yet")
		}
		return nil
	})

	// /readyz says so too.
	if body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		t.Fatalf("/readyz after the storm: %v (%s)", err, body)
	}

	// The storm's connections are freed.
	servertest.Eventually(t, 10*time.Second, "file descriptors back near their number before the storm", func() error {
		n := openFDs(t)
		if n > before+50 {
			return fmt.Errorf("%d open file descriptors, %d before the storm", n, before)
		}
		t.Logf("open file descriptors: %d before the storm, %d after", before, n)
		return nil
	})
}

// openFDs counts this process's open file descriptors: the in-process
// server's and the test's.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}
