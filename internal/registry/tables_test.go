package registry

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var tableNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func tAgo(d time.Duration) metav1.Time { return metav1.NewTime(tableNow.Add(-d)) }

func tPtr[T any](v T) *T { return &v }

// tableCellsOf returns obj's row and checks it has one cell per column of res.
func tableCellsOf(t *testing.T, res string, obj runtime.Object) map[string]interface{} {
	t.Helper()
	reg, err := New()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := reg.ForObject(obj)
	if !ok {
		t.Fatalf("no resource serves %T (set TypeMeta)", obj)
	}
	if r.Resource != res {
		t.Fatalf("%T is served as %s, want %s", obj, r.Resource, res)
	}
	cols := r.TableColumns()
	cells := tableRowAt(obj, tableNow)
	if len(cells) != len(cols) {
		t.Fatalf("%s: %d cells for %d columns", res, len(cells), len(cols))
	}
	byName := map[string]interface{}{}
	for i, c := range cols {
		byName[c.Name] = cells[i]
	}
	return byName
}

func wantTableCells(t *testing.T, got map[string]interface{}, want map[string]interface{}) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("no column %q", k)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %#v, want %#v", k, g, w)
		}
	}
}

// tPod builds a pod with the given container statuses, one container each.
func tPod(name string, statuses ...corev1.ContainerStatus) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: tAgo(10 * time.Minute)},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for i, s := range statuses {
		if s.Name == "" {
			s.Name = "c" + string(rune('0'+i))
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: s.Name, Image: "busybox"})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, s)
	}
	return p
}

func tRunning(ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: tAgo(9 * time.Minute)}}}
}

func tWaiting(reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func TestTablePodRunning(t *testing.T) {
	p := tPod("web", tRunning(true))
	p.Spec.NodeName = "node-1"
	p.Status.PodIP = "10.42.0.5"
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.42.0.5"}}
	wantTableCells(t, tableCellsOf(t, "pods", p), map[string]interface{}{
		"Name": "web", "Ready": "1/1", "Status": "Running", "Restarts": "0", "Age": "10m",
		"IP": "10.42.0.5", "Node": "node-1", "Nominated Node": "<none>", "Readiness Gates": "<none>",
	})
}

func TestTablePodStatuses(t *testing.T) {
	crash := tWaiting("CrashLoopBackOff")
	crash.RestartCount = 4
	crash.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: tAgo(5 * time.Minute)}

	completed := corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}
	exited := corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Signal: 0}}}

	terminating := tPod("t", tRunning(true))
	terminating.DeletionTimestamp = tPtr(tAgo(time.Second))
	lost := tPod("l", tRunning(true))
	lost.DeletionTimestamp = tPtr(tAgo(time.Second))
	lost.Status.Reason = "NodeLost"
	succeededDeleting := tPod("s", completed)
	succeededDeleting.Status.Phase = corev1.PodSucceeded
	succeededDeleting.DeletionTimestamp = tPtr(tAgo(time.Second))

	initWaiting := tPod("i", tWaiting("PodInitializing"))
	initWaiting.Status.Phase = corev1.PodPending
	initWaiting.Spec.InitContainers = []corev1.Container{{Name: "setup"}}
	initWaiting.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "setup", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}

	initCrash := tPod("ic", tWaiting("PodInitializing"))
	initCrash.Status.Phase = corev1.PodPending
	initCrash.Spec.InitContainers = []corev1.Container{{Name: "setup"}}
	initCrash.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "setup", RestartCount: 2, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}

	gated := tPod("g")
	gated.Status.Phase = corev1.PodPending
	gated.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "SchedulingGated"}}

	sidecar := tPod("sc", tRunning(true))
	sidecar.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: tPtr(corev1.ContainerRestartPolicyAlways)}}
	sidecar.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "proxy", Ready: true, Started: tPtr(true), RestartCount: 1,
		State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: tAgo(90 * time.Second)}}}}
	sidecar.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}

	gates := tPod("rg", tRunning(true))
	gates.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "a"}, {ConditionType: "b"}}
	gates.Status.Conditions = []corev1.PodCondition{{Type: "a", Status: corev1.ConditionTrue}, {Type: "b", Status: corev1.ConditionFalse}}

	for _, tc := range []struct {
		name                     string
		pod                      *corev1.Pod
		ready, status, restarts  string
		readinessGates, optional string
	}{
		{name: "crashloop", pod: tPod("c", crash), ready: "0/1", status: "CrashLoopBackOff", restarts: "4 (5m ago)"},
		{name: "creating", pod: tPod("n", tWaiting("ContainerCreating")), ready: "0/1", status: "ContainerCreating", restarts: "0"},
		{name: "image pull", pod: tPod("e", tWaiting("ErrImagePull")), ready: "0/1", status: "ErrImagePull", restarts: "0"},
		{name: "completed", pod: tPod("d", completed), ready: "0/1", status: "Completed", restarts: "0"},
		{name: "exit code", pod: tPod("x", exited), ready: "0/1", status: "ExitCode:137", restarts: "0"},
		{name: "one of two ready", pod: tPod("h", tRunning(true), tRunning(false)), ready: "1/2", status: "Running", restarts: "0"},
		{name: "completed beside running", pod: tPod("cr", completed, tRunning(true)), ready: "1/2", status: "NotReady", restarts: "0"},
		{name: "terminating", pod: terminating, ready: "1/1", status: "Terminating", restarts: "0"},
		{name: "node lost", pod: lost, ready: "1/1", status: "Unknown", restarts: "0"},
		{name: "succeeded while deleting", pod: succeededDeleting, ready: "0/1", status: "Completed", restarts: "0"},
		{name: "init running", pod: initWaiting, ready: "0/1", status: "Init:0/1", restarts: "0"},
		{name: "init crashloop", pod: initCrash, ready: "0/1", status: "Init:CrashLoopBackOff", restarts: "2"},
		{name: "scheduling gated", pod: gated, ready: "0/0", status: "SchedulingGated", restarts: "0"},
		{name: "sidecar", pod: sidecar, ready: "2/2", status: "Running", restarts: "1 (90s ago)"},
		{name: "readiness gates", pod: gates, ready: "1/1", status: "Running", restarts: "0", readinessGates: "1/2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]interface{}{"Ready": tc.ready, "Status": tc.status, "Restarts": tc.restarts}
			if tc.readinessGates != "" {
				want["Readiness Gates"] = tc.readinessGates
			}
			wantTableCells(t, tableCellsOf(t, "pods", tc.pod), want)
		})
	}
}

