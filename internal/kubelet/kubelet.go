// Package kubelet runs a node's pods: it registers the node and keeps its
// lease, watches the pods bound to it (and static pod manifests), and drives
// each pod towards its spec with one worker goroutine per pod, through the
// image store, the container runtime, volumes and probes. Status goes back
// to the API through pods/status. It talks to the cluster only via the API.
package kubelet

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"log/slog"
	"net"
	"os"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"skiff/internal/config"
	"skiff/internal/identity"
	"skiff/internal/kubelet/images"
	"skiff/internal/kubelet/network"
	"skiff/internal/kubelet/probes"
	"skiff/internal/kubelet/runtime"
	kubeletserver "skiff/internal/kubelet/server"
	"skiff/internal/kubelet/volumes"
)

// Config is what the kubelet is built from.
type Config struct {
	Agent      config.Agent
	RESTConfig *rest.Config
	Runtime    *runtime.Runtime
	Images     *images.Store
	// Version is reported as the kubelet and runtime version.
	Version string
	Logger  *slog.Logger

	// ServingCertFile and ServingKeyFile serve the kubelet API. Clients
	// present a certificate from ClientCA or a bearer token, and the API
	// server decides what they may do (TokenReview, SubjectAccessReview).
	ServingCertFile, ServingKeyFile string
	ClientCA                        *x509.CertPool

	// Network builds the pod network once the node has a podCIDR. Without
	// it pods keep only loopback (and the host's network if they ask).
	Network NetworkFactory
}

// Kubelet is a running node agent.
type Kubelet struct {
	cfg      Config
	log      *slog.Logger
	client   kubernetes.Interface
	rt       *runtime.Runtime
	images   *images.Store
	volumes  *volumes.Manager
	probes   *probes.Manager
	state    *stateDB
	recorder record.EventRecorder
	machine  machine
	// offline is set while the node runs from local state because no
	// server answered its registration.
	offline atomic.Bool
	// offlineFrom and offlineUntil are the node's last offline time (Run
	// writes them before the node status loop starts).
	offlineFrom, offlineUntil time.Time
	nodeName                  string
	nodeIP                    net.IP
	hostname                  string

	services corelisters.ServiceLister
	backoff  *backoff

	// net is the pod network, set once before netReady is closed.
	net      *network.Network
	netReady chan struct{}

	// lastStatus is the node status last written; only runNodeStatus
	// touches it after registration.
	lastStatus   corev1.NodeStatus
	lastStatusAt time.Time

	// starts bounds how many containers start at once: each start is a
	// burst of process creation (shim, runc init) that only slows the
	// others down when dozens run together on a small node.
	starts chan struct{}

	mu      sync.Mutex
	workers map[types.UID]*podWorker
	// ctx is the kubelet's run context; pod workers derive from it.
	ctx context.Context
	wg  sync.WaitGroup
}

// New builds a kubelet; Run starts it.
func New(cfg Config) (*Kubelet, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Agent.NodeName == "" {
		return nil, errors.New("kubelet: node name is required")
	}
	// The kubelet's own defaults (kubeAPIQPS 50, burst 100): client-go's
	// 5 QPS would queue a busy node's status writes for many seconds.
	rc := rest.CopyConfig(cfg.RESTConfig)
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubelet client: %w", err)
	}
	layout := config.Layout{DataDir: cfg.Agent.DataDir}
	state, err := openState(layout.AgentStateFile())
	if err != nil {
		return nil, err
	}
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = cfg.Agent.NodeName
	}
	nodeIP := cfg.Agent.NodeIP
	if nodeIP == nil {
		if nodeIP = identity.DefaultAddress(cfg.Agent.ServiceCIDR, cfg.Agent.ClusterCIDR); nodeIP == nil {
			nodeIP = net.IPv4(127, 0, 0, 1)
		}
	}
	k := &Kubelet{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "kubelet"),
		client:   client,
		rt:       cfg.Runtime,
		images:   cfg.Images,
		state:    state,
		machine:  readMachine(cfg.Agent.DataDir, cfg.Agent.MaxPods, cfg.Version),
		nodeName: cfg.Agent.NodeName,
		nodeIP:   nodeIP,
		hostname: hostname,
		backoff:  newBackoff(),
		workers:  map[types.UID]*podWorker{},
		netReady: make(chan struct{}),
		starts:   make(chan struct{}, max(2*goruntime.NumCPU(), 4)),
	}
	k.volumes = volumes.New(volumes.Config{
		Root: layout.PodsDir(), Client: client, NodeName: k.nodeName, Logger: k.log,
		LocalCopyDir: layout.LocalCopiesDir(), Offline: k.offline.Load,
	})
	k.probes = probes.NewManager(probes.Config{OnChange: k.onProbeChange, Logger: k.log})
	return k, nil
}

