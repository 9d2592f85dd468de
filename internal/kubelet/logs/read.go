package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Options select and format what Read writes. They mirror the query
// parameters of the pods/log subresource.
type Options struct {
	// Follow keeps reading data appended to the log (across rotation).
	Follow bool
	// Timestamps prefixes every line with its RFC3339Nano time and a space.
	Timestamps bool
	// TailLines, when set and non-negative, starts output that many lines
	// before the end of the log.
	TailLines *int64
	// LimitBytes, when set, stops output after that many bytes.
	LimitBytes *int64
	// Since, when non-zero, skips lines logged before it.
	Since time.Time
	// Stream selects one stream: "" (both), "stdout" or "stderr".
	Stream string
}

// pollInterval is how often a follower looks for appended data or rotation.
// Polling (rather than inotify) keeps the reader simple and works on every
// filesystem; the delay it adds is invisible to someone watching logs.
const pollInterval = 250 * time.Millisecond

// Read writes the log of one container instance to w as kubectl shows it:
// the content of each line, or "<time> <content>" with Timestamps, with
// partial records joined into whole lines. path is the instance's current
// .log file; its rotated siblings (path.N .. path.1) are read first, oldest
// first.
//
// With Follow, Read keeps reading appended data, also after path is rotated,
// until ctx ends or stop (which may be nil) reports that the container has
// exited and everything it wrote has been read. Without Follow, stop is not
// used. Reaching LimitBytes ends Read without error.
func Read(ctx context.Context, path string, opts Options, w io.Writer, stop func() bool) error {
	switch opts.Stream {
	case "", Stdout, Stderr:
	default:
		return fmt.Errorf("read log %s: unknown stream %q", path, opts.Stream)
	}
	files, err := openLogFiles(path)
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()

	start := position{}
	if opts.TailLines != nil && *opts.TailLines >= 0 {
		start, err = tailStart(files, *opts.TailLines, opts.Stream)
		if err != nil {
			return fmt.Errorf("read log %s: tail: %w", path, err)
		}
	}

	out := newRenderer(w, opts)
	err = readAll(ctx, path, files, start, opts.Follow, stop, out)
	if errors.Is(err, errLimitReached) {
		err = nil
	}
	if ferr := out.flush(); err == nil && ferr != nil && !errors.Is(ferr, errLimitReached) {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("read log %s: %w", path, err)
	}
	return nil
}

// openLogFiles opens the rotated files (oldest first) and then path itself,
// which is last. Opening everything up front pins the inodes so a rotation
// during the read does not make us skip or repeat a file.
func openLogFiles(path string) ([]*os.File, error) {
	cur, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	var files []*os.File
	for _, name := range rotatedFiles(path) {
		f, err := os.Open(name)
		if err != nil {
			// Deleted by rotation since we listed it: it is older than
			// anything we still have, so just leave it out.
			continue
		}
		files = append(files, f)
	}
	return append(files, cur), nil
}

// rotatedFiles lists path.N .. path.1, oldest (highest N) first.
func rotatedFiles(path string) []string {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	type numbered struct {
		n    int
		name string
	}
	var found []numbered
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(suffix)
		if err != nil || n <= 0 {
			continue
		}
		found = append(found, numbered{n, filepath.Join(dir, e.Name())})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n > found[j].n })
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.name
	}
	return names
}

// readAll reads files from start; the last file is the live one and is
// followed when follow is set.
func readAll(ctx context.Context, path string, files []*os.File, start position, follow bool, stop func() bool, out *renderer) error {
	for i := start.file; i < len(files)-1; i++ {
		off := int64(0)
		if i == start.file {
			off = start.off
		}
		fr, err := newFileReader(files[i], off)
		if err != nil {
			return err
		}
		if err := fr.drain(out); err != nil {
			return err
		}
	}

	curIdx := len(files) - 1
	off := int64(0)
	if start.file == curIdx {
		off = start.off
	}
	cur := files[curIdx]
	fr, err := newFileReader(cur, off)
	if err != nil {
		return err
	}
	if !follow {
		if err := fr.drain(out); err != nil {
			return err
		}
		return out.finish()
	}

	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if err := fr.readLines(out); err != nil {
			return err
		}
		if err := out.flush(); err != nil {
			return err
		}
		// Ask before checking for more data: if the container had already
		// exited, one more read after this answer sees everything it wrote.
		exited := stop != nil && stop()

		if st, err := os.Stat(path); err == nil {
			if cst, err := cur.Stat(); err == nil && !os.SameFile(st, cst) {
				// Rotated: finish the old file, then continue with the new.
				if err := fr.drain(out); err != nil {
					return err
				}
				next, err := os.Open(path)
				if err != nil {
					if errors.Is(err, os.ErrNotExist) {
						goto wait // renamed, new file not created yet
					}
					return fmt.Errorf("open rotated log: %w", err)
				}
				cur.Close()
				cur = next
				files[curIdx] = next // closed by Read
				if fr, err = newFileReader(cur, 0); err != nil {
					return err
				}
				continue
			}
		}
		if exited {
			if err := fr.drain(out); err != nil {
				return err
			}
			return out.finish()
		}
	wait:
		select {
		case <-ctx.Done():
			return out.finish()
		case <-ticker.C:
		}
	}
}

