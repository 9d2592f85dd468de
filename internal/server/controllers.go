package server

import (
	"skiff/internal/config"
	"skiff/internal/controller"
	"skiff/internal/controller/cronjob"
	"skiff/internal/controller/daemonset"
	"skiff/internal/controller/deployment"
	"skiff/internal/controller/endpoints"
	"skiff/internal/controller/endpointslice"
	"skiff/internal/controller/garbagecollector"
	"skiff/internal/controller/job"
	"skiff/internal/controller/localpath"
	"skiff/internal/controller/manager"
	"skiff/internal/controller/namespace"
	"skiff/internal/controller/nodeipam"
	"skiff/internal/controller/nodelifecycle"
	"skiff/internal/controller/podgc"
	"skiff/internal/controller/replicaset"
	"skiff/internal/controller/volumebinder"
	"skiff/internal/scheduler"
)

// controllerEntries lists the control loops this server runs when it leads.
func controllerEntries(cfg config.Server) []manager.Entry {
	var out []manager.Entry
	if !cfg.DisableScheduler {
		out = append(out, schedulerEntries(cfg)...)
	}
	if !cfg.DisableControllerManager {
		out = append(out, controllerManagerEntries(cfg)...)
	}
	return out
}

// schedulerEntryName names the scheduler's manager entry.
const schedulerEntryName = "scheduler"

// schedulerEntries is the scheduler.
func schedulerEntries(cfg config.Server) []manager.Entry {
	return []manager.Entry{{Name: schedulerEntryName, OwnConnection: true, New: func(cctx *controller.Context) (manager.Runner, error) {
		return scheduler.New(cctx, scheduler.Config{})
	}}}
}

// controllerManagerEntries are the controllers, one entry each.
func controllerManagerEntries(cfg config.Server) []manager.Entry {
	var out []manager.Entry
	out = append(out, manager.Entry{Name: "job", New: func(cctx *controller.Context) (manager.Runner, error) { return job.New(cctx, job.Options{}) }})
	out = append(out, manager.Entry{Name: "cronjob", New: func(cctx *controller.Context) (manager.Runner, error) { return cronjob.New(cctx, cronjob.Options{}) }})
	out = append(out, manager.Entry{Name: "daemonset", New: func(cctx *controller.Context) (manager.Runner, error) {
		return daemonset.New(cctx, daemonset.Options{})
	}})
	out = append(out, manager.Entry{Name: namespace.Name, New: func(cctx *controller.Context) (manager.Runner, error) { return namespace.New(cctx) }})
	out = append(out, manager.Entry{Name: garbagecollector.Name, New: func(cctx *controller.Context) (manager.Runner, error) { return garbagecollector.New(cctx) }})
	out = append(out, manager.Entry{Name: endpoints.Name, New: func(cctx *controller.Context) (manager.Runner, error) { return endpoints.New(cctx) }})
	out = append(out, manager.Entry{Name: endpointslice.Name, New: func(cctx *controller.Context) (manager.Runner, error) { return endpointslice.New(cctx) }})
	out = append(out, manager.Entry{Name: nodelifecycle.Name, New: func(cctx *controller.Context) (manager.Runner, error) {
		return nodelifecycle.New(cctx, nodelifecycle.Config{GracePeriod: cfg.Controllers.NodeMonitorGracePeriod})
	}})
	if cfg.ClusterCIDR != nil {
		out = append(out, manager.Entry{Name: nodeipam.Name, New: func(cctx *controller.Context) (manager.Runner, error) {
			return nodeipam.New(cctx, nodeipam.Config{ClusterCIDR: cfg.ClusterCIDR})
		}})
	}
	out = append(out, manager.Entry{Name: podgc.Name, New: func(cctx *controller.Context) (manager.Runner, error) {
		// A pod's node must be missing for as long as a node may go
		// silent before its pods count as orphans (40 s by default).
		return podgc.New(cctx, podgc.Config{TerminatedPodThreshold: cfg.Controllers.TerminatedPodGCThreshold,
			OrphanQuarantine: cfg.Controllers.NodeMonitorGracePeriod})
	}})
	out = append(out, manager.Entry{Name: "persistentvolume-binder", New: volumebinder.NewRunner})
	out = append(out, manager.Entry{Name: "local-path-provisioner", New: localpath.NewRunner(localpath.Config{DataDir: cfg.DataDir})})
	out = append(out, manager.Entry{Name: "replicaset", New: replicaset.NewRunner})
	out = append(out, manager.Entry{Name: "deployment", New: deployment.NewRunner})
	return out
}
