package registry

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// stored creates obj as the server would and returns it with a
// resourceVersion, as read back from storage.
func stored[T runtime.Object](t *testing.T, obj T) T {
	t.Helper()
	created(t, obj)
	objectMetaOf(obj).ResourceVersion = "42"
	return obj
}

// changed returns a deep copy of a stored object with mod applied: an
// update as a client sends it.
func changed[T interface {
	runtime.Object
	DeepCopyObject() runtime.Object
}](old T, mod func(T)) T {
	n := old.DeepCopyObject().(T)
	mod(n)
	return n
}

func TestUpdateValidation(t *testing.T) {
	pod := stored(t, testPod(func(p *corev1.Pod) {
		p.Spec.ActiveDeadlineSeconds = new(int64(600))
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	}))
	deploy := stored(t, testDeployment())
	sts := stored(t, testStatefulSet())
	job := stored(t, testJob())
	suspended := stored(t, testJob(func(j *batchv1.Job) { j.Spec.Suspend = new(true) }))
	svc := stored(t, testService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.43.0.15" }))
	cm := stored(t, testConfigMap(func(c *corev1.ConfigMap) { c.Immutable = new(true) }))
	mutableCM := stored(t, testConfigMap())
	secret := stored(t, testSecret())
	claim := stored(t, testClaim())
	bound := stored(t, testClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv1" }))
	bound.Status.Phase = corev1.ClaimBound
	pv := stored(t, testVolume())
	sc := stored(t, testStorageClass())
	node := stored(t, testNode())
	nodeWithCIDR := stored(t, testNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.42.1.0/24" }))

	for _, tc := range []struct {
		name     string
		obj, old runtime.Object
		want     []string
	}{
		// Metadata.
		{"rename", changed(pod, func(p *corev1.Pod) { p.Name = "other" }), pod, []string{"metadata.name"}},
		{"other uid", changed(pod, func(p *corev1.Pod) { p.UID = "another" }), pod, []string{"metadata.uid"}},
		{"unconditional update without system fields", changed(deploy, func(d *appsv1.Deployment) {
			d.ResourceVersion, d.UID, d.CreationTimestamp, d.Generation = "", "", metav1.Time{}, 0
			d.Labels = map[string]string{"tier": "web"}
		}), deploy, nil},

		// Pods.
		{"pod image change", changed(pod, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }), pod, nil},
		{"pod labels change", changed(pod, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }), pod, nil},
		{"pod command change", changed(pod, func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"sh"} }), pod, []string{"spec"}},
		{"pod restartPolicy change", changed(pod, func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }), pod, []string{"spec"}},
		{"pod nodeName set", changed(pod, func(p *corev1.Pod) { p.Spec.NodeName = "pi-1" }), pod, []string{"spec"}},
		{"pod toleration added", changed(pod, func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "gpu", Operator: corev1.TolerationOpExists})
		}), pod, nil},
		{"pod toleration removed", changed(pod, func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[1:] }), pod, []string{"spec.tolerations"}},
		{"pod tolerationSeconds shortened", changed(pod, func(p *corev1.Pod) { p.Spec.Tolerations[1].TolerationSeconds = new(int64(30)) }), pod, nil},
		{"pod activeDeadlineSeconds lowered", changed(pod, func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(60)) }), pod, nil},
		{"pod activeDeadlineSeconds raised", changed(pod, func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(6000)) }), pod,
			[]string{"spec.activeDeadlineSeconds"}},
		{"pod image emptied", changed(pod, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), pod, []string{"spec.containers[0].image"}},

		// Workloads.
		{"deployment scale and new image", changed(deploy, func(d *appsv1.Deployment) {
			d.Spec.Replicas = new(int32(3))
			d.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
		}), deploy, nil},
		{"deployment selector change", changed(deploy, func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "front"}}
			d.Spec.Template.Labels["tier"] = "front"
		}), deploy, []string{"spec.selector"}},
		{"statefulset template change", changed(sts, func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].Image = "postgres:17"
			s.Spec.Replicas = new(int32(3))
		}), sts, nil},
		{"statefulset serviceName change", changed(sts, func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "db-headless" }), sts, []string{"spec"}},
		{"job parallelism change", changed(job, func(j *batchv1.Job) { j.Spec.Parallelism = new(int32(2)) }), job, nil},
		{"job template change", changed(job, func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "perl:5" }), job, []string{"spec.template"}},
		{"job completions change", changed(job, func(j *batchv1.Job) { j.Spec.Completions = new(int32(3)) }), job, []string{"spec.completions"}},
		{"suspended job node selector change", changed(suspended, func(j *batchv1.Job) {
			j.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
		}), suspended, nil},

		// Services.
		{"service port change", changed(svc, func(s *corev1.Service) { s.Spec.Ports[0].Port = 8080 }), svc, nil},
		{"service clusterIP change", changed(svc, func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.43.0.16"
			s.Spec.ClusterIPs = []string{"10.43.0.16"}
		}), svc, []string{"spec.clusterIP", "spec.clusterIPs[0]"}},
		{"service to ExternalName", changed(svc, func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web.example.com"}
		}), svc, nil},

		// Configuration.
		{"mutable configmap change", changed(mutableCM, func(c *corev1.ConfigMap) { c.Data["app.conf"] = "x=2" }), mutableCM, nil},
		{"immutable configmap change", changed(cm, func(c *corev1.ConfigMap) { c.Data["app.conf"] = "x=2" }), cm, []string{"data"}},
		{"immutable configmap made mutable", changed(cm, func(c *corev1.ConfigMap) { c.Immutable = nil }), cm, []string{"immutable"}},
		{"secret type change", changed(secret, func(s *corev1.Secret) { s.Type = corev1.SecretTypeBasicAuth }), secret, []string{"type"}},

		// Storage and nodes.
		{"claim bound by the binder", changed(claim, func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv1" }), claim, nil},
		{"claim access modes change", changed(claim, func(c *corev1.PersistentVolumeClaim) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
		}), claim, []string{"spec"}},
		{"pending claim resize", changed(claim, func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}), claim, []string{"spec"}},
		{"bound claim grows", changed(bound, func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
		}), bound, nil},
		{"bound claim shrinks", changed(bound, func(c *corev1.PersistentVolumeClaim) {
			c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("512Mi")
		}), bound, []string{"spec.resources.requests.storage"}},
		{"volume source change", changed(pv, func(v *corev1.PersistentVolume) { v.Spec.HostPath.Path = "/srv/other" }), pv,
			[]string{"spec.persistentvolumesource"}},
		{"volume claimRef set", changed(pv, func(v *corev1.PersistentVolume) {
			v.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "data"}
		}), pv, nil},
		{"storage class parameters change", changed(sc, func(s *storagev1.StorageClass) { s.Parameters = nil }), sc, []string{"parameters"}},
		{"storage class label change", changed(sc, func(s *storagev1.StorageClass) { s.Labels = map[string]string{"default": "yes"} }), sc, nil},
		{"node pod CIDR set", changed(node, func(n *corev1.Node) {
			n.Spec.PodCIDR = "10.42.2.0/24"
			n.Spec.PodCIDRs = []string{"10.42.2.0/24"}
		}), node, nil},
		{"node pod CIDR change", changed(nodeWithCIDR, func(n *corev1.Node) {
			n.Spec.PodCIDR = "10.42.2.0/24"
			n.Spec.PodCIDRs = []string{"10.42.2.0/24"}
		}), nodeWithCIDR, []string{"spec.podCIDRs"}},
		{"node taint added", changed(nodeWithCIDR, func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule}}
			n.Spec.Unschedulable = true
		}), nodeWithCIDR, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrorFields(t, update(tc.obj, tc.old), tc.want)
		})
	}
}
