package registry

import (
	"runtime/debug"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/randfill"
)

// Object builders: a small valid object of each kind, changed by mods.

func testMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", UID: "7d0a2b2c-0000-4000-8000-000000000001", CreationTimestamp: metav1.Now()}
}

func clusterMeta(name string) metav1.ObjectMeta {
	m := testMeta(name)
	m.Namespace = ""
	return m
}

func apply[T any](obj T, mods []func(T)) T {
	for _, m := range mods {
		m(obj)
	}
	return obj
}

func testPod(mods ...func(*corev1.Pod)) *corev1.Pod {
	return apply(&corev1.Pod{
		ObjectMeta: testMeta("web"),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}, mods)
}

func testTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
}

func webSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
}

func testDeployment(mods ...func(*appsv1.Deployment)) *appsv1.Deployment {
	return apply(&appsv1.Deployment{
		ObjectMeta: testMeta("web"),
		Spec:       appsv1.DeploymentSpec{Selector: webSelector(), Template: testTemplate()},
	}, mods)
}

func testReplicaSet(mods ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	return apply(&appsv1.ReplicaSet{
		ObjectMeta: testMeta("web-5d8f"),
		Spec:       appsv1.ReplicaSetSpec{Selector: webSelector(), Template: testTemplate()},
	}, mods)
}

func testDaemonSet(mods ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	return apply(&appsv1.DaemonSet{
		ObjectMeta: testMeta("agent"),
		Spec:       appsv1.DaemonSetSpec{Selector: webSelector(), Template: testTemplate()},
	}, mods)
}

func testStatefulSet(mods ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	t := testTemplate()
	t.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return apply(&appsv1.StatefulSet{
		ObjectMeta: testMeta("db"),
		Spec: appsv1.StatefulSetSpec{
			Selector:    webSelector(),
			Template:    t,
			ServiceName: "db",
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec:       testClaimSpec("1Gi"),
			}},
		},
	}, mods)
}

func testJob(mods ...func(*batchv1.Job)) *batchv1.Job {
	t := testTemplate()
	t.Labels = nil
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return apply(&batchv1.Job{ObjectMeta: testMeta("pi"), Spec: batchv1.JobSpec{Template: t}}, mods)
}

func testCronJob(mods ...func(*batchv1.CronJob)) *batchv1.CronJob {
	t := testTemplate()
	t.Labels = nil
	t.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return apply(&batchv1.CronJob{
		ObjectMeta: testMeta("backup"),
		Spec: batchv1.CronJobSpec{
			Schedule:    "*/5 * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}},
		},
	}, mods)
}

func testService(mods ...func(*corev1.Service)) *corev1.Service {
	return apply(&corev1.Service{
		ObjectMeta: testMeta("web"),
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}, mods)
}

func testClaimSpec(size string) corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
	}
}

func testClaim(mods ...func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
	return apply(&corev1.PersistentVolumeClaim{ObjectMeta: testMeta("data"), Spec: testClaimSpec("1Gi")}, mods)
}

func testVolume(mods ...func(*corev1.PersistentVolume)) *corev1.PersistentVolume {
	return apply(&corev1.PersistentVolume{
		ObjectMeta: clusterMeta("pv1"),
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/pv1"}},
		},
	}, mods)
}

func testConfigMap(mods ...func(*corev1.ConfigMap)) *corev1.ConfigMap {
	return apply(&corev1.ConfigMap{ObjectMeta: testMeta("settings"), Data: map[string]string{"app.conf": "x=1"}}, mods)
}

func testSecret(mods ...func(*corev1.Secret)) *corev1.Secret {
	return apply(&corev1.Secret{ObjectMeta: testMeta("creds"), Data: map[string][]byte{"password": []byte("s3cret")}}, mods)
}

func testNode(mods ...func(*corev1.Node)) *corev1.Node {
	return apply(&corev1.Node{ObjectMeta: clusterMeta("pi-1")}, mods)
}

func testNamespace(mods ...func(*corev1.Namespace)) *corev1.Namespace {
	return apply(&corev1.Namespace{ObjectMeta: clusterMeta("team-a")}, mods)
}

func testStorageClass(mods ...func(*storagev1.StorageClass)) *storagev1.StorageClass {
	return apply(&storagev1.StorageClass{
		ObjectMeta:  clusterMeta("local-path"),
		Provisioner: "rancher.io/local-path",
		Parameters:  map[string]string{"nodePath": "/var/lib/skiff/storage"},
	}, mods)
}