func tNode(name string, ready corev1.ConditionStatus, unschedulable bool, labels map[string]string) *corev1.Node {
	n := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, CreationTimestamp: tAgo(50 * time.Hour)},
		Spec:       corev1.NodeSpec{Unschedulable: unschedulable},
	}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func TestTableNodes(t *testing.T) {
	n := tNode("pi-1", corev1.ConditionTrue, false, map[string]string{
		"node-role.kubernetes.io/control-plane": "true",
		"node-role.kubernetes.io/master":        "true",
		"kubernetes.io/role":                    "etcd",
		"kubernetes.io/hostname":                "pi-1",
	})
	n.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "v1.37.2+skiff", OSImage: "Debian GNU/Linux 13", KernelVersion: "6.12.0", ContainerRuntimeVersion: "skiff://0.1"}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "pi-1"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.10"}}
	wantTableCells(t, tableCellsOf(t, "nodes", n), map[string]interface{}{
		"Name": "pi-1", "Status": "Ready", "Roles": "control-plane,etcd,master", "Age": "2d2h", "Version": "v1.37.2+skiff",
		"Internal-IP": "192.168.1.10", "External-IP": "<none>", "OS-Image": "Debian GNU/Linux 13",
		"Kernel-Version": "6.12.0", "Container-Runtime": "skiff://0.1",
	})

	wantTableCells(t, tableCellsOf(t, "nodes", tNode("a", corev1.ConditionFalse, true, nil)), map[string]interface{}{
		"Status": "NotReady,SchedulingDisabled", "Roles": "<none>", "OS-Image": "<unknown>",
	})
	wantTableCells(t, tableCellsOf(t, "nodes", tNode("b", corev1.ConditionUnknown, false, nil)), map[string]interface{}{"Status": "NotReady"})
	wantTableCells(t, tableCellsOf(t, "nodes", tNode("c", "", false, nil)), map[string]interface{}{"Status": "Unknown"})
	wantTableCells(t, tableCellsOf(t, "nodes", tNode("d", corev1.ConditionTrue, true, map[string]string{"node-role.kubernetes.io/worker": ""})), map[string]interface{}{
		"Status": "Ready,SchedulingDisabled", "Roles": "worker",
	})
}

