package registry

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Each case is created as a client would send it (defaults applied) and must
// fail at exactly the named fields.
func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		want []string
	}{
		// Metadata.
		{"pod name not a subdomain", testPod(func(p *corev1.Pod) { p.Name = "Web_1" }), []string{"metadata.name"}},
		{"pod without name", testPod(func(p *corev1.Pod) { p.Name = "" }), []string{"metadata.name"}},
		{"pod without namespace", testPod(func(p *corev1.Pod) { p.Namespace = "" }), []string{"metadata.namespace"}},
		{"bad label", testPod(func(p *corev1.Pod) { p.Labels = map[string]string{"app": "not ok!"} }), []string{"metadata.labels"}},
		{"bad annotation key", testConfigMap(func(c *corev1.ConfigMap) { c.Annotations = map[string]string{"a b": "x"} }), []string{"metadata.annotations"}},
		{"bad generateName", testPod(func(p *corev1.Pod) { p.GenerateName = "Web-" }), []string{"metadata.generateName"}},
		{"namespace on a cluster-scoped kind", testNode(func(n *corev1.Node) { n.Namespace = "default" }), []string{"metadata.namespace"}},
		{"namespace name is a DNS label", testNamespace(func(n *corev1.Namespace) { n.Name = "team.a" }), []string{"metadata.name"}},

		// Pods.
		{"empty image", testPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), []string{"spec.containers[0].image"}},
		{"no containers", testPod(func(p *corev1.Pod) { p.Spec.Containers = nil }), []string{"spec.containers"}},
		{"bad container name", testPod(func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App" }), []string{"spec.containers[0].name"}},
		{"duplicate container names", testPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "app", Image: "busybox"}}
		}), []string{"spec.containers[0].name"}},
		{"port out of range", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
		}), []string{"spec.containers[0].ports[0].containerPort"}},
		{"bad port protocol", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "HTTP"}}
		}), []string{"spec.containers[0].ports[0].protocol"}},
		{"mount of an unknown volume", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}), []string{"spec.containers[0].volumeMounts[0].name"}},
		{"mount without path", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data"}}
		}), []string{"spec.containers[0].volumeMounts[0].mountPath"}},
		{"two volume sources", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{},
				Secret:   &corev1.SecretVolumeSource{SecretName: "creds"},
			}}}
		}), []string{"spec.volumes[0].secret"}},
		{"duplicate volume names", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "data"}, {Name: "data"}}
		}), []string{"spec.volumes[1].name"}},
		{"secret volume without secret name", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}}
		}), []string{"spec.volumes[0].secret.secretName"}},
		{"hostPath escaping", testPod(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/../etc"}}}}
		}), []string{"spec.volumes[0].hostPath.path"}},
		{"bad restartPolicy", testPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }), []string{"spec.restartPolicy"}},
		{"bad dnsPolicy", testPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }), []string{"spec.dnsPolicy"}},
		{"dnsPolicy None without nameservers", testPod(func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }), []string{"spec.dnsConfig"}},
		{"request above limit", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		}), []string{"spec.containers[0].resources.requests[cpu]"}},
		{"unknown resource", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"gpu": resource.MustParse("1")}
		}), []string{"spec.containers[0].resources.limits[gpu]", "spec.containers[0].resources.requests[gpu]"}},
		{"probe without handler", testPod(func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{} }), []string{"spec.containers[0].livenessProbe"}},
		{"liveness probe success threshold", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{
				ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
				SuccessThreshold: 2,
			}
		}), []string{"spec.containers[0].livenessProbe.successThreshold"}},
		{"env var without name", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Value: "x"}}
		}), []string{"spec.containers[0].env[0].name"}},
		{"env value and valueFrom", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		}), []string{"spec.containers[0].env[0].valueFrom"}},
		{"unsupported fieldRef", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.containers"}}}}
		}), []string{"spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"}},
		{"bad toleration", testPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}}
		}), []string{"spec.tolerations[0].operator"}},
		{"tolerationSeconds without NoExecute", testPod(func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: new(int64(5))}}
		}), []string{"spec.tolerations[0].effect"}},
		{"bad nodeSelector", testPod(func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"bad key": "x"} }), []string{"spec.nodeSelector"}},
		{"zero activeDeadlineSeconds", testPod(func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(0)) }), []string{"spec.activeDeadlineSeconds"}},
		{"hostNetwork port mismatch", testPod(func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
		}), []string{"spec.containers[0].ports[0].hostPort"}},
		{"init container probe", testPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox", ReadinessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}}}
		}), []string{"spec.initContainers[0].readinessProbe"}},
		{"affinity without topology key", testPod(func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{LabelSelector: webSelector()}}}}
		}), []string{"spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"}},
		{"ephemeral containers on create", testPod(func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
		}), []string{"spec.ephemeralContainers"}},

		// Workloads.
		{"deployment selector does not match", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}
		}), []string{"spec.template.metadata.labels"}},
		{"deployment without selector", testDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = nil }), []string{"spec.selector"}},
		{"deployment with empty selector", testDeployment(func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }), []string{"spec.selector"}},
		{"deployment template restartPolicy", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
		}), []string{"spec.template.spec.restartPolicy"}},
		{"deployment template empty image", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Spec.Containers[0].Image = ""
		}), []string{"spec.template.spec.containers[0].image"}},
		{"deployment negative replicas", testDeployment(func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(-1)) }), []string{"spec.replicas"}},
		{"deployment zero surge and unavailable", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: new(intstr.FromInt32(0)), MaxUnavailable: new(intstr.FromString("0%"))}
		}), []string{"spec.strategy.rollingUpdate.maxUnavailable"}},
		{"deployment recreate with rollingUpdate", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}), []string{"spec.strategy.rollingUpdate"}},
		{"deployment progress deadline", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.MinReadySeconds = 600
		}), []string{"spec.progressDeadlineSeconds"}},
		{"replicaset template labels invalid", testReplicaSet(func(r *appsv1.ReplicaSet) {
			r.Spec.Template.Labels["bad key"] = "x"
		}), []string{"spec.template.metadata.labels"}},
		{"daemonset bad update strategy", testDaemonSet(func(d *appsv1.DaemonSet) {
			d.Spec.UpdateStrategy.Type = "Rolling"
		}), []string{"spec.updateStrategy.type"}},
		{"statefulset bad pod management policy", testStatefulSet(func(s *appsv1.StatefulSet) {
			s.Spec.PodManagementPolicy = "Random"
		}), []string{"spec.podManagementPolicy"}},
		{"statefulset claim template without storage", testStatefulSet(func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = nil
		}), []string{"spec.volumeClaimTemplates[0].spec.resources.requests[storage]"}},
		{"statefulset mount of an unknown volume", testStatefulSet(func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "logs"
		}), []string{"spec.template.spec.containers[0].volumeMounts[0].name"}},
		{"job restartPolicy Always", testJob(func(j *batchv1.Job) {
			j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}), []string{"spec.template.spec.restartPolicy"}},
		{"job negative backoffLimit", testJob(func(j *batchv1.Job) { j.Spec.BackoffLimit = new(int32(-1)) }), []string{"spec.backoffLimit"}},
		{"job with foreign uid label", testJob(func(j *batchv1.Job) {
			j.Spec.Template.Labels = map[string]string{"batch.kubernetes.io/controller-uid": "other"}
		}), []string{"spec.template.metadata.labels[batch.kubernetes.io/controller-uid]", "spec.template.metadata.labels"}},
		{"manual job selector not matching", testJob(func(j *batchv1.Job) {
			j.Spec.ManualSelector = new(true)
			j.Spec.Selector = webSelector()
		}), []string{"spec.template.metadata.labels"}},
		{"indexed job without completions", testJob(func(j *batchv1.Job) {
			j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
			j.Spec.Parallelism = new(int32(2))
		}), []string{"spec.completions"}},
		{"cronjob bad schedule", testCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "*/5 * * *" }), []string{"spec.schedule"}},
		{"cronjob minute out of range", testCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "61 * * * *" }), []string{"spec.schedule"}},
		{"cronjob TZ in schedule", testCronJob(func(c *batchv1.CronJob) { c.Spec.Schedule = "TZ=UTC 0 * * * *" }), []string{"spec.schedule"}},
		{"cronjob name too long", testCronJob(func(c *batchv1.CronJob) {
			c.Name = "a-cron-job-name-that-is-much-too-long-for-its-job-names"
		}), []string{"metadata.name"}},
		{"cronjob bad concurrency policy", testCronJob(func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = "Sometimes" }), []string{"spec.concurrencyPolicy"}},
		{"cronjob job template restartPolicy", testCronJob(func(c *batchv1.CronJob) {
			c.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}), []string{"spec.jobTemplate.spec.template.spec.restartPolicy"}},

		// Services.
		{"service name is a DNS-1035 label", testService(func(s *corev1.Service) { s.Name = "1web" }), []string{"metadata.name"}},
		{"service without ports", testService(func(s *corev1.Service) { s.Spec.Ports = nil }), []string{"spec.ports"}},
		{"service port zero", testService(func(s *corev1.Service) { s.Spec.Ports[0].Port = 0; s.Spec.Ports[0].TargetPort = intstr.FromInt32(80) }), []string{"spec.ports[0].port"}},
		{"service ports need names", testService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Port: 443}}
		}), []string{"spec.ports[1].name"}},
		{"service duplicate port names", testService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 443}}
		}), []string{"spec.ports[1].name"}},
		{"service bad protocol", testService(func(s *corev1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }), []string{"spec.ports[0].protocol"}},
		{"service bad type", testService(func(s *corev1.Service) { s.Spec.Type = "Internal" }), []string{"spec.type"}},
		{"service bad clusterIP", testService(func(s *corev1.Service) { s.Spec.ClusterIP = "10.43.0.300" }), []string{"spec.clusterIPs[0]"}},
		{"nodePort on a ClusterIP service", testService(func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30080 }), []string{"spec.ports[0].nodePort"}},
		{"headless NodePort service", testService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ClusterIP = "None"
		}), []string{"spec.clusterIPs[0]"}},
		{"bad service selector", testService(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a b"} }), []string{"spec.selector"}},
		{"ExternalName without name", testService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName }), []string{"spec.externalName"}},
		{"ExternalName with clusterIP", testService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "db.example.com"
			s.Spec.ClusterIP = "10.43.0.20"
		}), []string{"spec.clusterIP"}},
		{"externalTrafficPolicy on ClusterIP", testService(func(s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}), []string{"spec.externalTrafficPolicy"}},
		{"endpoints loopback address", &corev1.Endpoints{ObjectMeta: testMeta("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "127.0.0.1"}}, Ports: []corev1.EndpointPort{{Port: 80}},
		}}}, []string{"subsets[0].addresses[0].ip"}},
		{"endpoint slice wrong family", &discoveryv1.EndpointSlice{
			ObjectMeta: testMeta("web-abc12"), AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"fd00::7"}}},
		}, []string{"endpoints[0].addresses[0]"}},

		// Configuration.
		{"configmap bad key", testConfigMap(func(c *corev1.ConfigMap) { c.Data = map[string]string{"a b": "x"} }), []string{"data[a b]"}},
		{"configmap key in data and binaryData", testConfigMap(func(c *corev1.ConfigMap) {
			c.BinaryData = map[string][]byte{"app.conf": {1}}
		}), []string{"binaryData[app.conf]"}},
		{"tls secret without keys", testSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeTLS }), []string{"data[tls.crt]", "data[tls.key]"}},
		{"dockerconfigjson not JSON", testSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{".dockerconfigjson": []byte("{")}
		}), []string{"data[.dockerconfigjson]"}},
		{"service account token without account", testSecret(func(s *corev1.Secret) { s.Type = corev1.SecretTypeServiceAccountToken }),
			[]string{"metadata.annotations[kubernetes.io/service-account.name]"}},

		// Cluster.
		{"node bad pod CIDR", testNode(func(n *corev1.Node) { n.Spec.PodCIDR = "10.42.1.0/33" }), []string{"spec.podCIDRs[0]"}},
		{"node bad taint effect", testNode(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Never"}} }), []string{"spec.taints[0].effect"}},
		{"namespace bad finalizer", testNamespace(func(n *corev1.Namespace) { n.Spec.Finalizers = []corev1.FinalizerName{"nope"} }), []string{"spec.finalizers[0]"}},
		{"core event in another namespace", &corev1.Event{
			ObjectMeta:     testMeta("web.17c3"),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "kube-system", Name: "web"},
		}, []string{"involvedObject.namespace"}},
		{"events.k8s.io event without reporting fields", &eventsv1.Event{
			ObjectMeta: testMeta("web.17c3"), EventTime: metav1.NowMicro(), Type: "Info",
			Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
		}, []string{"type", "reportingController", "reportingInstance", "action", "reason"}},

		// Storage.
		{"claim without storage request", testClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.Resources.Requests = nil }),
			[]string{"spec.resources.requests[storage]"}},
		{"claim without access modes", testClaim(func(c *corev1.PersistentVolumeClaim) { c.Spec.AccessModes = nil }), []string{"spec.accessModes"}},
		{"volume without source", testVolume(func(v *corev1.PersistentVolume) { v.Spec.HostPath = nil }), []string{"spec"}},
		{"volume without capacity", testVolume(func(v *corev1.PersistentVolume) { v.Spec.Capacity = nil }), []string{"spec.capacity"}},
		{"local volume without node affinity", testVolume(func(v *corev1.PersistentVolume) {
			v.Spec.HostPath = nil
			v.Spec.Local = &corev1.LocalVolumeSource{Path: "/mnt/disk1"}
		}), []string{"spec.nodeAffinity"}},
		{"storage class without provisioner", testStorageClass(func(s *storagev1.StorageClass) { s.Provisioner = "" }), []string{"provisioner"}},
		{"storage class Recycle", testStorageClass(func(s *storagev1.StorageClass) {
			s.ReclaimPolicy = new(corev1.PersistentVolumeReclaimRecycle)
		}), []string{"reclaimPolicy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrorFields(t, create(tc.obj), tc.want)
		})
	}
}

