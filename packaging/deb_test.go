package packaging

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mfad/mfad/internal/testenv"
)

// nfpmModule is the nfpm build that packages the .deb. It runs with
// `go run`, so it never enters go.mod. Newer releases depend on modules the
// module proxy does not serve.
const nfpmModule = "github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2"

// installTestEnv must be "1" (and the test must run as root) for the test
// that installs and purges the package on the running machine.
const installTestEnv = "MFAD_DPKG_INSTALL_TEST"

// debFile is one expected entry of the package's data archive.
type debFile struct {
	path, mode string
}

var debFiles = []debFile{
	{"/usr/bin/mfad", "-rwxr-xr-x"},
	{"/usr/lib/systemd/system/mfad.service", "-rw-r--r--"},
	{"/usr/lib/systemd/system/mfad.socket", "-rw-r--r--"},
	{"/usr/lib/sysusers.d/mfad.conf", "-rw-r--r--"},
	{"/usr/lib/tmpfiles.d/mfad.conf", "-rw-r--r--"},
	{"/usr/lib/udev/rules.d/70-mfad.rules", "-rw-r--r--"},
	{"/etc/mfad/config.hcl", "-rw-r-----"},
	{"/usr/share/doc/mfad/README.md", "-rw-r--r--"},
	{pamDir() + "/pam_mfad.so", "-rw-r--r--"},
	{"/usr/share/doc/mfad/examples/pam.d/sshd", "-rw-r--r--"},
	{"/usr/share/doc/mfad/examples/pam.d/sudo", "-rw-r--r--"},
	{"/usr/share/doc/mfad/examples/pam.d/login", "-rw-r--r--"},
}

// pamDir is PAM's module directory for the architecture the test builds
// for (Debian's multiarch path).
func pamDir() string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "386": "i386-linux-gnu",
		"armhf": "arm-linux-gnueabihf", "ppc64el": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu"}[debArch()]
	return "/usr/lib/" + triplet + "/security"
}

// The links deb-systemd-helper enable creates from the units' [Install].
var enableLinks = []string{
	"/etc/systemd/system/sockets.target.wants/mfad.socket",
	"/etc/systemd/system/multi-user.target.wants/mfad.service",
}

// debArch is the Debian architecture name of the Go architecture the test
// builds for.
func debArch() string {
	if a, ok := map[string]string{"386": "i386", "ppc64le": "ppc64el", "arm": "armhf"}[runtime.GOARCH]; ok {
		return a
	}
	return runtime.GOARCH
}

func debVersion() string {
	if v := os.Getenv("MFAD_VERSION"); v != "" {
		return v
	}
	return "0.0.0~dev"
}

// buildDeb builds mfad and packages it with nfpm; it returns the .deb's path.
func buildDeb(t *testing.T, goCmd string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "mfad")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "../cmd/mfad").CombinedOutput(); err != nil {
		t.Fatalf("building mfad: %v\n%s", err, out)
	}
	testenv.RequireTool(t, "make", "apt-get install make")
	if out, err := exec.Command("make", "-C", "../pam", "O="+dir).CombinedOutput(); err != nil {
		t.Fatalf("building pam_mfad.so: %v\n%s (needs gcc, libpam0g-dev, libjson-c-dev)", err, out)
	}
	target := filepath.Join(dir, "out")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goCmd, "run", nfpmModule, "package",
		"--config", "packaging/deb/nfpm.yaml", "--packager", "deb", "--target", target)
	cmd.Dir = ".." // nfpm resolves the config's source paths from here
	cmd.Env = append(os.Environ(),
		"MFAD_BINARY="+bin, "MFAD_VERSION="+debVersion(), "MFAD_ARCH="+debArch(),
		"MFAD_PAM_MODULE="+filepath.Join(dir, "pam_mfad.so"), "MFAD_PAMDIR="+pamDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm: %v\n%s", err, out)
	}
	debs, err := filepath.Glob(filepath.Join(target, "*.deb"))
	if err != nil || len(debs) != 1 {
		t.Fatalf("nfpm made %v (err %v), want one .deb", debs, err)
	}
	return debs[0]
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDebPackage builds the Debian package with nfpm and checks its control
// fields, files and maintainer scripts; with root and
// MFAD_DPKG_INSTALL_TEST=1 it also installs and purges it on this machine.
func TestDebPackage(t *testing.T) {
	dpkgDeb := testenv.RequireTool(t, "dpkg-deb", "apt-get install dpkg")
	goCmd := testenv.RequireTool(t, "go", "install Go")
	deb := buildDeb(t, goCmd)
	if fi, err := os.Stat(deb); err == nil {
		t.Logf("%s: %d bytes", filepath.Base(deb), fi.Size())
	}

	t.Run("control fields", func(t *testing.T) {
		fields := map[string]string{}
		for line := range strings.Lines(output(t, dpkgDeb, "--field", deb)) {
			if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(k, " ") {
				fields[k] = strings.TrimSpace(v)
			}
		}
		for _, tc := range []struct{ key, want string }{
			{"Package", "mfad"},
			{"Version", debVersion()},
			{"Architecture", debArch()},
			{"Maintainer", "mfad maintainers <mfad@localhost>"},
			{"Recommends", "systemd"},
			{"Depends", "libpam0g, libjson-c5"},
		} {
			if got := fields[tc.key]; got != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		// dpkg-deb -c prints: mode owner/group size date time ./path
		got := map[string][]string{}
		for line := range strings.Lines(output(t, dpkgDeb, "--contents", deb)) {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("unexpected dpkg-deb --contents line %q", line)
			}
			path := strings.TrimPrefix(f[5], ".")
			got[strings.TrimSuffix(path, "/")] = f
			for _, bad := range []string{"mfad.key", "/var/lib/mfad", "/run/"} {
				if strings.Contains(path, bad) {
					t.Errorf("package ships %s", path)
				}
			}
		}
		for _, want := range debFiles {
			f, ok := got[want.path]
			switch {
			case !ok:
				t.Errorf("%s missing from the package", want.path)
			case f[0] != want.mode || f[1] != "root/root":
				t.Errorf("%s: %s %s, want %s root/root", want.path, f[0], f[1], want.mode)
			}
		}
	})

	t.Run("control archive", func(t *testing.T) {
		ctrl := filepath.Join(t.TempDir(), "DEBIAN")
		output(t, dpkgDeb, "--control", deb, ctrl)
		conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(conffiles)); got != "/etc/mfad/config.hcl" {
			t.Errorf("conffiles = %q, want /etc/mfad/config.hcl", got)
		}
		for _, name := range []string{"postinst", "prerm", "postrm"} {
			t.Run(name, func(t *testing.T) {
				p := filepath.Join(ctrl, name)
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o755 {
					t.Errorf("mode %v, want 0755", fi.Mode().Perm())
				}
				if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
					t.Errorf("sh -n: %v\n%s", err, out)
				}
			})
		}
	})

	t.Run("install and purge", func(t *testing.T) {
		if os.Geteuid() != 0 || os.Getenv(installTestEnv) != "1" {
			t.Skip("installs the package on this machine: needs root and " + installTestEnv + "=1")
		}
		dpkg := testenv.RequireTool(t, "dpkg", "apt-get install dpkg")
		installAndPurge(t, dpkg, deb)
	})
}

