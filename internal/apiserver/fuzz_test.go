package apiserver

// Fuzz tests of the generic API server, driven end to end through
// Server.Handler() (authentication included) over a real embedded etcd.
//
// `go test` runs only the seeds; fuzz one target at a time with, e.g.,
//
//	go test ./internal/apiserver -run '^$' -fuzz '^FuzzPatch$' -fuzztime 60s -fuzzminimizetime 100x
//
// Each input costs an etcd round trip or more, so minimizing a new input
// for the default 60s would stall a worker: keep -fuzzminimizetime small.
//
// Every fuzz worker process starts its own etcd in a temp dir (in /dev/shm
// where there is one). A 500 answer fails the input; when it came from a
// handler panic, the failure message carries the panic's stack (the request
// is replayed without the recovery middleware to get it).
//
// Environment: SKIFF_FUZZ_SKIP_KNOWN=1 skips the 500s listed in knownIssues
// (to fuzz past a reported bug); SKIFF_FUZZ_VERBOSE=1 logs every answer.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"skiff/internal/etcd"
	"skiff/internal/storage"
)

// fuzzAdmin is the client certificate fuzz requests present, as if
// verified by TLS: the handler reads the caller from it.
var fuzzAdmin = &x509.Certificate{Subject: pkix.Name{CommonName: "system:admin", Organization: []string{"system:masters"}}}

// fuzzEnv is one API server over a real etcd, used through its handler.
type fuzzEnv struct {
	s *Server
	h http.Handler
}

func fuzzFreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fuzzDataDir is a temp dir for etcd, in memory (/dev/shm) where there is
// one: every successful write is an fsync, which on a disk caps a fuzz
// worker at a few hundred inputs a second.
func fuzzDataDir(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "skiff-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}

// newFuzzEnv starts etcd and an API server (not Run: no listener, no TLS)
// and creates the namespace default through the handler.
func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var db *etcd.Etcd
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// A port found free may be taken before etcd binds it: retry.
		db, err = etcd.Start(ctx, etcd.Config{
			DataDir:       fuzzDataDir(f),
			ListenAddress: "127.0.0.1",
			ClientPort:    fuzzFreePort(f),
			PeerPort:      fuzzFreePort(f),
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		f.Fatalf("start etcd: %v", err)
	}
	f.Cleanup(func() { _ = db.Close() })
	reg, err := testRegistry(db.Client())
	if err != nil {
		f.Fatalf("registry: %v", err)
	}
	s, err := New(Config{
		Registry: reg,
		Store:    storage.New(db.Client(), reg.Scheme()),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatalf("apiserver: %v", err)
	}
	e := &fuzzEnv{s: s, h: s.Handler()}
	rec := e.do(f, http.MethodPost, "/api/v1/namespaces", "application/json", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default"}}`))
	if rec.Code != http.StatusCreated {
		f.Fatalf("create namespace default: %d %s", rec.Code, rec.Body)
	}
	// An unauthenticated request must not get through.
	req := httptest.NewRequest(http.MethodGet, "http://skiff/api/v1/namespaces", nil)
	rec = httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		f.Fatalf("anonymous list: got %d, want 401", rec.Code)
	}
	return e
}

// fuzzRequest builds a plain-HTTP request that carries an admin's client
// certificate as if TLS had verified it.
func fuzzRequest(method, path, rawQuery, contentType string, body []byte) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://skiff"+path, rd)
	req.URL.RawQuery = rawQuery
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{fuzzAdmin}, VerifiedChains: [][]*x509.Certificate{{fuzzAdmin}}}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func (e *fuzzEnv) do(tb testing.TB, method, path, contentType string, body []byte) *httptest.ResponseRecorder {
	tb.Helper()
	p, q, _ := strings.Cut(path, "?")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, fuzzRequest(method, p, q, contentType, body))
	return rec
}

// panicStack replays a request straight into the resource handler, without
// the recovery middleware, and returns the panic and its stack, if any.
// The replay is only a diagnosis aid: the request may not panic twice.
func (e *fuzzEnv) panicStack(req func() *http.Request) (msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = fmt.Sprintf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	r := req()
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, userInfo{Name: "system:admin", Groups: []string{"system:masters"}}))
	rec := newCancelRecorder(r)
	e.s.serveResource(rec, rec.req)
	return "no panic on replay (the 500 was an error, not a panic)"
}

// knownIssues are 500s already reported, each recognized by its request
// and answer. With SKIFF_FUZZ_SKIP_KNOWN=1 such inputs are skipped, so that
// a fuzz run can look past them for new bugs; without it they fail like
// any 500 (and their seeds are the regression tests for the fixes).
var knownIssues = []struct {
	name  string
	match func(r *http.Request, reqBody, answer []byte) bool
}{
	// None open. Add one as
	//	{"what is wrong", func(r *http.Request, reqBody, answer []byte) bool { ... }},
	// when a fuzz run finds a 500 that is reported but not yet fixed.
}

func knownIssue(replay func() *http.Request, answer []byte) string {
	if os.Getenv("SKIFF_FUZZ_SKIP_KNOWN") == "" {
		return ""
	}
	r := replay()
	var reqBody []byte
	if r.Body != nil {
		reqBody, _ = io.ReadAll(r.Body)
	}
	for _, k := range knownIssues {
		if k.match(r, reqBody, answer) {
			return k.name
		}
	}
	return ""
}

// checkAnswer fails on a 500 and checks that an error answer is a Status
// object whose code is the HTTP code.
func (e *fuzzEnv) checkAnswer(t *testing.T, what string, code int, body []byte, replay func() *http.Request) {
	t.Helper()
	if os.Getenv("SKIFF_FUZZ_VERBOSE") != "" {
		t.Logf("%s → %d %.300s", what, code, body)
	}
	if code == http.StatusInternalServerError {
		if issue := knownIssue(replay, body); issue != "" {
			t.Skipf("%s: 500 from a known issue (%s); SKIFF_FUZZ_SKIP_KNOWN is set", what, issue)
		}
		t.Fatalf("%s: 500 Internal Server Error: %s\n%s", what, body, e.panicStack(replay))
	}
	if code < 400 {
		return
	}
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("%s: error answer %d is not a JSON object: %v: %q", what, code, err, body)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != metav1.StatusFailure || int(st.Code) != code {
		t.Fatalf("%s: error answer %d is not a failure Status with code %d: %s", what, code, code, body)
	}
}

