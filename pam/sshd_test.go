package pam

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/mfad/mfad/internal/testenv"
)

// sshServer is a real OpenSSH sshd on a loopback port whose PAM stack
// uses the module.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
	client  ssh.Signer // the key in authorized_keys
	stderr  *syncBuffer
}

// startSSHD runs /usr/sbin/sshd through a symlink named after a fresh PAM
// service (sshd uses its program name as the PAM service), so the system's
// /etc/pam.d/sshd is never used or touched.
func startSSHD(t *testing.T, socket string) *sshServer {
	t.Helper()
	requireRoot(t)
	sshdPath := testenv.RequireTool(t, "sshd", "apt-get install openssh-server")
	if !filepath.IsAbs(sshdPath) {
		if p, err := filepath.Abs(sshdPath); err == nil {
			sshdPath = p
		}
	}
	dir, err := os.MkdirTemp(workDir, "sshd")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{stderr: &syncBuffer{}}

	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(hostPriv, "mfad test host key")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.hostKey = hostSigner.PublicKey()
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if s.client, err = ssh.NewSignerFromKey(clientPriv); err != nil {
		t.Fatal(err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(s.client.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}

	// The service is packaging/pam.d/sshd, the example we ship, with the
	// module's path and the socket filled in.
	example, err := os.ReadFile(filepath.Join(srcDir, "..", "packaging", "pam.d", "sshd"))
	if err != nil {
		t.Fatal(err)
	}
	stack := strings.Replace(string(example), "pam_mfad.so socket=/run/mfad/mfad.sock", "@MODULE@ socket="+socket, 1)
	service := pamServiceFile(t, "sshd", stack)
	link := filepath.Join(dir, service)
	if err := os.Symlink(sshdPath, link); err != nil {
		t.Fatal(err)
	}

	// sshd refuses to start without its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}

	cfg := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1
HostKey %s
PidFile none
UsePAM yes
PubkeyAuthentication yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
AuthenticationMethods publickey,keyboard-interactive
PermitRootLogin yes
AuthorizedKeysFile %s
StrictModes no
PrintMotd no
PrintLastLog no
UseDNS no
LogLevel VERBOSE
`, hostKeyFile, authKeys)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	// Pick a free port; retry if another process takes it first.
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		cmd := exec.Command(link, "-D", "-e", "-f", cfg, "-p", strconv.Itoa(port))
		cmd.Stderr = s.stderr
		// Connection processes of sshd inherit its stderr; do not wait for
		// them to close it.
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitListening(s.addr, exited) {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(20 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
				t.Logf("sshd log:\n%s", s.stderr)
			})
			return s
		}
		_ = cmd.Process.Kill()
		<-exited
		if attempt == 2 || !strings.Contains(s.stderr.String(), "Address already in use") {
			t.Fatalf("sshd did not start:\n%s", s.stderr)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits until addr accepts connections or the process exits.
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// kbdRound is one keyboard-interactive request the server sent.
type kbdRound struct {
	instruction string
	questions   []string
}

// login connects as root with the public key, then answers the
// keyboard-interactive prompts with answers in order. It returns the
// rounds the server sent.
func (s *sshServer) login(t *testing.T, answers ...string) (*ssh.Client, []kbdRound, error) {
	t.Helper()
	var rounds []kbdRound
	next := 0
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{
			ssh.PublicKeys(s.client),
			ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
				rounds = append(rounds, kbdRound{instruction, questions})
				out := make([]string, len(questions))
				for i, q := range questions {
					if echos[i] {
						return nil, fmt.Errorf("question %q would echo the code", q)
					}
					if next >= len(answers) {
						return nil, fmt.Errorf("no answer left for %q", q)
					}
					out[i] = answers[next]
					next++
				}
				return out, nil
			}),
		},
		HostKeyCallback: ssh.FixedHostKey(s.hostKey),
		Timeout:         time.Minute,
	}
	c, err := ssh.Dial("tcp", s.addr, cfg)
	return c, rounds, err
}

// questions joins every question the server asked.
func questions(rounds []kbdRound) []string {
	var qs []string
	for _, r := range rounds {
		qs = append(qs, r.questions...)
	}
	return qs
}

// runCommand runs a command over c and returns its output.
func runCommand(t *testing.T, c *ssh.Client, command string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	if err != nil {
		t.Fatalf("running %q: %v\n%s", command, err, out)
	}
	return string(out)
}

// shell runs an interactive login shell on a pseudo-terminal, waits for
// its prompt, types the commands, and returns everything printed,
// including sshd's login messages (which sshd shows only to interactive
// logins).
func shell(t *testing.T, c *ssh.Client, commands string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.RequestPty("dumb", 40, 120, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, stdout)
		copied <- err
	}()
	// root's prompt ends in "# ".
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "# ") {
		if time.Now().After(deadline) {
			t.Fatalf("no shell prompt; output so far:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := io.WriteString(stdin, commands); err != nil {
		t.Fatal(err)
	}
	select {
	case <-copied:
	case <-time.After(time.Minute):
		t.Fatalf("shell did not exit; output so far:\n%s", out)
	}
	if err := sess.Wait(); err != nil {
		t.Errorf("shell: %v", err)
	}
	return strings.ReplaceAll(out.String(), "\r", "")
}

func TestSSHD(t *testing.T) {
	requireRoot(t)
	captureSyslog()
	d := newDaemon(t, "")
	d.start()
	secret := d.enrollTOTP(t, "root")
	codes := d.recoveryCodes(t, "root")
	s := startSSHD(t, d.socket)
	var used []string

	t.Run("totp", func(t *testing.T) {
		code := totpCode(t, secret, 0)
		used = append(used, code)
		c, rounds, err := s.login(t, code)
		if err != nil {
			t.Fatalf("login: %v\nrounds: %q", err, rounds)
		}
		defer c.Close()
		if got := runCommand(t, c, "echo ok"); got != "ok\n" {
			t.Errorf("command printed %q", got)
		}
		qs := questions(rounds)
		if len(qs) != 1 || qs[0] != "Verification code (authenticator app or recovery code): " {
			t.Errorf("questions %q", qs)
		}
	})

	t.Run("wrong codes", func(t *testing.T) {
		c, rounds, err := s.login(t, "000000", "111111", "222222")
		if err == nil {
			c.Close()
			t.Fatal("logged in with wrong codes")
		}
		qs := questions(rounds)
		if len(qs) != 3 || !strings.Contains(qs[1], "code rejected") || !strings.Contains(qs[2], "code rejected") {
			t.Errorf("questions %q", qs)
		}
		if !strings.Contains(err.Error(), "unable to authenticate") {
			t.Errorf("error %v", err)
		}
	})

	t.Run("wrong then right", func(t *testing.T) {
		code := totpCode(t, secret, 1)
		used = append(used, code)
		c, rounds, err := s.login(t, "123456", code)
		if err != nil {
			t.Fatalf("login: %v\nrounds: %q", err, rounds)
		}
		defer c.Close()
		if got := runCommand(t, c, "true && echo ok"); got != "ok\n" {
			t.Errorf("command printed %q", got)
		}
	})

	t.Run("recovery code", func(t *testing.T) {
		used = append(used, codes[0])
		c, rounds, err := s.login(t, codes[0])
		if err != nil {
			t.Fatalf("login: %v\nrounds: %q", err, rounds)
		}
		defer c.Close()
		out := shell(t, c, "echo ok-from-shell\nexit\n")
		if !strings.Contains(out, "ok-from-shell") || !strings.Contains(out, "7 recovery codes left.") {
			t.Errorf("shell output:\n%s", out)
		}
		// The same recovery code does not work twice.
		c2, _, err := s.login(t, codes[0], "000000", "000000")
		if err == nil {
			c2.Close()
			t.Fatal("a used recovery code was accepted")
		}
	})

	t.Run("no code in the log", func(t *testing.T) {
		if _, ok := waitSyslog(t, "wrong code for user root"); !ok {
			return
		}
		for _, l := range allSyslog() {
			for _, c := range append(used, "000000", "111111", "222222", "123456") {
				if strings.Contains(l, c) {
					t.Errorf("a code reached the log: %q", l)
				}
			}
		}
	})
}
