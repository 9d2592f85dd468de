package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"skiff/internal/pki"
	"skiff/internal/server/servertest"
)

// fakeKubelet is a kubelet API on loopback that requires a client
// certificate from the cluster CA and records what reaches it.
type fakeKubelet struct {
	srv *httptest.Server
	// release lets a following log stream write its second line.
	release chan struct{}

	mu       sync.Mutex
	requests []seenRequest
}

type seenRequest struct {
	path, query, clientCN, auth string
}

func (k *fakeKubelet) last(t *testing.T) seenRequest {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.requests) == 0 {
		t.Fatal("no request reached the kubelet")
	}
	return k.requests[len(k.requests)-1]
}

func (k *fakeKubelet) port() int32 { return int32(k.srv.Listener.Addr().(*net.TCPAddr).Port) }

func startFakeKubelet(t *testing.T, ca *pki.CA) *fakeKubelet {
	t.Helper()
	certFile, keyFile, err := ca.EnsureServingCert(t.TempDir(), "kubelet", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{release: make(chan struct{})}
	upgrader := websocket.Upgrader{Subprotocols: []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/containerLogs/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "line 1")
		if r.URL.Query().Get("follow") != "true" {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-k.release:
			fmt.Fprintln(w, "line 2")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/exec/", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	// portForward answers an SPDY-style upgrade by hand and echoes bytes:
	// the API server must pass the upgrade through without understanding it.
	mux.HandleFunc("/portForward/", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "SPDY/3.1") {
			http.Error(w, "upgrade required", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: %s\r\n\r\n", r.Header.Get("X-Stream-Protocol-Version"))
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(rw, "pong %s", line)
		rw.Flush()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "kubelet %s %s", r.Method, r.URL.Path)
	})
	k.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := seenRequest{path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
		if len(r.TLS.PeerCertificates) > 0 {
			seen.clientCN = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		k.mu.Lock()
		k.requests = append(k.requests, seen)
		k.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	// Handshakes the test makes fail on purpose are not news.
	k.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	k.srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.CertPool(),
	}
	k.srv.StartTLS()
	t.Cleanup(k.srv.Close)
	return k
}

// addKubeletNode registers node name reachable at 127.0.0.1:port.
func addKubeletNode(t *testing.T, c kubernetes.Interface, name string, port int32, addresses ...corev1.NodeAddress) {
	t.Helper()
	servertest.AddNode(t, c, name, func(n *corev1.Node) {
		n.Status.Addresses = addresses
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
	})
}

func addPod(t *testing.T, c kubernetes.Interface, name, node string, containers ...string) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: node}}
	for _, ctr := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: ctr, Image: "busybox"})
	}
	if _, err := c.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
}

var loopback = corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}

// proxyTestServer starts a server with a fake kubelet on node "n1" and a
// pod "web" (one container, "app") on it.
func proxyTestServer(t *testing.T) (*servertest.Server, kubernetes.Interface, *fakeKubelet) {
	t.Helper()
	s := servertest.Start(t, "", servertest.NoControlPlane)
	c := s.Client(t)
	k := startFakeKubelet(t, s.CA(t))
	addKubeletNode(t, c, "n1", k.port(), corev1.NodeAddress{Type: corev1.NodeHostName, Address: "n1"}, loopback)
	addPod(t, c, "web", "n1", "app")
	return s, c, k
}

func TestPodLogsAreProxiedToTheKubelet(t *testing.T) {
	_, c, k := proxyTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	out, err := c.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{TailLines: ptr.To(int64(5)), Timestamps: true}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	if string(out) != "line 1\n" {
		t.Fatalf("logs %q, want %q", out, "line 1\n")
	}
	seen := k.last(t)
	if seen.path != "/containerLogs/default/web/app" {
		t.Errorf("kubelet path %s, want /containerLogs/default/web/app", seen.path)
	}
	q, _ := url.ParseQuery(seen.query)
	if q.Get("tailLines") != "5" || q.Get("timestamps") != "true" {
		t.Errorf("kubelet query %q lacks tailLines=5 and timestamps=true", seen.query)
	}
	if seen.clientCN != "kube-apiserver-kubelet-client" {
		t.Errorf("the API server presented %q to the kubelet, want kube-apiserver-kubelet-client", seen.clientCN)
	}
	if seen.auth != "" {
		t.Errorf("the caller's Authorization header reached the kubelet: %q", seen.auth)
	}
}