// cancelRecorder is a ResponseRecorder that cancels the request's context
// shortly after the response headers are written, so a watch ends after its
// initial events (and the replay of a resourceVersion's history) instead of
// running until its timeout.
type cancelRecorder struct {
	*httptest.ResponseRecorder
	req    *http.Request
	cancel context.CancelFunc
}

// watchGrace is how long a watch streams before the client goes away.
const watchGrace = 10 * time.Millisecond

func newCancelRecorder(r *http.Request) *cancelRecorder {
	ctx, cancel := context.WithCancel(r.Context())
	return &cancelRecorder{ResponseRecorder: httptest.NewRecorder(), req: r.WithContext(ctx), cancel: cancel}
}

func (c *cancelRecorder) WriteHeader(code int) {
	c.ResponseRecorder.WriteHeader(code)
	time.AfterFunc(watchGrace, c.cancel)
}

// --- objects -----------------------------------------------------------------

func fuzzPod(name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": "fuzz"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyAlways,
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox:1.36", Command: []string{"sh", "-c", "sleep 3600"},
				Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
				},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, PeriodSeconds: 5},
				VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes:     []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Tolerations: []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		},
	}
}

func fuzzDeployment(name string) *appsv1.Deployment {
	l := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: l},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: l},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: l},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "nginx:1.27", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
					Env: []corev1.EnvVar{{Name: "X", Value: "1"}},
				}}},
			},
		},
	}
}

func fuzzService(name string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
}

func fuzzConfigMap(name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Data:       map[string]string{"key": "value", "file.conf": "a=b\n"},
		BinaryData: map[string][]byte{"bin": {0, 1, 2}},
	}
}

