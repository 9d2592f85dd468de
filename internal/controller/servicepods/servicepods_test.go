package servicepods

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestIP(t *testing.T) {
	dual := corev1.PodStatus{PodIP: "10.42.0.1", PodIPs: []corev1.PodIP{{IP: "10.42.0.1"}, {IP: "fd00::1"}}}
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		family corev1.IPFamily
		want   string
	}{
		{"no address", corev1.PodStatus{}, "", ""},
		{"podIP only", corev1.PodStatus{PodIP: "10.42.0.1"}, "", "10.42.0.1"},
		{"podIP of another family", corev1.PodStatus{PodIP: "10.42.0.1"}, corev1.IPv6Protocol, ""},
		{"first of podIPs", dual, "", "10.42.0.1"},
		{"v6 of podIPs", dual, corev1.IPv6Protocol, "fd00::1"},
		{"v4 of podIPs", dual, corev1.IPv4Protocol, "10.42.0.1"},
		{"unparsable skipped", corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "x"}, {IP: "fd00::2"}}}, "", "fd00::2"},
		{"podIPs win over podIP", corev1.PodStatus{PodIP: "10.42.0.9", PodIPs: []corev1.PodIP{{IP: "fd00::3"}}}, corev1.IPv4Protocol, ""},
	} {
		if got := IP(&corev1.Pod{Status: tc.status}, tc.family); got != tc.want {
			t.Errorf("%s: IP = %q, want %q", tc.name, got, tc.want)
		}
	}
}