func TestFollowedLogsStream(t *testing.T) {
	_, c, k := proxyTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := c.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Container: "app", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("follow logs: %v", err)
	}
	defer stream.Close()
	r := bufio.NewReader(stream)
	// The kubelet holds line 2 back until line 1 has arrived here, so this
	// only passes if the API server streams.
	if line, err := r.ReadString('\n'); err != nil || line != "line 1\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(k.release)
	if line, err := r.ReadString('\n'); err != nil || line != "line 2\n" {
		t.Fatalf("second line %q, %v", line, err)
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("stream did not end after the kubelet did: %v", err)
	}
}

func TestExecWebsocketRoundTrips(t *testing.T) {
	s, _, k := proxyTestServer(t)
	tlsCfg, err := rest.TLSConfigFor(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{TLSClientConfig: tlsCfg, Subprotocols: []string{"v5.channel.k8s.io"}, HandshakeTimeout: 30 * time.Second}
	u := strings.Replace(s.URL(), "https://", "wss://", 1) + "/api/v1/namespaces/default/pods/web/exec?command=sh&command=-c&stdin=true&stdout=true"
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("exec websocket: %v %s", err, body)
	}
	defer conn.Close()
	if conn.Subprotocol() != "v5.channel.k8s.io" {
		t.Errorf("negotiated subprotocol %q, want v5.channel.k8s.io", conn.Subprotocol())
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for _, msg := range []string{"hello", "again"} {
		if err := conn.WriteMessage(websocket.BinaryMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo: "+msg {
			t.Fatalf("got %q, want %q", got, "echo: "+msg)
		}
	}
	seen := k.last(t)
	if seen.path != "/exec/default/web/app" {
		t.Errorf("kubelet path %s, want /exec/default/web/app", seen.path)
	}
	if q, _ := url.ParseQuery(seen.query); strings.Join(q["command"], " ") != "sh -c" || q.Get("stdin") != "true" {
		t.Errorf("kubelet query %q lost the command or stdin", seen.query)
	}
}

func TestPortForwardUpgradeIsPassedThrough(t *testing.T) {
	s, _, k := proxyTestServer(t)
	tlsCfg, err := rest.TLSConfigFor(s.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// A TLS config without ForceAttemptHTTP2 keeps this client on
	// HTTP/1.1, which upgrades need.
	// No client Timeout: it would wrap the upgraded body, hiding its Write.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/api/v1/namespaces/default/pods/web/portforward?ports=8080", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	req.Header.Set("X-Stream-Protocol-Version", "portforward.k8s.io")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %s: %s", resp.Status, b)
	}
	if v := resp.Header.Get("X-Stream-Protocol-Version"); v != "portforward.k8s.io" {
		t.Errorf("X-Stream-Protocol-Version %q did not make the round trip", v)
	}
	rw, ok := resp.Body.(io.ReadWriter)
	if !ok {
		t.Fatalf("upgraded body %T is not writable", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil || got != "pong ping\n" {
		t.Fatalf("got %q, %v; want %q", got, err, "pong ping\n")
	}
	if seen := k.last(t); seen.path != "/portForward/default/web" || seen.query != "ports=8080" {
		t.Errorf("kubelet saw %s?%s, want /portForward/default/web?ports=8080", seen.path, seen.query)
	}
}

func TestNodeProxy(t *testing.T) {
	_, c, k := proxyTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/n1/proxy/stats/summary").Param("only_cpu_and_memory", "true").DoRaw(ctx)
	if err != nil {
		t.Fatalf("nodes/proxy: %v", err)
	}
	if string(out) != "kubelet GET /stats/summary" {
		t.Fatalf("nodes/proxy answered %q", out)
	}
	if seen := k.last(t); seen.query != "only_cpu_and_memory=true" {
		t.Errorf("kubelet query %q", seen.query)
	}
	out, err = c.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/n1/proxy/").DoRaw(ctx)
	if err != nil || string(out) != "kubelet GET /" {
		t.Fatalf("nodes/proxy/: %q, %v", out, err)
	}
}

func TestKubeletProxyErrors(t *testing.T) {
	_, c, _ := proxyTestServer(t)
	// A kubelet whose certificate is from another CA must not be trusted.
	other, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	impostor := startFakeKubelet(t, other)
	addKubeletNode(t, c, "impostor", impostor.port(), loopback)
	addPod(t, c, "on-impostor", "impostor", "app")

	addKubeletNode(t, c, "down", int32(servertest.FreePort(t)), loopback)
	addPod(t, c, "on-down", "down", "app")
	addKubeletNode(t, c, "nowhere", 10250)
	addPod(t, c, "on-nowhere", "nowhere", "app")
	addPod(t, c, "unscheduled", "", "app")
	addPod(t, c, "two", "n1", "a", "b")

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v1/namespaces/default/pods/missing/log", 404, `pods "missing" not found`},
		{"/api/v1/namespaces/default/pods/unscheduled/log", 400, "pod unscheduled does not have a host assigned"},
		{"/api/v1/namespaces/default/pods/two/log", 400, "a container name must be specified for pod two, choose one of: [a b]"},
		{"/api/v1/namespaces/default/pods/web/log?container=nope", 400, "container nope is not valid for pod web"},
		{"/api/v1/namespaces/default/pods/on-nowhere/log", 503, "node nowhere has no address"},
		{"/api/v1/namespaces/default/pods/on-down/log", 502, "error dialing backend"},
		{"/api/v1/namespaces/default/pods/on-impostor/log", 502, "certificate"},
		{"/api/v1/nodes/missing/proxy/healthz", 404, `nodes "missing" not found`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var code int
			u, _ := url.Parse(tc.path)
			req := c.CoreV1().RESTClient().Get().AbsPath(u.Path)
			for k, v := range u.Query() {
				req.Param(k, v[0])
			}
			res := req.Do(ctx).StatusCode(&code)
			body, _ := res.Raw()
			// Error, not Raw's error, decodes the Status as kubectl does.
			err := res.Error()
			if err == nil {
				t.Fatalf("succeeded: %q", body)
			}
			if code != tc.code {
				t.Errorf("status %d, want %d (%v)", code, tc.code, err)
			}
			var st metav1.Status
			if jerr := json.Unmarshal(body, &st); jerr != nil || st.Kind != "Status" {
				t.Errorf("answer is not a Status: %q", body)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestDiscoveryListsKubeletSubresources(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	list, err := s.Client(t).Discovery().ServerResourcesForGroupVersion("v1")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range list.APIResources {
		have[r.Name] = true
	}
	for _, want := range []string{"pods/log", "pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"} {
		if !have[want] {
			t.Errorf("discovery lacks %s", want)
		}
	}
}

// The kubelet-client certificate is in the server's TLS dir and signed by
// the cluster CA, so kubelets can check it.
func TestKubeletClientCertificate(t *testing.T) {
	s := servertest.Start(t, "", servertest.NoControlPlane)
	ca := s.CA(t)
	cert, err := tls.LoadX509KeyPair(
		s.DataDir+"/server/tls/client-kube-apiserver-kubelet.crt",
		s.DataDir+"/server/tls/client-kube-apiserver-kubelet.key")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("kubelet client certificate: %v", err)
	}
	if leaf.Subject.CommonName != "kube-apiserver-kubelet-client" {
		t.Fatalf("CN %q", leaf.Subject.CommonName)
	}
}