// create runs what the server runs on a create: defaults, the create
// reset, validation.
func create(obj runtime.Object) field.ErrorList {
	defaultObject(obj, Options{})
	prepareForCreate(obj)
	return validateObject(obj)
}

// update runs what the server runs on an update of old to obj.
func update(obj, old runtime.Object) field.ErrorList {
	defaultObject(obj, Options{})
	return append(validateObject(obj), validateObjectUpdate(obj, old)...)
}

// created returns obj after a successful create.
func created[T runtime.Object](t *testing.T, obj T) T {
	t.Helper()
	if errs := create(obj); len(errs) > 0 {
		t.Fatalf("create %T: unexpected errors: %v", obj, errs)
	}
	return obj
}

// errorFields returns the distinct field paths of errs, sorted.
func errorFields(errs field.ErrorList) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range errs {
		if !seen[e.Field] {
			seen[e.Field] = true
			out = append(out, e.Field)
		}
	}
	sort.Strings(out)
	return out
}

func checkErrorFields(t *testing.T, errs field.ErrorList, want []string) {
	t.Helper()
	sort.Strings(want)
	if got := errorFields(errs); !equality.Semantic.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("error fields = %q, want %q\nerrors: %v", got, want, errs)
	}
}

// Defaults.

func TestBarePodDefaults(t *testing.T) {
	p := created(t, testPod())
	s := p.Spec
	c := s.Containers[0]
	checks := []struct {
		name      string
		got, want interface{}
	}{
		{"restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways},
		{"dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst},
		{"schedulerName", s.SchedulerName, "default-scheduler"},
		{"terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30)},
		{"securityContext", s.SecurityContext, &corev1.PodSecurityContext{}},
		{"enableServiceLinks", *s.EnableServiceLinks, true},
		{"serviceAccountName", s.ServiceAccountName, "default"},
		{"serviceAccount", s.DeprecatedServiceAccount, "default"},
		{"priority", *s.Priority, int32(0)},
		{"preemptionPolicy", *s.PreemptionPolicy, corev1.PreemptLowerPriority},
		{"imagePullPolicy", c.ImagePullPolicy, corev1.PullAlways},
		{"terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"tolerations", s.Tolerations, []corev1.Toleration{
			{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(300))},
			{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(300))},
		}},
		{"status.phase", p.Status.Phase, corev1.PodPending},
		{"status.qosClass", p.Status.QOSClass, corev1.PodQOSBestEffort},
		{"generation", p.Generation, int64(1)},
	}
	for _, c := range checks {
		if !equality.Semantic.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestImagePullPolicyDefault(t *testing.T) {
	for _, tc := range []struct {
		image string
		want  corev1.PullPolicy
	}{
		{"nginx", corev1.PullAlways},
		{"nginx:latest", corev1.PullAlways},
		{"nginx:1.27", corev1.PullIfNotPresent},
		{"docker.io/library/nginx", corev1.PullAlways},
		{"registry.local:5000/team/app", corev1.PullAlways},
		{"registry.local:5000/team/app:v2", corev1.PullIfNotPresent},
		{"nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31", corev1.PullIfNotPresent},
		{"nginx:latest@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31", corev1.PullAlways},
	} {
		p := testPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = tc.image })
		defaultObject(p, Options{})
		if got := p.Spec.Containers[0].ImagePullPolicy; got != tc.want {
			t.Errorf("image %q: imagePullPolicy = %s, want %s", tc.image, got, tc.want)
		}
	}
	p := testPod(func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever })
	defaultObject(p, Options{})
	if got := p.Spec.Containers[0].ImagePullPolicy; got != corev1.PullNever {
		t.Errorf("an explicit imagePullPolicy was changed to %s", got)
	}
}

