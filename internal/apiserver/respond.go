package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"skiff/internal/storage"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// writeJSON answers with v encoded as JSON.
func writeJSON(w http.ResponseWriter, code int, v interface{}) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(data)
}

// writeError answers with err as a metav1.Status. Errors that are not API
// errors become 500s and are logged, since they mean something broke.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	status := toStatus(err)
	if status.Code == http.StatusInternalServerError {
		log.Error("request failed", "err", err)
	}
	if d := status.Details; d != nil && d.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfterSeconds)))
	}
	writeJSON(w, int(status.Code), status)
}

func toStatus(err error) *metav1.Status {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		s := apiStatus.Status()
		s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		if s.Status == "" {
			s.Status = metav1.StatusFailure
		}
		return &s
	}
	// etcd electing a leader or overloaded: a retry soon succeeds, so say
	// so (503 with Retry-After, which client-go honours) rather than 500.
	if storage.IsUnavailable(err) {
		s := apierrors.NewServiceUnavailable(fmt.Sprintf("etcd is briefly unavailable (%v); retry", err)).Status()
		s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		s.Details = &metav1.StatusDetails{RetryAfterSeconds: 1}
		return &s
	}
	s := apierrors.NewInternalError(err).Status()
	s.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	return &s
}

// storeErr maps a storage error to the API error Kubernetes would answer.
func storeErr(err error, gr schema.GroupResource, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case errors.Is(err, storage.ErrFutureRevision):
		return apierrors.NewTimeoutError("Too large resource version: the requested resourceVersion is newer than the server's; retry later", 1)
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("too old resource version: the requested revision has been compacted")
	}
	return err
}

const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// statusSuccess is the body of a successful deletecollection or eviction.
func statusSuccess(code int) *metav1.Status {
	return &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: int32(code)}
}

// encodeObject encodes a typed object with its TypeMeta.
func encodeObject(obj runtime.Object) ([]byte, error) {
	return json.Marshal(obj)
}
