// Package loadbalancer is the agent's client-side load balancer over the
// cluster's API servers: a TCP proxy on loopback that forwards each new
// connection to a live server, so the agent keeps working when the server
// it joined through goes down. The agent's clients talk to 127.0.0.1:<port>
// and keep verifying the servers' certificates against the cluster CA
// (skiff's serving certificates include 127.0.0.1), so the proxy only moves
// bytes and never terminates TLS.
package loadbalancer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultHealthInterval = 5 * time.Second
	DefaultDialTimeout    = 2 * time.Second
)

// Config configures a LoadBalancer.
type Config struct {
	// ListenAddr is where clients connect; "" means 127.0.0.1:0 (any free
	// port, see Addr).
	ListenAddr string
	// Servers are the configured servers (host:port). They stay in the
	// list as a fallback whatever the cluster later reports, because they
	// may be a name or virtual address that the endpoints never show.
	Servers []string
	// StateFile keeps the last known server list across restarts, so a
	// restarted agent finds the other servers when the configured one is
	// down. "" disables persistence.
	StateFile string
	// CAPool, when set, makes the health check a GET /readyz over TLS
	// verified against it; otherwise a server is healthy when it accepts a
	// TCP connection.
	CAPool         *x509.CertPool
	Logger         *slog.Logger
	HealthInterval time.Duration
	DialTimeout    time.Duration
}

// LoadBalancer forwards connections to the servers. Create it with New
// (which already listens, so Addr is known before Run) and call Run.
type LoadBalancer struct {
	cfg      Config
	log      *slog.Logger
	defaults []string
	listener net.Listener
	health   *http.Client

	mu sync.Mutex
	// servers is the reported list followed by the configured servers
	// that are not in it; dialing tries them in this order.
	servers  []string
	reported []string
	down     map[string]bool
	// current is the server the last connection went to: new connections
	// prefer it, so a client's connections normally share one server.
	current string
	conns   map[string]map[*link]struct{}
	// stopped is set when Run ends, so a connection dialed meanwhile is
	// closed rather than left behind.
	stopped bool
}

// link is one proxied connection: the client's side and the server's.
type link struct{ client, server net.Conn }

func (l *link) close() {
	l.client.Close()
	l.server.Close()
}

// state is the JSON in Config.StateFile.
type state struct {
	Servers []string `json:"servers"`
}

// New validates cfg, loads the persisted server list and starts listening.
func New(cfg Config) (*LoadBalancer, error) {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = DefaultHealthInterval
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	defaults, err := normalize(cfg.Servers)
	if err != nil {
		return nil, fmt.Errorf("load balancer servers: %w", err)
	}
	lb := &LoadBalancer{
		cfg:      cfg,
		log:      cfg.Logger,
		defaults: defaults,
		down:     map[string]bool{},
		conns:    map[string]map[*link]struct{}{},
	}
	lb.health = &http.Client{
		Timeout: lb.checkTimeout(),
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: cfg.CAPool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true, // each check must open a fresh connection
			Proxy:             nil,  // the servers are reached directly, never through HTTP_PROXY
		},
	}
	if cfg.StateFile != "" {
		persisted, err := loadState(cfg.StateFile)
		if err != nil {
			// A damaged file must not stop the agent: the configured
			// servers and the endpoints watch rebuild the list.
			lb.log.Warn("ignoring the load balancer's saved server list", "file", cfg.StateFile, "err", err)
		}
		lb.reported = persisted
	}
	lb.servers = merge(lb.reported, defaults)
	if len(lb.servers) == 0 {
		return nil, errors.New("load balancer: no servers configured or saved")
	}
	l, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("load balancer listen %s: %w", cfg.ListenAddr, err)
	}
	lb.listener = l
	return lb, nil
}

// Addr is the address clients connect to, 127.0.0.1:port.
func (lb *LoadBalancer) Addr() string { return lb.listener.Addr().String() }

// Servers is the current list: the reported servers, then the configured
// ones not among them.
func (lb *LoadBalancer) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return slices.Clone(lb.servers)
}

// SetServers replaces the reported server list (host:port each) and
// persists it. Connections to servers no longer in the list are closed; an
// empty or invalid list is ignored so that a bad update never leaves the
// agent without servers.
func (lb *LoadBalancer) SetServers(servers []string) {
	list, err := normalize(servers)
	if err != nil || len(list) == 0 {
		lb.log.Warn("ignoring server list update", "servers", servers, "err", err)
		return
	}
	lb.mu.Lock()
	if slices.Equal(list, lb.reported) {
		lb.mu.Unlock()
		return
	}
	old := lb.servers
	lb.reported = list
	lb.servers = merge(list, lb.defaults)
	var closing []*link
	for _, s := range old {
		if slices.Contains(lb.servers, s) {
			continue
		}
		delete(lb.down, s)
		if lb.current == s {
			lb.current = ""
		}
		for l := range lb.conns[s] {
			closing = append(closing, l)
		}
		delete(lb.conns, s)
	}
	current := slices.Clone(lb.servers)
	lb.mu.Unlock()

	lb.log.Info("API server list updated", "servers", current)
	for _, l := range closing {
		l.close()
	}
	if lb.cfg.StateFile != "" {
		if err := saveState(lb.cfg.StateFile, list); err != nil {
			lb.log.Warn("cannot save the API server list; a restart will only know the configured server", "file", lb.cfg.StateFile, "err", err)
		}
	}
}

