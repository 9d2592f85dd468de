package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	pfconst "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// pairTimeout bounds how long the data stream of a forwarded connection
// may lag behind its error stream (or the reverse).
const pairTimeout = 30 * time.Second

var tunnelUpgrader = websocket.Upgrader{
	Subprotocols: []string{pfconst.WebsocketsSPDYTunnelingPortForwardV1},
	CheckOrigin:  func(*http.Request) bool { return true },
}

// handlePortForward serves the portforward.k8s.io protocol: a SPDY session
// on which the client opens an error and a data stream per forwarded
// connection. kubectl ≥1.31 tunnels that SPDY session through a websocket
// ("SPDY/3.1+portforward.k8s.io"); older clients upgrade to SPDY directly.
func (s *Server) handlePortForward(w http.ResponseWriter, r *http.Request) {
	ns, pod := r.PathValue("ns"), r.PathValue("pod")
	pf := &portForwarder{
		s:     s,
		ns:    ns,
		pod:   pod,
		ready: make(chan struct{}),
		pairs: map[string]*streamPair{},
	}
	var conn httpstream.Connection
	switch {
	case wsstream.IsWebSocketRequest(r):
		if !isWebSocketProtocol(r, pfconst.WebsocketsSPDYTunnelingPortForwardV1) {
			writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("unsupported websocket subprotocols %v, want %s",
				websocket.Subprotocols(r), pfconst.WebsocketsSPDYTunnelingPortForwardV1)))
			return
		}
		ws, err := tunnelUpgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade already answered the client
		}
		tunnel := portforward.NewTunnelingConnection("kubelet-portforward", ws)
		conn, err = spdy.NewServerConnection(tunnel, pf.newStream)
		if err != nil {
			s.log.Warn("port-forward: starting SPDY over websocket failed", "err", err)
			tunnel.Close()
			return
		}
	case httpstream.IsUpgradeRequest(r):
		if _, err := httpstream.Handshake(r, w, []string{pfconst.PortForwardV1Name}); err != nil {
			return // Handshake already answered the client
		}
		conn = spdy.NewResponseUpgrader().UpgradeResponse(w, r, pf.newStream)
		if conn == nil {
			return // UpgradeResponse already answered the client
		}
	default:
		writeStatus(w, apierrors.NewBadRequest("port-forward needs a websocket or SPDY/3.1 upgrade request"))
		return
	}
	untrack := s.track(conn)
	defer untrack()
	defer conn.Close()
	conn.SetIdleTimeout(idleTimeout)

	ctx, cancel := context.WithCancel(r.Context())
	pf.mu.Lock()
	pf.ctx, pf.conn = ctx, conn
	pf.mu.Unlock()
	close(pf.ready)

	select {
	case <-conn.CloseChan():
	case <-ctx.Done():
	}
	cancel()
	pf.wg.Wait()
}

type portForwarder struct {
	s       *Server
	ns, pod string

	ready chan struct{} // closed once ctx and conn are set

	mu    sync.Mutex
	ctx   context.Context
	conn  httpstream.Connection
	pairs map[string]*streamPair
	wg    sync.WaitGroup
}

type streamPair struct {
	id               string
	data, errs       httpstream.Stream
	dataRep, errsRep <-chan struct{}
	timer            *time.Timer
}

// newStream is called by the SPDY connection for each stream the client
// opens; it must not block, so complete pairs are served in goroutines.
func (pf *portForwarder) newStream(st httpstream.Stream, replySent <-chan struct{}) error {
	h := st.Headers()
	id := h.Get(corev1.PortForwardRequestIDHeader)
	if id == "" {
		return fmt.Errorf("port-forward stream without %s header", corev1.PortForwardRequestIDHeader)
	}
	typ := h.Get(corev1.StreamType)
	pf.mu.Lock()
	defer pf.mu.Unlock()
	p := pf.pairs[id]
	if p == nil {
		p = &streamPair{id: id}
		pf.pairs[id] = p
		p.timer = time.AfterFunc(pairTimeout, func() { pf.expire(p) })
	}
	switch {
	case typ == corev1.StreamTypeError && p.errs == nil:
		p.errs, p.errsRep = st, replySent
	case typ == corev1.StreamTypeData && p.data == nil:
		p.data, p.dataRep = st, replySent
	default:
		return fmt.Errorf("unexpected %q stream for port-forward request %s", typ, id)
	}
	if p.errs != nil && p.data != nil {
		p.timer.Stop()
		delete(pf.pairs, id)
		pf.wg.Add(1)
		go func() {
			defer pf.wg.Done()
			pf.serve(p)
		}()
	}
	return nil
}

// expire drops a request whose second stream never came.
func (pf *portForwarder) expire(p *streamPair) {
	pf.mu.Lock()
	if pf.pairs[p.id] != p {
		pf.mu.Unlock()
		return
	}
	delete(pf.pairs, p.id)
	pf.mu.Unlock()
	for _, st := range []httpstream.Stream{p.errs, p.data} {
		if st != nil {
			st.Reset()
		}
	}
}

// serve forwards one connection between the data stream and the pod.
func (pf *portForwarder) serve(p *streamPair) {
	<-pf.ready
	<-p.errsRep
	<-p.dataRep
	pf.mu.Lock()
	ctx, conn := pf.ctx, pf.conn
	pf.mu.Unlock()
	defer conn.RemoveStreams(p.errs, p.data)
	defer p.errs.Close()

	fail := func(err error) {
		pf.s.log.Info("port-forward failed", "pod", pf.ns+"/"+pf.pod, "request", p.id, "err", err)
		fmt.Fprintf(p.errs, "error forwarding port to pod %s/%s: %v", pf.ns, pf.pod, err)
		p.data.Close()
	}
	portStr := p.data.Headers().Get(corev1.PortHeader)
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		fail(fmt.Errorf("invalid port %q", portStr))
		return
	}
	target, err := pf.s.cfg.Provider.PortForward(ctx, pf.ns, pf.pod, int32(port))
	if err != nil {
		fail(fmt.Errorf("dial port %d: %w", port, err))
		return
	}
	defer target.Close()
	// Closing the target ends both copies when the session goes away.
	stop := context.AfterFunc(ctx, func() { target.Close() })
	defer stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(target, p.data)
		// The client is done sending: pass the half-close on, so the pod's
		// side sees EOF and can finish its answer.
		if cw, ok := target.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			target.Close()
		}
	}()
	io.Copy(p.data, target)
	p.data.Close()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
