package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

const (
	// streamCreationTimeout bounds how long a SPDY client may take to open
	// the streams it asked for.
	streamCreationTimeout = 30 * time.Second
	// idleTimeout closes SPDY sessions nobody uses any more.
	idleTimeout = 4 * time.Hour
	// writeTimeout bounds one websocket write, so a stuck client cannot
	// hold a session (and the container's output pipe) forever.
	writeTimeout = 60 * time.Second
)

// streamOptions is the parsed query of an exec or attach request.
type streamOptions struct {
	stdin, stdout, stderr, tty bool
	command                    []string
}

func parseStreamOptions(r *http.Request, needCommand bool) (streamOptions, error) {
	q := r.URL.Query()
	flag := func(name string) bool {
		v := q.Get(name)
		b, err := strconv.ParseBool(v)
		return err == nil && b
	}
	o := streamOptions{
		stdin:   flag("stdin"),
		stdout:  flag("stdout"),
		stderr:  flag("stderr"),
		tty:     flag("tty"),
		command: q["command"],
	}
	if needCommand && len(o.command) == 0 {
		return o, errors.New("command is required")
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, errors.New("you must specify at least one of stdin, stdout, stderr")
	}
	// A terminal merges stderr into stdout; clients do not open stderr then.
	if o.tty {
		o.stderr = false
	}
	return o, nil
}

// runFunc runs the command or attaches; a non-zero exit code is reported
// either as code or as an error with an ExitStatus method.
type runFunc func(ctx context.Context, streams Streams) (code int, err error)

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseStreamOptions(r, true)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	s.serveStreams(w, r, opts, func(ctx context.Context, st Streams) (int, error) {
		return s.cfg.Provider.Exec(ctx, ns, pod, container, opts.command, st)
	})
}

func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseStreamOptions(r, false)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	s.serveStreams(w, r, opts, func(ctx context.Context, st Streams) (int, error) {
		return 0, s.cfg.Provider.Attach(ctx, ns, pod, container, st)
	})
}

// serveStreams upgrades to a websocket (preferred by client-go ≥1.30) or
// SPDY session and runs run over it.
func (s *Server) serveStreams(w http.ResponseWriter, r *http.Request, opts streamOptions, run runFunc) {
	switch {
	case wsstream.IsWebSocketRequest(r):
		s.serveWebSocketStreams(w, r, opts, run)
	case httpstream.IsUpgradeRequest(r):
		s.serveSPDYStreams(w, r, opts, run)
	default:
		writeStatus(w, apierrors.NewBadRequest("exec and attach need a websocket or SPDY/3.1 upgrade request"))
	}
}

// exitStatus builds the v4/v5 error-channel message for run's outcome.
func exitStatus(code int, err error) metav1.Status {
	var exitErr interface{ ExitStatus() int }
	if err != nil && errors.As(err, &exitErr) {
		code, err = exitErr.ExitStatus(), nil
	}
	switch {
	case err != nil:
		st := apierrors.NewInternalError(err).ErrStatus
		st.Message = err.Error()
		return st
	case code != 0:
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusInternalServerError,
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type:    remotecommand.ExitCodeCauseType,
				Message: strconv.Itoa(code),
			}}},
		}
	default:
		return metav1.Status{Status: metav1.StatusSuccess}
	}
}

func encodeStatus(st metav1.Status) []byte {
	st.Kind, st.APIVersion = "Status", "v1"
	b, _ := json.Marshal(&st)
	return b
}

// ---- websocket (v5.channel.k8s.io, v4.channel.k8s.io) ----

// Channel numbers of the channel.k8s.io websocket protocols.
const (
	chanStdin  = remotecommand.StreamStdIn
	chanStdout = remotecommand.StreamStdOut
	chanStderr = remotecommand.StreamStdErr
	chanError  = remotecommand.StreamErr
	chanResize = remotecommand.StreamResize
	chanClose  = remotecommand.StreamClose
)

var execUpgrader = websocket.Upgrader{
	Subprotocols: []string{remotecommand.StreamProtocolV5Name, remotecommand.StreamProtocolV4Name},
	// The clients are the API server and tools holding an allowed client
	// certificate, not browsers: there is no origin to check.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsChannels multiplexes the remotecommand channels over one websocket:
// each binary message starts with its channel number.
type wsChannels struct {
	ws  *websocket.Conn
	v5  bool
	wmu sync.Mutex

	stdinR *io.PipeReader
	stdinW *io.PipeWriter
	resize chan TermSize
	done   chan struct{} // closed when the client is gone
}

func (s *Server) serveWebSocketStreams(w http.ResponseWriter, r *http.Request, opts streamOptions, run runFunc) {
	if !slices.ContainsFunc(execUpgrader.Subprotocols, func(p string) bool { return isWebSocketProtocol(r, p) }) {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("unsupported websocket subprotocols %v, want one of %v",
			websocket.Subprotocols(r), execUpgrader.Subprotocols)))
		return
	}
	ws, err := execUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already answered the client
	}
	untrack := s.track(ws.NetConn())
	defer untrack()
	defer ws.Close()

	c := &wsChannels{
		ws:     ws,
		v5:     ws.Subprotocol() == remotecommand.StreamProtocolV5Name,
		resize: make(chan TermSize, 4),
		done:   make(chan struct{}),
	}
	c.stdinR, c.stdinW = io.Pipe()
	go c.readLoop()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	st := Streams{Tty: opts.tty}
	if opts.stdin {
		st.Stdin = c.stdinR
	}
	if opts.stdout {
		st.Stdout = channelWriter{c, chanStdout}
	}
	if opts.stderr {
		st.Stderr = channelWriter{c, chanStderr}
	}
	if opts.tty {
		st.Resize = c.resize
	}
	code, runErr := run(ctx, st)
	c.stdinR.Close() // unblocks the read loop if it is feeding stdin
	if _, err := c.write(chanError, encodeStatus(exitStatus(code, runErr))); err != nil {
		s.log.Debug("writing exec status failed", "err", err)
	}
	c.wmu.Lock()
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	c.wmu.Unlock()
}