// Run accepts and forwards connections and checks the servers' health
// until ctx ends; it then closes the listener and every open connection.
func (lb *LoadBalancer) Run(ctx context.Context) error {
	lb.log.Info("starting API load balancer", "addr", lb.Addr(), "servers", lb.Servers())
	var wg sync.WaitGroup
	wg.Go(func() { lb.healthLoop(ctx) })
	stop := context.AfterFunc(ctx, func() { lb.listener.Close() })
	defer stop()

	var err error
	for {
		c, aerr := lb.listener.Accept()
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("load balancer accept on %s: %w", lb.Addr(), aerr)
			}
			break
		}
		wg.Go(func() { lb.serve(ctx, c) })
	}
	lb.listener.Close()
	lb.mu.Lock()
	lb.stopped = true
	var all []*link
	for _, set := range lb.conns {
		for l := range set {
			all = append(all, l)
		}
	}
	lb.mu.Unlock()
	for _, l := range all {
		l.close()
	}
	wg.Wait()
	lb.log.Info("API load balancer stopped", "addr", lb.Addr())
	return err
}

// serve dials a server for client and copies bytes both ways until both
// sides are done.
func (lb *LoadBalancer) serve(ctx context.Context, client net.Conn) {
	server, addr, err := lb.dial(ctx)
	if err != nil {
		lb.log.Warn("no API server reachable; dropping the connection", "err", err)
		client.Close()
		return
	}
	l := &link{client: client, server: server}
	lb.mu.Lock()
	if lb.stopped {
		lb.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	if _, ok := lb.conns[addr]; !ok {
		lb.conns[addr] = map[*link]struct{}{}
	}
	lb.conns[addr][l] = struct{}{}
	lb.mu.Unlock()
	defer func() {
		lb.mu.Lock()
		delete(lb.conns[addr], l)
		lb.mu.Unlock()
		l.close()
	}()

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Pass the end of one direction on, as TCP does, and let the
		// other direction finish.
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	<-done
}

// dial connects to the preferred server, or the next one that answers:
// healthy servers first (the current one leading), then the ones marked
// down, because a check may be stale and any server beats none.
func (lb *LoadBalancer) dial(ctx context.Context) (net.Conn, string, error) {
	var errs []error
	for _, addr := range lb.candidates() {
		d := net.Dialer{Timeout: lb.cfg.DialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			lb.mu.Lock()
			if lb.current != addr {
				lb.log.Info("API connections now go to a new server", "server", addr, "previous", lb.current)
				lb.current = addr
			}
			lb.mu.Unlock()
			return c, addr, nil
		}
		errs = append(errs, err)
		lb.setDown(addr, true, err)
	}
	return nil, "", errors.Join(errs...)
}

func (lb *LoadBalancer) candidates() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var up, down []string
	for _, s := range lb.servers {
		list := &up
		if lb.down[s] {
			list = &down
		}
		if s == lb.current {
			*list = append([]string{s}, *list...)
		} else {
			*list = append(*list, s)
		}
	}
	return append(up, down...)
}

// setDown records a server's health. A server that goes down loses its
// open connections: their clients (long watches above all) would otherwise
// wait for TCP timeouts instead of reconnecting through the balancer to a
// live server.
func (lb *LoadBalancer) setDown(addr string, down bool, why error) {
	lb.mu.Lock()
	if !slices.Contains(lb.servers, addr) || lb.down[addr] == down {
		lb.mu.Unlock()
		return
	}
	var closing []*link
	if down {
		lb.down[addr] = true
		for l := range lb.conns[addr] {
			closing = append(closing, l)
		}
		delete(lb.conns, addr)
		if lb.current == addr {
			lb.current = ""
		}
	} else {
		delete(lb.down, addr)
	}
	lb.mu.Unlock()

	if down {
		lb.log.Warn("API server down; closing its connections", "server", addr, "connections", len(closing), "err", why)
	} else {
		lb.log.Info("API server up", "server", addr)
	}
	for _, l := range closing {
		l.close()
	}
}

func (lb *LoadBalancer) healthLoop(ctx context.Context) {
	t := time.NewTicker(lb.cfg.HealthInterval)
	defer t.Stop()
	for {
		lb.checkAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll checks every server at once, so one that hangs does not delay
// the verdict on the others.
func (lb *LoadBalancer) checkAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, addr := range lb.Servers() {
		wg.Go(func() {
			err := lb.check(ctx, addr)
			if ctx.Err() != nil {
				return
			}
			lb.setDown(addr, err != nil, err)
		})
	}
	wg.Wait()
}

// checkTimeout is generous: a loaded server that answers slowly is still
// better than closing every connection to it.
func (lb *LoadBalancer) checkTimeout() time.Duration {
	return max(2*lb.cfg.DialTimeout, lb.cfg.HealthInterval)
}

func (lb *LoadBalancer) check(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, lb.checkTimeout())
	defer cancel()
	if lb.cfg.CAPool == nil {
		d := net.Dialer{Timeout: lb.cfg.DialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := lb.health.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s: %s", resp.Status, body)
	}
	return nil
}

// normalize checks that every entry is host:port and drops duplicates,
// keeping the first occurrence's position.
func normalize(servers []string) ([]string, error) {
	var out []string
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("server %q is not host:port", s)
		}
		s = net.JoinHostPort(host, port)
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// merge is a followed by the entries of b that are not in a.
func merge(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func loadState(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return normalize(st.Servers)
}

// saveState writes the list through a temporary file and a rename, so a
// crash never leaves a half-written file.
func saveState(path string, servers []string) error {
	data, err := json.MarshalIndent(state{Servers: servers}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