func TestContainerAndVolumeDefaults(t *testing.T) {
	p := created(t, testPod(func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}}
		c.Env = []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/app"}, {Name: "scratch", MountPath: "/tmp"}}
		p.Spec.Volumes = []corev1.Volume{
			{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			{Name: "scratch"},
		}
	}))
	c := p.Spec.Containers[0]
	if c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("port protocol = %q, want TCP", c.Ports[0].Protocol)
	}
	wantProbe := &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
		TimeoutSeconds:   1,
		PeriodSeconds:    10,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
	if !equality.Semantic.DeepEqual(c.LivenessProbe, wantProbe) {
		t.Errorf("liveness probe = %+v, want %+v", c.LivenessProbe, wantProbe)
	}
	if got := c.Env[0].ValueFrom.FieldRef.APIVersion; got != "v1" {
		t.Errorf("fieldRef apiVersion = %q, want v1", got)
	}
	if !equality.Semantic.DeepEqual(c.Resources.Requests, c.Resources.Limits) {
		t.Errorf("requests = %v, want the limits %v", c.Resources.Requests, c.Resources.Limits)
	}
	if len(c.ResizePolicy) != 2 {
		t.Errorf("resizePolicy = %v, want cpu and memory NotRequired", c.ResizePolicy)
	}
	if p.Status.QOSClass != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass = %s, want Guaranteed", p.Status.QOSClass)
	}
	if m := p.Spec.Volumes[0].ConfigMap.DefaultMode; m == nil || *m != 0o644 {
		t.Errorf("configMap defaultMode = %v, want 0644", m)
	}
	if p.Spec.Volumes[1].EmptyDir == nil {
		t.Errorf("a volume without source did not become an emptyDir: %+v", p.Spec.Volumes[1].VolumeSource)
	}
}

func TestAdmissionDefaultsRespectUserValues(t *testing.T) {
	p := created(t, testPod(func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "builder"
		p.Spec.PriorityClassName = "system-node-critical"
		p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}))
	if p.Spec.ServiceAccountName != "builder" || p.Spec.DeprecatedServiceAccount != "builder" {
		t.Errorf("service account = %q/%q, want builder", p.Spec.ServiceAccountName, p.Spec.DeprecatedServiceAccount)
	}
	if *p.Spec.Priority != 2000001000 {
		t.Errorf("priority = %d, want system-node-critical's 2000001000", *p.Spec.Priority)
	}
	if len(p.Spec.Tolerations) != 1 {
		t.Errorf("tolerations = %v; a pod tolerating everything needs no default tolerations", p.Spec.Tolerations)
	}
}

func TestPodQOSClass(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name      string
		resources []corev1.ResourceRequirements
		want      corev1.PodQOSClass
	}{
		{"no resources", []corev1.ResourceRequirements{{}}, corev1.PodQOSBestEffort},
		{"requests only", []corev1.ResourceRequirements{{Requests: corev1.ResourceList{"cpu": q("100m")}}}, corev1.PodQOSBurstable},
		{"limits only", []corev1.ResourceRequirements{{Limits: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}}}, corev1.PodQOSGuaranteed},
		{"requests equal limits", []corev1.ResourceRequirements{{
			Requests: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")},
			Limits:   corev1.ResourceList{"cpu": q("1000m"), "memory": q("1Gi")},
		}}, corev1.PodQOSGuaranteed},
		{"cpu limit only", []corev1.ResourceRequirements{{Limits: corev1.ResourceList{"cpu": q("1")}}}, corev1.PodQOSBurstable},
		{"one container unlimited", []corev1.ResourceRequirements{
			{Limits: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")}},
			{},
		}, corev1.PodQOSBurstable},
		{"only extended resources", []corev1.ResourceRequirements{{Limits: corev1.ResourceList{"example.com/gpu": q("1")}}}, corev1.PodQOSBestEffort},
	} {
		spec := corev1.PodSpec{}
		for i, r := range tc.resources {
			spec.Containers = append(spec.Containers, corev1.Container{Name: string(rune('a' + i)), Resources: r})
		}
		if got := podQOSClass(&spec); got != tc.want {
			t.Errorf("%s: qosClass = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPrepareForCreateResetsStatus(t *testing.T) {
	p := testPod(func(p *corev1.Pod) {
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.42.0.9", HostIP: "192.168.1.2"}
	})
	prepareForCreate(p)
	if p.Status.Phase != corev1.PodPending || p.Status.PodIP != "" || p.Status.HostIP != "" {
		t.Errorf("pod status = %+v, want only phase Pending", p.Status)
	}

	d := testDeployment(func(d *appsv1.Deployment) { d.Status.ReadyReplicas = 3; d.Generation = 7 })
	prepareForCreate(d)
	if d.Status.ReadyReplicas != 0 || d.Generation != 1 {
		t.Errorf("deployment status %+v generation %d, want empty status, generation 1", d.Status, d.Generation)
	}

	n := testNode(func(n *corev1.Node) {
		n.Status.Capacity = corev1.ResourceList{"cpu": resource.MustParse("4")}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.2"}}
	})
	created(t, n)
	if len(n.Status.Addresses) != 1 || n.Status.Allocatable.Cpu().String() != "4" {
		t.Errorf("node status = %+v, want it kept, allocatable defaulting to capacity", n.Status)
	}

	ns := created(t, testNamespace(func(ns *corev1.Namespace) { ns.Status.Phase = corev1.NamespaceTerminating }))
	if ns.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace phase = %s, want Active", ns.Status.Phase)
	}
	if !equality.Semantic.DeepEqual(ns.Spec.Finalizers, []corev1.FinalizerName{"kubernetes"}) {
		t.Errorf("namespace finalizers = %v, want [kubernetes]", ns.Spec.Finalizers)
	}
	if ns.Labels["kubernetes.io/metadata.name"] != "team-a" {
		t.Errorf("namespace labels = %v, want kubernetes.io/metadata.name=team-a", ns.Labels)
	}

	pvc := created(t, testClaim(func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimBound }))
	if pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("claim phase = %s, want Pending", pvc.Status.Phase)
	}
	pv := created(t, testVolume(func(v *corev1.PersistentVolume) { v.Status.Phase = corev1.VolumeBound }))
	if pv.Status.Phase != corev1.VolumePending || pv.Status.LastPhaseTransitionTime == nil {
		t.Errorf("volume status = %+v, want Pending with a transition time", pv.Status)
	}
	svc := created(t, testService(func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	}))
	if len(svc.Status.LoadBalancer.Ingress) != 0 {
		t.Errorf("service status = %+v, want it cleared", svc.Status)
	}
}