func TestValidationErrorTypes(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		path string
		typ  field.ErrorType
	}{
		{"empty image is required", testPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }), "spec.containers[0].image", field.ErrorTypeRequired},
		{"unknown volume is not found", testPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}), "spec.containers[0].volumeMounts[0].name", field.ErrorTypeNotFound},
		{"enum value is not supported", testPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }), "spec.restartPolicy", field.ErrorTypeNotSupported},
		{"duplicate port names", testService(func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 443}}
		}), "spec.ports[1].name", field.ErrorTypeDuplicate},
		{"selector mismatch is invalid", testDeployment(func(d *appsv1.Deployment) {
			d.Spec.Template.Labels = map[string]string{"app": "api"}
		}), "spec.template.metadata.labels", field.ErrorTypeInvalid},
	} {
		errs := create(tc.obj)
		if len(errs) != 1 || errs[0].Field != tc.path || errs[0].Type != tc.typ {
			t.Errorf("%s: errors = %v, want one %s at %s", tc.name, errs, tc.typ, tc.path)
		}
	}
}

func TestCronSchedules(t *testing.T) {
	for _, s := range []string{
		"* * * * *", "*/15 * * * *", "0 3 * * 1-5", "30 2 1,15 * *", "0 0 * JAN,JUL SUN", "0 12 ? * mon-fri",
		"5-55/10 8-18 * * *", "@hourly", "@daily", "@every 90m",
	} {
		if err := validateCronSchedule(s); err != nil {
			t.Errorf("schedule %q: unexpected error %v", s, err)
		}
	}
	for _, s := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 7",
		"*/0 * * * *", "5-1 * * * *", "@fortnightly", "@every soon", "a * * * *",
	} {
		if err := validateCronSchedule(s); err == nil {
			t.Errorf("schedule %q: want an error", s)
		}
	}
}
