package loadbalancer

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"skiff/internal/server/servertest"
)

func TestWatchServersFollowsKubernetesEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	srv := servertest.Start(t, "", servertest.NoControlPlane)
	admin := srv.RESTConfig(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CA(t).CertPEM)
	apiAddr := strings.TrimPrefix(srv.URL(), "https://")
	_, port, _ := net.SplitHostPort(apiAddr)
	state := filepath.Join(t.TempDir(), "servers.json")
	lb := start(t, Config{Servers: []string{apiAddr}, StateFile: state, CAPool: pool, HealthInterval: 500 * time.Millisecond})

	// The agent's clients talk to the balancer and still verify the
	// server against the cluster CA.
	viaLB := rest.CopyConfig(admin)
	viaLB.Host = "https://" + lb.Addr()
	client, err := kubernetes.NewForConfig(viaLB)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- WatchServers(ctx, client, lb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("WatchServers: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("WatchServers did not return within 30s of cancel")
		}
	})

	// Other servers join: they appear in the endpoints, then in the list
	// (the configured server stays as a fallback) and in the state file.
	others := []string{"192.0.2.10", "192.0.2.11"}
	adminClient := srv.Client(t)
	servertest.Eventually(t, 30*time.Second, "update the kubernetes EndpointSlice", func() error {
		s, err := adminClient.DiscoveryV1().EndpointSlices("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Endpoints = nil
		for _, ip := range others {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"192.0.2.12"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
		_, err = adminClient.DiscoveryV1().EndpointSlices("default").Update(context.Background(), s, metav1.UpdateOptions{})
		return err
	})
	want := []string{net.JoinHostPort(others[0], port), net.JoinHostPort(others[1], port), apiAddr}
	servertest.Eventually(t, 30*time.Second, "server list follows the endpoints", func() error {
		if got := lb.Servers(); !slices.Equal(got, want) {
			return fmt.Errorf("Servers() = %v, want %v", got, want)
		}
		return nil
	})
	// The list is saved just after it changes.
	servertest.Eventually(t, 10*time.Second, "the state file lists the servers", func() error {
		data, err := os.ReadFile(state)
		if err != nil || !strings.Contains(string(data), others[1]) {
			return fmt.Errorf("state file = %s (err %v), want it to list %s", data, err, others[1])
		}
		return nil
	})
	// The unreachable servers do not disturb clients: the live one stays
	// preferred.
	if _, err := client.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("API request through the balancer: %v", err)
	}
}
