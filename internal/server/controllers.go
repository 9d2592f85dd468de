package server

import (
	"skiff/internal/config"
	"skiff/internal/controller/manager"
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

// schedulerEntries is the scheduler.
func schedulerEntries(cfg config.Server) []manager.Entry {
	return nil
}

// controllerManagerEntries are the controllers, one entry each.
func controllerManagerEntries(cfg config.Server) []manager.Entry {
	var out []manager.Entry
	return out
}
