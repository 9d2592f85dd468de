package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run scripts/install.sh as a user would, but with every path
// it writes pointed into a temp dir, a fake skiff binary served over HTTP
// on loopback, and fake uname/systemctl/rc-* commands first on PATH. They
// need neither root nor systemd and never touch the real /etc or /usr/local.

// installScriptPath is scripts/install.sh, absolute: the scripts run in
// the fake host's dir.
func installScriptPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "scripts", "install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// installHost is one fake host: a root dir holding the install targets and
// a bin dir of fake commands.
type installHost struct {
	t       *testing.T
	root    string
	fakeBin string
	calls   string // file the fake systemctl/rc-* commands append to
	shell   string // dash when installed: /bin/sh on Debian and Ubuntu
	url     string // the download server
	binary  map[string][]byte
	sums    map[string]string // file name → sha256 in sha256sum.txt
	machine string            // what `uname -m` prints
}

func newInstallHost(t *testing.T) *installHost {
	t.Helper()
	h := &installHost{
		t:       t,
		root:    t.TempDir(),
		machine: "x86_64",
		binary: map[string][]byte{
			"skiff-amd64": []byte("#!/bin/sh\necho 'skiff version v0.0.1-test (commit amd64, built today)'\n"),
			"skiff-arm64": []byte("#!/bin/sh\necho 'skiff version v0.0.1-test (commit arm64, built today)'\n"),
		},
		sums: map[string]string{},
	}
	for name, b := range h.binary {
		sum := sha256.Sum256(b)
		h.sums[name] = hex.EncodeToString(sum[:])
	}
	h.shell = "sh"
	if p, err := exec.LookPath("dash"); err == nil {
		h.shell = p
	} else {
		t.Logf("dash is not installed; running the scripts with sh")
	}
	h.fakeBin = filepath.Join(h.root, "fakebin")
	h.calls = filepath.Join(h.root, "calls.log")
	if err := os.MkdirAll(h.fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	// uname reads the wanted machine from a file so a test can change it.
	h.writeExec(filepath.Join(h.fakeBin, "uname"), "#!/bin/sh\ncat "+filepath.Join(h.root, "machine")+"\n")
	for _, cmd := range []string{"systemctl", "rc-service", "rc-update"} {
		h.writeExec(filepath.Join(h.fakeBin, cmd), "#!/bin/sh\necho \""+cmd+" $*\" >>"+h.calls+"\n")
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "sha256sum.txt" {
			for file, sum := range h.sums {
				fmt.Fprintf(w, "%s  %s\n", sum, file)
			}
			return
		}
		b, ok := h.binary[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *installHost) writeExec(path, content string) {
	h.t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *installHost) path(rel string) string { return filepath.Join(h.root, rel) }

// env is the installer's whole environment: nothing leaks in from the test
// process, so the install paths always point into the temp dir.
func (h *installHost) env(extra ...string) []string {
	env := []string{
		"PATH=" + h.fakeBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + h.root,
		"TMPDIR=" + h.root,
		"SKIFF_DOWNLOAD_URL=" + h.url,
		"INSTALL_SKIFF_BIN_DIR=" + h.path("usr/local/bin"),
		"INSTALL_SKIFF_SYSTEMD_DIR=" + h.path("etc/systemd/system"),
		"INSTALL_SKIFF_OPENRC_DIR=" + h.path("etc/init.d"),
		"INSTALL_SKIFF_ETC_DIR=" + h.path("etc/skiff"),
		"INSTALL_SKIFF_DATA_DIR=" + h.path("var/lib/skiff"),
		"INSTALL_SKIFF_POD_LOG_DIR=" + h.path("var/log/pods"),
		"INSTALL_SKIFF_SKIP_HOST_CHECK=true",
		"INSTALL_SKIFF_INIT=systemd",
		"INSTALL_SKIFF_SKIP_START=true",
	}
	return append(env, extra...)
}

// install runs install.sh and returns its output and error.
func (h *installHost) install(extra ...string) (string, error) {
	h.t.Helper()
	if err := os.WriteFile(h.path("machine"), []byte(h.machine+"\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return h.runScript(installScriptPath(h.t), h.env(extra...))
}

func (h *installHost) mustInstall(extra ...string) string {
	h.t.Helper()
	out, err := h.install(extra...)
	if err != nil {
		h.t.Fatalf("install.sh %v: %v\n%s", extra, err, out)
	}
	return out
}

func (h *installHost) runScript(script string, env []string) (string, error) {
	h.t.Helper()
	cmd := exec.Command(h.shell, script)
	cmd.Env = env
	cmd.Dir = h.root
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		h.t.Fatalf("%s did not finish in 2 minutes:\n%s", script, out)
	}
	return string(out), err
}

func (h *installHost) read(rel string) string {
	h.t.Helper()
	b, err := os.ReadFile(h.path(rel))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}

func (h *installHost) mode(rel string) fs.FileMode {
	h.t.Helper()
	fi, err := os.Stat(h.path(rel))
	if err != nil {
		h.t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func (h *installHost) exists(rel string) bool {
	_, err := os.Lstat(h.path(rel))
	return err == nil
}

func (h *installHost) callLog() string {
	b, err := os.ReadFile(h.calls)
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return string(b)
}

// unitLine returns the value of the one KEY= line in a unit file.
func unitLine(t *testing.T, unit, key string) string {
	t.Helper()
	var found []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("unit has %d %s= lines, want 1:\n%s", len(found), key, unit)
	}
	return found[0]
}

func TestInstallServerSystemd(t *testing.T) {
	h := newInstallHost(t)
	out := h.mustInstall("INSTALL_SKIFF_EXEC=--node-ip 10.0.0.5", "SKIFF_NODE_NAME=node-1")

	bin := h.path("usr/local/bin/skiff")
	if got := h.read("usr/local/bin/skiff"); got != string(h.binary["skiff-amd64"]) {
		t.Errorf("installed binary is not skiff-amd64:\n%s", got)
	}
	if m := h.mode("usr/local/bin/skiff"); m != 0o755 {
		t.Errorf("binary mode %v, want 0755", m)
	}
	unit := h.read("etc/systemd/system/skiff.service")
	for key, want := range map[string]string{
		"Type":            "notify",
		"KillMode":        "process",
		"Delegate":        "yes",
		"Restart":         "always",
		"RestartSec":      "5s",
		"LimitNOFILE":     "1048576",
		"TasksMax":        "infinity",
		"TimeoutStartSec": "0",
		"EnvironmentFile": "-" + h.path("etc/systemd/system/skiff.service.env"),
	} {
		if got := unitLine(t, unit, key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	for _, want := range []string{"ExecStartPre=-/sbin/modprobe br_netfilter\n", "ExecStartPre=-/sbin/modprobe overlay\n", "WantedBy=multi-user.target\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	execStart := unitLine(t, unit, "ExecStart")
	if !strings.HasPrefix(execStart, bin+" server --node-ip 10.0.0.5 ") {
		t.Errorf("ExecStart=%s, want %s server --node-ip 10.0.0.5 ...", execStart, bin)
	}
	for _, want := range []string{
		"--node-name node-1",
		"--data-dir " + h.path("var/lib/skiff"),
		"--pod-log-dir " + h.path("var/log/pods"),
		"--write-kubeconfig " + h.path("etc/skiff/skiff.yaml"),
	} {
		if !strings.Contains(execStart+" ", want+" ") {
			t.Errorf("ExecStart=%s lacks %q", execStart, want)
		}
	}
	if m := h.mode("etc/systemd/system/skiff.service.env"); m != 0o600 {
		t.Errorf("env file mode %v, want 0600", m)
	}
	if h.exists("etc/systemd/system/skiff-agent.service") {
		t.Error("a server install wrote skiff-agent.service")
	}
	for _, script := range []string{"skiff-killall.sh", "skiff-uninstall.sh"} {
		if m := h.mode("usr/local/bin/" + script); m != 0o755 {
			t.Errorf("%s mode %v, want 0755", script, m)
		}
	}
	for _, want := range []string{"skiff kubeconfig", "skiff.yaml", "skiff token --agent", "SKIFF_TOKEN=<agent token>", "not starting skiff.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	if calls := h.callLog(); calls != "" {
		t.Errorf("INSTALL_SKIFF_SKIP_START=true but the installer ran:\n%s", calls)
	}
}

func TestInstallAgentSystemd(t *testing.T) {
	h := newInstallHost(t)
	const token = "K10secret-join-token::node:abc" // an agent token
	out := h.mustInstall("SKIFF_URL=https://10.0.0.1:6443", "SKIFF_TOKEN="+token, "INSTALL_SKIFF_EXEC=--node-label zone=a")

	if h.exists("etc/systemd/system/skiff.service") {
		t.Error("an agent install wrote skiff.service")
	}
	unit := h.read("etc/systemd/system/skiff-agent.service")
	execStart := unitLine(t, unit, "ExecStart")
	if !strings.HasPrefix(execStart, h.path("usr/local/bin/skiff")+" agent --node-label zone=a") {
		t.Errorf("ExecStart=%s, want skiff agent --node-label zone=a ...", execStart)
	}
	if strings.Contains(unit, token) || strings.Contains(out, token) {
		t.Errorf("the token is in the unit or the output:\n%s\n%s", unit, out)
	}
	if got := unitLine(t, unit, "EnvironmentFile"); got != "-"+h.path("etc/systemd/system/skiff-agent.service.env") {
		t.Errorf("EnvironmentFile=%s", got)
	}
	env := h.read("etc/systemd/system/skiff-agent.service.env")
	for _, want := range []string{"SKIFF_URL='https://10.0.0.1:6443'\n", "SKIFF_TOKEN='" + token + "'\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env file lacks %q:\n%s", want, env)
		}
	}
	if m := h.mode("etc/systemd/system/skiff-agent.service.env"); m != 0o600 {
		t.Errorf("env file mode %v, want 0600", m)
	}
	if !strings.Contains(out, "joining https://10.0.0.1:6443") {
		t.Errorf("output does not say which server the agent joins:\n%s", out)
	}
}

// TestInstallServerJoin: INSTALL_SKIFF_EXEC=server with SKIFF_URL installs
// a server that joins the cluster of SKIFF_URL, which skiff server reads
// from the env file.
func TestInstallServerJoin(t *testing.T) {
	h := newInstallHost(t)
	const token = "K10secret-join-token::server:abc"
	h.mustInstall("INSTALL_SKIFF_EXEC=server --node-ip 10.0.0.2", "SKIFF_URL=https://10.0.0.1:6443", "SKIFF_TOKEN="+token)
	if h.exists("etc/systemd/system/skiff-agent.service") {
		t.Error("a server install wrote skiff-agent.service")
	}
	execStart := unitLine(t, h.read("etc/systemd/system/skiff.service"), "ExecStart")
	if !strings.HasPrefix(execStart, h.path("usr/local/bin/skiff")+" server --node-ip 10.0.0.2") {
		t.Errorf("ExecStart=%s, want skiff server --node-ip 10.0.0.2 ...", execStart)
	}
	env := h.read("etc/systemd/system/skiff.service.env")
	for _, want := range []string{"SKIFF_URL='https://10.0.0.1:6443'\n", "SKIFF_TOKEN='" + token + "'\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("env file lacks %q:\n%s", want, env)
		}
	}
}

func TestInstallAgentWithoutToken(t *testing.T) {
	h := newInstallHost(t)
	out, err := h.install("SKIFF_URL=https://10.0.0.1:6443")
	if err == nil {
		t.Fatalf("install with SKIFF_URL and no token succeeded:\n%s", out)
	}
	if !strings.Contains(out, "SKIFF_TOKEN") {
		t.Errorf("error does not name SKIFF_TOKEN:\n%s", out)
	}
	if h.exists("usr/local/bin/skiff") {
		t.Error("a failed install left the binary")
	}
}

func TestInstallOpenRC(t *testing.T) {
	h := newInstallHost(t)
	const token = "openrc-secret-token"
	h.mustInstall("INSTALL_SKIFF_INIT=openrc", "SKIFF_URL=https://10.0.0.1:6443", "SKIFF_TOKEN="+token,
		"INSTALL_SKIFF_EXEC=--node-ip 10.0.0.7 --node-label note=it's")

	if h.exists("etc/systemd/system") {
		t.Error("an OpenRC install wrote into the systemd dir")
	}
	script := h.read("etc/init.d/skiff-agent")
	if m := h.mode("etc/init.d/skiff-agent"); m != 0o755 {
		t.Errorf("init script mode %v, want 0755", m)
	}
	for _, want := range []string{"#!/sbin/openrc-run\n", "supervisor=supervise-daemon\n", "rc_cgroup_cleanup=no\n"} {
		if !strings.Contains(script, want) {
			t.Errorf("init script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, token) {
		t.Errorf("the token is in the init script:\n%s", script)
	}
	env := h.read("etc/conf.d/skiff-agent")
	if !strings.Contains(env, "SKIFF_TOKEN='"+token+"'") {
		t.Errorf("conf.d file lacks the token:\n%s", env)
	}
	if m := h.mode("etc/conf.d/skiff-agent"); m != 0o600 {
		t.Errorf("conf.d file mode %v, want 0600", m)
	}
	if out, err := exec.Command(h.shell, "-n", h.path("etc/init.d/skiff-agent")).CombinedOutput(); err != nil {
		t.Errorf("init script is not valid sh: %v\n%s", err, out)
	}
	// OpenRC evaluates command_args as shell words: check they come out
	// as the flags given, the quote included.
	check := "eval \"$(grep '^command_args=' " + h.path("etc/init.d/skiff-agent") + ")\"\n" +
		"eval \"set -- $command_args\"\n" +
		"printf '<%s>' \"$@\"\n"
	out, err := exec.Command(h.shell, "-c", check).CombinedOutput()
	if err != nil {
		t.Fatalf("evaluate command_args: %v\n%s", err, out)
	}
	if want := "<agent><--node-ip><10.0.0.7><--node-label><note=it's>"; !strings.HasPrefix(string(out), want) {
		t.Errorf("command_args evaluate to %s, want prefix %s", out, want)
	}
}

// snapshot records every installed file's bytes, mode, mtime and inode.
func (h *installHost) snapshot() map[string]string {
	h.t.Helper()
	snap := map[string]string{}
	for _, dir := range []string{"usr", "etc", "var"} {
		filepath.WalkDir(h.path(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			var content []byte
			if fi.Mode().IsRegular() {
				content, _ = os.ReadFile(p)
			}
			snap[p] = fmt.Sprintf("mode=%v mtime=%v inode=%d sum=%x", fi.Mode(), fi.ModTime().UnixNano(), st.Ino, sha256.Sum256(content))
			return nil
		})
	}
	return snap
}

func TestInstallIdempotent(t *testing.T) {
	h := newInstallHost(t)
	args := []string{"INSTALL_SKIFF_SKIP_START=false", "SKIFF_URL=https://10.0.0.1:6443", "SKIFF_TOKEN=tok", "INSTALL_SKIFF_EXEC=--node-ip 10.0.0.5"}
	h.mustInstall(args...)
	first := h.callLog()
	for _, want := range []string{"systemctl daemon-reload", "systemctl enable --quiet skiff-agent.service", "systemctl restart skiff-agent.service"} {
		if !strings.Contains(first, want+"\n") {
			t.Errorf("first install did not run %q; ran:\n%s", want, first)
		}
	}
	before := h.snapshot()
	os.Remove(h.calls)

	out := h.mustInstall(args...)
	if !strings.Contains(out, "nothing changed") {
		t.Errorf("second install does not say nothing changed:\n%s", out)
	}
	after := h.snapshot()
	for p, b := range before {
		if after[p] != b {
			t.Errorf("second install changed %s:\n before %s\n after  %s", p, b, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("second install created %s", p)
		}
	}
	second := h.callLog()
	if strings.Contains(second, "restart") || strings.Contains(second, "daemon-reload") {
		t.Errorf("second install reloaded or restarted although nothing changed:\n%s", second)
	}
	os.Remove(h.calls)

	// A changed flag rewrites the unit, reloads systemd and restarts skiff.
	args[3] = "INSTALL_SKIFF_EXEC=--node-ip 10.0.0.6"
	out = h.mustInstall(args...)
	if strings.Contains(out, "nothing changed") {
		t.Errorf("install with a new flag says nothing changed:\n%s", out)
	}
	if execStart := unitLine(t, h.read("etc/systemd/system/skiff-agent.service"), "ExecStart"); !strings.Contains(execStart, "--node-ip 10.0.0.6") {
		t.Errorf("ExecStart=%s lacks the new flag", execStart)
	}
	third := h.callLog()
	for _, want := range []string{"systemctl daemon-reload", "systemctl restart skiff-agent.service"} {
		if !strings.Contains(third, want+"\n") {
			t.Errorf("install with a new flag did not run %q; ran:\n%s", want, third)
		}
	}
}

// assertNothingInstalled fails if the installer wrote any target file.
func (h *installHost) assertNothingInstalled() {
	h.t.Helper()
	for _, dir := range []string{"usr", "etc", "var"} {
		if h.exists(dir) {
			h.t.Errorf("a refused install created %s", h.path(dir))
		}
	}
}

func TestInstallChecksumMismatch(t *testing.T) {
	h := newInstallHost(t)
	good := h.sums["skiff-amd64"]
	bad := strings.Repeat("0", 64)
	h.sums["skiff-amd64"] = bad
	out, err := h.install()
	if err == nil {
		t.Fatalf("install with a wrong checksum succeeded:\n%s", out)
	}
	if !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, bad) || !strings.Contains(out, good) {
		t.Errorf("error does not name the mismatch and both sums (%s, %s):\n%s", bad, good, out)
	}
	h.assertNothingInstalled()

	// A local binary with a wrong INSTALL_SKIFF_SHA256 is refused too.
	local := h.path("skiff-local")
	if err := os.WriteFile(local, h.binary["skiff-amd64"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = h.install("INSTALL_SKIFF_BINARY="+local, "INSTALL_SKIFF_SHA256="+bad)
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("install of a local binary with a wrong sum: err=%v\n%s", err, out)
	}
	h.assertNothingInstalled()
	// ... and installed when the sum is right (or not given).
	h.mustInstall("INSTALL_SKIFF_BINARY="+local, "INSTALL_SKIFF_SHA256="+good)
	if got := h.read("usr/local/bin/skiff"); got != string(h.binary["skiff-amd64"]) {
		t.Errorf("local binary not installed:\n%s", got)
	}
}

func TestInstallArch(t *testing.T) {
	h := newInstallHost(t)
	h.machine = "mips"
	out, err := h.install()
	if err == nil {
		t.Fatalf("install on mips succeeded:\n%s", out)
	}
	if !strings.Contains(out, "unsupported architecture 'mips'") {
		t.Errorf("error does not name the architecture:\n%s", out)
	}
	h.assertNothingInstalled()

	h.machine = "aarch64"
	h.mustInstall()
	if got := h.read("usr/local/bin/skiff"); got != string(h.binary["skiff-arm64"]) {
		t.Errorf("on aarch64 the installed binary is not skiff-arm64:\n%s", got)
	}
}

func TestInstallScriptsSyntax(t *testing.T) {
	h := newInstallHost(t)
	h.mustInstall()
	scripts := []string{installScriptPath(t), h.path("usr/local/bin/skiff-killall.sh"), h.path("usr/local/bin/skiff-uninstall.sh")}
	for _, s := range scripts {
		if out, err := exec.Command(h.shell, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", h.shell, s, err, out)
		}
	}
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Log("shellcheck is not installed; skipping the lint")
		return
	}
	args := append([]string{"-s", "sh"}, scripts...)
	if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

// TestUninstall runs the installed skiff-uninstall.sh with skiff-killall.sh
// replaced by a stub (the real one kills processes and edits iptables).
func TestUninstall(t *testing.T) {
	for _, podLogsExisted := range []bool{false, true} {
		t.Run(fmt.Sprintf("podLogsExisted=%v", podLogsExisted), func(t *testing.T) {
			h := newInstallHost(t)
			if podLogsExisted {
				if err := os.MkdirAll(h.path("var/log/pods/other"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			h.mustInstall()
			// What a running skiff would have written.
			for _, p := range []string{"var/lib/skiff/db/state.db", "etc/skiff/skiff.yaml", "var/log/pods/ns_pod_uid/c/0.log"} {
				if err := os.MkdirAll(filepath.Dir(h.path(p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(h.path(p), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			killed := h.path("killall-ran")
			h.writeExec(h.path("usr/local/bin/skiff-killall.sh"), "#!/bin/sh\ntouch "+killed+"\n")

			out, err := h.runScript(h.path("usr/local/bin/skiff-uninstall.sh"), h.env())
			if err != nil {
				t.Fatalf("uninstall: %v\n%s", err, out)
			}
			if _, err := os.Stat(killed); err != nil {
				t.Error("uninstall did not run skiff-killall.sh")
			}
			for _, p := range []string{
				"usr/local/bin/skiff", "usr/local/bin/skiff-killall.sh", "usr/local/bin/skiff-uninstall.sh",
				"etc/systemd/system/skiff.service", "etc/systemd/system/skiff.service.env",
				"etc/skiff", "var/lib/skiff",
			} {
				if h.exists(p) {
					t.Errorf("uninstall left %s", p)
				}
			}
			if got := h.exists("var/log/pods"); got != podLogsExisted {
				t.Errorf("pod log dir exists=%v after uninstall, want %v (it existed before install: %v)", got, podLogsExisted, podLogsExisted)
			}
			for _, want := range []string{"systemctl disable skiff.service", "systemctl daemon-reload"} {
				if !strings.Contains(h.callLog(), want+"\n") {
					t.Errorf("uninstall did not run %q; ran:\n%s", want, h.callLog())
				}
			}
		})
	}
}
