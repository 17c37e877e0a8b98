package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/otp"
)

// These tests build the real binary and drive it as an operator and a
// login stack would: `mfad serve` on a temporary state directory and socket,
// and the client verbs against it.

var mfadBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mfad-bin-")
	if err != nil {
		panic(err)
	}
	_ = os.Chmod(dir, 0o755) // the role test runs the binary as nobody
	mfadBin = filepath.Join(dir, "mfad")
	out, err := exec.Command("go", "build", "-o", mfadBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building mfad: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type daemonProc struct {
	t      *testing.T
	dir    string
	config string
	socket string
	cmd    *exec.Cmd
	stderr *syncBuffer
	sim    bool // run with --sim
}

// syncBuffer is a bytes.Buffer safe for the exec goroutine writing and the
// test reading at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newDaemonDir makes a state directory and a config file for it. extra is
// appended to the config.
func newDaemonDir(t *testing.T, extra string) *daemonProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "mfad-e2e-") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	d := &daemonProc{t: t, dir: dir, socket: filepath.Join(dir, "mfad.sock"), config: filepath.Join(dir, "config.hcl")}
	d.writeConfig(extra)
	return d
}

func (d *daemonProc) writeConfig(extra string) {
	cfg := fmt.Sprintf("server {\n  socket = %q\n}\nstorage {\n  dir = %q\n}\n%s", d.socket, filepath.Join(d.dir, "state"), extra)
	if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// start runs `mfad serve` and waits until it answers.
func (d *daemonProc) start() {
	d.t.Helper()
	d.stderr = &syncBuffer{}
	args := []string{"serve", "--config", d.config}
	if d.sim {
		args = append(args, "--sim")
	}
	d.cmd = exec.Command(mfadBin, args...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return
		}
		if d.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("daemon did not start; stderr:\n%s", d.stderr)
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop() {
	if d.cmd == nil || d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("daemon exited with %v; stderr:\n%s", err, d.stderr)
		}
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		d.t.Errorf("daemon did not stop on SIGTERM")
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs a client verb against the daemon's socket.
func (d *daemonProc) run(stdin string, args ...string) result {
	d.t.Helper()
	return runWith(d.t, nil, stdin, append([]string{"--socket", d.socket}, args...)...)
}

func runWith(t *testing.T, attr *syscall.SysProcAttr, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(mfadBin, args...)
	cmd.SysProcAttr = attr
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("running mfad %v: %v", args, err)
	}
	return r
}

func (r result) mustOK(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

func decodeJSON(t *testing.T, r result, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
}

// freshStep waits, if needed, until at least 3 s remain in the current
// 30 s time step, so that codes computed here are still in the daemon's
// window when it checks them (the daemon runs on the real clock). It waits
// at most 3 s.
func freshStep(t *testing.T) {
	t.Helper()
	left := 30*time.Second - time.Duration(time.Now().UnixNano())%(30*time.Second)
	if left < 3*time.Second {
		time.Sleep(left + 10*time.Millisecond)
	}
}

func totpCode(t *testing.T, secret string, offset int) string {
	t.Helper()
	s, err := otp.ParseBase32(secret)
	if err != nil {
		t.Fatal(err)
	}
	p := otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: "SHA1"}
	return otp.Code(s, uint64(int64(otp.Counter(time.Now(), p))+int64(offset)), p)
}

// enroll enrolls a TOTP factor through the CLI and returns the secret.
func (d *daemonProc) enroll(t *testing.T, user string) string {
	t.Helper()
	var e struct {
		FactorID, Secret, OTPAuthURI string
	}
	freshStep(t)
	r := d.run("", "totp", "enroll", user, "--no-confirm", "--json").mustOK(t)
	var raw map[string]string
	decodeJSON(t, r, &raw)
	e.FactorID, e.Secret, e.OTPAuthURI = raw["factor_id"], raw["secret"], raw["otpauth_uri"]
	if e.FactorID == "" || e.Secret == "" || !strings.HasPrefix(e.OTPAuthURI, "otpauth://totp/") {
		t.Fatalf("enroll output %q", r.stdout)
	}
	d.run("", "totp", "confirm", user, e.FactorID, totpCode(t, e.Secret, -1)).mustOK(t)
	return e.Secret
}

func TestCLIEndToEnd(t *testing.T) {
	d := newDaemonDir(t, "")
	d.start()

	var st wire.Status
	decodeJSON(t, d.run("", "status", "--json").mustOK(t), &st)
	if st.Caller.UID != os.Getuid() || st.Store == nil {
		t.Fatalf("status %+v", st)
	}
	if r := d.run("", "status").mustOK(t); !strings.Contains(r.stdout, "schema 1") {
		t.Fatalf("human status: %s", r.stdout)
	}

	secret := d.enroll(t, "alice")
	code := totpCode(t, secret, 0)
	if r := d.run("", "verify", "alice", code); r.code != 0 || !strings.Contains(r.stdout, "accepted") {
		t.Fatalf("verify: %+v", r)
	}
	if r := d.run("", "verify", "alice", code); r.code != 1 {
		t.Fatalf("replayed code: exit %d, want 1\n%s", r.code, r.stdout)
	}
	if r := d.run("", "verify", "nobody-here", code); r.code != 1 {
		t.Fatalf("unknown user: exit %d, want 1", r.code)
	}

	var rc wire.RecoveryCodesResponse
	decodeJSON(t, d.run("", "recovery-codes", "generate", "alice", "--json").mustOK(t), &rc)
	if len(rc.Codes) != 8 {
		t.Fatalf("codes: %v", rc.Codes)
	}
	// The interactive login flow, answering the prompt on stdin.
	r := d.run(rc.Codes[0]+"\n", "login", "alice", "--service", "sshd", "--rhost", "192.0.2.7").mustOK(t)
	if !strings.Contains(r.stdout, "accepted (recovery)") || !strings.Contains(r.stdout, "7 recovery codes left") {
		t.Fatalf("login output: %s %s", r.stdout, r.stderr)
	}
	// A wrong code, then the right one, in one login.
	r = d.run("000000\n"+totpCode(t, secret, 1)+"\n", "login", "alice").mustOK(t)
	if !strings.Contains(r.stdout, "rejected") || !strings.Contains(r.stdout, "accepted (totp)") {
		t.Fatalf("login with a retry: %s", r.stdout)
	}

	var u wire.User
	decodeJSON(t, d.run("", "user", "show", "alice", "--json").mustOK(t), &u)
	if len(u.Factors) != 1 || u.Factors[0].Status != "active" || u.Recovery.Remaining != 7 {
		t.Fatalf("user: %+v", u)
	}
	if r := d.run("", "user", "show", "alice").mustOK(t); !strings.Contains(r.stdout, "7 of 8 left") {
		t.Fatalf("user show: %s", r.stdout)
	}

	var a wire.AuditResponse
	decodeJSON(t, d.run("", "audit", "alice", "--json").mustOK(t), &a)
	actions := map[string]bool{}
	for _, e := range a.Events {
		actions[e.Action+"/"+e.Result] = true
	}
	for _, want := range []string{"totp.enroll/pending", "totp.confirm/ok", "verify/ok", "verify/fail", "recovery.generate/ok"} {
		if !actions[want] {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}

	// Backup, delete, restore.
	backup := filepath.Join(d.dir, "backup.mfad")
	d.run("", "backup", backup).mustOK(t)
	if b, _ := os.ReadFile(backup); bytes.Contains(b, []byte("alice")) {
		t.Fatal("backup file holds plaintext")
	}
	d.run("", "user", "delete", "alice").mustOK(t)
	if r := d.run("", "user", "show", "alice"); r.code == 0 {
		t.Fatal("deleted user still shown")
	}
	d.run("", "restore", backup, "--yes").mustOK(t)
	d.run("", "user", "show", "alice").mustOK(t)
	// Offline restore, with the daemon stopped.
	d.run("", "user", "delete", "alice").mustOK(t)
	d.stop()
	firstLog := d.stderr.String()
	runWith(t, nil, "", "restore", backup, "--offline", "--config", d.config).mustOK(t)
	d.start()
	d.run("", "user", "show", "alice").mustOK(t)

	// No secret or code in the daemon's log.
	d.stop()
	logs := firstLog + d.stderr.String()
	for _, s := range append([]string{secret, code}, rc.Codes...) {
		if strings.Contains(logs, s) {
			t.Fatalf("daemon log contains a secret or code")
		}
	}
	// The daemon is down: verify says "error" (2), not "rejected".
	if r := d.run("", "verify", "alice", code); r.code != 2 {
		t.Fatalf("daemon down: exit %d, want 2", r.code)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	d := newDaemonDir(t, "lockout {\n  max_failures = 3\n}\n")
	d.start()
	secret := d.enroll(t, "bob")
	code := totpCode(t, secret, 0)
	d.run("", "verify", "bob", code).mustOK(t)
	d.run("", "verify", "bob", "111111")
	d.run("", "verify", "bob", "222222")
	d.stop()

	// The key file was generated with mode 0600 outside the database dir.
	fi, err := os.Stat(filepath.Join(d.dir, "state", "mfad.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}

	d.start()
	if r := d.run("", "verify", "bob", code); r.code != 1 {
		t.Fatalf("replay after restart accepted")
	}
	var v wire.VerifyResponse
	decodeJSON(t, d.run("", "verify", "bob", totpCode(t, secret, 1), "--json"), &v)
	if v.Result != "locked" {
		t.Fatalf("third failure should have locked across the restart; got %+v", v)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	d := newDaemonDir(t, "")
	d.start()
	d.enroll(t, "carol")
	var v wire.VerifyResponse
	decodeJSON(t, d.run("", "verify", "carol", "000000", "--json"), &v)
	if *v.AttemptsLeft != 4 {
		t.Fatalf("attempts left %d", *v.AttemptsLeft)
	}
	d.writeConfig("lockout {\n  max_failures = 10\n}\n")
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), "configuration reloaded") })
	decodeJSON(t, d.run("", "verify", "carol", "000000", "--json"), &v)
	if *v.AttemptsLeft != 8 {
		t.Fatalf("after reload: attempts left %d, want 8", *v.AttemptsLeft)
	}
	// A broken config is refused as a whole; the daemon keeps running.
	if err := os.WriteFile(d.config, []byte("lockout {\n  max_failures = \"many\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(d.stderr.String(), "reload refused") })
	decodeJSON(t, d.run("", "verify", "carol", "000000", "--json"), &v)
	if *v.AttemptsLeft != 7 {
		t.Fatalf("after a refused reload: attempts left %d, want 7", *v.AttemptsLeft)
	}
	var a wire.AuditResponse
	decodeJSON(t, d.run("", "audit", "--action", "config.reload", "--json").mustOK(t), &a)
	if len(a.Events) != 2 || a.Events[0].Result != "fail" || a.Events[1].Result != "ok" {
		t.Fatalf("reload audit: %+v", a.Events)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}

func TestRefusesLiveSocket(t *testing.T) {
	d := newDaemonDir(t, "")
	d.start()
	second := exec.Command(mfadBin, "serve", "--config", d.config)
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another daemon is listening") {
		t.Fatalf("second daemon: %v\n%s", err, out)
	}
	// The first one still answers.
	d.run("", "status").mustOK(t)
}

func TestStaleSocketIsReplaced(t *testing.T) {
	d := newDaemonDir(t, "")
	d.start()
	_ = d.cmd.Process.Kill() // leaves the socket file behind
	_ = d.cmd.Wait()
	if _, err := os.Stat(d.socket); err != nil {
		t.Fatalf("expected a stale socket: %v", err)
	}
	d.start()
	d.run("", "status").mustOK(t)
}

func TestCheckConfig(t *testing.T) {
	ok := runWith(t, nil, "", "check-config", "--config", "../../config.hcl.example")
	if ok.code != 0 || !strings.Contains(ok.stdout, "valid") {
		t.Fatalf("example config: %+v", ok)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("totp {\n  digits = 7\n  period = \"soon\"\n}\nmodem \"x\" {}\n"), 0o644)
	r := runWith(t, nil, "", "check-config", bad)
	if r.code != 1 {
		t.Fatalf("bad config: exit %d", r.code)
	}
	for _, want := range []string{"bad.hcl:2:12: Error", "bad.hcl:3:12: Error", "bad.hcl:5:1: Error", "digits", "period", "^^^^"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, r.stderr)
		}
	}
}

func TestDemo(t *testing.T) {
	r := runWith(t, nil, "", "demo").mustOK(t)
	for _, want := range []string{"Replay the same code", "-> fail", "recovery codes left", "demo finished"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// A caller of the wrong role is refused over the real socket, identified
// by SO_PEERCRED. Needs root to run the client as another uid.
func TestWrongRoleRefusedOverSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user (uid nobody)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on this system")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	grp, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skip("nobody's group is unknown")
	}
	d := newDaemonDir(t, "")
	cfg := fmt.Sprintf("server {\n  socket = %q\n  socket_group = %q\n}\nstorage {\n  dir = %q\n}\n", d.socket, grp.Name, filepath.Join(d.dir, "state"))
	os.WriteFile(d.config, []byte(cfg), 0o644)
	d.start()
	d.enroll(t, "alice")

	asNobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	r := runWith(t, asNobody, "", "--socket", d.socket, "verify", "alice", "123456")
	if r.code != 2 || !strings.Contains(r.stderr, "forbidden") {
		t.Fatalf("verify as nobody: exit %d, stderr %s", r.code, r.stderr)
	}
	r = runWith(t, asNobody, "", "--socket", d.socket, "user", "show", "alice")
	if r.code == 0 || !strings.Contains(r.stderr, "your own user") {
		t.Fatalf("user show alice as nobody: %+v", r)
	}
	r = runWith(t, asNobody, "", "--socket", d.socket, "status", "--json")
	var st wire.Status
	decodeJSON(t, r.mustOK(t), &st)
	if st.Caller.UID != uid || len(st.Caller.Roles) != 1 || st.Caller.Roles[0] != "self" || st.Store != nil {
		t.Fatalf("status as nobody: %+v", st)
	}
	// nobody may manage itself.
	runWith(t, asNobody, "", "--socket", d.socket, "totp", "enroll", "nobody", "--no-confirm", "--json").mustOK(t)
}

// Under systemd: the daemon takes the socket systemd passes (LISTEN_FDS),
// says READY=1 once it serves, pings the watchdog, and says STOPPING=1 on
// SIGTERM.
func TestSystemdIntegration(t *testing.T) {
	d := newDaemonDir(t, "")
	ln, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	lnFile, err := ln.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	notifyPath := filepath.Join(d.dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	// LISTEN_PID must be the daemon's pid: the shell execs mfad in place.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" serve --config "$1"`, mfadBin, d.config)
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifyPath, "WATCHDOG_USEC=200000")
	cmd.ExtraFiles = []*os.File{lnFile}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lnFile.Close()
	want := func(prefix string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.Contains(m, prefix) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s from the daemon; stderr:\n%s", prefix, stderr)
			}
		}
	}
	want("READY=1")
	if r := d.run("", "status").mustOK(t); !strings.Contains(r.stdout, "version") {
		t.Fatalf("status over the activated socket: %s", r.stdout)
	}
	if !strings.Contains(stderr.String(), "socket_activated=true") {
		t.Fatalf("daemon did not use the passed socket:\n%s", stderr)
	}
	want("WATCHDOG=1")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	want("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, stderr)
	}
}

