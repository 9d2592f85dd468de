package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap/zapcore"
)

// restoreRevisionBump is added to the restored revision, and everything up
// to it is marked compacted. Clients still holding resourceVersions from
// before the restore then get "410 Gone" and relist, rather than waiting
// for revisions the restored cluster has already given to other writes.
const restoreRevisionBump = 1_000_000_000

// Restore replaces cfg.DataDir with the snapshot at snapshotPath, as the
// data of a new one-member cluster whose member Start(ctx, cfg) then runs.
// The snapshot is checked against its .sha256 file when there is one (and
// against the checksum etcd puts inside every snapshot in any case). An
// existing data dir is kept, moved aside to etcd-old-<unix> next to it;
// Restore returns that path ("" when there was none).
func Restore(ctx context.Context, cfg Config, snapshotPath string) (movedTo string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("etcd: restore: %w", err)
	}
	cfg, err = cfg.complete()
	if err != nil {
		return "", err
	}
	lg := cfg.Logger
	if _, err := os.Stat(snapshotPath); err != nil {
		return "", fmt.Errorf("etcd: restore %s: %w", snapshotPath, err)
	}
	switch err := VerifySnapshot(snapshotPath); {
	case errors.Is(err, errNoChecksum):
		lg.Warn("restoring a snapshot without a .sha256 file; only etcd's own checksum inside it is checked", "snapshot", snapshotPath)
	case err != nil:
		return "", fmt.Errorf("etcd: restore refused: %w", err)
	}

	// Restore into a sibling dir first, so a failed restore leaves the
	// current data where it was.
	parent := filepath.Dir(filepath.Clean(cfg.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("etcd: restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".etcd-restore-")
	if err != nil {
		return "", fmt.Errorf("etcd: restore: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "etcd")

	peerURL := cfg.peerURL()
	level := zapcore.WarnLevel
	if cfg.Debug {
		level = zapcore.InfoLevel
	}
	mgr := snapshot.NewV3(newZapLogger(lg, level, new(atomic.Bool)))
	lg.Info("restoring snapshot", "snapshot", snapshotPath, "data-dir", cfg.DataDir, "member", cfg.Name)
	if err := mgr.Restore(snapshot.RestoreConfig{
		SnapshotPath:        snapshotPath,
		Name:                cfg.Name,
		OutputDataDir:       out,
		PeerURLs:            []string{peerURL.String()},
		InitialCluster:      cfg.Name + "=" + peerURL.String(),
		InitialClusterToken: "skiff",
		RevisionBump:        restoreRevisionBump,
		MarkCompacted:       true,
	}); err != nil {
		return "", fmt.Errorf("etcd: restore %s: %w", snapshotPath, err)
	}

	if _, err := os.Stat(cfg.DataDir); err == nil {
		// Holding the lock while moving the dir keeps a running etcd's
		// data from being pulled from under it.
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return "", err
		}
		movedTo = filepath.Join(parent, "etcd-old-"+strconv.FormatInt(time.Now().Unix(), 10))
		err = os.Rename(cfg.DataDir, movedTo)
		unlock()
		if err != nil {
			return "", fmt.Errorf("etcd: restore: move the old data dir aside: %w", err)
		}
		lg.Info("moved the old data dir aside", "path", movedTo)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("etcd: restore: %w", err)
	}
	if err := os.Rename(out, cfg.DataDir); err != nil {
		return movedTo, fmt.Errorf("etcd: restore: put the restored data in place: %w", err)
	}
	lg.Info("restored snapshot", "snapshot", snapshotPath, "data-dir", cfg.DataDir)
	return movedTo, nil
}
