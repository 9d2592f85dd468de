package logs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// rec formats one CRI record logged i seconds after base.
func rec(i int, stream, tag, content string) string {
	return fmt.Sprintf("%s %s %s %s\n", base.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), stream, tag, content)
}

func writeFile(t *testing.T, path string, records ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(records, "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string, opts Options) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Read(context.Background(), path, opts, &buf, nil); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return buf.String()
}

func ptr(n int64) *int64 { return &n }

func TestReadFormats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path,
		rec(0, "stdout", "F", "hello"),
		rec(1, "stderr", "F", "oops"),
		rec(2, "stdout", "P", "a long "),
		rec(3, "stdout", "P", "line in "),
		rec(4, "stdout", "F", "three parts"),
		rec(5, "stdout", "F", ""),
		"garbage that is not a record\n",
		rec(6, "stdout", "F", "with  two  spaces"),
	)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"all", Options{}, "hello\noops\na long line in three parts\n\nwith  two  spaces\n"},
		{"stdout", Options{Stream: Stdout}, "hello\na long line in three parts\n\nwith  two  spaces\n"},
		{"stderr", Options{Stream: Stderr}, "oops\n"},
		{"timestamps", Options{Timestamps: true, Stream: Stderr}, "2026-01-02T03:04:06Z oops\n"},
		{"partial keeps first time", Options{Timestamps: true, Since: base.Add(2 * time.Second), TailLines: ptr(3)},
			"2026-01-02T03:04:07Z a long line in three parts\n2026-01-02T03:04:10Z \n2026-01-02T03:04:11Z with  two  spaces\n"},
		{"since", Options{Since: base.Add(5 * time.Second)}, "\nwith  two  spaces\n"},
		{"tail 2", Options{TailLines: ptr(2)}, "\nwith  two  spaces\n"},
		{"tail joins partials", Options{TailLines: ptr(3)}, "a long line in three parts\n\nwith  two  spaces\n"},
		{"tail stream", Options{TailLines: ptr(1), Stream: Stderr}, "oops\n"},
		{"tail 0", Options{TailLines: ptr(0)}, ""},
		{"tail more than all", Options{TailLines: ptr(100)}, "hello\noops\na long line in three parts\n\nwith  two  spaces\n"},
		{"limit bytes", Options{LimitBytes: ptr(8)}, "hello\noo"},
		{"limit with timestamps", Options{LimitBytes: ptr(12), Timestamps: true}, "2026-01-02T0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := read(t, path, tt.opts); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadMissingFile(t *testing.T) {
	err := Read(context.Background(), filepath.Join(t.TempDir(), "0.log"), Options{}, &bytes.Buffer{}, nil)
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("want not-exist error, got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestReadRotated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "2.log")
	writeFile(t, path+".2", rec(0, "stdout", "F", "one"), rec(1, "stdout", "P", "two "))
	writeFile(t, path+".1", rec(2, "stdout", "F", "continued"), rec(3, "stdout", "F", "three"))
	writeFile(t, path, rec(4, "stdout", "F", "four"))
	// Not siblings of path: must be ignored.
	writeFile(t, path+".bak", rec(5, "stdout", "F", "nope"))
	writeFile(t, filepath.Join(dir, "1.log"), rec(5, "stdout", "F", "older instance"))

	if got, want := read(t, path, Options{}), "one\ntwo continued\nthree\nfour\n"; got != want {
		t.Errorf("full: got %q, want %q", got, want)
	}
	for n, want := range map[int64]string{
		1: "four\n",
		2: "three\nfour\n",
		3: "two continued\nthree\nfour\n",
		4: "one\ntwo continued\nthree\nfour\n",
		9: "one\ntwo continued\nthree\nfour\n",
	} {
		if got := read(t, path, Options{TailLines: ptr(n)}); got != want {
			t.Errorf("tail %d: got %q, want %q", n, got, want)
		}
	}
}

func TestTailLargeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Lines longer than the scan chunk exercise records spanning chunks.
	long := strings.Repeat("x", tailChunk+100)
	for i := range 5000 {
		content := fmt.Sprintf("line %d", i)
		if i%1000 == 999 {
			content += " " + long
		}
		fmt.Fprint(f, rec(i, "stdout", "F", content))
	}
	f.Close()
	got := read(t, path, Options{TailLines: ptr(3)})
	want := "line 4997\nline 4998\nline 4999 " + long + "\n"
	if got != want {
		t.Errorf("tail 3 of large file: got %d bytes starting %q", len(got), got[:min(len(got), 40)])
	}
	got = read(t, path, Options{TailLines: ptr(1001)})
	if lines := strings.Count(got, "\n"); lines != 1001 || !strings.HasPrefix(got, "line 3999 x") {
		t.Errorf("tail 1001: got %d lines starting %q", lines, got[:min(len(got), 40)])
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appendFile(t *testing.T, path string, records ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(records, "")); err != nil {
		t.Fatal(err)
	}
}

func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "first"))

	var exited atomic.Bool
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), path, Options{Follow: true, TailLines: ptr(1)}, out, exited.Load)
	}()
	waitFor(t, "first line", func() bool { return out.String() == "first\n" })

	// A record written in two pieces must come out once, whole.
	line := rec(1, "stdout", "F", "second")
	appendFile(t, path, line[:10])
	time.Sleep(2 * pollInterval)
	appendFile(t, path, line[10:], rec(2, "stdout", "P", "par"))
	waitFor(t, "second line", func() bool { return out.String() == "first\nsecond\n" })
	appendFile(t, path, rec(3, "stdout", "F", "tial"))
	waitFor(t, "joined line", func() bool { return out.String() == "first\nsecond\npartial\n" })

	// Rotation: the runtime renames the file and starts a new one.
	appendFile(t, path, rec(4, "stdout", "F", "before rotation"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, rec(5, "stdout", "F", "after rotation"))
	waitFor(t, "rotated lines", func() bool {
		return out.String() == "first\nsecond\npartial\nbefore rotation\nafter rotation\n"
	})

	// The container exits after a last line: Read drains it and returns.
	appendFile(t, path, rec(6, "stderr", "F", "bye"))
	exited.Store(true)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Read did not return after the container exited")
	}
	if got, want := out.String(), "first\nsecond\npartial\nbefore rotation\nafter rotation\nbye\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFollowStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeFile(t, path, rec(0, "stdout", "F", "first"))
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Read(ctx, path, Options{Follow: true}, out, func() bool { return false }) }()
	waitFor(t, "first line", func() bool { return out.String() == "first\n" })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}

func TestParseRecord(t *testing.T) {
	for _, line := range []string{
		"",
		"2026-01-02T03:04:05Z",
		"2026-01-02T03:04:05Z stdout",
		"notatime stdout F x",
		"2026-01-02T03:04:05Z stdin F x",
		"2026-01-02T03:04:05Z stdout X x",
	} {
		if _, err := parseRecord([]byte(line)); err == nil {
			t.Errorf("parseRecord(%q) succeeded, want error", line)
		}
	}
	r, err := parseRecord([]byte("2026-01-02T03:04:05.123456789Z stderr P:x  two\n"))
	if err != nil || r.stream != Stderr || !r.partial || string(r.content) != " two" {
		t.Errorf("got %+v, %v", r, err)
	}
}