// With --sim the daemon drives a simulated U2F key through the same code
// as real keys: enroll it, log in at the console with a touch.
func TestSimulatedU2FKey(t *testing.T) {
	d := newDaemonDir(t, "")
	d.sim = true
	d.start()
	var st wire.Status
	decodeJSON(t, d.run("", "status", "--json").mustOK(t), &st)
	if !st.Hardware.Simulated || len(st.Hardware.U2FKeys) != 1 {
		t.Fatalf("hardware: %+v", st.Hardware)
	}
	if r := d.run("", "u2f", "enroll", "alice", "--label", "desk key").mustOK(t); !strings.Contains(r.stdout, "security key enrolled") {
		t.Fatalf("u2f enroll: %s", r.stdout)
	}
	if r := d.run("", "u2f", "list", "alice").mustOK(t); !strings.Contains(r.stdout, "desk key") {
		t.Fatalf("u2f list: %s", r.stdout)
	}
	r := d.run("", "login", "alice", "--service", "login", "--tty", "tty1").mustOK(t)
	if !strings.Contains(r.stdout, "accepted (u2f)") || !strings.Contains(r.stderr, "Touch your security key") {
		t.Fatalf("console login: %s %s", r.stdout, r.stderr)
	}
	// A remote login does not offer the key; without another factor it
	// cannot pass.
	if r := d.run("000000\n", "login", "alice", "--rhost", "192.0.2.1"); r.code == 0 || strings.Contains(r.stderr, "u2f") {
		t.Fatalf("remote login: %+v", r)
	}
	// Without --sim there is no key on this machine.
	d.stop()
	d.sim = false
	d.start()
	decodeJSON(t, d.run("", "status", "--json").mustOK(t), &st)
	if st.Hardware.Simulated || len(st.Hardware.U2FKeys) != 0 {
		t.Fatalf("hardware without --sim: %+v", st.Hardware)
	}
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "mfad.key")
	runWith(t, nil, "", "keygen", path).mustOK(t)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 64 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// Never overwritten.
	if r := runWith(t, nil, "", "keygen", path); r.code == 0 {
		t.Fatal("keygen overwrote an existing key")
	}
	// A daemon started with that key file uses it.
	d := newDaemonDir(t, "")
	cfg := fmt.Sprintf("server {\n  socket = %q\n}\nstorage {\n  dir = %q\n  key_file = %q\n}\n", d.socket, filepath.Join(d.dir, "state"), path)
	os.WriteFile(d.config, []byte(cfg), 0o644)
	d.start()
	d.run("", "status").mustOK(t)
	if _, err := os.Stat(filepath.Join(d.dir, "state", "mfad.key")); err == nil {
		t.Fatal("the daemon generated its own key although key_file was set")
	}
}

