package apiserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"skiff/internal/storage"
)

// continueToken is the state of a paginated list a client hands back in
// `continue`: Kubernetes' format (base64url of this JSON), so a token means
// the same to every API server of the cluster.
type continueToken struct {
	// APIVersion is always "meta.k8s.io/v1".
	APIVersion string `json:"v"`
	// ResourceVersion is the revision every page is read at; -1 means
	// "the newest" (after the first one was compacted away).
	ResourceVersion int64 `json:"rv"`
	// StartKey is the key the next page starts at, relative to the
	// resource's key prefix.
	StartKey string `json:"start"`
}

const continueTokenVersion = "meta.k8s.io/v1"

func encodeContinue(key, keyPrefix string, rev int64) (string, error) {
	rel := strings.TrimPrefix(key, keyPrefix)
	if rel == key || rel == "" {
		return "", fmt.Errorf("continue key %q is not under %q", key, keyPrefix)
	}
	data, err := json.Marshal(continueToken{APIVersion: continueTokenVersion, ResourceVersion: rev, StartKey: rel})
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(data), nil
}

// decodeContinue returns the key the next page starts at and the revision
// to read it at (-1: the newest).
func decodeContinue(token, keyPrefix string) (string, int64, error) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", 0, fmt.Errorf("continue token is not valid: %v", err)
	}
	var c continueToken
	if err := json.Unmarshal(data, &c); err != nil {
		return "", 0, fmt.Errorf("continue token is not valid: %v", err)
	}
	if c.APIVersion != continueTokenVersion {
		return "", 0, fmt.Errorf("continue token is not valid: version %q is not %s", c.APIVersion, continueTokenVersion)
	}
	if c.ResourceVersion == 0 || c.StartKey == "" {
		return "", 0, errors.New("continue token is not valid: no resourceVersion or start key")
	}
	// The key must stay under the prefix: no "..", no doubled slashes.
	key := "/" + strings.TrimPrefix(c.StartKey, "/")
	if path.Clean(key) != key {
		return "", 0, fmt.Errorf("continue token is not valid: start key %q", c.StartKey)
	}
	return keyPrefix + key[1:], c.ResourceVersion, nil
}

// listPage answers a list that asks for pages (limit, continue) and
// reports whether it did; a list without them is answered whole by list.
func (q *request) listPage(match func(runtime.Object) bool) bool {
	query := q.query
	var limit int64
	if v := query.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			q.fail(badRequest("limit %q: not a non-negative number", v))
			return true
		}
		limit = n
	}
	token := query.Get("continue")
	if limit == 0 && token == "" {
		return false
	}
	if token == "" && query.Get("resourceVersion") == "0" {
		// "Any version" is served whole from the watch cache, limit or
		// not, as Kubernetes does (informers' first list).
		return false
	}
	p := prefix(q.res, q.ri.namespace)
	start, rev := p, int64(0)
	if token != "" {
		if query.Get("resourceVersion") != "" {
			q.fail(badRequest("specifying resource version is not allowed when using continue"))
			return true
		}
		var err error
		if start, rev, err = decodeContinue(token, p); err != nil {
			q.fail(badRequest("%v", err))
			return true
		}
		if rev < 0 {
			rev = 0
		}
	} else if query.Get("resourceVersionMatch") == string(metav1.ResourceVersionMatchExact) {
		var err error
		if rev, err = strconv.ParseInt(query.Get("resourceVersion"), 10, 64); err != nil {
			q.fail(badRequest("resourceVersion %q: not a number", query.Get("resourceVersion")))
			return true
		}
	}
	selected := query.Get("labelSelector") != "" || query.Get("fieldSelector") != ""

	if !selected {
		if out, err := negotiate(q.r.Header.Get("Accept")); err == nil && out == (output{}) {
			q.listPageRaw(p, start, rev, limit, token != "")
			return true
		}
	}

	var items []runtime.Object
	var next string
	var remaining int64
	for done := false; !done; {
		page, err := q.s.store.ListPage(q.r.Context(), p, start, rev, limit)
		if errors.Is(err, storage.ErrCompacted) && token != "" {
			q.fail(expiredContinue(start, p))
			return true
		}
		if err != nil {
			q.fail(storeErr(err, q.res.GroupResource(), ""))
			return true
		}
		// Every later read is at the first one's revision: the pages
		// make one consistent list.
		rev = page.Revision
		last := ""
		for i, raw := range page.Items {
			obj, err := q.s.store.Decode(raw.Data, raw.Revision)
			if err != nil {
				q.fail(err)
				return true
			}
			last = raw.Key
			if match(obj) {
				items = append(items, obj)
			}
			if limit > 0 && int64(len(items)) == limit {
				left := int64(len(page.Items)-1-i) + page.Remaining
				if left > 0 {
					next, remaining = last+"\x00", left
				}
				done = true
				break
			}
		}
		if page.Remaining == 0 || last == "" {
			break
		}
		start = last + "\x00"
	}

	list := q.res.NewList()
	if err := meta.SetList(list, items); err != nil {
		q.fail(err)
		return true
	}
	la, _ := meta.ListAccessor(list)
	la.SetResourceVersion(strconv.FormatInt(rev, 10))
	if next != "" {
		c, err := encodeContinue(next, p, rev)
		if err != nil {
			q.fail(err)
			return true
		}
		la.SetContinue(c)
		if !selected {
			la.SetRemainingItemCount(&remaining)
		}
	}
	q.respond(http.StatusOK, list)
	return true
}

