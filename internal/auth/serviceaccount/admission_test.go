package serviceaccount

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestAdmitPod(t *testing.T) {
	o := objects{sas: map[string]*corev1.ServiceAccount{
		"ns/default": {ObjectMeta: meta("ns", "default", "1"), ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}}},
		"ns/quiet":   {ObjectMeta: meta("ns", "quiet", "2"), AutomountServiceAccountToken: ptr.To(false)},
	}}
	newPod := func(edit func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "a"}, {Name: "b", VolumeMounts: []corev1.VolumeMount{{Name: "own", MountPath: MountPath}}}},
		}}
		if edit != nil {
			edit(p)
		}
		return p
	}
	mounted := func(p *corev1.Pod) []string {
		var out []string
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			for _, m := range c.VolumeMounts {
				if m.MountPath == MountPath && strings.HasPrefix(m.Name, volumePrefix) && m.ReadOnly {
					out = append(out, c.Name)
				}
			}
		}
		return out
	}
	tests := []struct {
		name        string
		pod         *corev1.Pod
		wantSA      string
		wantMounted []string
		wantPull    int
		wantErr     string
	}{
		{name: "defaults", pod: newPod(nil), wantSA: "default", wantMounted: []string{"init", "a"}, wantPull: 1},
		{name: "pod opts out", pod: newPod(func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = ptr.To(false) }), wantSA: "default", wantPull: 1},
		{name: "account opts out", pod: newPod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "quiet" }), wantSA: "quiet"},
		{name: "pod overrides account", pod: newPod(func(p *corev1.Pod) {
			p.Spec.ServiceAccountName = "quiet"
			p.Spec.AutomountServiceAccountToken = ptr.To(true)
		}), wantSA: "quiet", wantMounted: []string{"init", "a"}},
		{name: "own pull secrets kept", pod: newPod(func(p *corev1.Pod) { p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "mine"}} }),
			wantSA: "default", wantMounted: []string{"init", "a"}, wantPull: 1},
		{name: "missing account", pod: newPod(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "ghost" }),
			wantErr: `error looking up service account ns/ghost: serviceaccounts "ghost" not found`},
		{name: "mirror pod", pod: newPod(func(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} })},
		{name: "mirror pod with account", pod: newPod(func(p *corev1.Pod) {
			p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
			p.Spec.ServiceAccountName = "default"
		}), wantErr: "a mirror pod may not reference service accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AdmitPod(context.Background(), o, tt.pod)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.pod.Spec.ServiceAccountName != tt.wantSA {
				t.Fatalf("account %q", tt.pod.Spec.ServiceAccountName)
			}
			if got := mounted(tt.pod); strings.Join(got, ",") != strings.Join(tt.wantMounted, ",") {
				t.Fatalf("mounted in %v, want %v", got, tt.wantMounted)
			}
			if n := len(tt.pod.Spec.ImagePullSecrets); n != tt.wantPull {
				t.Fatalf("pull secrets %v", tt.pod.Spec.ImagePullSecrets)
			}
			if len(tt.wantMounted) > 0 {
				v := tt.pod.Spec.Volumes[len(tt.pod.Spec.Volumes)-1]
				src := v.Projected.Sources
				if *src[0].ServiceAccountToken.ExpirationSeconds != 3607 || src[1].ConfigMap.Name != RootCAConfigMap || src[2].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.namespace" {
					t.Fatalf("volume %+v", v)
				}
			}
		})
	}
}
