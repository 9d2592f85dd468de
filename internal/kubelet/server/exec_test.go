package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

type executorKind struct {
	name string
	make func(t *testing.T, e *testEnv, url string) remotecommand.Executor
}

var executors = []executorKind{
	{"websocket", func(t *testing.T, e *testEnv, u string) remotecommand.Executor {
		ex, err := remotecommand.NewWebSocketExecutor(e.pki.restConfig(t, e.ts.URL, DefaultClientCN), "GET", u)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}},
	{"websocket-v4", func(t *testing.T, e *testEnv, u string) remotecommand.Executor {
		ex, err := remotecommand.NewWebSocketExecutorForProtocols(e.pki.restConfig(t, e.ts.URL, DefaultClientCN), "GET", u, "v4.channel.k8s.io")
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}},
	{"spdy", func(t *testing.T, e *testEnv, u string) remotecommand.Executor {
		pu, _ := url.Parse(u)
		ex, err := remotecommand.NewSPDYExecutor(e.pki.restConfig(t, e.ts.URL, DefaultClientCN), "POST", pu)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}},
}

func execURL(e *testEnv, path string, cmd []string, params string) string {
	q := url.Values{"command": cmd}
	return e.ts.URL + path + "?" + q.Encode() + "&" + params
}

func stream(t *testing.T, ex remotecommand.Executor, opts remotecommand.StreamOptions) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return ex.StreamWithContext(ctx, opts)
}

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	for _, k := range executors {
		t.Run(k.name, func(t *testing.T) {
			// stdout, and success.
			var out, errOut bytes.Buffer
			u := execURL(e, "/exec/default/web/app", []string{"echo", "hello", "world"}, "stdout=1&stderr=1")
			if err := stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
				t.Fatalf("echo: %v", err)
			}
			if out.String() != "hello world\n" || errOut.Len() != 0 {
				t.Errorf("echo: stdout %q stderr %q", out.String(), errOut.String())
			}

			// stderr and a non-zero exit code.
			out.Reset()
			errOut.Reset()
			u = execURL(e, "/exec/default/web/app", []string{"fail"}, "stdout=1&stderr=1")
			err := stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
			var codeErr exec.CodeExitError
			if !errors.As(err, &codeErr) || codeErr.Code != 3 {
				t.Errorf("fail: err %v, want exit code 3", err)
			}
			if out.String() != "some output\n" || errOut.String() != "bad things\n" {
				t.Errorf("fail: stdout %q stderr %q", out.String(), errOut.String())
			}

			// A failure to run at all comes back as an error message.
			u = execURL(e, "/exec/default/other/app", []string{"echo"}, "stdout=1")
			err = stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "pod default/other not found") {
				t.Errorf("unknown pod: err %v", err)
			}

			// stdin is delivered and its end reaches the command (v4 over
			// websocket cannot signal the end of stdin: that is what v5 added).
			if k.name == "websocket-v4" {
				return
			}
			out.Reset()
			u = execURL(e, "/exec/default/web/app", []string{"cat"}, "stdin=1&stdout=1")
			in := strings.Repeat("0123456789", 10000)
			if err := stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdin: strings.NewReader(in), Stdout: &out}); err != nil {
				t.Fatalf("cat: %v", err)
			}
			if out.String() != in {
				t.Errorf("cat: got %d bytes back, want %d", out.Len(), len(in))
			}

		})
	}
}

type sizeQueue struct {
	sizes chan *remotecommand.TerminalSize
}

func (q sizeQueue) Next() *remotecommand.TerminalSize { return <-q.sizes }

func TestExecTTY(t *testing.T) {
	e := newTestEnv(t)
	for _, k := range executors {
		t.Run(k.name, func(t *testing.T) {
			q := sizeQueue{make(chan *remotecommand.TerminalSize, 1)}
			q.sizes <- &remotecommand.TerminalSize{Width: 120, Height: 40}
			defer close(q.sizes)
			var out bytes.Buffer
			pr, pw := io.Pipe()
			defer pw.Close()
			// kubectl -it asks for stdin, stdout and a tty, and no stderr.
			u := execURL(e, "/exec/default/web/app", []string{"tty"}, "stdin=1&stdout=1&tty=1")
			err := stream(t, k.make(t, e, u), remotecommand.StreamOptions{
				Stdin: pr, Stdout: &out, Tty: true, TerminalSizeQueue: q,
			})
			if err != nil {
				t.Fatalf("tty: %v", err)
			}
			if out.String() != "size 120x40\r\n" {
				t.Errorf("tty: stdout %q", out.String())
			}
		})
	}
}

func TestAttach(t *testing.T) {
	e := newTestEnv(t)
	for _, k := range executors {
		t.Run(k.name, func(t *testing.T) {
			var out bytes.Buffer
			u := e.ts.URL + "/attach/default/web/app?stdout=1"
			err := stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdout: &out})
			var codeErr exec.CodeExitError
			if !errors.As(err, &codeErr) || codeErr.Code != 2 || out.String() != "attached\n" {
				t.Errorf("attach: err %v stdout %q", err, out.String())
			}
			u = e.ts.URL + "/attach/default/web/noattach?stdout=1"
			err = stream(t, k.make(t, e, u), remotecommand.StreamOptions{Stdout: io.Discard})
			if err == nil || !strings.Contains(err.Error(), "attach not supported") {
				t.Errorf("attach unsupported: err %v", err)
			}
		})
	}
}

func TestExecBadRequests(t *testing.T) {
	e := newTestEnv(t)
	client := e.client(t, DefaultClientCN)
	for _, path := range []string{
		"/exec/default/web/app?stdout=1",                  // no command
		"/exec/default/web/app?command=ls",                // no streams
		"/exec/default/web/app?command=ls&stdout=1",       // no upgrade
		"/exec/default/web/uid-1/app?command=ls&stdout=1", // uid form, no upgrade
	} {
		resp, err := client.Post(e.ts.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", path, resp.StatusCode)
		}
	}
}

func TestExecCancelledByShutdown(t *testing.T) {
	e := newTestEnv(t)
	done := make(chan error, 1)
	u := execURL(e, "/exec/default/web/app", []string{"sleep"}, "stdout=1")
	ex := executors[0].make(t, e, u)
	go func() { done <- stream(t, ex, remotecommand.StreamOptions{Stdout: io.Discard}) }()
	// Wait until the session is registered, then close it as Run would.
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.srv.mu.Lock()
		n := len(e.srv.sessions)
		e.srv.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("session never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.srv.closeSessions()
	select {
	case err := <-done:
		if err == nil {
			t.Error("stream ended without error after the server closed it")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stream did not end after the server closed the session")
	}
}