// fileReader yields whole lines of one file; an incomplete last line is
// kept until the rest of it is appended (or the file is drained).
type fileReader struct {
	br    *bufio.Reader
	carry []byte
}

func newFileReader(f *os.File, off int64) (*fileReader, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seek %s: %w", f.Name(), err)
	}
	return &fileReader{br: bufio.NewReaderSize(f, 64<<10)}, nil
}

// readLines renders every complete line available now.
func (fr *fileReader) readLines(out *renderer) error {
	for {
		line, err := fr.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			fr.carry = append(fr.carry, line...)
			continue
		}
		if err == io.EOF {
			fr.carry = append(fr.carry, line...)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if len(fr.carry) > 0 {
			fr.carry = append(fr.carry, line...)
			line = fr.carry
		}
		err = out.line(line)
		fr.carry = fr.carry[:0]
		if err != nil {
			return err
		}
	}
}

// drain renders the rest of the file, including a last line that lacks
// its newline: nothing more will be appended to it.
func (fr *fileReader) drain(out *renderer) error {
	if err := fr.readLines(out); err != nil {
		return err
	}
	if len(fr.carry) == 0 {
		return nil
	}
	err := out.line(fr.carry)
	fr.carry = fr.carry[:0]
	return err
}

var errLimitReached = errors.New("limit reached")

// maxPending bounds how much of an unfinished line is buffered before it is
// written out anyway, so a container that never ends its line cannot make
// the reader hold unbounded memory.
const maxPending = 1 << 20

type pendingLine struct {
	time    time.Time
	buf     []byte
	started bool // the line's beginning (and timestamp) was already written
}

// renderer turns records into kubectl's output.
type renderer struct {
	bw        *bufio.Writer
	flusher   http.Flusher
	opts      Options
	remaining int64 // bytes left under LimitBytes; <0 means no limit
	pending   map[string]*pendingLine
}

func newRenderer(w io.Writer, opts Options) *renderer {
	r := &renderer{
		bw:        bufio.NewWriterSize(w, 32<<10),
		opts:      opts,
		remaining: -1,
		pending:   map[string]*pendingLine{},
	}
	r.flusher, _ = w.(http.Flusher)
	if opts.LimitBytes != nil && *opts.LimitBytes >= 0 {
		r.remaining = *opts.LimitBytes
	}
	return r
}

func (r *renderer) line(b []byte) error {
	rec, err := parseRecord(b)
	if err != nil {
		// A torn or foreign line is skipped, as kubelet does: one bad record
		// must not hide the rest of the log.
		return nil
	}
	if r.opts.Stream != "" && rec.stream != r.opts.Stream {
		return nil
	}
	if !r.opts.Since.IsZero() && rec.time.Before(r.opts.Since) {
		return nil
	}
	p := r.pending[rec.stream]
	if p == nil {
		p = &pendingLine{}
		r.pending[rec.stream] = p
	}
	if len(p.buf) == 0 && !p.started {
		p.time = rec.time
	}
	p.buf = append(p.buf, rec.content...)
	if rec.partial {
		if len(p.buf) < maxPending {
			return nil
		}
		err := r.emit(p, false)
		p.started = true
		return err
	}
	err = r.emit(p, true)
	p.started = false
	return err
}

func (r *renderer) emit(p *pendingLine, newline bool) error {
	if !p.started && r.opts.Timestamps {
		if err := r.write([]byte(p.time.Format(time.RFC3339Nano) + " ")); err != nil {
			return err
		}
	}
	if newline {
		p.buf = append(p.buf, '\n')
	}
	err := r.write(p.buf)
	p.buf = p.buf[:0]
	return err
}

func (r *renderer) write(b []byte) error {
	if r.remaining >= 0 {
		if r.remaining == 0 {
			return errLimitReached
		}
		if int64(len(b)) > r.remaining {
			b = b[:r.remaining]
		}
		r.remaining -= int64(len(b))
	}
	if _, err := r.bw.Write(b); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if r.remaining == 0 {
		return errLimitReached
	}
	return nil
}

// finish writes lines that never got their final record (the log ended
// mid-line) without inventing a newline.
func (r *renderer) finish() error {
	for _, s := range []string{Stdout, Stderr} {
		if p := r.pending[s]; p != nil && len(p.buf) > 0 {
			if err := r.emit(p, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush pushes buffered output to the client; it runs before every wait, so
// a follower never sits on data it has already read.
func (r *renderer) flush() error {
	if err := r.bw.Flush(); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if r.flusher != nil {
		r.flusher.Flush()
	}
	return nil
}
