package packaging_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mfad/mfad/internal/testenv"
)

const installHint = "apt-get install systemd"

// unit is a parsed systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

// parseUnit reads a unit file; it understands comments, sections and
// key=value lines, which is all these units use (no continuation lines).
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+(?:\.[0-9]+)?)`)

func TestSecurityExposureBelowOne(t *testing.T) {
	sa := testenv.RequireTool(t, "systemd-analyze", installHint)
	out, err := run(t, sa, "security", "--offline=true", "--no-pager", abs(t, "systemd/mfad.service"))
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in output:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overall exposure level of mfad.service: %.1f", score)
	if score >= 1.0 {
		t.Errorf("exposure level %.1f, want below 1.0 (SAFE); output:\n%s", score, out)
	}
}

// TestVerifyUnits runs systemd-analyze verify on both units. verify insists
// that ExecStart='s binary exists. Its --root= does not help in systemd 252:
// with it, verify loads every unit from inside the root, so the root would
// need sysinit.target and the rest of the host's unit tree plus /bin/kill.
// Instead the units are copied to a temporary directory with ExecStart=
// pointing at a freshly built mfad. Any output at all (verify exits 0 on
// most warnings) is a failure.
func TestVerifyUnits(t *testing.T) {
	sa := testenv.RequireTool(t, "systemd-analyze", installHint)
	goCmd := testenv.RequireTool(t, "go", "install Go")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "mfad")
	if out, err := run(t, goCmd, "build", "-o", bin, "github.com/mfad/mfad/cmd/mfad"); err != nil {
		t.Fatalf("building mfad: %v\n%s", err, out)
	}
	units := filepath.Join(dir, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	svc, err := os.ReadFile("systemd/mfad.service")
	if err != nil {
		t.Fatal(err)
	}
	const execLine = "\nExecStart=/usr/bin/mfad "
	if !strings.Contains(string(svc), execLine) {
		t.Fatalf("mfad.service has no line starting %q", strings.TrimSpace(execLine))
	}
	svc = []byte(strings.Replace(string(svc), execLine, "\nExecStart="+bin+" ", 1))
	sock, err := os.ReadFile("systemd/mfad.socket")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"mfad.service": svc, "mfad.socket": sock} {
		if err := os.WriteFile(filepath.Join(units, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, sa, "verify", filepath.Join(units, "mfad.service"), filepath.Join(units, "mfad.socket"))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: err=%v, output:\n%s", err, out)
	}
}

func TestServiceDirectives(t *testing.T) {
	s := parseUnit(t, "systemd/mfad.service")["Service"]
	if s == nil {
		t.Fatal("mfad.service has no [Service] section")
	}
	tests := []struct {
		key  string
		want []string
	}{
		{"Type", []string{"notify"}},
		{"NotifyAccess", []string{"main"}},
		{"ExecStart", []string{"/usr/bin/mfad serve --config /etc/mfad/config.hcl"}},
		{"ExecReload", []string{"/bin/kill -HUP $MAINPID"}},
		{"Restart", []string{"on-failure"}},
		{"RestartSec", []string{"2s"}},
		{"WatchdogSec", []string{"30s"}},
		{"TimeoutStopSec", []string{"20s"}},
		{"User", []string{"mfad"}},
		{"Group", []string{"mfad"}},
		{"StateDirectory", []string{"mfad"}},
		{"StateDirectoryMode", []string{"0700"}},
		{"RuntimeDirectory", []string{"mfad"}},
		{"RuntimeDirectoryPreserve", []string{"yes"}},
		{"ConfigurationDirectory", []string{"mfad"}},
		{"LoadCredential", []string{"mfad.key:/etc/mfad/mfad.key"}},
		{"UMask", []string{"0077"}},
		{"DevicePolicy", []string{"closed"}},
		{"DeviceAllow", []string{"char-ttyUSB rw", "char-ttyACM rw", "char-hidraw rw"}},
		{"RestrictAddressFamilies", []string{"AF_UNIX"}},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if got := s[tc.key]; !slices.Equal(got, tc.want) {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	t.Run("SupplementaryGroups", func(t *testing.T) {
		got := strings.Fields(strings.Join(s["SupplementaryGroups"], " "))
		for _, g := range []string{"dialout", "mfad-u2f"} {
			if !slices.Contains(got, g) {
				t.Errorf("SupplementaryGroups = %q, missing %s", got, g)
			}
		}
	})
	t.Run("devices stay visible", func(t *testing.T) {
		// PrivateDevices= would hide /dev/ttyUSB*, /dev/ttyACM* and
		// /dev/hidraw*; PrivateUsers= would turn SO_PEERCRED callers into
		// nobody.
		for _, k := range []string{"PrivateDevices", "PrivateUsers"} {
			if v, ok := s[k]; ok {
				t.Errorf("%s=%q is set; the daemon does not work with it", k, v)
			}
		}
	})
}

func TestSocketDirectives(t *testing.T) {
	u := parseUnit(t, "systemd/mfad.socket")
	s := u["Socket"]
	tests := []struct {
		key  string
		want []string
	}{
		{"ListenStream", []string{"/run/mfad/mfad.sock"}},
		{"SocketMode", []string{"0660"}},
		{"SocketGroup", []string{"mfad-login"}},
		{"Service", []string{"mfad.service"}},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if got := s[tc.key]; !slices.Equal(got, tc.want) {
				t.Errorf("%s = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
	t.Run("service wants socket", func(t *testing.T) {
		svc := parseUnit(t, "systemd/mfad.service")["Unit"]
		if !slices.Contains(svc["Wants"], "mfad.socket") {
			t.Errorf("mfad.service [Unit] Wants = %q, want mfad.socket", svc["Wants"])
		}
	})
}

// sysusersLines returns the non-comment lines of the sysusers file as fields.
func sysusersLines(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile("sysusers.d/mfad.conf")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f)
		}
	}
	return out
}

// TestGroupsConsistent checks that every group the unit and the udev rules
// rely on is one the sysusers file creates or gives mfad membership of.
func TestGroupsConsistent(t *testing.T) {
	known := map[string]bool{}
	for _, f := range sysusersLines(t) {
		switch f[0] {
		case "u", "g":
			known[f[1]] = true
		case "m":
			known[f[2]] = true
		}
	}
	svc := parseUnit(t, "systemd/mfad.service")["Service"]
	sock := parseUnit(t, "systemd/mfad.socket")["Socket"]
	need := append(strings.Fields(strings.Join(svc["SupplementaryGroups"], " ")), svc["Group"]...)
	need = append(need, sock["SocketGroup"]...)
	for _, r := range udevRules(t) {
		for _, kv := range r {
			if kv.key == "GROUP" {
				need = append(need, kv.value)
			}
		}
	}
	for _, g := range need {
		if !known[g] {
			t.Errorf("group %q is used but sysusers.d/mfad.conf neither creates it nor adds mfad to it", g)
		}
	}
}

func TestSysusersAndTmpfiles(t *testing.T) {
	sysusers := testenv.RequireTool(t, "systemd-sysusers", installHint)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A relative configuration path would be looked up inside the root;
	// an absolute one is read from the host. systemd-sysusers needs <root>/etc.
	if out, err := run(t, sysusers, "--root="+root, abs(t, "sysusers.d/mfad.conf")); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd := readEntries(t, filepath.Join(root, "etc", "passwd"))
	group := readEntries(t, filepath.Join(root, "etc", "group"))

	t.Run("user", func(t *testing.T) {
		u, ok := passwd["mfad"]
		if !ok {
			t.Fatalf("no mfad in passwd: %v", passwd)
		}
		if u[5] != "/var/lib/mfad" || u[6] != "/usr/sbin/nologin" {
			t.Errorf("mfad home/shell = %q %q", u[5], u[6])
		}
		if g, ok := group["mfad"]; !ok || g[2] != u[3] {
			t.Errorf("mfad's primary gid %s is not group mfad (%v)", u[3], g)
		}
	})
	for _, tc := range []struct {
		group  string
		member bool
	}{
		{"mfad-login", true},
		{"mfad-admin", false},
		{"mfad-u2f", true},
		{"dialout", true},
	} {
		t.Run("group "+tc.group, func(t *testing.T) {
			g, ok := group[tc.group]
			if !ok {
				t.Fatalf("no group %s: %v", tc.group, group)
			}
			members := strings.Split(g[3], ",")
			if got := slices.Contains(members, "mfad"); got != tc.member {
				t.Errorf("mfad member of %s = %v, want %v", tc.group, got, tc.member)
			}
		})
	}

	t.Run("tmpfiles", func(t *testing.T) {
		tmpfiles := testenv.RequireTool(t, "systemd-tmpfiles", installHint)
		if os.Geteuid() != 0 {
			t.Skip("systemd-tmpfiles --create has to chown to mfad, which needs root")
		}
		if out, err := run(t, tmpfiles, "--root="+root, "--create", abs(t, "tmpfiles.d/mfad.conf")); err != nil {
			t.Fatalf("systemd-tmpfiles: %v\n%s", err, out)
		}
		uid, gid := passwd["mfad"][2], group["mfad"][2]
		for _, tc := range []struct {
			path, mode, uid, gid string
		}{
			{"etc/mfad", "drwxr-x---", "0", gid},
			{"var/lib/mfad", "drwx------", uid, gid},
		} {
			fi, err := os.Stat(filepath.Join(root, tc.path))
			if err != nil {
				t.Error(err)
				continue
			}
			u, g := owner(fi)
			if fi.Mode().String() != tc.mode || u != tc.uid || g != tc.gid {
				t.Errorf("/%s: %s %s:%s, want %s %s:%s", tc.path, fi.Mode(), u, g, tc.mode, tc.uid, tc.gid)
			}
		}
	})
}

// readEntries reads a passwd or group file into name -> fields.
func readEntries(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for line := range strings.Lines(string(data)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) >= 4 {
			m[f[0]] = f
		}
	}
	return m
}

type udevKV struct{ key, op, value string }

// udevTokenRE matches one KEY{attr}OP"value" term of a udev rule.
var udevTokenRE = regexp.MustCompile(`^\s*([A-Z_]+(?:\{[^}]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)`)

var udevKeys = map[string]bool{
	"ACTION": true, "SUBSYSTEM": true, "KERNEL": true, "ENV": true, "ATTRS": true,
	"GROUP": true, "MODE": true, "SYMLINK": true, "TAG": true,
}

// udevRules parses udev/70-mfad.rules strictly enough to catch typos.
func udevRules(t *testing.T) [][]udevKV {
	t.Helper()
	data, err := os.ReadFile("udev/70-mfad.rules")
	if err != nil {
		t.Fatal(err)
	}
	var rules [][]udevKV
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		rest := strings.TrimSpace(line)
		if rest == "" || strings.HasPrefix(rest, "#") {
			continue
		}
		var rule []udevKV
		for rest != "" {
			m := udevTokenRE.FindStringSubmatch(rest)
			if m == nil {
				t.Fatalf("70-mfad.rules:%d: cannot parse %q", n, rest)
			}
			base, _, _ := strings.Cut(m[1], "{")
			if !udevKeys[base] {
				t.Fatalf("70-mfad.rules:%d: unexpected key %s", n, m[1])
			}
			rule = append(rule, udevKV{m[1], m[2], m[3]})
			rest = strings.TrimSpace(rest[len(m[0]):])
		}
		rules = append(rules, rule)
	}
	return rules
}

func TestUdevRules(t *testing.T) {
	rules := udevRules(t)
	has := func(r []udevKV, key, op, value string) bool {
		return slices.Contains(r, udevKV{key, op, value})
	}
	find := func(match ...udevKV) []udevKV {
		for _, r := range rules {
			ok := true
			for _, m := range match {
				ok = ok && has(r, m.key, m.op, m.value)
			}
			if ok {
				return r
			}
		}
		return nil
	}
	tests := []struct {
		name  string
		match []udevKV
	}{
		{"fido keys to mfad-u2f", []udevKV{
			{"SUBSYSTEM", "==", "hidraw"}, {"ENV{ID_FIDO_TOKEN}", "==", "1"},
			{"GROUP", "=", "mfad-u2f"}, {"MODE", "=", "0660"}}},
		{"modems to dialout", []udevKV{
			{"SUBSYSTEM", "==", "tty"}, {"KERNEL", "==", "ttyUSB[0-9]*|ttyACM[0-9]*"},
			{"GROUP", "=", "dialout"}, {"MODE", "=", "0660"}}},
		{"modem symlink", []udevKV{
			{"SUBSYSTEM", "==", "tty"}, {"ENV{ID_SERIAL_SHORT}", "==", "?*"},
			{"SYMLINK", "+=", "mfad/modem-%E{ID_SERIAL_SHORT}-if%E{ID_USB_INTERFACE_NUM}"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if find(tc.match...) == nil {
				t.Errorf("no rule with all of %v", tc.match)
			}
		})
	}
	t.Run("no world access", func(t *testing.T) {
		for _, r := range rules {
			for _, kv := range r {
				if kv.key == "MODE" && !strings.HasSuffix(kv.value, "0") {
					t.Errorf("rule %v grants access to others", r)
				}
			}
		}
	})
}

// owner returns a file's numeric owner and group as strings.
func owner(fi os.FileInfo) (uid, gid string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?", "?"
	}
	return fmt.Sprint(st.Uid), fmt.Sprint(st.Gid)
}
