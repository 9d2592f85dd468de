package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"skiff/internal/config"
	"skiff/internal/server"
	"skiff/internal/server/servertest"
)

// TestNodeTokenRequests checks what a kubelet's service account token
// projection relies on: a node (system:node:NAME) may request a token for
// the service account of a pod bound to it, bound to that pod, and for no
// other: not another node's pod, not an unbound token, not another
// account.
func TestNodeTokenRequests(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.AuthorizationMode = config.AuthorizationNodeRBAC })
	admin := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, n := range []string{"n1", "n2"} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"runner", "other"} {
		if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]*corev1.Pod{}
	for name, node := range map[string]string{"on-n1": "n1", "on-n2": "n2"} {
		p, err := admin.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: "runner",
				Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods[name] = p
	}

	kc, err := server.UserKubeconfig(s.DataDir, "system:node:n1", []string{"system:nodes"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	node, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	request := func(sa string, pod *corev1.Pod) error {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}}}
		if pod != nil {
			tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}
		}
		_, err := node.CoreV1().ServiceAccounts("default").CreateToken(ctx, sa, tr, metav1.CreateOptions{})
		return err
	}

	// The node authorizer learns of the pods from its informers.
	servertest.Eventually(t, 20*time.Second, "a token for the node's own pod", func() error {
		return request("runner", pods["on-n1"])
	})
	for _, tt := range []struct {
		name, sa string
		pod      *corev1.Pod
		want     string
	}{
		{"another node's pod", "runner", pods["on-n2"], "scheduled on a different node"},
		{"no bound pod", "runner", nil, "not bound to a pod"},
		{"another account", "other", pods["on-n1"], "no relationship found between node 'n1' and this object"},
	} {
		err := request(tt.sa, tt.pod)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want 403 %q", tt.name, err, tt.want)
		}
	}
}
