// Package manager runs skiff's controllers on the elected leader: one
// shared informer factory, one event broadcaster, every controller as a
// goroutine that stops with the leader's context.
package manager

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"skiff/internal/controller"
)

// Runner is a built controller; Run blocks until ctx is done.
type Runner interface {
	Run(ctx context.Context)
}

// Entry names a controller and how to build it.
type Entry struct {
	Name string
	New  func(cctx *controller.Context) (Runner, error)
	// OwnConnection gives the controller its own client and HTTP
	// connection, for one whose writes must not queue behind the others'
	// (the scheduler's binds). It still shares the informers.
	OwnConnection bool
}

// Config is what the manager needs.
type Config struct {
	RESTConfig  *rest.Config
	Logger      *slog.Logger
	Controllers []Entry
	// Resync is the informers' resync period (0: none).
	Resync time.Duration
	// IdentityFor, when set, gives a controller a client configuration of
	// its own identity (nil keeps the manager's), so that authorization
	// limits what each controller may write and the audit names it. The
	// shared informers and events still use RESTConfig.
	IdentityFor func(controller string) (*rest.Config, error)
}

// Run builds every controller, starts the informers and runs the
// controllers until ctx is done, then waits for all of them to stop.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	rc := rest.CopyConfig(cfg.RESTConfig)
	rc.UserAgent = "skiff-controller-manager"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("controller manager: client: %w", err)
	}
	factory := informers.NewSharedInformerFactory(client, cfg.Resync)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	cctx := &controller.Context{
		RESTConfig: rc,
		Client:     client,
		Informers:  factory,
		Logger:     log,
		Recorder: func(component string) record.EventRecorder {
			return broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
		},
	}
	var runners []Runner
	var names []string
	for _, e := range cfg.Controllers {
		ectx := cctx
		if cfg.IdentityFor != nil {
			if ectx, err = withIdentity(cctx, e.Name, cfg.IdentityFor); err != nil {
				return err
			}
		}
		if e.OwnConnection {
			if ectx, err = withOwnConnection(ectx, e.Name); err != nil {
				return err
			}
		}
		r, err := e.New(ectx)
		if err != nil {
			return fmt.Errorf("controller %s: %w", e.Name, err)
		}
		runners = append(runners, r)
		names = append(names, e.Name)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	log.Info("starting controllers", "controllers", names)
	var wg sync.WaitGroup
	for i, r := range runners {
		wg.Add(1)
		go func(name string, r Runner) {
			defer wg.Done()
			r.Run(ctx)
			log.Debug("controller stopped", "controller", name)
		}(names[i], r)
	}
	<-ctx.Done()
	wg.Wait()
	log.Info("controllers stopped")
	return nil
}

// withIdentity copies cctx with the client of the controller's own
// identity, when it has one.
func withIdentity(cctx *controller.Context, name string, identityFor func(string) (*rest.Config, error)) (*controller.Context, error) {
	rc, err := identityFor(name)
	if err != nil {
		return nil, fmt.Errorf("controller %s: credentials: %w", name, err)
	}
	if rc == nil {
		return cctx, nil
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "skiff-" + name
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("controller %s: client: %w", name, err)
	}
	own := *cctx
	own.RESTConfig, own.Client = rc, client
	return &own, nil
}

// withOwnConnection copies cctx with a client on a connection of its own.
// client-go shares one cached transport among equal configs; a config with
// its own dialer gets a transport, and so a connection, of its own.
func withOwnConnection(cctx *controller.Context, name string) (*controller.Context, error) {
	rc := rest.CopyConfig(cctx.RESTConfig)
	rc.UserAgent = "skiff-" + name
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	rc.Dial = dialer.DialContext
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("controller %s: client: %w", name, err)
	}
	own := *cctx
	own.RESTConfig, own.Client = rc, client
	return &own, nil
}