// dpkgStatus returns mfad's package status, "not-installed" when dpkg
// does not know it.
func dpkgStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--show", "--showformat=${db:Status-Status}", "mfad").Output()
	if err != nil || len(out) == 0 {
		return "not-installed"
	}
	return strings.TrimSpace(string(out))
}

func installAndPurge(t *testing.T, dpkg, deb string) {
	if s := dpkgStatus(t); s != "not-installed" {
		t.Fatalf("a package named mfad is already on this machine (status %s); not touching it", s)
	}
	for _, p := range []string{"/usr/bin/mfad", "/etc/mfad"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s already exists (err %v); not installing over it", p, err)
		}
	}
	t.Cleanup(func() {
		if s := dpkgStatus(t); s != "not-installed" {
			out, err := exec.Command(dpkg, "--purge", "mfad").CombinedOutput()
			t.Logf("cleanup: dpkg --purge mfad: err=%v\n%s", err, out)
		}
	})

	install := exec.Command(dpkg, "--install", deb)
	install.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := install.CombinedOutput()
	t.Logf("dpkg --install:\n%s", out)
	if err != nil {
		t.Fatalf("dpkg --install: %v", err)
	}

	if got := strings.TrimSpace(output(t, "/usr/bin/mfad", "--version")); got == "" {
		t.Error("mfad --version printed nothing")
	}
	output(t, "/usr/bin/mfad", "check-config", "/etc/mfad/config.hcl")
	// The PAM module finds every library it links.
	if ldd := output(t, "ldd", pamDir()+"/pam_mfad.so"); strings.Contains(ldd, "not found") {
		t.Errorf("pam_mfad.so misses libraries:\n%s", ldd)
	}
	output(t, "getent", "passwd", "mfad")
	mfadGID := strings.Split(strings.TrimSpace(output(t, "getent", "group", "mfad")), ":")[2]

	for _, tc := range []struct {
		path, mode string
		gid        string
	}{
		{"/etc/mfad/mfad.key", "-rw-------", "0"},
		{"/etc/mfad/config.hcl", "-rw-r-----", mfadGID},
		{"/etc/mfad", "drwxr-x---", mfadGID},
		{"/var/lib/mfad", "drwx------", mfadGID},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Error(err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if gid := strconv.FormatUint(uint64(st.Gid), 10); fi.Mode().String() != tc.mode || gid != tc.gid {
			t.Errorf("%s: %s gid %s, want %s gid %s", tc.path, fi.Mode(), gid, tc.mode, tc.gid)
		}
	}
	_, helperErr := exec.LookPath("deb-systemd-helper")
	if helperErr == nil {
		for _, l := range enableLinks {
			if _, err := os.Lstat(l); err != nil {
				t.Errorf("unit not enabled: %v", err)
			}
		}
	}

	purge := exec.Command(dpkg, "--purge", "mfad")
	out, err = purge.CombinedOutput()
	t.Logf("dpkg --purge:\n%s", out)
	if err != nil {
		t.Fatalf("dpkg --purge: %v", err)
	}
	if s := dpkgStatus(t); s != "not-installed" {
		t.Errorf("after purge mfad's status is %s", s)
	}
	gone := []string{"/usr/bin/mfad", "/etc/mfad/mfad.key", "/etc/mfad/config.hcl", "/etc/mfad", "/var/lib/mfad"}
	if helperErr == nil {
		gone = append(gone, enableLinks...)
	}
	for _, p := range gone {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after purge (err %v)", p, err)
		}
	}
}
