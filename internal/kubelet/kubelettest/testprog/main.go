// Command testprog is the program inside skiff's test images: a small
// static binary whose behaviour each test picks with arguments.
//
//	testprog serve ADDR          HTTP server: /healthz is 200 until /fail is requested
//	testprog exit CODE           print to stdout and stderr, then exit with CODE
//	testprog streams             one line to stdout, one to stderr, then sleep
//	testprog alloc MIB           allocate and touch MIB mebibytes, then sleep
//	testprog sleep SECONDS       sleep, ignoring nothing
//	testprog ignore-term         ignore SIGTERM and sleep
//	testprog term-log FILE       on SIGTERM, write "terminated" to FILE and exit 0
//	testprog sink ADDR           accept TCP connections and discard what they send
//	testprog blast ADDR SECONDS  send to ADDR as fast as possible, print MB/s
//	testprog api PATH            GET PATH from the API as an in-cluster client does
//	                             (KUBERNETES_SERVICE_HOST/PORT, the mounted token and
//	                             CA; PATH's "NAMESPACE" is the mounted namespace),
//	                             print the status code and body
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testprog serve|exit|streams|alloc|sleep|ignore-term|term-log ...")
		os.Exit(2)
	}
	arg := func(i int) string {
		if len(os.Args) > i {
			return os.Args[i]
		}
		return ""
	}
	switch os.Args[1] {
	case "serve":
		var failing atomic.Bool
		http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if failing.Load() {
				http.Error(w, "failing", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		http.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { failing.Store(true) })
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			host, _ := os.Hostname()
			fmt.Fprintf(w, "hello from %s\n", host)
		})
		fmt.Println("serving on", arg(2))
		if err := http.ListenAndServe(arg(2), nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "exit":
		code, _ := strconv.Atoi(arg(2))
		fmt.Println("to stdout")
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(code)
	case "streams":
		fmt.Println("out line")
		fmt.Fprintln(os.Stderr, "err line")
		time.Sleep(time.Hour)
	case "alloc":
		mib, _ := strconv.Atoi(arg(2))
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
		time.Sleep(time.Hour)
	case "sleep":
		s, _ := strconv.Atoi(arg(2))
		time.Sleep(time.Duration(s) * time.Second)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
	case "term-log":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("waiting for SIGTERM")
		<-c
		_ = os.WriteFile(arg(2), []byte("terminated\n"), 0o644)
		os.Exit(0)
	case "sink":
		l, err := net.Listen("tcp", arg(2))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("sinking on", arg(2))
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(1)
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	case "blast":
		secs, _ := strconv.Atoi(arg(3))
		c, err := net.Dial("tcp", arg(2))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		buf := make([]byte, 128<<10)
		start := time.Now()
		var sent int64
		for time.Since(start) < time.Duration(secs)*time.Second {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		c.Close()
		fmt.Printf("MB/s: %.1f\n", float64(sent)/time.Since(start).Seconds()/1e6)
	case "api":
		os.Exit(inClusterGet(arg(2)))
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// inClusterGet reads what rest.InClusterConfig reads and GETs path with
// it; it prints the status code and body and returns 0 for 2xx, 3 for
// 401/403, 1 otherwise.
func inClusterGet(path string) int {
	const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	token, err1 := os.ReadFile(dir + "token")
	caPEM, err2 := os.ReadFile(dir + "ca.crt")
	ns, err3 := os.ReadFile(dir + "namespace")
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			fmt.Println(err)
			return 1
		}
	}
	if host == "" || port == "" {
		fmt.Println("KUBERNETES_SERVICE_HOST/PORT not set")
		return 1
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		fmt.Println("ca.crt holds no certificate")
		return 1
	}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	url := "https://" + net.JoinHostPort(host, port) + strings.ReplaceAll(path, "NAMESPACE", strings.TrimSpace(string(ns)))
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Printf("status %d\n%s\n", resp.StatusCode, body)
	switch {
	case resp.StatusCode/100 == 2:
		return 0
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return 3
	}
	return 1
}
