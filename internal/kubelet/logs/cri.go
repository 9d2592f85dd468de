// Package logs reads container logs written in the CRI log format and renders
// them the way kubectl shows them.
//
// A CRI log file holds one record per line:
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <content>
//
// where P marks a partial record whose line continues in the next record of
// the same stream, and F a record that ends a line. Files are rotated by
// renaming path to path.1 (path.1 to path.2, ...), so path.N is the oldest.
package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Stream names as they appear in CRI log records.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// record is one parsed CRI log line.
type record struct {
	time    time.Time
	stream  string
	partial bool
	content []byte // without the trailing newline; aliases the input line
}

var errBadRecord = errors.New("malformed CRI log record")

// parseRecord parses one CRI log line (with or without its trailing newline).
func parseRecord(line []byte) (record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var r record
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return r, fmt.Errorf("%w: no stream field", errBadRecord)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return r, fmt.Errorf("%w: timestamp: %w", errBadRecord, err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return r, fmt.Errorf("%w: no tag field", errBadRecord)
	}
	switch string(stream) {
	case Stdout, Stderr:
	default:
		return r, fmt.Errorf("%w: unknown stream %q", errBadRecord, stream)
	}
	// The tag may carry more colon-separated flags in newer runtimes; only
	// the first (F or P) matters. Content may be absent for an empty line.
	tag, content, _ := bytes.Cut(rest, []byte{' '})
	flag, _, _ := bytes.Cut(tag, []byte{':'})
	switch string(flag) {
	case "F":
	case "P":
		r.partial = true
	default:
		return r, fmt.Errorf("%w: unknown tag %q", errBadRecord, tag)
	}
	r.time = t
	r.stream = string(stream)
	r.content = content
	return r, nil
}

// header is the part of a record that tail counting needs; it is parsed from
// the first bytes of a line only, so huge records are never read whole.
type header struct {
	stream  string
	partial bool
	ok      bool
}

// maxHeaderLen bounds the bytes needed to parse the time, stream and tag.
const maxHeaderLen = 64

func parseHeader(b []byte) header {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	_, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return header{}
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return header{}
	}
	if s := string(stream); len(rest) == 0 || (s != Stdout && s != Stderr) || (rest[0] != 'F' && rest[0] != 'P') {
		return header{}
	}
	return header{stream: string(stream), partial: rest[0] == 'P', ok: true}
}