func tService(typ corev1.ServiceType, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: tAgo(3 * time.Second)},
		Spec:       corev1.ServiceSpec{Type: typ, ClusterIP: "10.43.0.20", ClusterIPs: []string{"10.43.0.20"}, Ports: ports},
	}
}

func TestTableServices(t *testing.T) {
	http := corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP}
	dns := corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP}

	svc := tService(corev1.ServiceTypeClusterIP, http, dns)
	svc.Spec.Selector = map[string]string{"app": "web", "tier": "front"}
	wantTableCells(t, tableCellsOf(t, "services", svc), map[string]interface{}{
		"Name": "web", "Type": "ClusterIP", "Cluster-IP": "10.43.0.20", "External-IP": "<none>",
		"Port(s)": "80/TCP,53/UDP", "Age": "3s", "Selector": "app=web,tier=front",
	})

	np := tService(corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}, corev1.ServicePort{Port: 443, NodePort: 30443, Protocol: corev1.ProtocolTCP})
	np.Spec.ExternalIPs = []string{"1.2.3.4"}
	wantTableCells(t, tableCellsOf(t, "services", np), map[string]interface{}{
		"Type": "NodePort", "Port(s)": "80:30080/TCP,443:30443/TCP", "External-IP": "1.2.3.4", "Selector": "<none>",
	})

	lb := tService(corev1.ServiceTypeLoadBalancer, corev1.ServicePort{Port: 443, NodePort: 31443, Protocol: corev1.ProtocolTCP})
	wantTableCells(t, tableCellsOf(t, "services", lb), map[string]interface{}{"External-IP": "<pending>", "Port(s)": "443:31443/TCP"})
	lb.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.1.11"}, {IP: "192.168.1.10"}, {Hostname: "lb.example"}}
	lb.Spec.ExternalIPs = []string{"5.6.7.8"}
	wantTableCells(t, tableCellsOf(t, "services", lb), map[string]interface{}{"External-IP": "192.168.1.10,192.168.1.11,lb.example,5.6.7.8"})

	headless := tService(corev1.ServiceTypeClusterIP)
	headless.Spec.ClusterIP, headless.Spec.ClusterIPs = "None", []string{"None"}
	wantTableCells(t, tableCellsOf(t, "services", headless), map[string]interface{}{"Cluster-IP": "None", "Port(s)": "<none>"})

	ext := tService(corev1.ServiceTypeExternalName)
	ext.Spec.ClusterIP, ext.Spec.ClusterIPs, ext.Spec.ExternalName = "", nil, "db.example.com"
	wantTableCells(t, tableCellsOf(t, "services", ext), map[string]interface{}{"Cluster-IP": "<none>", "External-IP": "db.example.com"})
}

func TestTableEndpoints(t *testing.T) {
	ep := &corev1.Endpoints{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Endpoints"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: tAgo(time.Hour)},
		Subsets: []corev1.EndpointSubset{{
			Addresses:         []corev1.EndpointAddress{{IP: "10.42.0.5"}, {IP: "10.42.0.6"}},
			NotReadyAddresses: []corev1.EndpointAddress{{IP: "10.42.0.9"}},
			Ports:             []corev1.EndpointPort{{Port: 80}, {Port: 443}},
		}},
	}
	wantTableCells(t, tableCellsOf(t, "endpoints", ep), map[string]interface{}{"Endpoints": "10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more...", "Age": "60m"})
	ep.Subsets[0].Ports = ep.Subsets[0].Ports[:1]
	wantTableCells(t, tableCellsOf(t, "endpoints", ep), map[string]interface{}{"Endpoints": "10.42.0.5:80,10.42.0.6:80"})
	ep.Subsets = nil
	wantTableCells(t, tableCellsOf(t, "endpoints", ep), map[string]interface{}{"Endpoints": "<none>"})
}

