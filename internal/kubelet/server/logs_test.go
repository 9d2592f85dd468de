package server

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func criLine(t time.Time, stream, tag, content string) string {
	return fmt.Sprintf("%s %s %s %s\n", t.UTC().Format(time.RFC3339Nano), stream, tag, content)
}

func TestContainerLogs(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	e.prov.logPath = filepath.Join(dir, "1.log")
	e.prov.prevPath = filepath.Join(dir, "0.log")
	old := time.Now().Add(-time.Hour)
	recent := time.Now().Add(-time.Minute)
	os.WriteFile(e.prov.logPath, []byte(
		criLine(old, "stdout", "F", "old line")+
			criLine(recent, "stdout", "P", "recent ")+
			criLine(recent, "stdout", "F", "line")+
			criLine(recent, "stderr", "F", "an error")), 0o644)
	os.WriteFile(e.prov.prevPath, []byte(criLine(old, "stdout", "F", "previous instance")), 0o644)
	e.prov.exited.Store(true)
	client := e.client(t, DefaultClientCN)

	get := func(query string) (int, string) {
		t.Helper()
		resp, err := client.Get(e.ts.URL + "/containerLogs/default/web/app" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, readAllString(t, resp.Body)
	}
	for _, tt := range []struct {
		query string
		want  string
	}{
		{"", "old line\nrecent line\nan error\n"},
		{"?tailLines=2", "recent line\nan error\n"},
		{"?sinceSeconds=600", "recent line\nan error\n"},
		{"?sinceTime=" + recent.Add(-time.Second).UTC().Format(time.RFC3339), "recent line\nan error\n"},
		{"?limitBytes=12", "old line\nrec"},
		{"?timestamps=true&tailLines=1", recent.UTC().Format(time.RFC3339Nano) + " an error\n"},
		{"?stream=Stderr", "an error\n"},
		{"?previous=true", "previous instance\n"},
		{"?follow=true", "old line\nrecent line\nan error\n"}, // the container has exited
	} {
		code, body := get(tt.query)
		if code != http.StatusOK || body != tt.want {
			t.Errorf("%s: got %d %q, want %q", tt.query, code, body, tt.want)
		}
	}

	for _, tt := range []struct {
		path  string
		code  int
		inMsg string
	}{
		{"/containerLogs/default/web/app?tailLines=x", 400, "tailLines"},
		{"/containerLogs/default/web/app?sinceSeconds=1&sinceTime=2020-01-01T00:00:00Z", 400, "sinceTime"},
		{"/containerLogs/default/nope/app", 404, "not found"},
	} {
		resp, err := client.Get(e.ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != tt.code || err != nil || !strings.Contains(st.Message, tt.inMsg) {
			t.Errorf("%s: got %d %+v (%v), want %d with %q", tt.path, resp.StatusCode, st, err, tt.code, tt.inMsg)
		}
	}
	e.prov.prevPath = ""
	if code, body := get("?previous=true"); code != 400 || !strings.Contains(body, "previous terminated container") {
		t.Errorf("previous without one: %d %s", code, body)
	}
}

func TestContainerLogsFollow(t *testing.T) {
	e := newTestEnv(t)
	e.prov.logPath = filepath.Join(t.TempDir(), "0.log")
	os.WriteFile(e.prov.logPath, []byte(criLine(time.Now(), "stdout", "F", "one")), 0o644)

	resp, err := e.client(t, DefaultClientCN).Get(e.ts.URL + "/containerLogs/default/web/app?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 10)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case <-time.After(30 * time.Second):
			t.Fatal("timed out waiting for a followed line")
			return ""
		}
	}
	if l := next(); l != "one" {
		t.Fatalf("got %q, want one", l)
	}
	f, _ := os.OpenFile(e.prov.logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(criLine(time.Now(), "stdout", "F", "two"))
	if l := next(); l != "two" {
		t.Fatalf("got %q, want two", l)
	}
	f.WriteString(criLine(time.Now(), "stderr", "F", "three"))
	f.Close()
	e.prov.exited.Store(true)
	if l := next(); l != "three" {
		t.Fatalf("got %q, want three", l)
	}
	select {
	case l, ok := <-lines:
		if ok {
			t.Fatalf("unexpected line %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("follow did not end after the container exited")
	}
	io.Copy(io.Discard, resp.Body)
}