func TestWorkloadDefaults(t *testing.T) {
	d := created(t, testDeployment())
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "25%" || d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "25%" ||
		*d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 {
		t.Errorf("deployment spec defaults wrong: %+v", d.Spec)
	}
	ts := d.Spec.Template.Spec
	if ts.RestartPolicy != corev1.RestartPolicyAlways || ts.DNSPolicy != corev1.DNSClusterFirst ||
		*ts.TerminationGracePeriodSeconds != 30 || ts.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("template pod spec defaults wrong: %+v", ts)
	}
	if ts.ServiceAccountName != "" || len(ts.Tolerations) != 0 || ts.EnableServiceLinks != nil || ts.Priority != nil {
		t.Errorf("template got pod-only defaults: serviceAccountName %q tolerations %v enableServiceLinks %v priority %v",
			ts.ServiceAccountName, ts.Tolerations, ts.EnableServiceLinks, ts.Priority)
	}
	if len(d.Labels) != 0 {
		t.Errorf("apps/v1 deployment labels = %v, want none copied from the template", d.Labels)
	}

	rs := created(t, testReplicaSet())
	if *rs.Spec.Replicas != 1 {
		t.Errorf("replicaset replicas = %d, want 1", *rs.Spec.Replicas)
	}

	ds := created(t, testDaemonSet())
	if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType ||
		u.RollingUpdate.MaxUnavailable.String() != "1" || u.RollingUpdate.MaxSurge.String() != "0" || *ds.Spec.RevisionHistoryLimit != 10 {
		t.Errorf("daemonset defaults wrong: %+v", ds.Spec)
	}

	sts := created(t, testStatefulSet())
	if *sts.Spec.Replicas != 1 || sts.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
		sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || *sts.Spec.UpdateStrategy.RollingUpdate.Partition != 0 ||
		*sts.Spec.RevisionHistoryLimit != 10 ||
		sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted != appsv1.RetainPersistentVolumeClaimRetentionPolicyType ||
		sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("statefulset defaults wrong: %+v", sts.Spec)
	}
	if m := sts.Spec.VolumeClaimTemplates[0].Spec.VolumeMode; m == nil || *m != corev1.PersistentVolumeFilesystem {
		t.Errorf("claim template volumeMode = %v, want Filesystem", m)
	}

	cj := created(t, testCronJob())
	if cj.Spec.ConcurrencyPolicy != batchv1.AllowConcurrent || *cj.Spec.Suspend || *cj.Spec.SuccessfulJobsHistoryLimit != 3 || *cj.Spec.FailedJobsHistoryLimit != 1 {
		t.Errorf("cronjob defaults wrong: %+v", cj.Spec)
	}
	if cj.Spec.JobTemplate.Spec.Template.Spec.DNSPolicy != corev1.DNSClusterFirst || cj.Spec.JobTemplate.Spec.BackoffLimit != nil {
		t.Errorf("cronjob job template: want pod spec defaults only, got %+v", cj.Spec.JobTemplate.Spec)
	}
}

