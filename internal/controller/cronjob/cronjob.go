// Package cronjob is skiff's CronJob controller: it creates a Job for
// every time a CronJob's schedule comes round (in its timeZone), honours
// concurrencyPolicy, startingDeadlineSeconds and suspend, keeps
// status.active, lastScheduleTime and lastSuccessfulTime, and deletes the
// finished Jobs beyond the history limits.
package cronjob

import (
	"context"
	"fmt"
	"log/slog"

	// CronJobs name IANA time zones; the binary carries the database so
	// hosts without /usr/share/zoneinfo (small edge images) know them too.
	_ "time/tzdata"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"skiff/internal/controller"
)

const (
	// Name is the controller's name in events and logs.
	Name           = "cronjob-controller"
	defaultWorkers = 5
)

// Options tune the controller; zero values mean the defaults.
type Options struct {
	Workers int
	// Clock is the controller's time: when schedules are due and what
	// "now" is. Tests pass a fake clock to fire schedules at will.
	Clock clock.WithTicker
}

// Controller is the CronJob controller.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	synced   []cache.InformerSynced
	queue    controller.Queue
	wake     *wakeups
	recorder record.EventRecorder
	log      *slog.Logger
	opts     Options
	clock    clock.WithTicker
}

// New builds the controller on cctx's informers.
func New(cctx *controller.Context, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	cjInformer := cctx.Informers.Batch().V1().CronJobs()
	jobInformer := cctx.Informers.Batch().V1().Jobs()
	c := &Controller{
		client:   cctx.Client,
		cronJobs: cjInformer.Lister(),
		jobs:     jobInformer.Lister(),
		synced:   []cache.InformerSynced{cjInformer.Informer().HasSynced, jobInformer.Informer().HasSynced},
		queue:    controller.NewQueue("cronjob"),
		wake:     newWakeups(opts.Clock),
		recorder: cctx.Recorder(Name),
		log:      cctx.ControllerLogger("cronjob"),
		opts:     opts,
		clock:    opts.Clock,
	}
	if _, err := cjInformer.Informer().AddEventHandler(controller.EnqueueHandler(c.queue)); err != nil {
		return nil, fmt.Errorf("cronjob controller: watch cronjobs: %w", err)
	}
	if _, err := jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.jobChanged,
		UpdateFunc: func(old, cur interface{}) { c.jobChanged(old); c.jobChanged(cur) },
		DeleteFunc: c.jobChanged,
	}); err != nil {
		return nil, fmt.Errorf("cronjob controller: watch jobs: %w", err)
	}
	return c, nil
}

// Run runs the controller until ctx is done.
func (c *Controller) Run(ctx context.Context) {
	c.log.Info("starting")
	if !controller.WaitForSync(ctx, c.log, c.synced...) {
		c.queue.ShutDown()
		return
	}
	c.log.Info("ready")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.wake.run(ctx, c.queue.Add)
	}()
	controller.RunWorkers(ctx, c.log, c.queue, c.opts.Workers, c.sync)
	<-done
	c.log.Info("stopped")
}

// jobChanged queues the CronJob that controls a Job.
func (c *Controller) jobChanged(obj interface{}) {
	j, ok := controller.ObjectOf[*batchv1.Job](obj)
	if !ok {
		return
	}
	if key, ok := controller.ControllerKey(j, batchv1.SchemeGroupVersion.String(), "CronJob"); ok {
		c.queue.Add(key)
	}
}
