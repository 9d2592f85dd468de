package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"skiff/internal/storage"
)

// initialEventsEndAnnotation marks the bookmark that ends the initial
// events of a sendInitialEvents watch (client-go's WatchList).
const initialEventsEndAnnotation = "k8s.io/initial-events-end"

// watch streams WatchEvents as chunked JSON, one event per line, flushed as
// they come.
func (q *request) watch() {
	match, err := q.matcher()
	if err != nil {
		q.fail(err)
		return
	}
	out, err := negotiate(q.r.Header.Get("Accept"))
	if err != nil {
		q.fail(err)
		return
	}
	query := q.query
	timeout := time.Duration(30+rand.IntN(30)) * time.Minute
	if v := query.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			q.fail(badRequest("timeoutSeconds %q: not a non-negative number", v))
			return
		}
		if n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(q.r.Context(), timeout)
	defer cancel()

	sendInitial := query.Get("sendInitialEvents") == "true"
	if sendInitial && query.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) {
		q.fail(apierrors.NewBadRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan"))
		return
	}
	rvParam := query.Get("resourceVersion")
	var initial []runtime.Object
	var from int64
	p := prefix(q.res, q.ri.namespace)
	switch {
	case sendInitial || rvParam == "" || rvParam == "0":
		// Start with the current state as synthetic ADDED events.
		items, rev, err := q.s.store.List(ctx, p, 0)
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), ""))
			return
		}
		initial, from = items, rev
	default:
		if from, err = strconv.ParseInt(rvParam, 10, 64); err != nil {
			q.fail(badRequest("resourceVersion %q: not a number", rvParam))
			return
		}
		// Answer 410 up front when the revision is compacted away.
		if err := q.s.store.CheckRevision(ctx, from); errors.Is(err, storage.ErrCompacted) || errors.Is(err, storage.ErrFutureRevision) {
			q.fail(storeErr(err, q.res.GroupResource(), ""))
			return
		}
	}
	events := q.s.store.Watch(ctx, p, from)

	flusher, _ := q.w.(http.Flusher)
	q.w.Header().Set("Content-Type", "application/json")
	q.w.Header().Set("Transfer-Encoding", "chunked")
	q.w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(q.w)
	var line []byte
	// sendRaw writes one event whose object encode returns as JSON: the
	// WatchEvent written out directly, so the object is not re-checked.
	sendRaw := func(typ watch.EventType, encode func() ([]byte, error)) bool {
		raw, err := encode()
		if err != nil {
			return false
		}
		line = append(line[:0], `{"type":`...)
		line = strconv.AppendQuote(line, string(typ))
		line = append(line, `,"object":`...)
		line = append(line, raw...)
		line = append(line, "}\n"...)
		if _, err := q.w.Write(line); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	send := func(typ watch.EventType, obj runtime.Object) bool {
		return sendRaw(typ, func() ([]byte, error) {
			body, err := q.convert(obj, out)
			if err != nil {
				q.s.log.Error("watch: convert object", "err", err)
				return nil, err
			}
			return encodeObject(body)
		})
	}
	for _, obj := range initial {
		if match(obj) && !send(watch.Added, obj) {
			return
		}
	}
	bookmark := func(rev int64, annotations map[string]string) runtime.Object {
		bm := q.res.New()
		m, _ := meta.Accessor(bm)
		m.SetResourceVersion(strconv.FormatInt(rev, 10))
		m.SetAnnotations(annotations)
		return bm
	}
	if sendInitial && !send(watch.Bookmark, bookmark(from, map[string]string{initialEventsEndAnnotation: "true"})) {
		return
	}
	wantBookmarks := query.Get("allowWatchBookmarks") == "true" && out.kind == outputObject
	for ev := range events {
		if ev.Err != nil {
			status := toStatus(storeErr(ev.Err, q.res.GroupResource(), ""))
			raw, _ := json.Marshal(status)
			_ = enc.Encode(&metav1.WatchEvent{Type: string(watch.Error), Object: runtime.RawExtension{Raw: raw}})
			return
		}
		if ev.Type == watch.Bookmark {
			if wantBookmarks && !send(watch.Bookmark, bookmark(ev.Revision, nil)) {
				return
			}
			continue
		}
		typ, obj := filterEvent(ev, match)
		if typ == "" {
			continue
		}
		if out.kind == outputObject && obj == ev.Object {
			// The object as it is: its JSON is shared by every watcher.
			if !sendRaw(typ, ev.ObjectJSON) {
				return
			}
			continue
		}
		if !send(typ, obj) {
			return
		}
	}
}

// filterEvent turns a storage event into what a filtered watcher sees: an
// object entering the filter is ADDED, one leaving it is DELETED.
func filterEvent(ev storage.Event, match func(runtime.Object) bool) (watch.EventType, runtime.Object) {
	switch ev.Type {
	case watch.Added:
		if match(ev.Object) {
			return watch.Added, ev.Object
		}
	case watch.Deleted:
		if match(ev.PrevObject) {
			return watch.Deleted, ev.Object
		}
	case watch.Modified:
		now, before := match(ev.Object), ev.PrevObject != nil && match(ev.PrevObject)
		switch {
		case now && before:
			return watch.Modified, ev.Object
		case now:
			return watch.Added, ev.Object
		case before:
			return watch.Deleted, ev.Object
		}
	}
	return "", nil
}
