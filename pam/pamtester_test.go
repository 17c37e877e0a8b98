package pam

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/internal/testenv"
)

// Messages pamtester prints for the PAM codes (pam_strerror of Linux-PAM).
const (
	pamOK          = "successfully authenticated"
	pamAuthErr     = "pamtester: Authentication failure"
	pamMaxTries    = "pamtester: Have exhausted maximum number of retries for service"
	pamUnavailable = "pamtester: Authentication service cannot retrieve authentication info"
	pamServiceErr  = "pamtester: Error in service module"
)

// promptRe matches the code prompts the daemon and the module show.
var promptRe = regexp.MustCompile(`(?:Verification code[^\n]*?|Recovery code): `)

// pamResult is what one pamtester run printed. PAM_TEXT_INFO messages go
// to stdout; prompts, PAM_ERROR_MSG messages and pamtester's verdict to
// stderr.
type pamResult struct {
	exit    int
	stdout  string
	stderr  string
	prompts int
}

// verdict is pamtester's last line: on stdout after a success, on stderr
// after a failure.
func (r pamResult) verdict() string {
	out := r.stderr
	if r.exit == 0 {
		out = r.stdout
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func (r pamResult) String() string {
	return fmt.Sprintf("exit %d, %d prompts\nstdout:\n%s\nstderr:\n%s", r.exit, r.prompts, r.stdout, r.stderr)
}

// pamtester runs `pamtester [-I item ...] service user authenticate` and
// types the answers one at a time, each when the next prompt appears (the
// conversation of pamtester reads stdin with a single read per prompt).
// When the answers run out, stdin is closed.
func pamtester(t testing.TB, service, user string, items []string, answers ...string) pamResult {
	t.Helper()
	return runPamtester(t, pamCall{service: service, user: user, items: items, answers: answers})
}

// pamCall describes one pamtester run.
type pamCall struct {
	service, user string
	op            string   // default "authenticate"
	items         []string // -I item=value
	env           []string // -E VAR=value (the PAM environment)
	answers       []string
	// answer, when set, gives the answer to the n-th prompt (from 0);
	// ok=false closes stdin.
	answer func(n int) (string, bool)
}

func runPamtester(t testing.TB, c pamCall) pamResult {
	t.Helper()
	bin := testenv.RequireTool(t, "pamtester", "apt-get install pamtester")
	args := []string{}
	for _, it := range c.items {
		args = append(args, "-I", it)
	}
	for _, e := range c.env {
		args = append(args, "-E", e)
	}
	if c.op == "" {
		c.op = "authenticate"
	}
	if c.answer == nil {
		c.answer = func(n int) (string, bool) {
			if n < len(c.answers) {
				return c.answers[n], true
			}
			return "", false
		}
	}
	args = append(args, c.service, c.user, c.op)
	cmd := exec.Command(bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderrPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	chunks := make(chan []byte)
	go func() {
		defer close(chunks)
		buf := make([]byte, 4096)
		for {
			n, err := stderrPipe.Read(buf)
			if n > 0 {
				chunks <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	var stderr []byte
	answered := 0
	timeout := time.After(2 * time.Minute)
loop:
	for {
		select {
		case b, ok := <-chunks:
			if !ok {
				break loop
			}
			stderr = append(stderr, b...)
			for n := len(promptRe.FindAllIndex(stderr, -1)); answered < n; answered++ {
				a, ok := c.answer(answered)
				if !ok {
					stdin.Close()
					continue
				}
				if _, err := io.WriteString(stdin, a+"\n"); err != nil && !errors.Is(err, syscall.EPIPE) {
					t.Errorf("typing an answer: %v", err)
				}
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatalf("pamtester did not finish in time; stdout:\n%s\nstderr so far:\n%s", stdout.String(), stderr)
		}
	}
	stdin.Close()
	err = cmd.Wait()
	res := pamResult{stdout: stdout.String(), stderr: string(stderr), prompts: len(promptRe.FindAllIndex(stderr, -1))}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.exit = ee.ExitCode()
	case err != nil:
		t.Fatalf("pamtester: %v", err)
	}
	t.Logf("pamtester %s %s: %s", c.service, c.user, res.verdict())
	return res
}

// expect checks the verdict, the exit status and the number of prompts.
func (r pamResult) expect(t testing.TB, verdict string, prompts int) {
	t.Helper()
	wantExit := 1
	if verdict == pamOK {
		wantExit = 0
	}
	if !strings.Contains(r.verdict(), verdict) || r.exit != wantExit {
		t.Errorf("want %q (exit %d), got:\n%v", verdict, wantExit, r)
	}
	if prompts >= 0 && r.prompts != prompts {
		t.Errorf("want %d prompts, got:\n%v", prompts, r)
	}
}

// hungDaemon listens on a socket in dir and accepts connections without
// ever answering, as a daemon stuck on a lock would.
func hungDaemon(t testing.TB, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range conns {
			c.Close()
		}
	})
	return sock
}

func TestPamtester(t *testing.T) {
	requireRoot(t)
	captureSyslog()
	d := newDaemon(t, "lockout {\n  max_failures = 5\n}\n")
	d.start()
	sock := "socket=" + d.socket
	svc := pamService(t, "pamtester", "auth required @MODULE@ "+sock+" timeout=20")
	// Each case logs in from its own network: the daemon slows down a
	// network that sends many wrong codes, whatever the user.
	network := 0
	remote := []string{}
	from := func() {
		network++
		remote = []string{fmt.Sprintf("rhost=10.%d.0.7", network), "tty=ssh"}
	}
	var used []string // every code typed, to check none reaches the log

	t.Run("totp accepted", func(t *testing.T) {
		from()
		secret := d.enrollTOTP(t, "alice")
		code := totpCode(t, secret, 0)
		used = append(used, code)
		pamtester(t, svc, "alice", remote, code).expect(t, pamOK, 1)

		// The same code again is a replay; two wrong codes use up the tries.
		r := pamtester(t, svc, "alice", remote, code, "000000", "999999")
		r.expect(t, pamMaxTries, 3)
		if strings.Count(r.stderr, "code rejected") != 3 {
			t.Errorf("want three rejections:\n%v", r)
		}
		// A wrong code, then the next step's code, in one login.
		next := totpCode(t, secret, 1)
		used = append(used, next)
		pamtester(t, svc, "alice", remote, "123456", next).expect(t, pamOK, 2)
	})

	t.Run("recovery code", func(t *testing.T) {
		from()
		d.enrollTOTP(t, "bob")
		codes := d.recoveryCodes(t, "bob")
		used = append(used, codes[0])
		r := pamtester(t, svc, "bob", remote, codes[0])
		r.expect(t, pamOK, 1)
		if !strings.Contains(r.stdout, "7 recovery codes left.") {
			t.Errorf("want the count of codes left:\n%v", r)
		}
		// Spaces and upper case do not matter; a used code is refused.
		r = pamtester(t, svc, "bob", remote, strings.ToUpper(codes[0]), " "+codes[1]+" ")
		r.expect(t, pamOK, 2)
		if !strings.Contains(r.stderr, "code rejected") || !strings.Contains(r.stdout, "6 recovery codes left.") {
			t.Errorf("want the used code refused, the next accepted:\n%v", r)
		}
	})

	t.Run("locked", func(t *testing.T) {
		from()
		secret := d.enrollTOTP(t, "carol")
		pamtester(t, svc, "carol", remote, "111111", "222222", "333333").expect(t, pamMaxTries, 3)
		// The fifth failure locks: the module stops at once.
		r := pamtester(t, svc, "carol", remote, "444444", "555555", "666666")
		r.expect(t, pamMaxTries, 2)
		if !strings.Contains(r.stderr, "too many failed attempts") {
			t.Errorf("want the lockout message:\n%v", r)
		}
		// While locked even the right code is refused.
		code := totpCode(t, secret, 0)
		used = append(used, code)
		pamtester(t, svc, "carol", remote, code).expect(t, pamMaxTries, 1)
		if lines, ok := waitSyslog(t, "user carol is locked out"); ok && len(lines) == 0 {
			t.Error("lockout not logged")
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		from()
		// The same prompt as an enrolled user with the same methods.
		d.enrollTOTP(t, "dave")
		d.recoveryCodes(t, "dave")
		known := pamtester(t, svc, "dave", remote, "000000")
		unknown := pamtester(t, svc, "nobody-here", remote, "000000")
		unknown.expect(t, pamMaxTries, 3)
		if promptRe.FindString(known.stderr) != promptRe.FindString(unknown.stderr) {
			t.Errorf("prompts differ:\nknown:\n%v\nunknown:\n%v", known, unknown)
		}
	})

	t.Run("tries option", func(t *testing.T) {
		from()
		d.enrollTOTP(t, "erin")
		one := pamService(t, "tries", "auth required @MODULE@ "+sock+" tries=1")
		pamtester(t, one, "erin", remote, "000000", "000000").expect(t, pamMaxTries, 1)
	})

	t.Run("empty answers", func(t *testing.T) {
		from()
		// No SMS on offer: an empty answer uses up a try, and is not sent.
		d.enrollTOTP(t, "frank")
		r := pamtester(t, svc, "frank", remote, "", "", "")
		r.expect(t, pamMaxTries, 3)
		if strings.Count(r.stderr, "No code entered.") != 3 {
			t.Errorf("want three empty answers:\n%v", r)
		}
		var u struct {
			Failures int `json:"failures"`
		}
		decodeJSON(t, d.cli(t, "user", "show", "frank", "--json"), &u)
		if u.Failures != 0 {
			t.Errorf("empty answers counted as %d failures by the daemon", u.Failures)
		}
	})

	t.Run("silent", func(t *testing.T) {
		from()
		d.enrollTOTP(t, "grace")
		codes := d.recoveryCodes(t, "grace")
		used = append(used, codes[0])
		r := runPamtester(t, pamCall{service: svc, user: "grace", items: remote, op: "authenticate(PAM_SILENT)", answers: codes[:1]})
		r.expect(t, pamOK, 1)
		if strings.Contains(r.stdout, "recovery codes left") {
			t.Errorf("PAM_SILENT: the module still talked:\n%v", r)
		}
	})

	t.Run("invalid options", func(t *testing.T) {
		for _, opt := range []string{"failmode=opne", "timeout=0", "tries=11", "socket=relative.sock", "verbose", "daemon_user=Root"} {
			bad := pamService(t, "badopt", "auth required @MODULE@ "+sock+" "+opt)
			r := pamtester(t, bad, "alice", remote, "000000")
			r.expect(t, pamServiceErr, 0)
			if lines, ok := waitSyslog(t, "invalid module option \""+opt+"\""); ok && len(lines) == 0 {
				t.Errorf("option %s: not logged", opt)
			}
		}
	})

	t.Run("no code in the log", func(t *testing.T) {
		lines, ok := waitSyslog(t, "wrong code for user alice")
		if !ok {
			return
		}
		if len(lines) == 0 {
			t.Error("wrong codes not logged")
		}
		for _, l := range allSyslog() {
			for _, c := range append(used, "000000", "111111", "123456") {
				if strings.Contains(l, c) {
					t.Errorf("a code reached the log: %q", l)
				}
			}
		}
	})
}

func TestPamtesterDaemonDown(t *testing.T) {
	requireRoot(t)
	captureSyslog()
	dir, err := os.MkdirTemp(workDir, "down")
	if err != nil {
		t.Fatal(err)
	}
	stopped := newDaemon(t, "")
	stopped.start()
	stopped.enrollTOTP(t, "alice")
	stopped.stop()

	cases := []struct {
		name   string
		socket string
	}{
		{"no socket", filepath.Join(dir, "missing.sock")},
		{"stopped daemon", stopped.socket},
		{"hung daemon", hungDaemon(t, dir)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secure := pamService(t, "secure", "auth required @MODULE@ socket="+tc.socket+" timeout=2")
			start := time.Now()
			r := pamtester(t, secure, "alice", []string{"rhost=192.0.2.9"})
			r.expect(t, pamUnavailable, 0)
			if el := time.Since(start); el > 60*time.Second {
				t.Errorf("took %v with timeout=2", el)
			}

			open := pamService(t, "open", "auth required @MODULE@ socket="+tc.socket+" timeout=2 failmode=open")
			r = pamtester(t, open, "alice", []string{"rhost=192.0.2.9"})
			r.expect(t, pamOK, 0)
			if lines, ok := waitSyslog(t, "failmode=open lets user alice in WITHOUT a second factor"); ok {
				// <84> is LOG_AUTHPRIV|LOG_WARNING.
				if len(lines) == 0 || !strings.HasPrefix(lines[0], "<84>") {
					t.Errorf("want the fail-open login logged at LOG_WARNING: %q", lines)
				}
			}
		})
	}

	t.Run("open is not a bypass", func(t *testing.T) {
		// With the daemon up, failmode=open changes nothing.
		d := newDaemon(t, "")
		d.start()
		d.enrollTOTP(t, "alice")
		open := pamService(t, "open", "auth required @MODULE@ socket="+d.socket+" failmode=open")
		pamtester(t, open, "alice", []string{"rhost=192.0.2.9"}, "000000", "111111", "222222").expect(t, pamMaxTries, 3)
		pamtester(t, open, "alice\x01", []string{"rhost=192.0.2.9"}, "000000").expect(t, pamAuthErr, 0)
	})
}

// TestPamtesterForeignDaemon runs the daemon as nobody: the module refuses
// to talk to a socket served by a user other than root and daemon_user=,
// even with failmode=open.
func TestPamtesterForeignDaemon(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "")
	if err := os.Chown(d.dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	d.cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	d.start()
	d.enrollTOTP(t, "alice")
	open := pamService(t, "foreign", "auth required @MODULE@ socket="+d.socket+" failmode=open")
	r := pamtester(t, open, "alice", []string{"rhost=192.0.2.9"}, "000000")
	r.expect(t, pamUnavailable, 0)
	trusted := pamService(t, "trusted", "auth required @MODULE@ socket="+d.socket+" daemon_user=nobody")
	pamtester(t, trusted, "alice", []string{"rhost=192.0.2.9"}, "000000").expect(t, pamMaxTries, 3)
}

// TestPamtesterU2F logs in at the console with the simulated security key
// of `mfad serve --sim`; from a remote host the key is not offered.
func TestPamtesterU2F(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "")
	d.sim = true
	d.start()
	secret := d.enrollTOTP(t, "alice")
	d.cli(t, "u2f", "enroll", "alice", "--label", "desk key")
	svc := pamService(t, "u2f", "auth required @MODULE@ socket="+d.socket)

	r := pamtester(t, svc, "alice", []string{"tty=tty1"})
	r.expect(t, pamOK, 0)
	if !strings.Contains(r.stdout, "Touch your security key.") {
		t.Errorf("want the touch instruction:\n%v", r)
	}

	code := totpCode(t, secret, 0)
	r = pamtester(t, svc, "alice", []string{"rhost=192.0.2.7"}, code)
	r.expect(t, pamOK, 1)
	if strings.Contains(r.stdout, "security key") {
		t.Errorf("a remote login was offered the key:\n%v", r)
	}
}
