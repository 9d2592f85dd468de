package agent

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/watchlist"
)

func TestLastKnownServices(t *testing.T) {
	api := fake.NewClientset(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}})
	k := newLastKnown(api, t.TempDir(), slog.New(slog.DiscardHandler))
	if !watchlist.DoesClientNotSupportWatchListSemantics(k) {
		t.Fatal("informers would stream their initial lists in a watch, which the client does not keep")
	}
	ctx := context.Background()
	if l, err := k.CoreV1().Services("").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 1 {
		t.Fatalf("list with a server: %v %v", l, err)
	}

	var answer error
	api.PrependReactor("list", "services", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, answer
	})
	answer = &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api/v1/services", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	l, err := k.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "web" {
		t.Fatalf("list with no server: %v %v; want the last known services", l, err)
	}
	if _, err := k.CoreV1().Services("default").List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("a namespaced list was answered from the kept cluster-wide one")
	}
	answer = apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "", os.ErrPermission)
	if _, err := k.CoreV1().Services("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a refusal from the API: err %v; want it passed on", err)
	}
}
