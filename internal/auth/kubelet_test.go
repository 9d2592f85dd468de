package auth

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestKubeletRequestAttributes(t *testing.T) {
	u := &User{Name: "kube-apiserver-kubelet-client"}
	tests := []struct {
		method, path string
		verb         string
		subs         []string
	}{
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/metrics/cadvisor", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/runningpods/", "get", []string{"pods", "proxy"}},
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"POST", "/exec/ns/pod/c", "create", []string{"proxy"}},
		{"GET", "/containerLogs/ns/pod/c", "get", []string{"proxy"}},
		{"GET", "/podsx", "get", []string{"proxy"}},
		{"POST", "/checkpoint/ns/pod/c", "create", []string{"checkpoint"}},
	}
	for _, tt := range tests {
		attrs := KubeletRequestAttributes(httptest.NewRequest(tt.method, tt.path, nil), u, "n1")
		var subs []string
		for _, a := range attrs {
			if a.Verb != tt.verb || a.Resource != "nodes" || a.Name != "n1" || !a.ResourceRequest || a.User != u {
				t.Errorf("%s %s: %+v", tt.method, tt.path, a)
			}
			subs = append(subs, a.Subresource)
		}
		if !slices.Equal(subs, tt.subs) {
			t.Errorf("%s %s: subresources %v, want %v", tt.method, tt.path, subs, tt.subs)
		}
	}
}