func TestTableWorkloads(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}, {Name: "log", Image: "busybox"}}}}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: tAgo(125 * time.Second)},
		Spec:       appsv1.DeploymentSpec{Replicas: tPtr(int32(3)), Selector: sel, Template: tmpl},
		Status:     appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
	}
	wantTableCells(t, tableCellsOf(t, "deployments", d), map[string]interface{}{
		"Name": "web", "Ready": "2/3", "Up-to-date": int64(3), "Available": int64(2), "Age": "2m5s",
		"Containers": "app,log", "Images": "nginx:1.27,busybox", "Selector": "app=web",
	})

	rs := &appsv1.ReplicaSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d4f", CreationTimestamp: tAgo(time.Minute)},
		Spec:       appsv1.ReplicaSetSpec{Replicas: tPtr(int32(3)), Selector: sel, Template: tmpl},
		Status:     appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1},
	}
	wantTableCells(t, tableCellsOf(t, "replicasets", rs), map[string]interface{}{"Desired": int64(3), "Current": int64(3), "Ready": int64(1), "Selector": "app=web"})

	ds := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "proxy", CreationTimestamp: tAgo(time.Minute)},
		Spec:       appsv1.DaemonSetSpec{Selector: sel, Template: tmpl},
		Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 3, NumberAvailable: 2},
	}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	wantTableCells(t, tableCellsOf(t, "daemonsets", ds), map[string]interface{}{
		"Desired": int64(3), "Current": int64(3), "Ready": int64(2), "Up-to-date": int64(3), "Available": int64(2), "Node Selector": "kubernetes.io/os=linux",
	})

	ss := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Template: tmpl},
		Status:     appsv1.StatefulSetStatus{ReadyReplicas: 1},
	}
	wantTableCells(t, tableCellsOf(t, "statefulsets", ss), map[string]interface{}{"Ready": "1/1", "Age": "<unknown>", "Images": "nginx:1.27,busybox"})
}

func TestTableJobs(t *testing.T) {
	job := func(conds ...batchv1.JobConditionType) *batchv1.Job {
		j := &batchv1.Job{
			TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			ObjectMeta: metav1.ObjectMeta{Name: "pi", CreationTimestamp: tAgo(time.Hour)},
			Spec:       batchv1.JobSpec{Completions: tPtr(int32(3)), Parallelism: tPtr(int32(1))},
			Status:     batchv1.JobStatus{Succeeded: 1, StartTime: tPtr(tAgo(3 * time.Minute))},
		}
		for _, c := range conds {
			j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: c, Status: corev1.ConditionTrue})
		}
		return j
	}
	wantTableCells(t, tableCellsOf(t, "jobs", job()), map[string]interface{}{"Status": "Running", "Completions": "1/3", "Duration": "3m", "Age": "60m", "Selector": "<none>"})

	done := job(batchv1.JobSuccessCriteriaMet, batchv1.JobComplete)
	done.Status.CompletionTime = tPtr(tAgo(time.Minute))
	wantTableCells(t, tableCellsOf(t, "jobs", done), map[string]interface{}{"Status": "Complete", "Duration": "2m"})
	wantTableCells(t, tableCellsOf(t, "jobs", job(batchv1.JobFailureTarget, batchv1.JobFailed)), map[string]interface{}{"Status": "Failed"})
	wantTableCells(t, tableCellsOf(t, "jobs", job(batchv1.JobSuspended)), map[string]interface{}{"Status": "Suspended"})
	wantTableCells(t, tableCellsOf(t, "jobs", job(batchv1.JobSuccessCriteriaMet)), map[string]interface{}{"Status": "SuccessCriteriaMet"})

	notYet := job(batchv1.JobComplete)
	notYet.Status.Conditions[0].Status = corev1.ConditionFalse
	notYet.DeletionTimestamp = tPtr(tAgo(0))
	wantTableCells(t, tableCellsOf(t, "jobs", notYet), map[string]interface{}{"Status": "Terminating"})

	parallel := job()
	parallel.Spec.Completions, parallel.Spec.Parallelism, parallel.Status.StartTime = nil, tPtr(int32(4)), nil
	wantTableCells(t, tableCellsOf(t, "jobs", parallel), map[string]interface{}{"Completions": "1/1 of 4", "Duration": ""})

	cj := &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: "backup", CreationTimestamp: tAgo(72 * time.Hour)},
		Spec:       batchv1.CronJobSpec{Schedule: "*/5 * * * *", Suspend: tPtr(false)},
		Status:     batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "backup-1"}}, LastScheduleTime: tPtr(tAgo(4 * time.Minute))},
	}
	wantTableCells(t, tableCellsOf(t, "cronjobs", cj), map[string]interface{}{
		"Schedule": "*/5 * * * *", "Timezone": "<none>", "Suspend": "false", "Active": int64(1), "Last Schedule": "4m", "Age": "3d",
	})
}

