package apiserver

// A server whose etcd member is cut off from the majority cannot commit a
// write, and its linearizable reads wait for a leader too: without a guard
// every request would hang until the client gives up. The quorum guard
// answers such requests at once with a 503 that names the problem and asks
// the client to retry (client-go does, on Retry-After), and /readyz fails so
// that load balancers move to another server. Requests that reach the store
// anyway (quorum lost between the check and the call) are bounded by
// requestTimeout.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// requestTimeout bounds every short (not watch, not proxied) request, as
// kube-apiserver's default --request-timeout.
const requestTimeout = 30 * time.Second

// checkQuorum reports why this server's etcd member cannot serve now, or
// nil when it can (or when no Config.Quorum is set).
func (s *Server) checkQuorum() error {
	if s.cfg.Quorum == nil {
		return nil
	}
	return s.cfg.Quorum()
}

// refuseWithoutQuorum answers 503 and returns true when this server's etcd
// member sees no leader.
func (s *Server) refuseWithoutQuorum(w http.ResponseWriter, r *http.Request) bool {
	err := s.checkQuorum()
	if err == nil {
		return false
	}
	refused := "writes"
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		refused = "reads"
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, s.log, &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure,
		Code:   http.StatusServiceUnavailable,
		Reason: metav1.StatusReasonServiceUnavailable,
		Message: fmt.Sprintf("this server is cut off from the etcd majority (%v): %s are refused; retry against another server",
			err, refused),
		Details: &metav1.StatusDetails{RetryAfterSeconds: 1},
	}})
	return true
}

// withRequestTimeout gives r a deadline of requestTimeout, or of the
// request's ?timeout= when that is shorter (client-go sends it), and wraps w
// so that a request failing because of that deadline answers 504 Timeout
// rather than 500. The caller must call cancel when the request is done.
func withRequestTimeout(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *http.Request, context.CancelFunc) {
	timeout := requestTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 && d < timeout {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return &timeoutWriter{ResponseWriter: w, ctx: ctx, timeout: timeout}, r.WithContext(ctx), cancel
}

// timeoutWriter turns the server error of a request whose deadline passed
// into a 504 Timeout Status, and drops the body the handler writes after it.
type timeoutWriter struct {
	http.ResponseWriter
	ctx      context.Context
	timeout  time.Duration
	timedOut bool
}

func (w *timeoutWriter) WriteHeader(code int) {
	if code >= http.StatusInternalServerError && errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
		w.timedOut = true
		w.ResponseWriter.Header().Del("Content-Length")
		writeJSON(w.ResponseWriter, http.StatusGatewayTimeout, toStatus(apierrors.NewTimeoutError(
			fmt.Sprintf("request did not complete within the allowed duration (%s)", w.timeout), 0)))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *timeoutWriter) Write(p []byte) (int, error) {
	if w.timedOut {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *timeoutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
