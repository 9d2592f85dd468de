package etcd

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func put(t *testing.T, e *Etcd, k, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client().Put(ctx, k, v); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func get(t *testing.T, e *Etcd, k string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.Client().Get(ctx, k)
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false
	}
	return string(resp.Kvs[0].Value), true
}

func save(t *testing.T, e *Etcd, dir, name string) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := SaveSnapshot(ctx, e.Client(), dir, name)
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	return s
}

func listed(t *testing.T, dir string) map[string]Snapshot {
	t.Helper()
	list, err := ListSnapshots(dir)
	if err != nil {
		t.Fatalf("ListSnapshots: %v", err)
	}
	m := map[string]Snapshot{}
	for _, s := range list {
		m[s.Name] = s
	}
	return m
}

func TestSnapshotSaveListCorruptDelete(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	e := mustStart(t, cfg)
	put(t, e, "/registry/a", "1")
	dir := filepath.Join(t.TempDir(), "snapshots")

	s := save(t, e, dir, "one")
	if s.Path != filepath.Join(dir, "one") || s.Size == 0 || s.Checksum != ChecksumOK {
		t.Fatalf("saved %+v", s)
	}
	if fi, err := os.Stat(s.Path); err != nil || fi.Size() != s.Size {
		t.Fatalf("snapshot file: %v, %v", fi, err)
	}
	sum, err := os.ReadFile(s.Path + ".sha256")
	if err != nil || len(strings.Fields(string(sum))[0]) != 64 {
		t.Fatalf("checksum file %q: %v", sum, err)
	}
	if _, err := SaveSnapshot(context.Background(), e.Client(), dir, "one"); err == nil {
		t.Fatal("saving over an existing snapshot succeeded")
	}
	if _, err := SaveSnapshot(context.Background(), e.Client(), dir, "../escape"); err == nil {
		t.Fatal("a name with a slash was accepted")
	}
	save(t, e, dir, "two")
	if err := os.Remove(filepath.Join(dir, "two.sha256")); err != nil {
		t.Fatal(err)
	}

	got := listed(t, dir)
	if len(got) != 2 || got["one"].Checksum != ChecksumOK || got["two"].Checksum != ChecksumMissing {
		t.Fatalf("listed %+v", got)
	}

	// Flip one byte in the middle: the checksum no longer matches.
	data, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(s.Path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, dir)["one"].Checksum; got != ChecksumBad {
		t.Fatalf("corrupted snapshot listed as %q, want bad", got)
	}
	if err := VerifySnapshot(s.Path); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("VerifySnapshot of a corrupt file: %v", err)
	}

	// Restore refuses it and leaves the current data alone.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(context.Background(), cfg, s.Path)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Restore of a corrupt snapshot: %v", err)
	}
	e = mustStart(t, cfg)
	if v, ok := get(t, e, "/registry/a"); !ok || v != "1" {
		t.Fatalf("after a refused restore /registry/a = %q, %v", v, ok)
	}

	for _, n := range []string{"one", "two"} {
		if err := DeleteSnapshot(dir, n); err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
	}
	if got := listed(t, dir); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	if rest, _ := os.ReadDir(dir); len(rest) != 0 {
		t.Fatalf("files left after delete: %v", rest)
	}
	if err := DeleteSnapshot(dir, "one"); err == nil {
		t.Fatal("deleting a missing snapshot succeeded")
	}
}

