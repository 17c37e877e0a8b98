package pam

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/internal/testenv"
)

// daemon is a real `mfad serve` on a temporary directory.
type daemon struct {
	t      testing.TB
	dir    string
	socket string
	config string
	sim    bool
	// skew is totp.skew. The tests use 2, so that they can use the
	// previous, current and next time step's codes without racing a step
	// boundary.
	skew int
	// cred, when set, runs the daemon as another user.
	cred   *syscall.Credential
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// newDaemon writes a config for a daemon in a fresh directory; extra is
// appended to the config (HCL).
func newDaemon(t testing.TB, extra string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, "d")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir, socket: filepath.Join(dir, "mfad.sock"), config: filepath.Join(dir, "config.hcl"), skew: 2}
	d.writeConfig(extra)
	return d
}

// writeConfig (re)writes the daemon's config with extra appended.
func (d *daemon) writeConfig(extra string) {
	d.t.Helper()
	cfg := fmt.Sprintf("server {\n  socket = %q\n}\nstorage {\n  dir = %q\n}\ntotp {\n  skew = %d\n}\n%s",
		d.socket, filepath.Join(d.dir, "state"), d.skew, extra)
	if err := os.WriteFile(d.config, []byte(cfg), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// start runs the daemon and waits until its socket answers.
func (d *daemon) start() {
	d.t.Helper()
	d.stderr = &syncBuffer{}
	args := []string{"serve", "--config", d.config}
	if d.sim {
		args = append(args, "--sim")
	}
	d.cmd = exec.Command(mfadBinary(d.t), args...)
	d.cmd.Stderr = d.stderr
	if d.cred != nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.cred}
	}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		d.stop()
		if d.t.Failed() {
			d.t.Logf("daemon log:\n%s", d.stderr)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", d.socket); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("daemon did not start; stderr:\n%s", d.stderr)
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *daemon) stop() {
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
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
		d.t.Errorf("daemon did not stop on SIGTERM; stderr:\n%s", d.stderr)
	}
}

// cli runs an mfad client verb against the daemon and returns stdout.
func (d *daemon) cli(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(mfadBinary(t), append([]string{"--socket", d.socket}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mfad %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// enrollTOTP enrolls and confirms an authenticator app for user and
// returns its base32 secret.
func (d *daemon) enrollTOTP(t testing.TB, user string) string {
	t.Helper()
	var e struct {
		FactorID string `json:"factor_id"`
		Secret   string `json:"secret"`
	}
	decodeJSON(t, d.cli(t, "totp", "enroll", user, "--no-confirm", "--json"), &e)
	// Confirm with the previous step's code: it is within the skew, and
	// the current and later steps stay free for the logins of the test.
	d.cli(t, "totp", "confirm", user, e.FactorID, totpCode(t, e.Secret, -1))
	return e.Secret
}

// recoveryCodes generates a set of recovery codes for user.
func (d *daemon) recoveryCodes(t testing.TB, user string) []string {
	t.Helper()
	var rc wire.RecoveryCodesResponse
	decodeJSON(t, d.cli(t, "recovery-codes", "generate", user, "--no-confirm", "--json"), &rc)
	return rc.Codes
}

// totpCode asks oathtool (an independent implementation) for the TOTP code
// of secret, steps time steps from now.
func totpCode(t testing.TB, secret string, steps int) string {
	t.Helper()
	oathtool := testenv.RequireTool(t, "oathtool", "apt-get install oathtool")
	at := time.Now().Add(time.Duration(steps) * 30 * time.Second).Unix()
	out, err := exec.Command(oathtool, "--totp", "-b", "-N", "@"+strconv.FormatInt(at, 10), secret).Output()
	if err != nil {
		t.Fatalf("oathtool: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
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

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