func TestJobDefaultsGenerateSelector(t *testing.T) {
	j := created(t, testJob())
	uid := string(j.UID)
	s := j.Spec
	if *s.Completions != 1 || *s.Parallelism != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != batchv1.NonIndexedCompletion ||
		*s.Suspend || *s.ManualSelector || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed {
		t.Errorf("job defaults wrong: %+v", s)
	}
	wantLabels := map[string]string{
		"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
		"batch.kubernetes.io/job-name": "pi", "job-name": "pi",
	}
	if !equality.Semantic.DeepEqual(s.Template.Labels, wantLabels) {
		t.Errorf("template labels = %v, want %v", s.Template.Labels, wantLabels)
	}
	if !equality.Semantic.DeepEqual(s.Selector.MatchLabels, map[string]string{"batch.kubernetes.io/controller-uid": uid}) {
		t.Errorf("selector = %v, want the controller uid", s.Selector)
	}
	if !equality.Semantic.DeepEqual(j.Labels, wantLabels) {
		t.Errorf("job labels = %v, want the template's", j.Labels)
	}

	indexed := created(t, testJob(func(j *batchv1.Job) {
		j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
		j.Spec.Completions = new(int32(4))
		j.Spec.BackoffLimitPerIndex = new(int32(1))
	}))
	if *indexed.Spec.BackoffLimit != 1<<31-1 || *indexed.Spec.Parallelism != 1 {
		t.Errorf("indexed job: backoffLimit %d parallelism %d, want max int32 and 1", *indexed.Spec.BackoffLimit, *indexed.Spec.Parallelism)
	}

	manual := created(t, testJob(func(j *batchv1.Job) {
		j.Spec.ManualSelector = new(true)
		j.Spec.Selector = webSelector()
		j.Spec.Template.Labels = map[string]string{"app": "web"}
	}))
	if len(manual.Spec.Template.Labels) != 1 {
		t.Errorf("manual selector job got generated labels: %v", manual.Spec.Template.Labels)
	}
}

func TestServiceDefaults(t *testing.T) {
	s := created(t, testService())
	want := corev1.ServiceSpec{
		Selector:              map[string]string{"app": "web"},
		Ports:                 []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}},
		Type:                  corev1.ServiceTypeClusterIP,
		SessionAffinity:       corev1.ServiceAffinityNone,
		IPFamilyPolicy:        new(corev1.IPFamilyPolicySingleStack),
		IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
		InternalTrafficPolicy: new(corev1.ServiceInternalTrafficPolicyCluster),
	}
	if !equality.Semantic.DeepEqual(s.Spec, want) {
		t.Errorf("service spec = %+v\nwant %+v", s.Spec, want)
	}

	lb := created(t, testService(func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].TargetPort = intstr.FromString("http")
	}))
	if lb.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || !*lb.Spec.AllocateLoadBalancerNodePorts ||
		lb.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("load balancer defaults wrong: %+v", lb.Spec)
	}

	en := created(t, testService(func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "db.example.com"
		s.Spec.Selector = nil
	}))
	if en.Spec.IPFamilyPolicy != nil || en.Spec.IPFamilies != nil || en.Spec.InternalTrafficPolicy != nil {
		t.Errorf("ExternalName service got IP defaults: %+v", en.Spec)
	}

	v6 := created(t, testService(func(s *corev1.Service) { s.Spec.ClusterIP = "fd00:43::10" }))
	if !equality.Semantic.DeepEqual(v6.Spec.ClusterIPs, []string{"fd00:43::10"}) || v6.Spec.IPFamilies[0] != corev1.IPv6Protocol {
		t.Errorf("clusterIPs %v families %v, want the IPv6 address and IPv6", v6.Spec.ClusterIPs, v6.Spec.IPFamilies)
	}
}

