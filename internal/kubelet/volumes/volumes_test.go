package volumes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"skiff/internal/config"
	"skiff/internal/server/servertest"
)

const ns = "default"

func ptr[T any](v T) *T { return &v }

func newPod(uid string, vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: ns, UID: types.UID(uid),
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": "say \"hi\""},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{{
				Name: "app",
				Resources: corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
				},
			}},
			Volumes: vols,
		},
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != want {
		t.Errorf("%s: mode %o, want %o", p, info.Mode().Perm(), want)
	}
}

func mustCreate[T any](t *testing.T, create func(context.Context, T, metav1.CreateOptions) (T, error), obj T) T {
	t.Helper()
	out, err := create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return out
}

// TestAPIVolumes runs against a real API server: configMap, secret,
// downwardAPI, projected and persistentVolumeClaim volumes. The server
// issues service account tokens (Node,RBAC).
func TestAPIVolumes(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane, func(c *config.Server) { c.AuthorizationMode = config.AuthorizationNodeRBAC })
	client := s.Client(t)
	ctx := context.Background()

	mustCreate(t, client.CoreV1().Nodes().Create, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"),
		}},
	})
	mustCreate(t, client.CoreV1().ConfigMaps(ns).Create, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data:       map[string]string{"app.conf": "port=80\n", "level": "debug"},
		BinaryData: map[string][]byte{"blob": {0, 1, 2}},
	})
	mustCreate(t, client.CoreV1().Secrets(ns).Create, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		StringData: map[string]string{"password": "hunter2", "user": "admin"},
	})

	m := New(Config{Root: t.TempDir(), Client: client, NodeName: "node-1"})

	t.Run("configMap", func(t *testing.T) { testConfigMap(t, m, client) })
	t.Run("secret", func(t *testing.T) {
		pod := newPod("uid-secret",
			corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
			corev1.Volume{Name: "one", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "creds", DefaultMode: ptr(int32(0o400)),
				Items: []corev1.KeyToPath{{Key: "password", Path: "db/pw"}},
			}}})
		vols, err := m.SetUp(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(vols["all"].Path, "password")); got != "hunter2" {
			t.Errorf("password = %q", got)
		}
		wantMode(t, filepath.Join(vols["all"].Path, "user"), 0o644)
		if got := readFile(t, filepath.Join(vols["one"].Path, "db/pw")); got != "hunter2" {
			t.Errorf("db/pw = %q", got)
		}
		wantMode(t, filepath.Join(vols["one"].Path, "db/pw"), 0o400)
		if _, err := os.Lstat(filepath.Join(vols["one"].Path, "user")); err == nil {
			t.Error("items given, but unlisted key user was written")
		}
		if !vols["all"].ReadOnly {
			t.Error("secret volume not read-only")
		}
	})
	t.Run("missing", func(t *testing.T) {
		root := m.cfg.Root
		cases := []struct {
			vol  corev1.VolumeSource
			want string
		}{
			{corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}}},
				`volume "v": configmap "nope" not found`},
			{corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope"}},
				`volume "v": secret "nope" not found`},
			{corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
				Items: []corev1.KeyToPath{{Key: "level", Path: "l"}, {Key: "absent", Path: "a"}}}},
				`configmap "app-config" references non-existent key: absent`},
			{corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "nope"}},
				`persistentvolumeclaim "nope" not found`},
		}
		for i, c := range cases {
			uid := "uid-missing-" + string(rune('a'+i))
			_, err := m.SetUp(ctx, newPod(uid, corev1.Volume{Name: "v", VolumeSource: c.vol}))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("case %d: err = %v, want it to contain %q", i, err, c.want)
			}
			// Nothing half-written: no payload file landed.
			matches, _ := filepath.Glob(filepath.Join(root, uid, "volumes", "*", "v", "*"))
			if len(matches) > 0 {
				t.Errorf("case %d: files left behind: %v", i, matches)
			}
		}
	})
	t.Run("optional", func(t *testing.T) {
		pod := newPod("uid-optional",
			corev1.Volume{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}}},
			corev1.Volume{Name: "key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: "creds", Optional: ptr(true),
				Items: []corev1.KeyToPath{{Key: "user", Path: "u"}, {Key: "absent", Path: "a"}}}}})
		vols, err := m.SetUp(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(vols["cm"].Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), "..") {
				t.Errorf("optional missing configmap: unexpected file %s", e.Name())
			}
		}
		if got := readFile(t, filepath.Join(vols["key"].Path, "u")); got != "admin" {
			t.Errorf("u = %q", got)
		}
		if _, err := os.Lstat(filepath.Join(vols["key"].Path, "a")); err == nil {
			t.Error("missing optional key was written")
		}
		// The configMap appears later: the next SetUp picks it up.
		mustCreate(t, client.CoreV1().ConfigMaps(ns).Create, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "nope"}, Data: map[string]string{"k": "v"}})
		if _, err := m.SetUp(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(vols["cm"].Path, "k")); got != "v" {
			t.Errorf("after refresh k = %q", got)
		}
	})
	t.Run("downwardAPI", func(t *testing.T) {
		pod := newPod("uid-downward", corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{
				{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
				{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
				{Path: "uid", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}},
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}, Mode: ptr(int32(0o600))},
				{Path: "app", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}},
				{Path: "mem_mi", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
				{Path: "cpu_req_m", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
				{Path: "cpu_req", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "requests.cpu"}},
				{Path: "cpu_limit", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu"}},
			}}}})
		vols, err := m.SetUp(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		dir := vols["info"].Path
		want := map[string]string{
			"name": "web", "namespace": ns, "uid": "uid-downward",
			"labels":      "app=\"web\"\ntier=\"front\"",
			"annotations": `note="say \"hi\""`,
			"app":         "web",
			"mem_mi":      "64",
			"cpu_req_m":   "250",
			"cpu_req":     "1", // rounded up
			"cpu_limit":   "4", // unset: the node's allocatable
		}
		for f, w := range want {
			if got := readFile(t, filepath.Join(dir, f)); got != w {
				t.Errorf("%s = %q, want %q", f, got, w)
			}
		}
		wantMode(t, filepath.Join(dir, "annotations"), 0o600)
		wantMode(t, filepath.Join(dir, "name"), 0o644)

		pod.Labels["tier"] = "back"
		if _, err := m.SetUp(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "labels")); got != "app=\"web\"\ntier=\"back\"" {
			t.Errorf("labels after refresh = %q", got)
		}
	})
	t.Run("projected", func(t *testing.T) {
		// The token is bound to the pod, which the API must know.
		mustCreate(t, client.CoreV1().ServiceAccounts(ns).Create, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "runner"}})
		apiPod := newPod("")
		apiPod.Name, apiPod.Spec.ServiceAccountName = "web-projected", "runner"
		apiPod.Spec.Containers[0].Image = "busybox"
		apiPod = mustCreate(t, client.CoreV1().Pods(ns).Create, apiPod)
		pod := newPod(string(apiPod.UID), corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr(int32(0o440)),
			Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
					Items: []corev1.KeyToPath{{Key: "level", Path: "cfg/level"}}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"},
					Items: []corev1.KeyToPath{{Key: "user", Path: "cfg/user", Mode: ptr(int32(0o400))}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			}}}})
		pod.Name, pod.Spec.ServiceAccountName = apiPod.Name, "runner"
		vols, err := m.SetUp(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		dir := vols["all"].Path
		if got := readFile(t, filepath.Join(dir, "cfg/level")); got != "debug" {
			t.Errorf("cfg/level = %q", got)
		}
		wantMode(t, filepath.Join(dir, "cfg/level"), 0o440)
		if got := readFile(t, filepath.Join(dir, "cfg/user")); got != "admin" {
			t.Errorf("cfg/user = %q", got)
		}
		wantMode(t, filepath.Join(dir, "cfg/user"), 0o400)
		if got := readFile(t, filepath.Join(dir, "namespace")); got != ns {
			t.Errorf("namespace = %q", got)
		}
		wantMode(t, filepath.Join(dir, "token"), 0o440)
		review, err := client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: readFile(t, filepath.Join(dir, "token"))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:runner" {
			t.Errorf("token review: %+v, want system:serviceaccount:default:runner", review.Status)
		}
		if err := m.TearDown(ctx, string(pod.UID)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fsGroup", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("changing file groups needs root")
		}
		pod := newPod("uid-fsgroup",
			corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr(int32(0o400))}}},
			corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(2000))}
		vols, err := m.SetUp(ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		pw := filepath.Join(vols["s"].Path, "password")
		wantMode(t, pw, 0o440)
		for _, p := range []string{pw, vols["scratch"].Path} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if gid := info.Sys().(*syscall.Stat_t).Gid; gid != 2000 {
				t.Errorf("%s: group %d, want fsGroup 2000", p, gid)
			}
		}
		if info, _ := os.Stat(vols["scratch"].Path); info.Mode()&os.ModeSetgid == 0 {
			t.Error("emptyDir with fsGroup lacks the setgid bit")
		}
		if err := m.TearDown(ctx, "uid-fsgroup"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("persistentVolumeClaim", func(t *testing.T) { testClaims(t, m, client) })
	t.Run("tearDown", func(t *testing.T) {
		for _, uid := range []string{"uid-cm", "uid-secret", "uid-downward"} {
			if err := m.TearDown(ctx, uid); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(m.cfg.Root, uid)); !os.IsNotExist(err) {
				t.Errorf("%s still there: %v", uid, err)
			}
			if err := m.TearDown(ctx, uid); err != nil {
				t.Errorf("second TearDown: %v", err)
			}
		}
		if err := m.TearDown(ctx, "../x"); err == nil {
			t.Error("TearDown accepted a UID with a path in it")
		}
	})
}

