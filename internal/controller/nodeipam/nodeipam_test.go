package nodeipam_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

// smallCluster has room for four nodes.
func smallCluster(c *config.Server) {
	_, n, _ := net.ParseCIDR("10.99.0.0/22")
	c.ClusterCIDR = n
	c.Controllers.NodeMonitorGracePeriod = 10 * time.Minute
}

func cidrOf(c kubernetes.Interface, name string) (string, error) {
	n, err := c.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if n.Spec.PodCIDR == "" || len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		return "", fmt.Errorf("node %s: podCIDR %q podCIDRs %v", name, n.Spec.PodCIDR, n.Spec.PodCIDRs)
	}
	return n.Spec.PodCIDR, nil
}

// expectCIDRs waits until every named node has a pod CIDR and checks they
// are unique and inside the cluster CIDR.
func expectCIDRs(t *testing.T, c kubernetes.Interface, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	servertest.Eventually(t, 15*time.Second, "pod CIDRs", func() error {
		seen := map[string]string{}
		for _, n := range names {
			cidr, err := cidrOf(c, n)
			if err != nil {
				return err
			}
			_, block, _ := net.ParseCIDR(cidr)
			if ones, _ := block.Mask.Size(); ones != 24 || !(&net.IPNet{IP: net.IPv4(10, 99, 0, 0), Mask: net.CIDRMask(22, 32)}).Contains(block.IP) {
				return fmt.Errorf("node %s: %s is not a /24 of 10.99.0.0/22", n, cidr)
			}
			if other, dup := seen[cidr]; dup {
				return fmt.Errorf("nodes %s and %s share %s", other, n, cidr)
			}
			seen[cidr] = n
			out[n] = cidr
		}
		return nil
	})
	return out
}

func expectNoCIDREvent(t *testing.T, c kubernetes.Interface, node string) {
	t.Helper()
	servertest.Eventually(t, 15*time.Second, "CIDRNotAvailable event for "+node, func() error {
		evs, err := c.CoreV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.name": node, "reason": "CIDRNotAvailable"}.String()})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Type == corev1.EventTypeWarning && e.InvolvedObject.Kind == "Node" {
				return nil
			}
		}
		return fmt.Errorf("no Warning event yet (%d events)", len(evs.Items))
	})
	if cidr, _ := cidrOf(c, node); cidr != "" {
		t.Fatalf("node %s got %s from a full cluster CIDR", node, cidr)
	}
}

func TestNodeIPAM(t *testing.T) {
	dir := t.TempDir()
	s := servertest.Start(t, dir, smallCluster)
	c := s.Client(t)
	ctx := context.Background()

	// A node that comes with a pod CIDR keeps it, and nobody else gets it.
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n0"},
		Spec: corev1.NodeSpec{PodCIDR: "10.99.1.0/24"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		servertest.AddNode(t, c, n)
	}
	got := expectCIDRs(t, c, "n0", "n1", "n2", "n3")
	if got["n0"] != "10.99.1.0/24" {
		t.Fatalf("n0 has %s, want the 10.99.1.0/24 it came with", got["n0"])
	}

	// Full: the next node gets a warning, not a CIDR, until one is freed.
	servertest.AddNode(t, c, "n4")
	expectNoCIDREvent(t, c, "n4")
	if err := c.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got = expectCIDRs(t, c, "n0", "n2", "n3", "n4")

	// After a restart the used blocks are rebuilt from the nodes: they keep
	// theirs, and a new node does not get a duplicate.
	s.Stop(t)
	s = servertest.Start(t, dir, smallCluster)
	c = s.Client(t)
	servertest.AddNode(t, c, "n5")
	expectNoCIDREvent(t, c, "n5")
	after := expectCIDRs(t, c, "n0", "n2", "n3", "n4")
	for n, cidr := range got {
		if after[n] != cidr {
			t.Fatalf("node %s changed pod CIDR across a restart: %s → %s", n, cidr, after[n])
		}
	}
	if err := c.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	final := expectCIDRs(t, c, "n0", "n3", "n4", "n5")
	if final["n5"] != got["n2"] {
		t.Fatalf("n5 got %s, want the %s n2 freed", final["n5"], got["n2"])
	}
}
