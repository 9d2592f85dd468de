package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 3
	// maxLogLine is where long lines are split into partial ("P") records,
	// as containerd does.
	maxLogLine = 16 << 10
)

// criLog writes CRI-format log records ("<RFC3339Nano> <stream> <F|P> <text>\n")
// from several streams into one file, rotating it at maxSize into
// path.1 .. path.N (newest = .1).
type criLog struct {
	mu       sync.Mutex
	path     string
	f        *os.File
	size     int64
	maxSize  int64
	maxFiles int
}

func openCRILog(path string, maxSize int64, maxFiles int) (*criLog, error) {
	if maxSize <= 0 {
		maxSize = defaultLogMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = defaultLogMaxFiles
	}
	l := &criLog{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if path == "" {
		return l, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *criLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

func (l *criLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	l.f = nil
	_ = os.Remove(l.path + "." + strconv.Itoa(l.maxFiles))
	for i := l.maxFiles - 1; i >= 1; i-- {
		_ = os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	return l.open()
}

func (l *criLog) write(stream string, partial bool, line []byte) error {
	if l.path == "" {
		return nil
	}
	tag := " F "
	if partial {
		tag = " P "
	}
	rec := make([]byte, 0, len(line)+64)
	rec = time.Now().AppendFormat(rec, time.RFC3339Nano)
	rec = append(rec, ' ')
	rec = append(rec, stream...)
	rec = append(rec, tag...)
	rec = append(rec, line...)
	rec = append(rec, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		// A failed rotation left no file open; try again.
		if err := l.open(); err != nil {
			return err
		}
	}
	if l.size > 0 && l.size+int64(len(rec)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return fmt.Errorf("rotate log %s: %w", l.path, err)
		}
	}
	n, err := l.f.Write(rec)
	l.size += int64(n)
	return err
}

// copyStream reads r until EOF and writes each line as a record. Write
// errors (disk full) are reported once but reading continues, so the
// container never blocks on a full pipe.
func (l *criLog) copyStream(stream string, r io.Reader, onErr func(error)) {
	br := bufio.NewReaderSize(r, maxLogLine)
	reported := false
	for {
		line, err := br.ReadSlice('\n')
		partial := false
		switch {
		case err == nil:
			line = line[:len(line)-1]
		case errors.Is(err, bufio.ErrBufferFull):
			partial = true
		}
		if len(line) > 0 || err == nil || partial {
			if werr := l.write(stream, partial, line); werr != nil && !reported {
				reported = true
				onErr(werr)
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (l *criLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