func testConfigMap(t *testing.T, m *Manager, client kubernetes.Interface) {
	ctx := context.Background()
	pod := newPod("uid-cm",
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}},
		corev1.Volume{Name: "items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"},
			DefaultMode:          ptr(int32(0o640)),
			Items: []corev1.KeyToPath{
				{Key: "app.conf", Path: "etc/app.conf", Mode: ptr(int32(0o600))},
				{Key: "level", Path: "level.txt"},
			}}}})
	vols, err := m.SetUp(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	dir := vols["cfg"].Path
	if want := filepath.Join(m.cfg.Root, "uid-cm", "volumes"); !strings.HasPrefix(dir, want) {
		t.Errorf("volume at %s, want under %s", dir, want)
	}
	if got := readFile(t, filepath.Join(dir, "app.conf")); got != "port=80\n" {
		t.Errorf("app.conf = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "blob")); got != "\x00\x01\x02" {
		t.Errorf("blob = %q", got)
	}
	wantMode(t, filepath.Join(dir, "level"), 0o644)
	if target, err := os.Readlink(filepath.Join(dir, "level")); err != nil || target != "..data/level" {
		t.Errorf("level is not a symlink to ..data/level: %q, %v", target, err)
	}
	it := vols["items"].Path
	if got := readFile(t, filepath.Join(it, "etc/app.conf")); got != "port=80\n" {
		t.Errorf("etc/app.conf = %q", got)
	}
	wantMode(t, filepath.Join(it, "etc/app.conf"), 0o600)
	wantMode(t, filepath.Join(it, "level.txt"), 0o640)
	if _, err := os.Lstat(filepath.Join(it, "blob")); err == nil {
		t.Error("items given, but unlisted key blob was written")
	}

	// A subPath naming a key resolves to the file of the current version.
	mounts, err := ContainerMounts(pod, &corev1.Container{Name: "app", VolumeMounts: []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/app.conf", SubPath: "app.conf"}}}, vols, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := mounts[0]; !m.ReadOnly || readFile(t, m.Source) != "port=80\n" || !strings.Contains(m.Source, "/..20") {
		t.Errorf("subPath key mount = %+v", m)
	}

	// Idempotent: a second SetUp with no change keeps the same version.
	v1, _ := os.Readlink(filepath.Join(dir, dataLink))
	if _, err := m.SetUp(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if v, _ := os.Readlink(filepath.Join(dir, dataLink)); v != v1 {
		t.Errorf("unchanged SetUp swapped ..data: %s -> %s", v1, v)
	}

	// Update: new version swapped in, old one removed, dropped key gone.
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "app-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["app.conf"] = "port=8080\n"
	delete(cm.BinaryData, "blob")
	if _, err := client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetUp(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "app.conf")); got != "port=8080\n" {
		t.Errorf("after update app.conf = %q", got)
	}
	v2, _ := os.Readlink(filepath.Join(dir, dataLink))
	if v2 == v1 || !strings.HasPrefix(v2, "..20") {
		t.Errorf("..data = %q after update (was %q)", v2, v1)
	}
	if _, err := os.Stat(filepath.Join(dir, v1)); !os.IsNotExist(err) {
		t.Errorf("old version %s not removed: %v", v1, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "blob")); !os.IsNotExist(err) {
		t.Errorf("removed key blob still visible: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // app.conf, level, ..data, one version dir
		t.Errorf("volume dir holds %v", names)
	}
}

func testClaims(t *testing.T, m *Manager, client kubernetes.Interface) {
	ctx := context.Background()
	hostDir := t.TempDir()
	localDir := t.TempDir()
	mkPV := func(name string, src corev1.PersistentVolumeSource, annotations ...string) {
		meta := metav1.ObjectMeta{Name: name, Annotations: map[string]string{}}
		for i := 0; i+1 < len(annotations); i += 2 {
			meta.Annotations[annotations[i]] = annotations[i+1]
		}
		mustCreate(t, client.CoreV1().PersistentVolumes().Create, &corev1.PersistentVolume{
			ObjectMeta: meta,
			Spec: corev1.PersistentVolumeSpec{
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"node-1"}}},
				}}}},
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: src,
			},
		})
	}
	mkPV("pv-host", corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: filepath.Join(hostDir, "data"), Type: ptr(corev1.HostPathDirectoryOrCreate)}})
	mkPV("pv-local", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: localDir}})
	// The local-path provisioner names a folder that does not exist yet.
	provisioned := filepath.Join(t.TempDir(), "storage", "pvc-123_default_db")
	mkPV("pv-provisioned", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: provisioned}},
		"pv.kubernetes.io/provisioned-by", "skiff.io/local-path")
	missing := filepath.Join(t.TempDir(), "missing")
	mkPV("pv-missing", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: missing}})
	mkClaim := func(name, pv string) {
		c := mustCreate(t, client.CoreV1().PersistentVolumeClaims(ns).Create, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				VolumeName:  pv,
			},
		})
		if pv == "" {
			return
		}
		c.Status.Phase = corev1.ClaimBound
		if _, err := client.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkClaim("data", "pv-host")
	mkClaim("fast", "pv-local")
	mkClaim("pending", "")
	mkClaim("db", "pv-provisioned")
	mkClaim("gone", "pv-missing")

	claim := func(name string, ro bool) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name, ReadOnly: ro}}}
	}
	vols, err := m.SetUp(ctx, newPod("uid-pvc", claim("data", false), claim("fast", true)))
	if err != nil {
		t.Fatal(err)
	}
	if got := vols["data"]; got.Path != filepath.Join(hostDir, "data") || got.ReadOnly {
		t.Errorf("data = %+v", got)
	}
	if info, err := os.Stat(filepath.Join(hostDir, "data")); err != nil || !info.IsDir() {
		t.Errorf("DirectoryOrCreate PV dir not created: %v", err)
	}
	if got := vols["fast"]; got.Path != localDir || !got.ReadOnly {
		t.Errorf("fast = %+v", got)
	}
	vols, err = m.SetUp(ctx, newPod("uid-pvc3", claim("db", false)))
	if err != nil {
		t.Fatalf("a local-path volume whose folder is not made yet: %v", err)
	}
	if info, err := os.Stat(provisioned); err != nil || !info.IsDir() || vols["db"].Path != provisioned {
		t.Errorf("local-path folder not created: %v %+v", err, vols["db"])
	}
	if _, err := m.SetUp(ctx, newPod("uid-pvc4", claim("gone", false))); err == nil || !strings.Contains(err.Error(), "local volume path") {
		t.Errorf("a plain local volume whose path is missing: err = %v, want an error", err)
	}
	_, err = m.SetUp(ctx, newPod("uid-pvc2", claim("pending", false)))
	if want := `persistentvolumeclaim "pending" is not bound`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unbound claim: err = %v, want %q", err, want)
	}
}
