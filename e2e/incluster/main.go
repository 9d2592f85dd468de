// Command incluster is a pod's own client of the API, for end-to-end
// tests: it finds the API and its credentials as every in-cluster client
// does (rest.InClusterConfig: KUBERNETES_SERVICE_HOST/PORT and the service
// account token the kubelet mounts) and lists the pods of its namespace.
// It prints "allowed: N pods" and exits 0, or prints the API's refusal and
// exits 3 when forbidden, 4 when not authenticated, 1 on other errors.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func main() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fmt.Println("in-cluster config:", err)
		os.Exit(1)
	}
	ns, err := os.ReadFile(namespaceFile)
	if err != nil {
		fmt.Println("namespace:", err)
		os.Exit(1)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Println("client:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods, err := client.CoreV1().Pods(strings.TrimSpace(string(ns))).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err):
		fmt.Println("forbidden:", err)
		os.Exit(3)
	case apierrors.IsUnauthorized(err):
		fmt.Println("unauthorized:", err)
		os.Exit(4)
	case err != nil:
		fmt.Println("list pods:", err)
		os.Exit(1)
	}
	fmt.Printf("allowed: %d pods\n", len(pods.Items))
}