// expiredContinue is the 410 for a continue token whose revision was
// compacted away. It carries a token that continues from the same key at
// the newest revision, for a client that accepts an inconsistent list.
func expiredContinue(start, keyPrefix string) error {
	err := apierrors.NewResourceExpired("the continue token's resourceVersion has been compacted: " +
		"list again without continue for a consistent list, or use the continue token of this response " +
		"to get the rest at the newest resourceVersion (objects changed since the first page may be missed or seen twice)")
	if c, encErr := encodeContinue(start, keyPrefix, -1); encErr == nil {
		err.ErrStatus.ListMeta.Continue = c
	}
	return err
}

// listPageRaw answers a page without selectors as plain JSON straight from
// the stored JSON, as listRaw does for whole lists.
func (q *request) listPageRaw(p, start string, rev, limit int64, continued bool) {
	page, err := q.s.store.ListPage(q.r.Context(), p, start, rev, limit)
	if errors.Is(err, storage.ErrCompacted) && continued {
		q.fail(expiredContinue(start, p))
		return
	}
	if err != nil {
		q.fail(storeErr(err, q.res.GroupResource(), ""))
		return
	}
	items := make([][]byte, len(page.Items))
	for i, it := range page.Items {
		data, ok := it.WithResourceVersion()
		if !ok {
			obj, err := q.s.store.Decode(it.Data, it.Revision)
			if err == nil {
				data, err = encodeObject(obj)
			}
			if err != nil {
				q.fail(err)
				return
			}
		}
		items[i] = data
	}
	gvk := q.res.NewList().GetObjectKind().GroupVersionKind()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"kind":%q,"apiVersion":%q,"metadata":{"resourceVersion":"%d"`, gvk.Kind, gvk.GroupVersion().String(), page.Revision)
	if page.Remaining > 0 && len(page.Items) > 0 {
		c, err := encodeContinue(page.Items[len(page.Items)-1].Key+"\x00", p, page.Revision)
		if err != nil {
			q.fail(err)
			return
		}
		fmt.Fprintf(&buf, `,"continue":%q,"remainingItemCount":%d`, c, page.Remaining)
	}
	buf.WriteString(`},"items":[`)
	for i, o := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(o)
	}
	buf.WriteString("]}")
	q.w.Header().Set("Content-Type", "application/json")
	q.w.WriteHeader(http.StatusOK)
	_, _ = q.w.Write(buf.Bytes())
}
