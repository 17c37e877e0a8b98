package pam

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mfad/mfad/internal/testenv"
)

var (
	// workDir holds everything the tests build; removed after the run.
	workDir string
	// srcDir is this package's directory (the Makefile's).
	srcDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	srcDir, err = os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Short: socket paths are limited to 108 bytes. Readable by all, as
	// the foreign-daemon test runs a daemon as another user.
	workDir, err = os.MkdirTemp("", "mfad-pam-")
	if err == nil {
		err = os.Chmod(workDir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(workDir)
	defer stopSyslog()
	defer stopHarness()
	return m.Run()
}

// requireCBuild skips (or fails under MFAD_REQUIRE_TOOLS=1) without a C
// toolchain and the headers the module needs.
func requireCBuild(t testing.TB) {
	t.Helper()
	testenv.RequireTool(t, "cc", "apt-get install gcc")
	testenv.RequireTool(t, "make", "apt-get install make")
	testenv.RequireTool(t, "pkg-config", "apt-get install pkg-config")
	for _, h := range []struct{ path, pkg string }{
		{"/usr/include/security/pam_modules.h", "libpam0g-dev"},
		{"/usr/include/json-c/json.h", "libjson-c-dev"},
	} {
		if _, err := os.Stat(h.path); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install %s)", h.path, h.pkg)
			if os.Getenv(testenv.RequireEnv) == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

var builds struct {
	sync.Mutex
	done map[string]error
}

// makeTarget runs `make -C <this dir> O=<workDir> target` once per test
// binary and returns the built file's path.
func makeTarget(t testing.TB, target, file string) string {
	t.Helper()
	requireCBuild(t)
	builds.Lock()
	defer builds.Unlock()
	if builds.done == nil {
		builds.done = map[string]error{}
	}
	err, ok := builds.done[target]
	if !ok {
		cmd := exec.Command("make", "-s", "-C", srcDir, "O="+workDir, target)
		if out, e := cmd.CombinedOutput(); e != nil {
			err = fmt.Errorf("make %s: %v\n%s", target, e, out)
		}
		builds.done[target] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(workDir, file)
}

var mfadBuild struct {
	once sync.Once
	path string
	err  error
}

// mfadBinary builds cmd/mfad once per test binary (only the tests that
// run a daemon need it) and returns its path.
func mfadBinary(t testing.TB) string {
	t.Helper()
	mfadBuild.once.Do(func() {
		mfadBuild.path = filepath.Join(workDir, "mfad")
		out, err := exec.Command("go", "build", "-o", mfadBuild.path, "github.com/mfad/mfad/cmd/mfad").CombinedOutput()
		if err != nil {
			mfadBuild.err = fmt.Errorf("building mfad: %v\n%s", err, out)
		}
	})
	if mfadBuild.err != nil {
		t.Fatal(mfadBuild.err)
	}
	return mfadBuild.path
}

// module builds pam_mfad.so and returns its absolute path.
func module(t testing.TB) string { return makeTarget(t, "all", "pam_mfad.so") }

// harness is the sanitizer-built driver of mfad_client.c (src/harness.c),
// one process per test binary, shared under a mutex.
var harness struct {
	sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
}

func stopHarness() {
	harness.Lock()
	defer harness.Unlock()
	if harness.cmd != nil {
		harness.in.Close()
		_ = harness.cmd.Wait()
		harness.cmd = nil
	}
}

// callHarness sends one request of the given kind to the harness and
// decodes its answer into out. A crash of the harness (a sanitizer report)
// fails the test with the report.
func callHarness(t testing.TB, kind byte, data []byte, out any) {
	t.Helper()
	bin := makeTarget(t, "harness", "mfad_harness")
	harness.Lock()
	defer harness.Unlock()
	if harness.cmd == nil {
		cmd := exec.Command(bin)
		// Leak checks would report json-c's allocations at exit only.
		cmd.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS=print_stacktrace=1")
		harness.stderr.Reset()
		cmd.Stderr = &harness.stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		harness.cmd, harness.in, harness.out = cmd, in, bufio.NewReaderSize(stdout, 1<<20)
	}
	frame := make([]byte, 5, 5+len(data))
	frame[0] = kind
	binary.BigEndian.PutUint32(frame[1:], uint32(len(data)))
	frame = append(frame, data...)
	line, err := func() ([]byte, error) {
		if _, err := harness.in.Write(frame); err != nil {
			return nil, err
		}
		return harness.out.ReadBytes('\n')
	}()
	if err != nil {
		harness.in.Close()
		_ = harness.cmd.Wait()
		report := harness.stderr.String()
		harness.cmd = nil
		t.Fatalf("harness died on %c input %q: %v\n%s", kind, data, err, report)
	}
	if err := json.Unmarshal(line, out); err != nil {
		t.Fatalf("harness answer %q: %v", line, err)
	}
}

// hexString is a byte string the harness writes hex-encoded.
type hexString string

func (h *hexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = hexString(d)
	return nil
}

// requireRoot skips (or fails under MFAD_REQUIRE_TOOLS=1) unless the test
// runs as root, which writing /etc/pam.d and starting sshd need.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root: PAM service files live in /etc/pam.d (run: sudo go test ./pam/)"
	if os.Getenv(testenv.RequireEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// randName returns a short random suffix for file names.
func randName(t testing.TB) string {
	t.Helper()
	var b [6]byte
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// pamService writes /etc/pam.d/mfad-test-<name>-<random> with the given auth
// lines (the module's path is filled in for @MODULE@) and removes it when
// the test ends. It returns the service name.
func pamService(t testing.TB, name string, authLines ...string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range authLines {
		b.WriteString(l + "\n")
	}
	b.WriteString("account required pam_permit.so\nsession required pam_permit.so\npassword required pam_deny.so\n")
	return pamServiceFile(t, name, b.String())
}

// pamServiceFile writes the PAM service file text, in which @MODULE@ stands
// for the module's path, and removes it when the test ends. It returns the
// service name.
func pamServiceFile(t testing.TB, name, text string) string {
	t.Helper()
	requireRoot(t)
	mod := module(t)
	service := "mfad-test-" + name + "-" + randName(t)
	body := "# written by the tests of package pam; removed when they end\n" + strings.ReplaceAll(text, "@MODULE@", mod)
	path := filepath.Join("/etc/pam.d", service)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	return service
}