func TestTableEvents(t *testing.T) {
	e := &corev1.Event{
		TypeMeta:       metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1234"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{app}"},
		Type:           "Warning", Reason: "BackOff", Message: "Back-off restarting failed container\n",
		Source:         corev1.EventSource{Component: "kubelet", Host: "pi-1"},
		FirstTimestamp: tAgo(20 * time.Minute), LastTimestamp: tAgo(30 * time.Second), Count: 7,
	}
	cols := tableColumns(schema.GroupResource{Resource: "events"})
	if cols[0].Name != "Last Seen" {
		t.Errorf("first event column %q", cols[0].Name)
	}
	wantTableCells(t, tableCellsOf(t, "events", e), map[string]interface{}{
		"Last Seen": "30s", "Type": "Warning", "Reason": "BackOff", "Object": "pod/web", "Subobject": "spec.containers{app}",
		"Source": "kubelet, pi-1", "Message": "Back-off restarting failed container", "First Seen": "20m", "Count": int64(7), "Name": "web.1234",
	})

	ev := &eventsv1.Event{
		TypeMeta:            metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
		ObjectMeta:          metav1.ObjectMeta{Name: "web.5678"},
		EventTime:           metav1.NewMicroTime(tableNow.Add(-5 * time.Minute)),
		Regarding:           corev1.ObjectReference{Kind: "Node"},
		ReportingController: "skiff/scheduler", Type: "Normal", Reason: "Scheduled", Note: "ok",
	}
	wantTableCells(t, tableCellsOf(t, "events", ev), map[string]interface{}{
		"Last Seen": "5m", "First Seen": "5m", "Object": "node", "Source": "skiff/scheduler", "Count": int64(1), "Message": "ok",
	})
	ev.Series = &eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(tableNow.Add(-10 * time.Second))}
	wantTableCells(t, tableCellsOf(t, "events", ev), map[string]interface{}{"Last Seen": "10s", "Count": int64(3)})
}

func TestTableStorage(t *testing.T) {
	fs := corev1.PersistentVolumeFilesystem
	pv := &corev1.PersistentVolume{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
		ObjectMeta: metav1.ObjectMeta{Name: "pv-1", CreationTimestamp: tAgo(time.Minute)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: "default", Name: "data"},
			StorageClassName:              "local-path",
			VolumeMode:                    &fs,
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
	}
	wantTableCells(t, tableCellsOf(t, "persistentvolumes", pv), map[string]interface{}{
		"Capacity": "10Gi", "Access Modes": "RWO,ROX,RWOP", "Reclaim Policy": "Retain", "Status": "Bound", "Claim": "default/data",
		"StorageClass": "local-path", "VolumeAttributesClass": "<unset>", "Reason": "", "VolumeMode": "Filesystem",
	})

	pvc := &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: "data", CreationTimestamp: tAgo(time.Minute)},
		Spec:       corev1.PersistentVolumeClaimSpec{StorageClassName: tPtr("local-path")},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	wantTableCells(t, tableCellsOf(t, "persistentvolumeclaims", pvc), map[string]interface{}{
		"Status": "Pending", "Volume": "", "Capacity": "", "Access Modes": "", "StorageClass": "local-path", "VolumeMode": "<unset>",
	})
	pvc.Spec.VolumeName = "pv-1"
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}
	wantTableCells(t, tableCellsOf(t, "persistentvolumeclaims", pvc), map[string]interface{}{"Status": "Bound", "Volume": "pv-1", "Capacity": "1Gi", "Access Modes": "RWX"})

	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{
		TypeMeta:          metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
		ObjectMeta:        metav1.ObjectMeta{Name: "local-path", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       "skiff.io/local-path",
		VolumeBindingMode: &wffc,
	}
	wantTableCells(t, tableCellsOf(t, "storageclasses", sc), map[string]interface{}{
		"Name": "local-path (default)", "Provisioner": "skiff.io/local-path", "ReclaimPolicy": "Delete",
		"VolumeBindingMode": "WaitForFirstConsumer", "AllowVolumeExpansion": false,
	})
}

