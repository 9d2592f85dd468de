package agent

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	typeddiscoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"

	"skiff/internal/kubelet/volumes"
	"skiff/internal/pki"
)

// lastKnown is the client of the node's service proxy and cluster DNS. It
// keeps on disk every full list of Services, EndpointSlices and Nodes it
// gets, and while no server answers it answers those lists with what it
// kept: a node started (or rebooted) with no server reachable serves the
// service rules and DNS names it last knew. The informers then watch from
// the kept resourceVersion, so once a server answers they catch up (or
// relist) as after any broken watch.
type lastKnown struct {
	kubernetes.Interface
	dir      string
	log      *slog.Logger
	recalled atomic.Bool // the last list came from disk
	// recallOnly: another lastKnown over the same dir keeps the lists
	// (the proxy's, refreshed every minute); this one only reads them.
	recallOnly bool
}

func newLastKnown(client kubernetes.Interface, dir string, log *slog.Logger) *lastKnown {
	return &lastKnown{Interface: client, dir: dir, log: log}
}

// lastKnownRefresh is how often the kept lists are refreshed while a
// server answers (the informers list only when they start or relist).
const lastKnownRefresh = time.Minute

// keepFresh lists Services, EndpointSlices and Nodes every
// lastKnownRefresh until ctx ends, so that what is kept is at most that
// old. The lists are served from the API server's cache (resourceVersion 0).
func (k *lastKnown) keepFresh(ctx context.Context) {
	tick := time.NewTicker(lastKnownRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		opts := metav1.ListOptions{ResourceVersion: "0"}
		_, err1 := k.CoreV1().Services("").List(ctx, opts)
		_, err2 := k.DiscoveryV1().EndpointSlices("").List(ctx, opts)
		_, err3 := k.CoreV1().Nodes().List(ctx, opts)
		if err := errors.Join(err1, err2, err3); err != nil && ctx.Err() == nil {
			k.log.Debug("refresh the last known lists", "err", err)
		}
	}
}

// IsWatchListSemanticsUnSupported has the informers list (and so keep
// what they list) instead of streaming their initial state in a watch.
func (k *lastKnown) IsWatchListSemanticsUnSupported() bool { return true }

func (k *lastKnown) CoreV1() typedcorev1.CoreV1Interface {
	return lastKnownCore{CoreV1Interface: k.Interface.CoreV1(), k: k}
}

func (k *lastKnown) DiscoveryV1() typeddiscoveryv1.DiscoveryV1Interface {
	return lastKnownDiscovery{DiscoveryV1Interface: k.Interface.DiscoveryV1(), k: k}
}

type lastKnownCore struct {
	typedcorev1.CoreV1Interface
	k *lastKnown
}

func (c lastKnownCore) Services(ns string) typedcorev1.ServiceInterface {
	return lastKnownServices{ServiceInterface: c.CoreV1Interface.Services(ns), ns: ns, k: c.k}
}

func (c lastKnownCore) Nodes() typedcorev1.NodeInterface {
	return lastKnownNodes{NodeInterface: c.CoreV1Interface.Nodes(), k: c.k}
}

type lastKnownServices struct {
	typedcorev1.ServiceInterface
	ns string
	k  *lastKnown
}

func (s lastKnownServices) List(ctx context.Context, opts metav1.ListOptions) (*corev1.ServiceList, error) {
	l, err := s.ServiceInterface.List(ctx, opts)
	return recall(s.k, "services", s.ns, opts, l, err, func(l *corev1.ServiceList) *metav1.ListMeta { return &l.ListMeta })
}

type lastKnownNodes struct {
	typedcorev1.NodeInterface
	k *lastKnown
}

func (n lastKnownNodes) List(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error) {
	l, err := n.NodeInterface.List(ctx, opts)
	return recall(n.k, "nodes", "", opts, l, err, func(l *corev1.NodeList) *metav1.ListMeta { return &l.ListMeta })
}

type lastKnownDiscovery struct {
	typeddiscoveryv1.DiscoveryV1Interface
	k *lastKnown
}

func (d lastKnownDiscovery) EndpointSlices(ns string) typeddiscoveryv1.EndpointSliceInterface {
	return lastKnownSlices{EndpointSliceInterface: d.DiscoveryV1Interface.EndpointSlices(ns), ns: ns, k: d.k}
}

type lastKnownSlices struct {
	typeddiscoveryv1.EndpointSliceInterface
	ns string
	k  *lastKnown
}

func (s lastKnownSlices) List(ctx context.Context, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	l, err := s.EndpointSliceInterface.List(ctx, opts)
	return recall(s.k, "endpointslices", s.ns, opts, l, err, func(l *discoveryv1.EndpointSliceList) *metav1.ListMeta { return &l.ListMeta })
}

// recall keeps a complete list of everything (all namespaces, no selector,
// one page) that the API returned, and returns the kept one in its place
// when no server answered.
func recall[L any](k *lastKnown, name, ns string, opts metav1.ListOptions, list *L, err error, meta func(*L) *metav1.ListMeta) (*L, error) {
	if ns != "" || opts.LabelSelector != "" || opts.FieldSelector != "" || opts.Continue != "" {
		return list, err
	}
	path := filepath.Join(k.dir, name+".json")
	if err == nil {
		if !k.recallOnly && meta(list).Continue == "" {
			if b, merr := json.Marshal(list); merr == nil {
				if werr := pki.WriteFileAtomic(path, b, 0o600); werr != nil {
					k.log.Warn("keep the last known list failed", "what", name, "err", werr)
				}
			}
		}
		if k.recalled.Swap(false) {
			k.log.Info("a server answers again: services and DNS follow the API")
		}
		return list, nil
	}
	if !volumes.Unreachable(err) {
		return list, err
	}
	b, rerr := os.ReadFile(path)
	if rerr != nil {
		return list, err
	}
	var kept L
	if json.Unmarshal(b, &kept) != nil {
		return list, err
	}
	if !k.recalled.Swap(true) {
		k.log.Warn("no server answers: the service proxy and cluster DNS use the services last known", "err", err)
	}
	return &kept, nil
}