func TestOtherDefaults(t *testing.T) {
	sec := created(t, testSecret(func(s *corev1.Secret) {
		s.StringData = map[string]string{"username": "admin", "password": "from-stringData"}
	}))
	if sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret type = %q, want Opaque", sec.Type)
	}
	if string(sec.Data["username"]) != "admin" || string(sec.Data["password"]) != "from-stringData" || sec.StringData != nil {
		t.Errorf("secret data %q stringData %q, want stringData merged into data", sec.Data, sec.StringData)
	}
	pv := created(t, testVolume())
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || *pv.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("volume defaults wrong: %+v", pv.Spec)
	}
	pvc := created(t, testClaim())
	if *pvc.Spec.VolumeMode != corev1.PersistentVolumeFilesystem {
		t.Errorf("claim volumeMode = %s, want Filesystem", *pvc.Spec.VolumeMode)
	}
	sc := created(t, testStorageClass())
	if *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || *sc.VolumeBindingMode != storagev1.VolumeBindingImmediate {
		t.Errorf("storage class defaults wrong: %+v", sc)
	}
	es := created(t, &discoveryv1.EndpointSlice{
		ObjectMeta:  testMeta("web-abc12"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.7"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: new(int32(80))}},
	})
	if *es.Ports[0].Protocol != corev1.ProtocolTCP || *es.Ports[0].Name != "" {
		t.Errorf("endpoint slice port = %+v, want protocol TCP and name \"\"", es.Ports[0])
	}
	ep := created(t, &corev1.Endpoints{
		ObjectMeta: testMeta("web"),
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.42.0.7"}},
			Ports:     []corev1.EndpointPort{{Port: 80}},
		}},
	})
	if ep.Subsets[0].Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("endpoints port protocol = %q, want TCP", ep.Subsets[0].Ports[0].Protocol)
	}
}

// Every served kind has valid examples that pass.
func TestValidObjectsPass(t *testing.T) {
	for _, obj := range []runtime.Object{
		testPod(), testDeployment(), testReplicaSet(), testDaemonSet(), testStatefulSet(), testJob(), testCronJob(),
		testService(), testClaim(), testVolume(), testConfigMap(), testSecret(), testNode(), testNamespace(), testStorageClass(),
		testService(func(s *corev1.Service) { s.Spec.ClusterIP = "None"; s.Spec.Ports = nil }),
		testService(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "https", Port: 443}}
		}),
		testSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeTLS
			s.Data = map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}
		}),
		testSecret(func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)}
		}),
		testNode(func(n *corev1.Node) {
			n.Spec.PodCIDR = "10.42.1.0/24"
			n.Spec.Taints = []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
		}),
		testPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox:1.36", Command: []string{"true"}}}
			p.Spec.Volumes = []corev1.Volume{
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
				{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
				}}}},
			}
			c := &p.Spec.Containers[0]
			c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "token", MountPath: "/var/run/token", ReadOnly: true}}
			c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}}
			c.Env = []corev1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "app.key", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}}}
			c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
			p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
			p.Spec.HostNetwork = true
		}),
		&corev1.ServiceAccount{ObjectMeta: testMeta("builder")},
		&coordinationv1.Lease{ObjectMeta: testMeta("pi-1"), Spec: coordinationv1.LeaseSpec{HolderIdentity: new("pi-1"), LeaseDurationSeconds: new(int32(40))}},
		&corev1.Event{
			ObjectMeta:     testMeta("web.17c3a1b2f3e4d5c6"),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"},
			Reason:         "Scheduled", Message: "Successfully assigned default/web to pi-1", Type: corev1.EventTypeNormal,
		},
		&eventsv1.Event{
			ObjectMeta: testMeta("web.17c3a1b2f3e4d5c7"), EventTime: metav1.NowMicro(),
			ReportingController: "skiff.io/scheduler", ReportingInstance: "scheduler-pi-1", Action: "Binding", Reason: "Scheduled",
			Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web"}, Type: corev1.EventTypeNormal,
		},
	} {
		if errs := create(obj); len(errs) > 0 {
			t.Errorf("%T %s: unexpected errors: %v", obj, objectMetaOf(obj).Name, errs)
		}
	}
}

// The strategy functions never panic, whatever a client sends: every
// served kind, filled at random, goes through all four of them.
func TestStrategiesTolerateRandomObjects(t *testing.T) {
	reg, err := New()
	if err != nil {
		t.Fatal(err)
	}
	f := randfill.NewWithSeed(1).NilChance(0.3).NumElements(0, 2).MaxDepth(12).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(2000)-100, resource.DecimalSI)
		},
	)
	for _, r := range reg.All() {
		for i := 0; i < 100; i++ {
			obj, old := r.New(), r.New()
			f.Fill(obj)
			f.Fill(old)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("%s: panic: %v\n%s", r.Kind, p, debug.Stack())
					}
				}()
				defaultObject(obj, Options{})
				prepareForCreate(obj)
				validateObject(obj)
				defaultObject(old, Options{})
				validateObjectUpdate(obj, old)
				validateObjectUpdate(obj, obj.DeepCopyObject())
			}()
		}
	}
}
