package openapi

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	openapi_v2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
)

// Media types of the documents.
const (
	mediaJSON    = "application/json"
	mediaV2Proto = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
	// mediaV3Proto is not served: clients read v3 as JSON, and the
	// converter would cost half a megabyte of binary.
	mediaV3Proto = "application/com.github.proto-openapi.spec.v3.v1.0+protobuf"
)

// negotiate picks the first media type the Accept header allows, in the
// client's order of preference: JSON, or the protobuf form (its current and
// its deprecated "@v1.0" spelling). It returns "" when none is acceptable.
func negotiate(accept, protoType string) string {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON
	}
	deprecated := strings.Replace(protoType, ".v1.0+", "@v1.0+", 1)
	best, bestQ := "", -1.0
	for _, clause := range strings.Split(accept, ",") {
		parts := strings.Split(clause, ";")
		mt := strings.ToLower(strings.TrimSpace(parts[0]))
		q := 1.0
		for _, p := range parts[1:] {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		var got string
		switch mt {
		case protoType, deprecated:
			got = protoType
		case mediaJSON, "application/*", "*/*":
			got = mediaJSON
		}
		if got != "" && q > 0 && q > bestQ {
			best, bestQ = got, q
		}
	}
	return best
}

// write serves a document with its ETag; http.ServeContent answers
// If-None-Match with 304 Not Modified.
func write(w http.ResponseWriter, r *http.Request, contentType string, d doc) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Etag", strconv.Quote(d.etag))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(d.data))
}

func (d *documents) serveV2(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept")
	switch negotiate(r.Header.Get("Accept"), mediaV2Proto) {
	case mediaJSON:
		write(w, r, mediaJSON, d.v2)
	case mediaV2Proto:
		p, err := d.v2Proto.get(d.v2.data, v2ToProto)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		write(w, r, mediaV2Proto, p)
	default:
		http.Error(w, "the OpenAPI v2 document is served as application/json or "+mediaV2Proto, http.StatusNotAcceptable)
	}
}

func (d *documents) serveV3Index(w http.ResponseWriter, r *http.Request) {
	write(w, r, mediaJSON, d.v3Index)
}

func (d *documents) serveV3(w http.ResponseWriter, r *http.Request, gv string) {
	v, ok := d.v3[gv]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Add("Vary", "Accept")
	if negotiate(r.Header.Get("Accept"), "") != mediaJSON {
		http.Error(w, "OpenAPI v3 documents are served as application/json", http.StatusNotAcceptable)
		return
	}
	if hash := r.URL.Query().Get("hash"); hash != "" {
		if hash != v.etag {
			// An old hash: send the client to the current document.
			http.Redirect(w, r, "/openapi/v3/"+gv+"?hash="+url.QueryEscape(v.etag), http.StatusMovedPermanently)
			return
		}
		// A document named by its hash never changes.
		w.Header().Set("Cache-Control", "public, immutable")
		w.Header().Set("Expires", time.Now().AddDate(1, 0, 0).UTC().Format(http.TimeFormat))
	}
	write(w, r, mediaJSON, v)
}

func v2ToProto(data []byte) ([]byte, error) {
	doc, err := openapi_v2.ParseDocument(data)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}
