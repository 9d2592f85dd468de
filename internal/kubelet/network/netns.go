package network

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNodeNS runs f with the calling OS thread in the node's network
// namespace. Commands started from f (iptables) and /proc/sys/net files
// opened by f belong to that namespace.
func (n *Network) inNodeNS(f func() error) error {
	if n.cfg.NetNS == "" {
		return f()
	}
	return inNS(n.cfg.NetNS, f)
}

// inNS runs f on a fresh OS thread that has joined the namespace at path.
// The thread is never unlocked, so Go discards it afterwards instead of
// reusing a thread in the wrong namespace.
func inNS(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", path, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// writeSysctl sets a sysctl of the current thread's network namespace.
func writeSysctl(name, value string) error {
	p := filepath.Join("/proc/sys", name)
	if cur, err := os.ReadFile(p); err == nil && string(cur) == value+"\n" {
		return nil
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
