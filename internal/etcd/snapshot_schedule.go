package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ScheduledSnapshotPrefix starts the name of every scheduled snapshot:
// etcd-snapshot-<node>-<unix seconds>. Only those are pruned.
const ScheduledSnapshotPrefix = "etcd-snapshot"

// SnapshotName is the file name of a snapshot taken at t: <prefix>-<node>-<unix>.
func SnapshotName(prefix, node string, t time.Time) string {
	return prefix + "-" + node + "-" + strconv.FormatInt(t.Unix(), 10)
}

// ParseSchedule parses a standard 5-field cron expression ("0 */12 * * *"),
// or a descriptor such as "@hourly" or "@every 30m".
func ParseSchedule(spec string) (Schedule, error) {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("snapshot schedule %q: %w", spec, err)
	}
	return s, nil
}

// Schedule says when the next snapshot is due.
type Schedule interface {
	// Next returns the first activation time after t.
	Next(t time.Time) time.Time
}

// SnapshotterConfig configures scheduled snapshots.
type SnapshotterConfig struct {
	// Dir is where snapshots are written.
	Dir string
	// Node names this server in the snapshots' names.
	Node     string
	Schedule Schedule
	// Retention is how many scheduled snapshots of this node are kept;
	// the oldest beyond it are deleted. Other snapshots are never pruned.
	Retention int
	Logger    *slog.Logger
}

// RunSnapshotter takes a snapshot through cli whenever cfg.Schedule says so,
// then prunes old scheduled snapshots, until ctx is done. A failed snapshot
// is logged and retried at the next activation; it never stops the loop.
func RunSnapshotter(ctx context.Context, cli *clientv3.Client, cfg SnapshotterConfig) error {
	if cfg.Dir == "" || cfg.Node == "" || cfg.Schedule == nil {
		return errors.New("etcd snapshots: dir, node and schedule are required")
	}
	if cfg.Retention < 1 {
		return fmt.Errorf("etcd snapshots: retention %d: want at least 1", cfg.Retention)
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	next := cfg.Schedule.Next(time.Now())
	lg.Info("starting", "dir", cfg.Dir, "retention", cfg.Retention, "next", next.Format(time.RFC3339))
	defer lg.Info("stopped")
	for {
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		name := SnapshotName(ScheduledSnapshotPrefix, cfg.Node, time.Now())
		s, err := SaveSnapshot(ctx, cli, cfg.Dir, name)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil // stopping; not a failure
		case err != nil:
			lg.Error("scheduled snapshot failed; will retry at the next scheduled time", "err", err)
		default:
			lg.Info("saved scheduled snapshot", "path", s.Path, "size", s.Size)
			pruned, err := PruneSnapshots(cfg.Dir, cfg.Node, cfg.Retention)
			for _, p := range pruned {
				lg.Info("pruned old snapshot", "name", p)
			}
			if err != nil {
				lg.Error("prune snapshots", "err", err)
			}
		}
		// From now, not from the activation: a slow snapshot must not
		// make the loop fire again and again to catch up.
		next = cfg.Schedule.Next(time.Now())
	}
}

// PruneSnapshots deletes the oldest scheduled snapshots of node in dir so
// that at most keep remain, and returns the names it deleted. Snapshots
// with other names (on-demand ones, other nodes') are left alone.
func PruneSnapshots(dir, node string, keep int) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("prune snapshots: %w", err)
	}
	type scheduled struct {
		name string
		unix int64
	}
	prefix := ScheduledSnapshotPrefix + "-" + node + "-"
	var found []scheduled
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		// Checksum and part files fail here, as do other nodes' snapshots
		// whose names merely start with this node's name.
		unix, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			continue
		}
		found = append(found, scheduled{e.Name(), unix})
	}
	if len(found) <= keep {
		return nil, nil
	}
	sort.Slice(found, func(i, j int) bool { return found[i].unix < found[j].unix })
	var deleted []string
	var errs []error
	for _, s := range found[:len(found)-keep] {
		if err := DeleteSnapshot(dir, s.name); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, s.name)
	}
	return deleted, errors.Join(errs...)
}
