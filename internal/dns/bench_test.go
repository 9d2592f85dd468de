package dns

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"skiff/internal/server/servertest"
)

// BenchmarkClusterQuery measures cluster-name queries over UDP on loopback:
// queries per second and p99 latency, with several concurrent clients
// (go test -run - -bench ClusterQuery ./internal/dns/).
func BenchmarkClusterQuery(b *testing.B) {
	srv := servertest.Start(b, "", servertest.NoControlPlane)
	c := srv.Client(b)
	for i := 0; i < 50; i++ {
		createService(b, c, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%02d", i), Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})
	}
	addr := startDNS(b, c, []string{"127.0.0.1:1"})
	names := []struct {
		name  string
		qtype uint16
	}{
		{"svc-00.default.svc.cluster.local.", dns.TypeA},
		{"kubernetes.default.svc.cluster.local.", dns.TypeA},
		{"_http._tcp.svc-01.default.svc.cluster.local.", dns.TypeSRV},
		{"nothere.default.svc.cluster.local.", dns.TypeA},
		{"10-42-1-9.default.pod.cluster.local.", dns.TypeA},
	}

	b.Run("udp", func(b *testing.B) {
		var mu sync.Mutex
		var all []time.Duration
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			nc, err := net.Dial("udp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			conn := &dns.Conn{Conn: nc}
			defer conn.Close()
			var lat []time.Duration
			req := new(dns.Msg)
			for i := 0; pb.Next(); i++ {
				q := names[i%len(names)]
				req.SetQuestion(q.name, q.qtype)
				t0 := time.Now()
				conn.SetDeadline(t0.Add(5 * time.Second))
				if err := conn.WriteMsg(req); err != nil {
					b.Error(err)
					return
				}
				m, err := conn.ReadMsg()
				if err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
				if m.Id != req.Id || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
					b.Errorf("bad answer for %s: %v", q.name, m)
					return
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		elapsed := time.Since(start)
		b.StopTimer()
		if len(all) == 0 {
			return
		}
		slices.Sort(all)
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "queries/s")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	})
}