// Prometheus metrics on the socket (admin) and on metrics.listen, with no
// user name or code in them.
func TestMetrics(t *testing.T) {
	d := newDaemonDir(t, "metrics {\n  listen = \"127.0.0.1:0\"\n}\n")
	d.start()
	secret := d.enroll(t, "metricsuser")
	code := totpCode(t, secret, 0)
	d.run("", "verify", "metricsuser", code).mustOK(t)
	d.run("", "verify", "metricsuser", code) // replay: fail

	var addr string
	waitFor(t, func() bool {
		for _, line := range strings.Split(d.stderr.String(), "\n") {
			if i := strings.Index(line, `msg="metrics listening" addr=`); i >= 0 {
				addr = strings.TrimSpace(line[i+len(`msg="metrics listening" addr=`):])
				return true
			}
		}
		return false
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`mfad_verifications_total{method="totp",result="ok"} 1`,
		`mfad_verifications_total{method="totp",result="fail"} 1`,
		`mfad_request_duration_seconds_bucket{code="200",route="/v1/verify"`,
		"mfad_store_lsm_bytes", "mfad_u2f_keys 0", "mfad_build_info", "go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "metricsuser") || strings.Contains(text, code) {
		t.Fatal("metrics contain a user name or a code")
	}
	// The same on the socket for admins.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.socket)
	}}}
	resp, err = hc.Get("http://mfad/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics on the socket: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestDoctor(t *testing.T) {
	d := newDaemonDir(t, "")
	// Daemon down: the daemon check fails with a fix, exit 1.
	r := d.run("", "doctor", "--config", d.config, "--no-keys")
	if r.code != 1 || !strings.Contains(r.stdout, "fail") || !strings.Contains(r.stdout, "fix: start the daemon") {
		t.Fatalf("doctor without a daemon: %+v", r)
	}
	d.start()
	var checks []struct{ Name, Status, Detail, Fix string }
	decodeJSON(t, d.run("", "doctor", "--config", d.config, "--json").mustOK(t), &checks)
	got := map[string]string{}
	for _, c := range checks {
		got[c.Name] = c.Status
	}
	for _, name := range []string{"config", "daemon", "store", "key file", "clock", "u2f keys"} {
		if got[name] == "" || got[name] == "fail" {
			t.Errorf("check %q: %q (all: %+v)", name, got[name], checks)
		}
	}
	// A key file others can read fails, with the fix.
	key := filepath.Join(d.dir, "state", "mfad.key")
	os.Chmod(key, 0o644)
	r = d.run("", "doctor", "--config", d.config, "--no-keys")
	if r.code != 1 || !strings.Contains(r.stdout, "chmod 600") {
		t.Fatalf("doctor with an open key file: %+v", r)
	}
}
