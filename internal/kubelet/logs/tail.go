package logs

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// position is an offset in one of the opened log files.
type position struct {
	file int
	off  int64
}

// tailChunk is how much is read at a time while scanning backwards.
const tailChunk = 64 << 10

// tailStart finds where the last n lines (of stream, or of both when stream
// is "") begin. It scans backwards from the end of the newest file and only
// reads as much as those lines occupy, so tailing a huge log is cheap.
// A line is counted by its final (F) record, so partial records belong to
// the line they continue.
func tailStart(files []*os.File, n int64, stream string) (position, error) {
	last := len(files) - 1
	if n == 0 {
		st, err := files[last].Stat()
		if err != nil {
			return position{}, fmt.Errorf("stat %s: %w", files[last].Name(), err)
		}
		return position{file: last, off: st.Size()}, nil
	}
	var count int64
	for i := last; i >= 0; i-- {
		st, err := files[i].Stat()
		if err != nil {
			return position{}, fmt.Errorf("stat %s: %w", files[i].Name(), err)
		}
		s := &backScanner{f: files[i], end: st.Size()}
		for {
			end, hdr, ok, err := s.prev()
			if err != nil {
				return position{}, err
			}
			if !ok {
				break
			}
			if !hdr.ok || hdr.partial || (stream != "" && hdr.stream != stream) {
				continue
			}
			count++
			if count > n {
				// This line is one too many: output starts right after it.
				return position{file: i, off: end}, nil
			}
		}
	}
	return position{}, nil
}

// backScanner walks the records of a file from the last to the first.
type backScanner struct {
	f   *os.File
	end int64 // records before this offset are still to be visited

	buf       []byte // cached chunk of the file
	bufStart  int64
	headerBuf [maxHeaderLen]byte
}

// prev returns the end of the previous record (after its newline) and its
// parsed header; ok is false at the start of the file.
func (s *backScanner) prev() (end int64, hdr header, ok bool, err error) {
	if s.end <= 0 {
		return 0, header{}, false, nil
	}
	end = s.end
	// The record's own trailing newline (if any) is at end-1; its start is
	// after the newline before that.
	nl, err := s.lastNewline(end - 1)
	if err != nil {
		return 0, header{}, false, err
	}
	start := nl + 1
	s.end = start
	hdr, err = s.header(start, end)
	if err != nil {
		return 0, header{}, false, err
	}
	return end, hdr, true, nil
}

// lastNewline returns the offset of the last '\n' before limit, or -1.
func (s *backScanner) lastNewline(limit int64) (int64, error) {
	for limit > 0 {
		if s.buf == nil || limit <= s.bufStart || limit > s.bufStart+int64(len(s.buf)) {
			if err := s.load(limit); err != nil {
				return 0, err
			}
		}
		i := bytes.LastIndexByte(s.buf[:limit-s.bufStart], '\n')
		if i >= 0 {
			return s.bufStart + int64(i), nil
		}
		limit = s.bufStart
	}
	return -1, nil
}

// load caches the chunk that ends at limit.
func (s *backScanner) load(limit int64) error {
	start := max(limit-tailChunk, 0)
	if cap(s.buf) < tailChunk {
		s.buf = make([]byte, tailChunk)
	}
	s.buf = s.buf[:limit-start]
	if _, err := s.f.ReadAt(s.buf, start); err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", s.f.Name(), err)
	}
	s.bufStart = start
	return nil
}

func (s *backScanner) header(start, end int64) (header, error) {
	n := min(end-start, maxHeaderLen)
	if start >= s.bufStart && start+n <= s.bufStart+int64(len(s.buf)) {
		return parseHeader(s.buf[start-s.bufStart : start-s.bufStart+n]), nil
	}
	b := s.headerBuf[:n]
	if _, err := s.f.ReadAt(b, start); err != nil && err != io.EOF {
		return header{}, fmt.Errorf("read %s: %w", s.f.Name(), err)
	}
	return parseHeader(b), nil
}