func (c *wsChannels) write(ch byte, p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return 0, err
	}
	mw, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return 0, err
	}
	if _, err := mw.Write([]byte{ch}); err != nil {
		mw.Close()
		return 0, err
	}
	n, err := mw.Write(p)
	if cerr := mw.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// readLoop dispatches client messages until the connection ends. Reading
// also answers the client's pings.
func (c *wsChannels) readLoop() {
	defer close(c.done)
	defer close(c.resize)
	defer c.stdinW.Close()
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.BinaryMessage || len(data) == 0 {
			continue
		}
		switch data[0] {
		case chanStdin:
			// An error means nobody reads stdin any more; drop the data.
			c.stdinW.Write(data[1:])
		case chanResize:
			var size TermSize
			if json.Unmarshal(data[1:], &size) != nil {
				continue
			}
			c.sendResize(size)
		case chanClose:
			if c.v5 && len(data) == 2 && data[1] == chanStdin {
				c.stdinW.Close()
			}
		}
	}
}

// sendResize never blocks the read loop: when the consumer lags, the
// oldest pending size is dropped, since only the latest one matters.
func (c *wsChannels) sendResize(size TermSize) {
	for {
		select {
		case c.resize <- size:
			return
		default:
		}
		select {
		case <-c.resize:
		default:
		}
	}
}

type channelWriter struct {
	c  *wsChannels
	ch byte
}

func (w channelWriter) Write(p []byte) (int, error) { return w.c.write(w.ch, p) }

// ---- SPDY (v4.channel.k8s.io over SPDY/3.1) ----

type spdyStream struct {
	stream    httpstream.Stream
	replySent <-chan struct{}
}

func (s *Server) serveSPDYStreams(w http.ResponseWriter, r *http.Request, opts streamOptions, run runFunc) {
	if _, err := httpstream.Handshake(r, w, []string{remotecommand.StreamProtocolV4Name}); err != nil {
		return // Handshake already answered the client
	}
	streamCh := make(chan spdyStream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(st httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case streamCh <- spdyStream{st, replySent}:
			return nil
		default:
			return errors.New("too many streams")
		}
	})
	if conn == nil {
		return // UpgradeResponse already answered the client
	}
	untrack := s.track(conn)
	defer untrack()
	defer conn.Close()
	conn.SetIdleTimeout(idleTimeout)

	want := map[string]bool{corev1.StreamTypeError: true}
	if opts.stdin {
		want[corev1.StreamTypeStdin] = true
	}
	if opts.stdout {
		want[corev1.StreamTypeStdout] = true
	}
	if opts.stderr {
		want[corev1.StreamTypeStderr] = true
	}
	if opts.tty {
		want[corev1.StreamTypeResize] = true
	}
	got := map[string]httpstream.Stream{}
	var replies []<-chan struct{}
	timer := time.NewTimer(streamCreationTimeout)
	defer timer.Stop()
	for len(got) < len(want) {
		select {
		case st := <-streamCh:
			typ := st.stream.Headers().Get(corev1.StreamType)
			if !want[typ] || got[typ] != nil {
				st.stream.Reset()
				continue
			}
			got[typ] = st.stream
			replies = append(replies, st.replySent)
		case <-timer.C:
			s.log.Warn("exec client did not open its streams in time", "path", r.URL.Path)
			return
		case <-conn.CloseChan():
			return
		case <-r.Context().Done():
			return
		}
	}
	for _, ch := range replies {
		<-ch
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-conn.CloseChan():
			cancel()
		case <-ctx.Done():
		}
	}()

	st := Streams{Tty: opts.tty}
	if s := got[corev1.StreamTypeStdin]; s != nil {
		st.Stdin = s
	}
	if s := got[corev1.StreamTypeStdout]; s != nil {
		st.Stdout = s
	}
	if s := got[corev1.StreamTypeStderr]; s != nil {
		st.Stderr = s
	}
	if rs := got[corev1.StreamTypeResize]; rs != nil {
		ch := make(chan TermSize, 4)
		st.Resize = ch
		go func() {
			defer close(ch)
			dec := json.NewDecoder(rs)
			for {
				var size TermSize
				if err := dec.Decode(&size); err != nil {
					return
				}
				select {
				case ch <- size:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	code, runErr := run(ctx, st)
	errStream := got[corev1.StreamTypeError]
	errStream.Write(encodeStatus(exitStatus(code, runErr)))
	// Half-close what we wrote so the client sees EOF after the data;
	// conn.Close (deferred) then tears the session down.
	for _, typ := range []string{corev1.StreamTypeError, corev1.StreamTypeStdout, corev1.StreamTypeStderr} {
		if s := got[typ]; s != nil {
			s.Close()
		}
	}
	if rs := got[corev1.StreamTypeResize]; rs != nil {
		rs.Reset() // ends the resize decoder
	}
}

// isWebSocketProtocol reports whether the request asks for protocol.
func isWebSocketProtocol(r *http.Request, protocol string) bool {
	for _, p := range websocket.Subprotocols(r) {
		if strings.TrimSpace(p) == protocol {
			return true
		}
	}
	return false
}