func mustJSON(v interface{}) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func mustYAML(v interface{}) []byte {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// --- FuzzCreate --------------------------------------------------------------

type fuzzCreateTarget struct {
	path, kind string
}

var fuzzCreateTargets = []fuzzCreateTarget{
	{"/api/v1/namespaces/default/pods", "Pod"},
	{"/api/v1/namespaces/default/configmaps", "ConfigMap"},
	{"/api/v1/namespaces/default/services", "Service"},
	{"/apis/apps/v1/namespaces/default/deployments", "Deployment"},
}

var fuzzCreateTypes = []string{"application/json", "application/yaml", protobufMediaType, "", "text/plain"}

// fuzzSpliceModes: a content-type byte past fuzzCreateTypes (or
// fuzzPatchTypes) means the body is not sent as is but read as splice lines
// applied to a valid object, so that the fuzzer explores odd values in
// well-formed JSON instead of mostly syntax errors.
const fuzzSpliceModes = 3

func FuzzCreate(f *testing.F) {
	e := newFuzzEnv(f)
	pb := protobuf.NewSerializer(e.s.reg.Scheme(), e.s.reg.Scheme())
	toProto := func(obj runtime.Object) []byte {
		var buf bytes.Buffer
		if err := pb.Encode(obj, &buf); err != nil {
			f.Fatalf("protobuf seed: %v", err)
		}
		return buf.Bytes()
	}
	objs := []runtime.Object{fuzzPod("seed-pod"), fuzzConfigMap("seed-cm"), fuzzService("seed-svc"), fuzzDeployment("seed-deploy")}
	for i, obj := range objs {
		t := uint8(i)
		f.Add(t, uint8(0), mustJSON(obj))
		f.Add(t, uint8(1), mustYAML(obj))
		f.Add(t, uint8(2), toProto(obj))
	}
	// Shapes around the edges: the wrong kind, generateName, broken input.
	f.Add(uint8(0), uint8(0), mustJSON(fuzzConfigMap("wrong-kind")))
	f.Add(uint8(3), uint8(2), toProto(fuzzService("wrong-kind-proto")))
	f.Add(uint8(1), uint8(0), []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"gen-"},"data":{"a":"b"}}`))
	f.Add(uint8(1), uint8(0), []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}`))
	f.Add(uint8(1), uint8(0), []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","resourceVersion":"5"}}`))
	f.Add(uint8(1), uint8(0), []byte(`{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}`))
	f.Add(uint8(1), uint8(0), []byte(`{"metadata":{"name":"Bad_Name"}}`))
	f.Add(uint8(1), uint8(0), []byte(`{"metadata":{"name":"x"}} {"trailing":1}`))
	f.Add(uint8(1), uint8(0), []byte(`{"metadata":{"name":"x","labels":{"a":1}}}`))
	f.Add(uint8(0), uint8(0), []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":"lots"}}}]}}`))
	f.Add(uint8(0), uint8(0), []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[]}}`))
	f.Add(uint8(0), uint8(0), []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","livenessProbe":{}}],"initContainers":[{"name":"c"}],"volumes":[{"name":"v"}]}}`))
	f.Add(uint8(0), uint8(0), []byte(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":99999}],"env":[{"name":"","valueFrom":{}}]}],"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{}]}}}}}`))
	f.Add(uint8(2), uint8(0), []byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s"},"spec":{"type":"LoadBalancer","clusterIP":"10.43.0.1","ports":[{"port":80,"nodePort":30000},{"port":80}]}}`))
	f.Add(uint8(2), uint8(0), []byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s"},"spec":{"clusterIP":"None","clusterIPs":["None","fd00::1"],"ipFamilies":["IPv6"],"ports":[]}}`))
	f.Add(uint8(2), uint8(0), []byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s"},"spec":{"type":"ExternalName","externalName":"example.com"}}`))
	f.Add(uint8(2), uint8(0), []byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s"},"spec":{"clusterIP":"192.168.0.1","ports":[{"port":0,"targetPort":"x"}]}}`))
	f.Add(uint8(3), uint8(0), []byte(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"selector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]},"template":{}}}`))
	f.Add(uint8(3), uint8(0), []byte(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"replicas":-1,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"200x"}}}}`))
	f.Add(uint8(3), uint8(0), []byte(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d"},"spec":{"strategy":{"type":"Recreate","rollingUpdate":{}},"template":{"spec":{"containers":[{"name":"c","image":"i"}]}}}}`))
	f.Add(uint8(1), uint8(1), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  a: |\n    multi\n    line\n"))
	f.Add(uint8(1), uint8(1), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n"))
	f.Add(uint8(1), uint8(1), []byte("a: &a [*a]\n"))
	f.Add(uint8(1), uint8(1), []byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"))
	f.Add(uint8(1), uint8(2), []byte("k8s\x00\x0a\x0b\x0a\x02v1\x12\x05Bogus"))
	f.Add(uint8(1), uint8(2), []byte("not protobuf"))
	f.Add(uint8(1), uint8(3), []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"noct"}}`))
	f.Add(uint8(1), uint8(4), []byte(`{}`))
	f.Add(uint8(0), uint8(0), []byte(``))
	f.Add(uint8(0), uint8(0), []byte(`null`))
	f.Add(uint8(0), uint8(0), []byte(`[]`))
	f.Add(uint8(0), uint8(0), []byte(`{`))

	// Splice seeds: valid objects with one odd field each.
	splice := uint8(len(fuzzCreateTypes))
	for _, sd := range []struct {
		target uint8
		lines  string
	}{
		{0, "spec/containers/0/livenessProbe={}"},
		{0, "spec/containers/0/readinessProbe/httpGet/port=\"nope\""},
		{0, "spec/containers/0/env/0/valueFrom={}\nspec/containers/0/env/1/valueFrom/fieldRef=null"},
		{0, "spec/volumes/0={\"name\":\"v\",\"hostPath\":{}}\nspec/containers/0/volumeMounts/0/name=v"},
		{0, "spec/initContainers=[{\"name\":\"init\",\"image\":\"i\",\"restartPolicy\":\"Always\",\"startupProbe\":{}}]"},
		{0, "spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms=[{}]"},
		{0, "spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution=[{\"topologyKey\":\"\"}]"},
		{0, "spec/topologySpreadConstraints=[{\"maxSkew\":0,\"labelSelector\":{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}}]"},
		{0, "spec/containers/0/securityContext={\"capabilities\":{\"add\":[\"\"]},\"seccompProfile\":{\"type\":\"Localhost\"}}"},
		{0, "spec/containers/0/lifecycle/preStop={}"},
		{0, "spec/ephemeralContainers=[{\"name\":\"e\"}]"},
		{0, "spec/dnsConfig/options=[{}]\nspec/dnsPolicy=None"},
		{0, "spec/overhead/cpu=\"-1\"\nspec/resourceClaims=[{}]"},
		{0, "spec/volumes/0/projected/sources=[{\"serviceAccountToken\":{}}]"},
		{0, "spec/volumes/0/configMap/items=[{\"key\":\"\",\"path\":\"../x\"}]"},
		{1, "data/a\u0000b=\"x\"\nimmutable=true"},
		{2, "spec/ports/0/targetPort=0\nspec/ports/0/nodePort=1"},
		{2, "spec/type=LoadBalancer\nspec/loadBalancerSourceRanges=[\"bogus\"]"},
		{2, "spec/clusterIPs=[\"10.43.0.50\",\"10.43.0.51\"]\nspec/ipFamilyPolicy=RequireDualStack"},
		{2, "spec/sessionAffinityConfig/clientIP={}\nspec/sessionAffinity=ClientIP"},
		{2, "spec/externalTrafficPolicy=Local\nspec/healthCheckNodePort=-5"},
		{3, "spec/selector=null"},
		{3, "spec/selector/matchExpressions=[{\"key\":\"app\",\"operator\":\"Exists\",\"values\":[\"x\"]}]"},
		{3, "spec/strategy/rollingUpdate/maxSurge=0\nspec/strategy/rollingUpdate/maxUnavailable=0"},
		{3, "spec/template/metadata/labels=null"},
		{3, "spec/template/spec/containers=null"},
		{3, "spec/replicas=-1\nspec/revisionHistoryLimit=-1\nspec/progressDeadlineSeconds=0\nspec/minReadySeconds=5"},
	} {
		f.Add(sd.target, splice, []byte(sd.lines))
	}

	f.Fuzz(func(t *testing.T, target, ctype uint8, body []byte) {
		tg := fuzzCreateTargets[int(target)%len(fuzzCreateTargets)]
		mode := int(ctype) % (len(fuzzCreateTypes) + fuzzSpliceModes)
		var ct string
		if mode < len(fuzzCreateTypes) {
			ct = fuzzCreateTypes[mode]
		} else {
			ct = "application/json"
			body = spliceJSON(mustJSON(fuzzCreateSeedObject(tg.kind)), body)
		}
		req := func() *http.Request { return fuzzRequest(http.MethodPost, tg.path, "", ct, body) }
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req())
		what := fmt.Sprintf("POST %s (%s)", tg.path, ct)
		e.checkAnswer(t, what, rec.Code, rec.Body.Bytes(), req)
		// A body of another kind is a 400, whatever its encoding.
		if ct == protobufMediaType && rec.Code != http.StatusBadRequest {
			var u runtime.Unknown
			if _, _, err := pb.Decode(body, nil, &u); err == nil && u.Kind != "" && u.Kind != tg.kind {
				t.Fatalf("%s: a protobuf %s posted as a %s answered %d, want 400: %.300s", what, u.Kind, tg.kind, rec.Code, rec.Body)
			}
		}
		if rec.Code >= 400 {
			return
		}
		if rec.Code != http.StatusCreated {
			t.Fatalf("%s: code %d, want 201 or an error: %s", what, rec.Code, rec.Body)
		}
		var got metav1.PartialObjectMetadata
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: created object is not JSON: %v", what, err)
		}
		if got.Kind != tg.kind || got.Name == "" || got.Namespace != "default" || got.ResourceVersion == "" || got.UID == "" {
			t.Fatalf("%s: created object lacks kind/name/namespace/resourceVersion/uid: %s", what, rec.Body)
		}
		e.remove(t, tg.path+"/"+got.Name)
	})
}

func fuzzCreateSeedObject(kind string) runtime.Object {
	switch kind {
	case "Pod":
		return fuzzPod("spliced")
	case "ConfigMap":
		return fuzzConfigMap("spliced")
	case "Service":
		return fuzzService("spliced")
	}
	return fuzzDeployment("spliced")
}

// spliceJSON applies splice lines "a/b/0/c=<JSON or bare string>" to the
// JSON object base: each sets the value at the path, creating what is
// missing (a list index one past the end appends). A value that is not JSON
// is set as a string. It returns the modified JSON.
func spliceJSON(base, lines []byte) []byte {
	var root interface{}
	if err := json.Unmarshal(base, &root); err != nil {
		root = map[string]interface{}{}
	}
	for _, line := range bytes.Split(lines, []byte("\n")) {
		path, raw, ok := bytes.Cut(line, []byte("="))
		if !ok {
			continue
		}
		var v interface{}
		if err := json.Unmarshal(raw, &v); err != nil {
			v = string(raw)
		}
		root = setPath(root, strings.Split(string(path), "/"), v)
	}
	out, err := json.Marshal(root)
	if err != nil {
		return base
	}
	return out
}

func setPath(cur interface{}, path []string, v interface{}) interface{} {
	if len(path) == 0 {
		return v
	}
	k := path[0]
	switch c := cur.(type) {
	case []interface{}:
		var i int
		if _, err := fmt.Sscan(k, &i); err == nil && i >= 0 && i <= len(c) && i < 64 {
			if i == len(c) {
				c = append(c, nil)
			}
			c[i] = setPath(c[i], path[1:], v)
			return c
		}
		if k == "-" {
			return append(c, setPath(nil, path[1:], v))
		}
		return c
	case map[string]interface{}:
		c[k] = setPath(c[k], path[1:], v)
		return c
	}
	// A scalar or nothing in the way: make room.
	if k == "0" || k == "-" {
		return []interface{}{setPath(nil, path[1:], v)}
	}
	return map[string]interface{}{k: setPath(nil, path[1:], v)}
}

// remove deletes an object at once (no grace, finalizers dropped) so that a
// long fuzz run does not fill etcd or the service IP and port ranges.
func (e *fuzzEnv) remove(t *testing.T, path string) {
	t.Helper()
	rec := e.do(t, http.MethodDelete, path+"?gracePeriodSeconds=0", "", nil)
	if rec.Code == http.StatusAccepted {
		rec = e.do(t, http.MethodPatch, path, "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	}
	if rec.Code >= 300 && rec.Code != http.StatusNotFound {
		t.Fatalf("clean up %s: %d %s", path, rec.Code, rec.Body)
	}
	if rec := e.do(t, http.MethodGet, path, "", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("clean up %s: still there after delete: %d %s", path, rec.Code, rec.Body)
	}
}

// --- FuzzPatch ---------------------------------------------------------------

// fuzzPatchTarget is a fixed object, patched through one path.
type fuzzPatchTarget struct {
	object    string // the object's path
	sub       string // "", "status" or "scale"
	hasStatus bool   // the resource has a status subresource
}

var fuzzPatchTargets = []fuzzPatchTarget{
	{object: "/apis/apps/v1/namespaces/default/deployments/fuzz-deploy", hasStatus: true},
	{object: "/apis/apps/v1/namespaces/default/deployments/fuzz-deploy", sub: "status", hasStatus: true},
	{object: "/apis/apps/v1/namespaces/default/deployments/fuzz-deploy", sub: "scale", hasStatus: true},
	{object: "/api/v1/namespaces/default/pods/fuzz-pod", hasStatus: true},
	{object: "/api/v1/namespaces/default/pods/fuzz-pod", sub: "status", hasStatus: true},
}

var fuzzPatchTypes = []string{
	"application/json-patch+json",
	"application/merge-patch+json",
	"application/strategic-merge-patch+json",
	"application/apply-patch+yaml",
	"application/json",
	"application/yaml",
}

// storedObject is a GET of path, as a generic map, with its resourceVersion.
func (e *fuzzEnv) storedObject(t testing.TB, path string) (map[string]interface{}, string) {
	t.Helper()
	rec := e.do(t, http.MethodGet, path, "", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	var m map[string]interface{}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	md, _ := m["metadata"].(map[string]interface{})
	rv, _ := md["resourceVersion"].(string)
	if rv == "" {
		t.Fatalf("GET %s: no resourceVersion: %s", path, rec.Body)
	}
	return m, rv
}

// ensureFixed (re)creates the fixed object at path from obj, deleting a
// changed one first, and returns the stored resourceVersion.
func (e *fuzzEnv) ensureFixed(t testing.TB, collection, path string, obj runtime.Object, recreate bool) string {
	t.Helper()
	if recreate {
		rec := e.do(t, http.MethodPatch, path, "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
		if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
			t.Fatalf("reset %s: drop finalizers: %d %s", path, rec.Code, rec.Body)
		}
		rec = e.do(t, http.MethodDelete, path+"?gracePeriodSeconds=0", "", nil)
		if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
			t.Fatalf("reset %s: delete: %d %s", path, rec.Code, rec.Body)
		}
	}
	rec := e.do(t, http.MethodPost, collection, "application/json", mustJSON(obj))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", path, rec.Code, rec.Body)
	}
	_, rv := e.storedObject(t, path)
	return rv
}

func FuzzPatch(f *testing.F) {
	e := newFuzzEnv(f)
	const (
		deployPath = "/apis/apps/v1/namespaces/default/deployments/fuzz-deploy"
		podPath    = "/api/v1/namespaces/default/pods/fuzz-pod"
	)
	fixed := map[string]struct {
		collection string
		obj        func() runtime.Object
	}{
		deployPath: {"/apis/apps/v1/namespaces/default/deployments", func() runtime.Object { return fuzzDeployment("fuzz-deploy") }},
		podPath:    {"/api/v1/namespaces/default/pods", func() runtime.Object { return fuzzPod("fuzz-pod") }},
	}
	rvs := map[string]string{}
	for p, fx := range fixed {
		rvs[p] = e.ensureFixed(f, fx.collection, p, fx.obj(), false)
	}
	// Give the fixed deployment a status, so status patches have one to change.
	if rec := e.do(f, http.MethodPatch, deployPath+"/status", "application/merge-patch+json", []byte(`{"status":{"replicas":2,"readyReplicas":1,"conditions":[{"type":"Available","status":"False","reason":"MinimumReplicasUnavailable"}]}}`)); rec.Code != http.StatusOK {
		f.Fatalf("seed deployment status: %d %s", rec.Code, rec.Body)
	}
	_, rvs[deployPath] = e.storedObject(f, deployPath)

	const (
		jp, mp, smp, apply, plainJSON, plainYAML         = 0, 1, 2, 3, 4, 5
		tDeploy, tDeployStatus, tScale, tPod, tPodStatus = 0, 1, 2, 3, 4
	)
	add := func(target, pt uint8, body string) { f.Add(target, pt, []byte(body)) }
	// JSON patches.
	add(tDeploy, jp, `[{"op":"replace","path":"/spec/replicas","value":3}]`)
	add(tDeploy, jp, `[{"op":"add","path":"/metadata/labels/extra","value":"y"}]`)
	add(tDeploy, jp, `[{"op":"add","path":"/spec/template/spec/containers/-","value":{"name":"side","image":"busybox"}}]`)
	add(tDeploy, jp, `[{"op":"remove","path":"/spec/template"}]`)
	add(tDeploy, jp, `[{"op":"remove","path":"/spec/selector"}]`)
	add(tDeploy, jp, `[{"op":"test","path":"/spec/replicas","value":99}]`)
	add(tDeploy, jp, `[{"op":"move","from":"/metadata/labels","path":"/metadata/annotations"}]`)
	add(tDeploy, jp, `[{"op":"copy","from":"/spec/template/spec/containers/0","path":"/spec/template/spec/containers/1"}]`)
	add(tDeploy, jp, `[{"op":"replace","path":"/kind","value":"Pod"}]`)
	add(tDeploy, jp, `[{"op":"replace","path":"/metadata/name","value":"other"}]`)
	add(tDeploy, jp, `[{"op":"replace","path":"/metadata/resourceVersion","value":"1"}]`)
	add(tDeploy, jp, `[{"op":"replace","path":"/metadata/uid","value":"x"}]`)
	add(tDeploy, jp, `[{"op":"replace","path":"","value":null}]`)
	add(tDeploy, jp, `[{"op":"bogus","path":"/a"}]`)
	add(tDeploy, jp, `[{"op":"add","path":"/spec/template/spec/containers/99","value":{}}]`)
	add(tDeploy, jp, `[]`)
	add(tDeploy, jp, `{}`)
	add(tDeploy, jp, `[{"op":"replace","path":"/status/replicas","value":5}]`)
	add(tDeployStatus, jp, `[{"op":"replace","path":"/status/replicas","value":5},{"op":"replace","path":"/spec/replicas","value":9}]`)
	add(tScale, jp, `[{"op":"replace","path":"/spec/replicas","value":4}]`)
	add(tScale, jp, `[{"op":"replace","path":"/spec/replicas","value":-4}]`)
	add(tPod, jp, `[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:1.37"}]`)
	add(tPod, jp, `[{"op":"replace","path":"/spec/containers/0/name","value":"renamed"}]`)
	add(tPod, jp, `[{"op":"add","path":"/spec/tolerations/-","value":{"key":"x","operator":"Exists"}}]`)
	add(tPod, jp, `[{"op":"add","path":"/metadata/finalizers","value":["example.com/hold"]}]`)
	add(tPodStatus, jp, `[{"op":"add","path":"/status/phase","value":"Running"}]`)
	// Merge patches.
	add(tDeploy, mp, `{"spec":{"replicas":5}}`)
	add(tDeploy, mp, `{"metadata":{"labels":{"app":null}}}`)
	add(tDeploy, mp, `{"spec":null}`)
	add(tDeploy, mp, `{"spec":{"replicas":"five"}}`)
	add(tDeploy, mp, `{"spec":{"template":{"spec":{"containers":null}}}}`)
	add(tDeploy, mp, `{"metadata":{"finalizers":["example.com/x"]}}`)
	add(tDeploy, mp, `{"metadata":{"resourceVersion":"999999"}}`)
	add(tDeploy, mp, `{"apiVersion":"apps/v1beta1"}`)
	add(tDeploy, mp, `null`)
	add(tDeploy, mp, `[]`)
	add(tDeploy, mp, `{`)
	add(tDeploy, mp, `{} trailing`)
	add(tDeployStatus, mp, `{"status":{"replicas":3,"conditions":null},"spec":{"replicas":9}}`)
	add(tDeployStatus, mp, `{"status":{"observedGeneration":-1,"replicas":-3}}`)
	add(tScale, mp, `{"spec":{"replicas":7}}`)
	add(tScale, mp, `{"spec":{"replicas":7},"metadata":{"name":"other"}}`)
	add(tPod, mp, `{"metadata":{"annotations":{"a":"b"}},"spec":{"activeDeadlineSeconds":30}}`)
	add(tPod, mp, `{"spec":{"containers":[{"name":"main"}]}}`)
	add(tPod, mp, `{"spec":{"nodeName":"node-1"}}`)
	add(tPod, mp, `{"metadata":{"deletionTimestamp":"2020-01-01T00:00:00Z"}}`)
	add(tPodStatus, mp, `{"status":{"phase":"Running","podIP":"10.42.0.5","conditions":[{"type":"Ready","status":"True"}]}}`)
	add(tPodStatus, mp, `{"status":{"podIP":"not-an-ip","containerStatuses":[{"name":"main","state":{"running":{}}}]}}`)
	// Strategic merge patches.
	add(tDeploy, smp, `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}`)
	add(tDeploy, smp, `{"spec":{"template":{"spec":{"containers":[{"$patch":"delete","name":"web"}]}}}}`)
	add(tDeploy, smp, `{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"name":"web","env":[{"name":"Y","value":"2"}]}]}}}}`)
	add(tDeploy, smp, `{"spec":{"$patch":"replace","replicas":1}}`)
	add(tDeploy, smp, `{"$patch":"delete"}`)
	add(tDeploy, smp, `{"spec":{"$retainKeys":["replicas"],"replicas":1}}`)
	add(tDeploy, smp, `{"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}}`)
	add(tDeploy, smp, `{"spec":{"template":{"spec":{"containers":[{"$patch":"bogus"}]}}}}`)
	add(tDeploy, smp, `{"spec":{"template":{"spec":{"containers":[{"image":"no-name"}]}}}}`)
	add(tDeploy, smp, `{"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}`)
	add(tPod, smp, `{"spec":{"containers":[{"name":"main","image":"busybox:1.37"}]}}`)
	add(tPod, smp, `{"spec":{"tolerations":[{"$patch":"merge","key":"k"}]}}`)
	add(tPod, smp, `{"spec":{"volumes":[{"name":"data","$patch":"delete"}]}}`)
	add(tPodStatus, smp, `{"status":{"conditions":[{"type":"Ready","status":"True"}]}}`)
	add(tScale, smp, `{"spec":{"replicas":0}}`)
	// Server-side apply (unsupported), YAML and content types that are not patches.
	add(tDeploy, apply, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: fuzz-deploy\nspec:\n  replicas: 3\n")
	add(tDeploy, plainJSON, `{"spec":{"replicas":5}}`)
	add(tDeploy, plainYAML, "spec:\n  replicas: 5\n")
	add(tPod, mp, "spec:\n  activeDeadlineSeconds: 5\n")

	// Structured patches: splice lines into a merge or strategic merge patch,
	// or "op /path value" lines as a JSON patch.
	spliceMerge, spliceStrategic, jsonPatchLines := uint8(len(fuzzPatchTypes)), uint8(len(fuzzPatchTypes)+1), uint8(len(fuzzPatchTypes)+2)
	add(tDeploy, spliceMerge, "spec/template/spec/containers=[{\"name\":\"web\"}]")
	add(tDeploy, spliceMerge, "spec/selector/matchLabels/app=other")
	add(tDeploy, spliceMerge, "spec/strategy/type=Recreate")
	add(tDeploy, spliceMerge, "metadata/ownerReferences=[{\"apiVersion\":\"v1\",\"kind\":\"X\",\"name\":\"\",\"uid\":\"\"}]")
	add(tPod, spliceMerge, "spec/containers/0/image=")
	add(tPod, spliceMerge, "metadata/labels/bad key=x")
	add(tPodStatus, spliceMerge, "status/containerStatuses=[{\"name\":\"main\",\"state\":{\"terminated\":{}}}]")
	add(tDeployStatus, spliceMerge, "status/conditions/0/type=")
	add(tDeploy, spliceStrategic, "spec/template/spec/containers=[{\"name\":\"web\",\"$patch\":\"replace\"}]")
	add(tDeploy, spliceStrategic, "spec/template/spec/$setElementOrder/containers=[{\"name\":\"x\"}]")
	add(tDeploy, spliceStrategic, "spec/template/spec/containers/0/$setElementOrder/env=[{\"name\":\"X\"},{}]\nspec/template/spec/containers/0/name=web")
	add(tDeploy, spliceStrategic, "spec/template/spec/containers/0/$retainKeys=[1]\nspec/template/spec/containers/0/name=web")
	add(tDeploy, spliceStrategic, "metadata/$deleteFromPrimitiveList/finalizers=x")
	add(tPod, spliceStrategic, "spec/containers/0/ports=[{\"containerPort\":8080,\"$patch\":\"delete\"}]\nspec/containers/0/name=main")
	add(tPod, spliceStrategic, "spec/tolerations=[{\"$patch\":\"replace\"}]")
	add(tPodStatus, spliceStrategic, "status/conditions=[{\"type\":\"Ready\",\"$patch\":\"delete\"}]")
	add(tScale, spliceStrategic, "spec/replicas=2147483648")
	add(tDeploy, jsonPatchLines, "replace /spec/replicas 0\nadd /metadata/annotations {\"a\":\"b\"}")
	add(tDeploy, jsonPatchLines, "move /spec/template/spec/containers/0 /spec/template/spec/initContainers/0")
	add(tDeploy, jsonPatchLines, "copy /metadata/labels /spec/template/metadata/labels")
	add(tDeploy, jsonPatchLines, "remove /metadata/name")
	add(tDeploy, jsonPatchLines, "test /spec/replicas 2\nreplace /spec/replicas 3")
	add(tPod, jsonPatchLines, "replace /spec/containers/0/resources/requests/cpu \"1\"")
	add(tPod, jsonPatchLines, "add /spec/containers/- {\"name\":\"second\",\"image\":\"x\"}")
	add(tPodStatus, jsonPatchLines, "add /status/conditions/- {\"type\":\"Ready\",\"status\":\"Maybe\"}")
	add(tScale, jsonPatchLines, "replace /spec/replicas null")

	var mu sync.Mutex // the fixed objects are shared state
	f.Fuzz(func(t *testing.T, target, ptype uint8, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		tg := fuzzPatchTargets[int(target)%len(fuzzPatchTargets)]
		var ct string
		switch mode := int(ptype) % (len(fuzzPatchTypes) + fuzzSpliceModes); mode - len(fuzzPatchTypes) {
		case 0:
			ct, body = "application/merge-patch+json", spliceJSON([]byte("{}"), body)
		case 1:
			ct, body = "application/strategic-merge-patch+json", spliceJSON([]byte("{}"), body)
		case 2:
			ct, body = "application/json-patch+json", jsonPatchFromLines(body)
		default:
			ct = fuzzPatchTypes[mode]
		}
		path := tg.object
		if tg.sub != "" {
			path += "/" + tg.sub
		}
		before, rv := e.storedObject(t, tg.object)
		if rv != rvs[tg.object] {
			t.Fatalf("fixed object %s changed between inputs: resourceVersion %s, want %s", tg.object, rv, rvs[tg.object])
		}
		req := func() *http.Request { return fuzzRequest(http.MethodPatch, path, "", ct, body) }
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req())
		what := fmt.Sprintf("PATCH %s (%s)", path, ct)
		e.checkAnswer(t, what, rec.Code, rec.Body.Bytes(), req)
		after, rvAfter := e.storedObject(t, tg.object)
		if rec.Code >= 400 {
			if rvAfter != rv {
				t.Fatalf("%s failed with %d but the stored object changed (resourceVersion %s → %s): %s", what, rec.Code, rv, rvAfter, rec.Body)
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: code %d, want 200 or an error: %s", what, rec.Code, rec.Body)
		}
		var got metav1.PartialObjectMetadata
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Kind == "" || got.ResourceVersion != rvAfter {
			t.Fatalf("%s: answer is not the stored object (resourceVersion %s): %v %s", what, rvAfter, err, rec.Body)
		}
		// The status split: /status changes only the status, the main
		// resource never does; /scale changes only spec.replicas.
		switch {
		case tg.sub == "status":
			for _, k := range []string{"spec", "metadata.labels", "metadata.annotations", "metadata.finalizers"} {
				if a, b := lookup(before, k), lookup(after, k); !jsonEqual(a, b) {
					t.Fatalf("%s changed %s: %s → %s", what, k, mustJSON(a), mustJSON(b))
				}
			}
		case tg.sub == "scale":
			if a, b := lookup(before, "spec.template"), lookup(after, "spec.template"); !jsonEqual(a, b) {
				t.Fatalf("%s changed spec.template", what)
			}
		case tg.hasStatus:
			if a, b := lookup(before, "status"), lookup(after, "status"); !jsonEqual(a, b) {
				t.Fatalf("%s (main resource) changed the status: %s → %s", what, mustJSON(a), mustJSON(b))
			}
		}
		if rvAfter != rv {
			fx := fixed[tg.object]
			rvs[tg.object] = e.ensureFixed(t, fx.collection, tg.object, fx.obj(), true)
			if tg.object == deployPath {
				if rec := e.do(t, http.MethodPatch, deployPath+"/status", "application/merge-patch+json", []byte(`{"status":{"replicas":2,"readyReplicas":1,"conditions":[{"type":"Available","status":"False","reason":"MinimumReplicasUnavailable"}]}}`)); rec.Code != http.StatusOK {
					t.Fatalf("reset deployment status: %d %s", rec.Code, rec.Body)
				}
				_, rvs[deployPath] = e.storedObject(t, deployPath)
			}
		}
	})
}

// jsonPatchFromLines builds a JSON patch from lines "op /path value": the
// value is JSON (or else a string); for move and copy it is the from path.
func jsonPatchFromLines(lines []byte) []byte {
	ops := []map[string]interface{}{}
	for _, line := range strings.Split(string(lines), "\n") {
		parts := strings.SplitN(line, " ", 3)
		if len(parts) < 2 {
			continue
		}
		op := map[string]interface{}{"op": parts[0], "path": parts[1]}
		if len(parts) == 3 {
			switch parts[0] {
			case "move", "copy":
				op["from"], op["path"] = parts[1], parts[2]
			default:
				var v interface{}
				if err := json.Unmarshal([]byte(parts[2]), &v); err != nil {
					v = parts[2]
				}
				op["value"] = v
			}
		}
		ops = append(ops, op)
	}
	return mustJSON(ops)
}

// lookup returns the value at a dotted path in a JSON object.
func lookup(m map[string]interface{}, path string) interface{} {
	var v interface{} = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]interface{})
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func jsonEqual(a, b interface{}) bool { return bytes.Equal(mustJSON(a), mustJSON(b)) }

// --- FuzzWatchAndListParams --------------------------------------------------

type fuzzListTarget struct {
	path, kind string
	// name is set for a single object: a GET of it, or a watch of it alone.
	name string
}

var fuzzListTargets = []fuzzListTarget{
	{"/api/v1/namespaces/default/pods", "Pod", ""},
	{"/api/v1/pods", "Pod", ""},
	{"/api/v1/namespaces/default/configmaps", "ConfigMap", ""},
	{"/apis/apps/v1/namespaces/default/deployments", "Deployment", ""},
	{"/api/v1/namespaces", "Namespace", ""},
	{"/api/v1/namespaces/default/services", "Service", ""},
	{"/api/v1/namespaces/default/pods/pod-0", "Pod", "pod-0"},
}

var fuzzAccepts = []string{
	"",
	"application/json",
	"application/json;as=Table;v=v1;g=meta.k8s.io",
	"application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json",
	"application/yaml",
	"application/vnd.kubernetes.protobuf",
}

func FuzzWatchAndListParams(f *testing.F) {
	e := newFuzzEnv(f)
	// Some objects for lists, selectors and initial watch events to find.
	for i, labels := range []map[string]string{{"app": "web", "tier": "front"}, {"app": "db"}, {}} {
		p := fuzzPod(fmt.Sprintf("pod-%d", i))
		p.Labels = labels
		if i == 0 {
			p.Spec.NodeName = "node-1"
		}
		if rec := e.do(f, http.MethodPost, "/api/v1/namespaces/default/pods", "application/json", mustJSON(p)); rec.Code != http.StatusCreated {
			f.Fatalf("create pod: %d %s", rec.Code, rec.Body)
		}
	}
	for _, obj := range []struct {
		path string
		obj  runtime.Object
	}{
		{"/apis/apps/v1/namespaces/default/deployments", fuzzDeployment("web")},
		{"/api/v1/namespaces/default/configmaps", fuzzConfigMap("cm")},
		{"/api/v1/namespaces/default/services", fuzzService("svc")},
	} {
		if rec := e.do(f, http.MethodPost, obj.path, "application/json", mustJSON(obj.obj)); rec.Code != http.StatusCreated {
			f.Fatalf("create %s: %d %s", obj.path, rec.Code, rec.Body)
		}
	}
	// mode: bits 0-1 list / ?watch=true / /watch/ path / ?watch=1;
	// bits 2-3 timeoutSeconds as given / =0 / =1 / =1 with
	// resourceVersion first; bits 4-6 the Accept header.
	queries := []string{
		"",
		"labelSelector=app%3Dweb",
		"labelSelector=app+in+(web,db),tier",
		"labelSelector=!tier",
		"labelSelector=app!%3Dweb,app",
		"labelSelector=a%3Db%3Dc",
		"labelSelector=app+notin+()",
		"labelSelector=%3D%3D",
		"fieldSelector=metadata.name%3Dpod-0",
		"fieldSelector=spec.nodeName%3Dnode-1",
		"fieldSelector=status.phase!%3DRunning,metadata.namespace%3Ddefault",
		"fieldSelector=bogus%3D1",
		"fieldSelector=metadata.name",
		"resourceVersion=0",
		"resourceVersion=1",
		"resourceVersion=abc",
		"resourceVersion=-1",
		"resourceVersion=99999999999",
		"resourceVersion=9223372036854775807",
		"resourceVersion=1&resourceVersionMatch=Exact",
		"resourceVersion=99999999&resourceVersionMatch=Exact",
		"resourceVersion=x&resourceVersionMatch=Exact",
		"resourceVersion=0&resourceVersionMatch=NotOlderThan",
		"resourceVersionMatch=Bogus",
		"sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
		"sendInitialEvents=true",
		"timeoutSeconds=0",
		"timeoutSeconds=1",
		"timeoutSeconds=-1",
		"timeoutSeconds=x",
		"timeoutSeconds=9999999999999",
		"limit=1&continue=abc",
		"includeObject=Object",
		"watch=false&labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dpod-0&resourceVersion=0&timeoutSeconds=1",
		"%zz=1&labelSelector=%",
	}
	for i, q := range queries {
		for mode := 0; mode < 4; mode++ {
			f.Add(uint8(i), uint8(mode|(i%4)<<2|(i%len(fuzzAccepts))<<4), q)
		}
	}

	f.Fuzz(func(t *testing.T, target, mode uint8, query string) {
		tg := fuzzListTargets[int(target)%len(fuzzListTargets)]
		path, q := tg.path, query
		switch mode & 3 {
		case 1:
			q = joinQuery(q, "watch=true")
		case 2:
			path = strings.Replace(path, "/v1/", "/v1/watch/", 1)
		case 3:
			q = joinQuery(q, "watch=1")
		}
		switch mode >> 2 & 3 {
		case 1:
			q = joinQuery(q, "timeoutSeconds=0")
		case 2:
			q = joinQuery(q, "timeoutSeconds=1")
		case 3:
			q = joinQuery("timeoutSeconds=1", q)
		}
		accept := fuzzAccepts[int(mode>>4)%len(fuzzAccepts)]
		req := func() *http.Request {
			r := fuzzRequest(http.MethodGet, path, q, "", nil)
			if accept != "" {
				r.Header.Set("Accept", accept)
			}
			return r
		}
		// A watch is cut right after its headers (and initial events): the
		// test is about the parameters, not about waiting for events.
		rec := newCancelRecorder(req())
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.h.ServeHTTP(rec, rec.req)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("GET %s?%s (Accept %q) still running after 20s", path, q, accept)
		}
		what := fmt.Sprintf("GET %s?%s (Accept %q)", path, q, accept)
		e.checkAnswer(t, what, rec.Code, rec.Body.Bytes(), req)
		if rec.Code >= 400 {
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: code %d: %s", what, rec.Code, rec.Body)
		}
		values := parseQueryLikeServer(rec.req)
		plain := !strings.Contains(accept, "as=") && !strings.Contains(accept, "yaml")
		if tg.name != "" && !values.watch {
			// A GET of one object ignores selectors, as in Kubernetes.
			if !plain {
				return
			}
			var obj metav1.PartialObjectMetadata
			if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil || obj.Kind != tg.kind || obj.Name != tg.name {
				t.Fatalf("%s: want %s %s, got %v %.300s", what, tg.kind, tg.name, err, rec.Body)
			}
			return
		}
		// Selectors the server accepted must hold for what it returns.
		sel, err := labels.Parse(values.labelSelector)
		if err != nil {
			t.Fatalf("%s: 200 for a labelSelector that does not parse: %v", what, err)
		}
		if values.watch {
			checkWatchStream(t, what, rec.Body.Bytes(), tg.kind, tg.name, sel, plain)
			return
		}
		if !plain {
			return
		}
		var list struct {
			Kind     string
			Metadata metav1.ListMeta
			Items    []metav1.PartialObjectMetadata
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
			t.Fatalf("%s: list is not JSON: %v: %.300s", what, err, rec.Body)
		}
		if list.Kind != tg.kind+"List" || list.Metadata.ResourceVersion == "" {
			t.Fatalf("%s: want a %sList with a resourceVersion, got kind %q rv %q", what, tg.kind, list.Kind, list.Metadata.ResourceVersion)
		}
		for _, it := range list.Items {
			if !sel.Matches(labels.Set(it.Labels)) {
				t.Fatalf("%s: item %s (labels %v) does not match the label selector %q", what, it.Name, it.Labels, sel)
			}
		}
	})
}

type serverQuery struct {
	labelSelector string
	watch         bool
}

// parseQueryLikeServer reads the parameters the way the handler does.
func parseQueryLikeServer(r *http.Request) serverQuery {
	q := r.URL.Query()
	return serverQuery{
		labelSelector: q.Get("labelSelector"),
		watch:         strings.Contains(r.URL.Path, "/watch/") || q.Get("watch") == "true" || q.Get("watch") == "1",
	}
}

func joinQuery(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "&" + b
}

// checkWatchStream checks a watch body: one WatchEvent per line, known
// types, no server error, and (for plain objects) the label selector held
// and, for a watch of one named object, only that object.
func checkWatchStream(t *testing.T, what string, body []byte, kind, name string, sel labels.Selector, plain bool) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev struct {
			Type   string
			Object json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: watch line is not a JSON WatchEvent: %v: %.300s", what, err, sc.Bytes())
		}
		switch ev.Type {
		case "ADDED", "MODIFIED", "DELETED", "BOOKMARK":
		case "ERROR":
			var st metav1.Status
			_ = json.Unmarshal(ev.Object, &st)
			if st.Code >= 500 {
				t.Fatalf("%s: watch sent a server error event: %s", what, ev.Object)
			}
			continue
		default:
			t.Fatalf("%s: unknown watch event type %q", what, ev.Type)
		}
		if !plain || ev.Type == "BOOKMARK" {
			continue
		}
		var obj metav1.PartialObjectMetadata
		if err := json.Unmarshal(ev.Object, &obj); err != nil || obj.Kind != kind {
			t.Fatalf("%s: %s event object is not a %s: %v %.300s", what, ev.Type, kind, err, ev.Object)
		}
		if !sel.Matches(labels.Set(obj.Labels)) {
			t.Fatalf("%s: %s event for %s (labels %v) does not match the label selector %q", what, ev.Type, obj.Name, obj.Labels, sel)
		}
		if name != "" && obj.Name != name {
			t.Fatalf("%s: the watch of %s %s sent an event (%s) for %s: a watch of a named object must stream that object alone (as with fieldSelector=metadata.name=%s)",
				what, kind, name, ev.Type, obj.Name, name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: read watch stream: %v", what, err)
	}
}