func TestTableSmallKinds(t *testing.T) {
	es := &discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: tPtr(int32(80))}, {Name: tPtr("metrics")}, {}, {Port: tPtr(int32(9))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.5"}}, {Addresses: []string{"10.42.0.6"}}},
	}
	wantTableCells(t, tableCellsOf(t, "endpointslices", es), map[string]interface{}{
		"AddressType": "IPv4", "Ports": "80,metrics,* + 1 more...", "Endpoints": "10.42.0.5,10.42.0.6",
	})
	es.Ports, es.Endpoints = nil, nil
	wantTableCells(t, tableCellsOf(t, "endpointslices", es), map[string]interface{}{"Ports": "<unset>", "Endpoints": "<unset>"})

	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, Data: map[string]string{"a": "1"}, BinaryData: map[string][]byte{"b": nil}}
	wantTableCells(t, tableCellsOf(t, "configmaps", cm), map[string]interface{}{"Data": int64(2)})
	sec := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"a": nil}}
	wantTableCells(t, tableCellsOf(t, "secrets", sec), map[string]interface{}{"Type": "Opaque", "Data": int64(1)})
	sa := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}}
	wantTableCells(t, tableCellsOf(t, "serviceaccounts", sa), map[string]interface{}{"Secrets": int64(0)})
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	wantTableCells(t, tableCellsOf(t, "namespaces", ns), map[string]interface{}{"Name": "kube-system", "Status": "Active"})
}

func TestTableAge(t *testing.T) {
	for _, tc := range []struct {
		t    metav1.Time
		want string
	}{
		{tAgo(5 * time.Second), "5s"},
		{tAgo(119 * time.Second), "119s"},
		{tAgo(3*time.Minute + 2*time.Second), "3m2s"},
		{tAgo(10 * time.Minute), "10m"},
		{tAgo(5*time.Hour + 7*time.Minute), "5h7m"},
		{tAgo(51 * time.Hour), "2d3h"},
		{tAgo(40 * 24 * time.Hour), "40d"},
		{tAgo(-time.Minute), "<invalid>"},
		{metav1.Time{}, "<unknown>"},
	} {
		if got := tableAge(tc.t, tableNow); got != tc.want {
			t.Errorf("age of %v = %q, want %q", tc.t, got, tc.want)
		}
	}
}

// TestTableEveryResource checks that every served resource has columns
// (Name first, with format "name", except events) and that an empty object
// gives one cell per column without panicking.
func TestTableEveryResource(t *testing.T) {
	reg, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reg.All() {
		if r.Review {
			continue // answered, never listed
		}
		t.Run(r.Group+"/"+r.Resource, func(t *testing.T) {
			cols := r.TableColumns()
			if tableColumns(r.GroupResource()) == nil {
				t.Errorf("no table columns of its own")
			}
			names := 0
			for _, c := range cols {
				if c.Format == "name" {
					names++
					if c.Name != "Name" {
						t.Errorf("name-format column called %q", c.Name)
					}
				}
				switch c.Type {
				case "string", "integer", "boolean", "date", "number":
				default:
					t.Errorf("column %q has type %q", c.Name, c.Type)
				}
			}
			if names != 1 {
				t.Errorf("%d columns with format name, want 1", names)
			}
			if r.Resource != "events" && (cols[0].Name != "Name" || cols[0].Format != "name" || cols[0].Priority != 0) {
				t.Errorf("first column %+v, want Name", cols[0])
			}
			cells := r.TableRow(r.New())
			if len(cells) != len(cols) {
				t.Fatalf("%d cells for %d columns", len(cells), len(cols))
			}
			for i, c := range cells {
				switch c.(type) {
				case string, int64, bool:
				default:
					t.Errorf("cell %d (%s) is %T", i, cols[i].Name, c)
				}
			}
		})
	}
}