// Run registers the node and runs pods until ctx ends. Containers are left
// running when it returns: a restarted kubelet adopts them.
func (k *Kubelet) Run(ctx context.Context) error {
	defer k.state.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	k.ctx = ctx

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	k.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.nodeName})

	// Static pods run even while the API server is unreachable.
	k.wg.Add(1)
	go func() { defer k.wg.Done(); k.runStaticPods(ctx) }()

	// Before any pod worker runs: pods started offline see no services
	// until the informers sync.
	shared := informers.NewSharedInformerFactory(k.client, 0)
	k.services = shared.Core().V1().Services().Lister()
	regErr := k.registerNode(ctx)
	if regErr != nil {
		k.offline.Store(true)
		k.offlineFrom = time.Now()
	}
	// Offline, the pod network starts from the node as last kept.
	if k.cfg.Network != nil {
		k.wg.Add(1)
		go func() { defer k.wg.Done(); k.startNetwork(ctx) }()
	}
	if err := regErr; err != nil {
		n := k.startFromState()
		k.log.Warn("no server answers: running offline, with the pods this node ran before, from local state, until one does",
			"pods", n, "err", err)
		// The node runs its pods: a service manager may count it started.
		if k.cfg.Agent.OnRegistered != nil {
			k.cfg.Agent.OnRegistered()
		}
		if err := k.waitRegistered(ctx); err != nil {
			return err
		}
		k.offlineUntil = time.Now()
		k.offline.Store(false)
		k.log.Info("a server answers again: the node is back online; the API's pods replace the local ones")
	} else if k.cfg.Agent.OnRegistered != nil {
		k.cfg.Agent.OnRegistered()
	}
	k.wg.Add(1)
	go func() { defer k.wg.Done(); k.runNodeStatus(ctx) }()

	podInformers := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.nodeName).String()
		}))
	podInformer := podInformers.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podFromAPI(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { k.podFromAPI(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				k.podGoneFromAPI(p)
			}
		},
	})
	podInformers.Start(ctx.Done())
	shared.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced, shared.Core().V1().Services().Informer().HasSynced) {
		return ctx.Err()
	}
	// Containers of pods that no longer exist (deleted while the agent was
	// away) are cleaned up once the API's view is known.
	k.adoptOrphans(ctx, podInformers.Core().V1().Pods().Lister())

	k.wg.Add(1)
	go func() { defer k.wg.Done(); k.runImageGC(ctx) }()

	srv, err := kubeletserver.New(kubeletserver.Config{
		Addr:     net.JoinHostPort(k.cfg.Agent.KubeletAddress, fmt.Sprint(k.cfg.Agent.KubeletPort)),
		CertFile: k.cfg.ServingCertFile,
		KeyFile:  k.cfg.ServingKeyFile,
		ClientCA: k.cfg.ClientCA,
		Client:   k.client,
		NodeName: k.nodeName,
		Provider: &provider{k: k},
		Logger:   k.log,
	})
	if err != nil {
		return fmt.Errorf("kubelet API: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	k.log.Info("kubelet running", "node", k.nodeName, "api", k.cfg.Agent.KubeletPort)

	select {
	case <-ctx.Done():
		// The API server's port is free once Run returns: the agent may
		// start again in this process (a new node IP).
		<-errc
	case err = <-errc:
		if err != nil && ctx.Err() == nil {
			cancel()
			k.wg.Wait()
			return fmt.Errorf("kubelet API on port %d: %w", k.cfg.Agent.KubeletPort, err)
		}
	}
	cancel()
	k.wg.Wait()
	return nil
}

// waitRegistered registers the node, retrying while the API server is
// unreachable (static pods keep running meanwhile).
func (k *Kubelet) waitRegistered(ctx context.Context) error {
	delay := time.Second
	for {
		err := k.registerNode(ctx)
		if err == nil {
			return nil
		}
		k.log.Warn("cannot register the node yet; retrying", "err", err, "retry", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// podFromAPI hands an API pod to its worker. Mirror pods are the API's view
// of static pods and are not run a second time.
func (k *Kubelet) podFromAPI(pod *corev1.Pod) {
	if isMirrorPod(pod) {
		return
	}
	k.workerFor(pod.UID, false).update(pod)
}

func (k *Kubelet) podGoneFromAPI(pod *corev1.Pod) {
	if isMirrorPod(pod) {
		return
	}
	k.mu.Lock()
	w := k.workers[pod.UID]
	k.mu.Unlock()
	if w != nil {
		w.gone()
	}
}

// workerFor returns the pod's worker, starting it if needed.
func (k *Kubelet) workerFor(uid types.UID, static bool) *podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w, ok := k.workers[uid]; ok {
		return w
	}
	w := newPodWorker(k, uid, static)
	k.workers[uid] = w
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		w.run(k.ctx)
		k.mu.Lock()
		if k.workers[uid] == w {
			delete(k.workers, uid)
		}
		k.mu.Unlock()
	}()
	return w
}

// kick asks a pod's worker to sync now, if it exists.
func (k *Kubelet) kick(uid types.UID) {
	k.mu.Lock()
	w := k.workers[uid]
	k.mu.Unlock()
	if w != nil {
		w.kick()
	}
}

// podByName finds a pod on this node, and its worker, for the kubelet API.
func (k *Kubelet) podByName(ns, name string) (*corev1.Pod, *podWorker, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.workers {
		if p := w.current(); p != nil && p.Namespace == ns && p.Name == name {
			return p, w, nil
		}
	}
	return nil, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

func isMirrorPod(p *corev1.Pod) bool {
	_, ok := p.Annotations[annotationMirror]
	return ok
}

// startContainer starts a container, at most len(k.starts) at a time.
func (k *Kubelet) startContainer(ctx context.Context, spec runtime.ContainerSpec) error {
	select {
	case k.starts <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-k.starts }()
	return k.rt.Start(ctx, spec)
}