func TestRestoreIntoSameDataDir(t *testing.T) {
	base := t.TempDir()
	cfg := testConfig(t, filepath.Join(base, "etcd"))
	e := mustStart(t, cfg)
	put(t, e, "/registry/keep", "before")
	put(t, e, "/registry/gone-later", "x")
	s := save(t, e, filepath.Join(base, "snapshots"), "snap")
	put(t, e, "/registry/keep", "after")
	put(t, e, "/registry/new", "y")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client().Delete(ctx, "/registry/gone-later"); err != nil {
		t.Fatal(err)
	}

	// A running member's data dir cannot be swapped out.
	if _, err := Restore(ctx, cfg, s.Path); err == nil {
		t.Fatal("Restore succeeded while etcd was running on the data dir")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	old, err := Restore(ctx, cfg, s.Path)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if filepath.Dir(old) != base || !strings.HasPrefix(filepath.Base(old), "etcd-old-") {
		t.Fatalf("old data moved to %q", old)
	}
	if _, err := os.Stat(filepath.Join(old, "member", "wal")); err != nil {
		t.Fatalf("old data not kept: %v", err)
	}

	e = mustStart(t, cfg)
	if v, _ := get(t, e, "/registry/keep"); v != "before" {
		t.Errorf("/registry/keep = %q, want before", v)
	}
	if _, ok := get(t, e, "/registry/gone-later"); !ok {
		t.Error("/registry/gone-later was not restored")
	}
	if _, ok := get(t, e, "/registry/new"); ok {
		t.Error("/registry/new, written after the snapshot, survived the restore")
	}
	resp, err := e.Client().MemberList(ctx)
	if err != nil || len(resp.Members) != 1 {
		t.Fatalf("members after restore: %v, %v", resp, err)
	}
	// The revision jumps so that old resourceVersions are never reused.
	r, err := e.Client().Get(ctx, "/registry/keep")
	if err != nil || r.Header.Revision < restoreRevisionBump {
		t.Fatalf("revision after restore: %v, %v", r, err)
	}
	put(t, e, "/registry/writable", "yes")
}

func TestPruneSnapshots(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		"etcd-snapshot-node-a-100", "etcd-snapshot-node-a-100.sha256",
		"etcd-snapshot-node-a-300", "etcd-snapshot-node-a-300.sha256",
		"etcd-snapshot-node-a-200", "etcd-snapshot-node-a-200.sha256",
		"etcd-snapshot-node-a-400",
		"etcd-snapshot-node-a-b-50", // node "node-a-b", not ours
		"etcd-snapshot-node-b-10",   // another node
		"on-demand-node-a-1",        // taken by hand
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	deleted, err := PruneSnapshots(dir, "node-a", 2)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"etcd-snapshot-node-a-100", "etcd-snapshot-node-a-200"}) {
		t.Fatalf("deleted %v", deleted)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{"etcd-snapshot-node-a-300", "etcd-snapshot-node-a-300.sha256", "etcd-snapshot-node-a-400",
		"etcd-snapshot-node-a-b-50", "etcd-snapshot-node-b-10", "on-demand-node-a-1"}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

// everySecond fires a little over a second apart, so that snapshot names,
// which carry unix seconds, never collide.
type everySecond struct{}

func (everySecond) Next(t time.Time) time.Time { return t.Add(1100 * time.Millisecond) }

func TestSnapshotterTakesAndPrunes(t *testing.T) {
	e := mustStart(t, testConfig(t, t.TempDir()))
	put(t, e, "/registry/a", "1")
	dir := t.TempDir()
	manual := save(t, e, dir, "on-demand-n1-1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunSnapshotter(ctx, e.Client(), SnapshotterConfig{
			Dir: dir, Node: "n1", Schedule: everySecond{}, Retention: 2, Logger: e.lg,
		})
	}()

	scheduled := func() []string {
		var names []string
		for name, s := range listed(t, dir) {
			if strings.HasPrefix(name, "etcd-snapshot-n1-") {
				names = append(names, name)
				if s.Checksum != ChecksumOK {
					t.Errorf("scheduled snapshot %s: checksum %s", name, s.Checksum)
				}
			}
		}
		slices.Sort(names) // same-length unix times sort by time
		return names
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("after 90s only %d scheduled snapshots were taken: %v", len(seen), seen)
		}
		for _, n := range scheduled() {
			seen[n] = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunSnapshotter: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunSnapshotter did not stop within 30s")
	}

	// Stopped: whatever it took last was pruned down to the newest two.
	kept := scheduled()
	for _, n := range kept {
		seen[n] = true
	}
	all := slices.Sorted(maps.Keys(seen))
	if !slices.Equal(kept, all[len(all)-2:]) {
		t.Fatalf("kept %v, want the newest two of %v", kept, all)
	}
	if _, ok := listed(t, dir)[manual.Name]; !ok {
		t.Fatal("the on-demand snapshot was pruned")
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule("0 */12 * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 1, 0, 0, 0, time.Local)
	if got, want := s.Next(from), time.Date(2026, 1, 1, 12, 0, 0, 0, time.Local); !got.Equal(want) {
		t.Fatalf("next = %v, want %v", got, want)
	}
	if _, err := ParseSchedule("every day"); err == nil {
		t.Fatal("a bad cron expression was accepted")
	}
}
