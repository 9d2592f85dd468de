package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

func TestPortForward(t *testing.T) {
	e := newTestEnv(t)
	dialers := map[string]func(u *url.URL) httpstream.Dialer{
		"spdy-over-websocket": func(u *url.URL) httpstream.Dialer {
			d, err := portforward.NewSPDYOverWebsocketDialer(u, e.pki.restConfig(t, e.ts.URL, DefaultClientCN))
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"spdy": func(u *url.URL) httpstream.Dialer {
			tr, up, err := spdy.RoundTripperFor(e.pki.restConfig(t, e.ts.URL, DefaultClientCN))
			if err != nil {
				t.Fatal(err)
			}
			return spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", u)
		},
	}
	for name, mk := range dialers {
		t.Run(name, func(t *testing.T) {
			u, _ := url.Parse(e.ts.URL + "/portForward/default/web")
			stop := make(chan struct{})
			ready := make(chan struct{})
			// Local port 0: pick a free one. 8080 reaches the echo server,
			// 9999 fails to dial in the pod.
			pf, err := portforward.NewOnAddresses(mk(u), []string{"127.0.0.1"}, []string{"0:8080", "0:9999"}, stop, ready, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- pf.ForwardPorts() }()
			select {
			case <-ready:
			case err := <-done:
				t.Fatalf("ForwardPorts: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("port-forward never became ready")
			}
			ports, err := pf.GetPorts()
			if err != nil {
				t.Fatal(err)
			}

			// Two connections in turn, each with a full round trip.
			for i := range 2 {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0].Local), 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				msg := fmt.Sprintf("hello %d\n", i)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				got, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || got != msg {
					t.Fatalf("echo %d: got %q, %v", i, got, err)
				}
				// Half-close: the echo server sees EOF and ends the connection.
				c.(*net.TCPConn).CloseWrite()
				if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
					t.Fatalf("after close write: %q, %v", rest, err)
				}
				c.Close()
			}

			// A port the pod refuses: the local connection is closed and, as
			// with kubectl, the forwarder gives up the session on the
			// kubelet's error ("lost connection to pod").
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[1].Local), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			c.Write([]byte("x"))
			io.ReadAll(c)
			c.Close()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "lost connection") {
					t.Errorf("ForwardPorts after a refused port: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ForwardPorts did not end after the kubelet reported an error")
			}
			close(stop)
		})
	}
}
