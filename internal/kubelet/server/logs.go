package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"skiff/internal/kubelet/logs"
)

var (
	schemaNodes = schema.GroupResource{Resource: "nodes"}
	schemaPods  = schema.GroupResource{Resource: "pods"}
)

// logRequest is the parsed query of GET /containerLogs.
type logRequest struct {
	previous bool
	opts     logs.Options
}

// parseLogQuery reads the pods/log query parameters.
func parseLogQuery(q url.Values, now time.Time) (logRequest, error) {
	var lr logRequest
	var err error
	boolParam := func(name string) bool {
		v := q.Get(name)
		if v == "" || err != nil {
			return false
		}
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			err = fmt.Errorf("invalid %s %q", name, v)
		}
		return b
	}
	intParam := func(name string) *int64 {
		v := q.Get(name)
		if v == "" || err != nil {
			return nil
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil {
			err = fmt.Errorf("invalid %s %q", name, v)
			return nil
		}
		return &n
	}
	lr.opts.Follow = boolParam("follow")
	lr.previous = boolParam("previous")
	lr.opts.Timestamps = boolParam("timestamps")
	lr.opts.TailLines = intParam("tailLines")
	lr.opts.LimitBytes = intParam("limitBytes")
	sinceSeconds := intParam("sinceSeconds")
	if err != nil {
		return lr, err
	}
	if lr.opts.TailLines != nil && *lr.opts.TailLines < 0 {
		return lr, errors.New("tailLines must be non-negative")
	}
	if lr.opts.LimitBytes != nil && *lr.opts.LimitBytes < 1 {
		return lr, errors.New("limitBytes must be positive")
	}
	sinceTime := q.Get("sinceTime")
	if sinceSeconds != nil && sinceTime != "" {
		return lr, errors.New("at most one of sinceTime or sinceSeconds may be specified")
	}
	if sinceSeconds != nil {
		if *sinceSeconds < 1 {
			return lr, errors.New("sinceSeconds must be positive")
		}
		lr.opts.Since = now.Add(-time.Duration(*sinceSeconds) * time.Second)
	}
	if sinceTime != "" {
		t, perr := time.Parse(time.RFC3339, sinceTime)
		if perr != nil {
			return lr, fmt.Errorf("invalid sinceTime %q: %w", sinceTime, perr)
		}
		lr.opts.Since = t
	}
	switch strings.ToLower(q.Get("stream")) {
	case "", "all":
	case "stdout":
		lr.opts.Stream = logs.Stdout
	case "stderr":
		lr.opts.Stream = logs.Stderr
	default:
		return lr, fmt.Errorf("invalid stream %q", q.Get("stream"))
	}
	return lr, nil
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, container := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	lr, err := parseLogQuery(r.URL.Query(), time.Now())
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	path, exited, err := s.cfg.Provider.LogPath(ns, pod, container, lr.previous)
	if err != nil {
		var apiStatus apierrors.APIStatus
		if !errors.As(err, &apiStatus) {
			err = apierrors.NewBadRequest(err.Error())
		}
		writeStatus(w, err)
		return
	}
	if lr.previous || exited == nil {
		// A previous instance has exited by definition.
		exited = func() bool { return true }
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	tw := &trackingWriter{w: w}
	err = logs.Read(r.Context(), path, lr.opts, tw, exited)
	if err == nil || r.Context().Err() != nil {
		return
	}
	if !tw.wrote {
		if errors.Is(err, fs.ErrNotExist) {
			err = apierrors.NewNotFound(schemaPods, fmt.Sprintf("%s/%s: log of container %s", ns, pod, container))
		}
		writeStatus(w, err)
		return
	}
	// The status line is gone already; all that is left is to log it.
	s.log.Warn("reading container log failed", "pod", ns+"/"+pod, "container", container, "err", err)
}

// trackingWriter records whether the response has started, so an error
// before the first byte can still be answered with a proper status.
type trackingWriter struct {
	w     http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.wrote = true
	return t.w.Write(p)
}

func (t *trackingWriter) Flush() {
	t.wrote = true
	if f, ok := t.w.(http.Flusher); ok {
		f.Flush()
	}
}
