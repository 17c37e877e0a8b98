package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// rootEnv is the environment of a root daemon started without systemd
// directory variables.
var rootEnv = Env{UID: 0, Home: "/root"}

func TestExampleMatchesDefault(t *testing.T) {
	cfg, files, diags := LoadFile(filepath.Join("..", "config.hcl.example"), rootEnv)
	if len(diags) > 0 {
		var b bytes.Buffer
		_ = WriteDiagnostics(&b, files, diags)
		t.Fatalf("example has diagnostics:\n%s", b.String())
	}
	if want := Default(rootEnv); !reflect.DeepEqual(cfg, want) {
		t.Errorf("example differs from Default:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestDefault(t *testing.T) {
	tmp := os.TempDir()
	tests := []struct {
		name       string
		env        Env
		wantSocket string
		wantDir    string
	}{
		{"root without systemd", Env{UID: 0, Home: "/root"}, "/run/mfad/mfad.sock", "/var/lib/mfad"},
		{"root with systemd", Env{UID: 0, RuntimeDirectory: "/run/mfad", StateDirectory: "/var/lib/mfad-x"},
			"/run/mfad/mfad.sock", "/var/lib/mfad-x"},
		{"systemd with several directories", Env{UID: 0, RuntimeDirectory: "/run/a:/run/b", StateDirectory: "/var/lib/a:/var/lib/b"},
			"/run/a/mfad.sock", "/var/lib/a"},
		{"systemd for a non-root user", Env{UID: 1000, Home: "/home/u", RuntimeDirectory: "/run/user-mfad", StateDirectory: "/srv/state",
			XDGRuntimeDir: "/run/user/1000", XDGStateHome: "/home/u/.state"}, "/run/user-mfad/mfad.sock", "/srv/state"},
		{"user with XDG directories", Env{UID: 1000, Home: "/home/u", XDGRuntimeDir: "/run/user/1000", XDGStateHome: "/home/u/.state"},
			"/run/user/1000/mfad/mfad.sock", "/home/u/.state/mfad"},
		{"user with home only", Env{UID: 1000, Home: "/home/u"},
			filepath.Join(tmp, "mfad-1000", "mfad.sock"), "/home/u/.local/state/mfad"},
		{"user without home", Env{UID: 1001},
			filepath.Join(tmp, "mfad-1001", "mfad.sock"), filepath.Join(tmp, "mfad-1001", "state")},
		{"relative variables are ignored", Env{UID: 1000, Home: "home", RuntimeDirectory: "run", StateDirectory: "state",
			XDGRuntimeDir: "xdg-run", XDGStateHome: "xdg-state"},
			filepath.Join(tmp, "mfad-1000", "mfad.sock"), filepath.Join(tmp, "mfad-1000", "state")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default(tt.env)
			if cfg.Server.Socket != tt.wantSocket {
				t.Errorf("socket = %q, want %q", cfg.Server.Socket, tt.wantSocket)
			}
			if cfg.Storage.Dir != tt.wantDir {
				t.Errorf("storage dir = %q, want %q", cfg.Storage.Dir, tt.wantDir)
			}
			if cfg.Storage.KeyFile != "" {
				t.Errorf("key file = %q, want empty", cfg.Storage.KeyFile)
			}
		})
	}

	t.Run("fresh copy each call", func(t *testing.T) {
		a := Default(rootEnv)
		a.Server.LoginGroups[0] = "changed"
		if b := Default(rootEnv); b.Server.LoginGroups[0] != "mfad-login" {
			t.Errorf("Default shares slices between calls: %q", b.Server.LoginGroups)
		}
	})
}

func TestEnvFromOS(t *testing.T) {
	t.Setenv("HOME", "/home/tester")
	t.Setenv("RUNTIME_DIRECTORY", "/run/a")
	t.Setenv("STATE_DIRECTORY", "/var/lib/a")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/7")
	t.Setenv("XDG_STATE_HOME", "/home/tester/.st")
	want := Env{UID: os.Getuid(), Home: "/home/tester", RuntimeDirectory: "/run/a", StateDirectory: "/var/lib/a",
		XDGRuntimeDir: "/run/user/7", XDGStateHome: "/home/tester/.st"}
	if got := EnvFromOS(); got != want {
		t.Errorf("EnvFromOS() = %+v, want %+v", got, want)
	}
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name     string
		filename string
		src      string
		edit     func(c *Config) // turns Default(rootEnv) into the expected config
	}{
		{"empty file", "mfad.hcl", "", func(c *Config) {}},
		{"empty blocks", "mfad.hcl", "server {}\nstorage {}\ntotp {}\nrecovery {}\nlockout {}\naudit {}\nlog {}\n", func(c *Config) {}},
		{"relative paths", "etc/mfad/mfad.hcl",
			"server {\n socket = \"run/s.sock\"\n}\nstorage {\n dir = \"state\"\n key_file = \"../k/mfad.key\"\n}\n",
			func(c *Config) {
				c.Server.Socket = "etc/mfad/run/s.sock"
				c.Storage.Dir = "etc/mfad/state"
				c.Storage.KeyFile = "etc/k/mfad.key"
			}},
		{"absolute paths are kept", "etc/mfad.hcl",
			"server {\n socket = \"/run/x//y.sock\"\n}\nstorage {\n dir = \"/srv/mfad/\"\n key_file = \"/etc/mfad.key\"\n}\n",
			func(c *Config) {
				c.Server.Socket = "/run/x/y.sock"
				c.Storage.Dir = "/srv/mfad"
				c.Storage.KeyFile = "/etc/mfad.key"
			}},
		{"explicit empty key file", "mfad.hcl", "storage {\n key_file = \"\"\n}\n", func(c *Config) {}},
		{"server settings", "mfad.hcl", `server {
  socket_mode       = "600"
  socket_group      = "mfad"
  login_groups      = []
  admin_groups      = ["wheel", "ops"]
  max_request_bytes = 16777216
  read_timeout      = "1s"
  write_timeout     = "10m"
  shutdown_timeout  = "5m"
  login_ttl         = "1h"
}`, func(c *Config) {
			c.Server.SocketMode = 0o600
			c.Server.SocketGroup = "mfad"
			c.Server.LoginGroups = []string{}
			c.Server.AdminGroups = []string{"wheel", "ops"}
			c.Server.MaxRequestBytes = 16777216
			c.Server.ReadTimeout = time.Second
			c.Server.WriteTimeout = 10 * time.Minute
			c.Server.ShutdownTimeout = 5 * time.Minute
			c.Server.LoginTTL = time.Hour
		}},
		{"totp settings and case folding", "mfad.hcl", `totp {
  issuer       = "Example Corp ünïcode"
  digits       = 8
  period       = "2m"
  algorithm    = "sha512"
  skew         = 3
  drift_window = 3
}`, func(c *Config) {
			c.TOTP = TOTP{Issuer: "Example Corp ünïcode", Digits: 8, Period: 2 * time.Minute, Algorithm: "SHA512", Skew: 3, DriftWindow: 3}
		}},
		{"zero skew and drift window", "mfad.hcl", "totp {\n skew = 0\n drift_window = 0\n}\n", func(c *Config) {
			c.TOTP.Skew, c.TOTP.DriftWindow = 0, 0
		}},
		{"recovery bounds", "mfad.hcl", "recovery {\n count = 4\n warn_below = 4\n}\n", func(c *Config) {
			c.Recovery.Count, c.Recovery.WarnBelow = 4, 4
		}},
		{"lockout, audit and log", "mfad.hcl", `lockout {
  max_failures = 100
  window       = "24h"
  duration     = "1m"
}
audit {
  retention = "87600h"
}
log {
  level  = "DEBUG"
  format = "Json"
}`, func(c *Config) {
			c.Lockout.MaxFailures, c.Lockout.Window, c.Lockout.Duration = 100, 24*time.Hour, time.Minute
			c.Audit.Retention = 87600 * time.Hour
			c.Log = Log{Level: slog.LevelDebug, Format: "json"}
		}},
		{"log levels", "mfad.hcl", "log {\n level = \"error\"\n}\n", func(c *Config) { c.Log.Level = slog.LevelError }},
		{"warn level", "mfad.hcl", "log {\n level = \"warn\"\n}\n", func(c *Config) { c.Log.Level = slog.LevelWarn }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, files, diags := Parse(tt.filename, []byte(tt.src), rootEnv)
			if len(diags) > 0 {
				var b bytes.Buffer
				_ = WriteDiagnostics(&b, files, diags)
				t.Fatalf("unexpected diagnostics:\n%s", b.String())
			}
			if files[tt.filename] == nil {
				t.Errorf("files has no entry for %q", tt.filename)
			}
			want := Default(rootEnv)
			tt.edit(want)
			if !reflect.DeepEqual(cfg, want) {
				t.Errorf("config mismatch:\n got %+v\nwant %+v", cfg, want)
			}
		})
	}
}

func TestLoadFileResolvesAgainstAbsoluteDir(t *testing.T) {
	path := filepath.Join("testdata", "good", "relative.hcl")
	cfg, _, diags := LoadFile(path, rootEnv)
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "good"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"server.socket", cfg.Server.Socket, filepath.Join(dir, "run", "mfad.sock")},
		{"storage.dir", cfg.Storage.Dir, filepath.Join(dir, "state")},
		{"storage.key_file", cfg.Storage.KeyFile, filepath.Join(filepath.Dir(dir), "keys", "mfad.key")},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
}

func TestLoadFileReadError(t *testing.T) {
	path := filepath.Join("testdata", "does-not-exist.hcl")
	cfg, files, diags := LoadFile(path, rootEnv)
	if cfg != nil {
		t.Errorf("config = %+v, want nil", cfg)
	}
	if files == nil {
		t.Error("files is nil, want an empty map")
	}
	if len(diags) != 1 || !diags.HasErrors() {
		t.Fatalf("diagnostics = %v, want exactly one error", diags)
	}
	d := diags[0]
	if d.Subject != nil {
		t.Errorf("subject = %v, want none", d.Subject)
	}
	if !strings.Contains(d.Summary, path) || !strings.Contains(d.Detail, "no such file or directory") {
		t.Errorf("diagnostic does not name the file and reason: %q / %q", d.Summary, d.Detail)
	}
}

// errorCase is one bad input and the diagnostics it must produce.
type errorCase struct {
	name string
	src  string
	want []wantDiag
}

type wantDiag struct {
	summary string // substring of the summary
	at      string // "line:column" of the subject start
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []errorCase{
		// server
		{"socket wrong type", "server {\n  socket = 5\n}", []wantDiag{{"Invalid value 5 for server.socket", "2:12"}}},
		{"socket empty", "server {\n  socket = \"\"\n}", []wantDiag{{`Invalid path "" for server.socket`, "2:12"}}},
		{"socket too long", "server {\n  socket = \"/run/" + long + "\"\n}", []wantDiag{{"Socket path too long for server.socket", "2:12"}}},
		{"socket mode other bits", "server {\n  socket_mode = \"0666\"\n}", []wantDiag{{`Insecure file mode "0666" for server.socket_mode`, "2:17"}}},
		{"socket mode other execute", "server {\n  socket_mode = \"0771\"\n}", []wantDiag{{`Insecure file mode "0771"`, "2:17"}}},
		{"socket mode not octal", "server {\n  socket_mode = \"0689\"\n}", []wantDiag{{`Invalid file mode "0689" for server.socket_mode`, "2:17"}}},
		{"socket mode special bits", "server {\n  socket_mode = \"04660\"\n}", []wantDiag{{`Invalid file mode "04660"`, "2:17"}}},
		{"socket mode number", "server {\n  socket_mode = 660\n}", []wantDiag{{"Invalid value 660 for server.socket_mode", "2:17"}}},
		{"socket group with space", "server {\n  socket_group = \"a b\"\n}", []wantDiag{{`Invalid group name "a b" for server.socket_group`, "2:18"}}},
		{"login groups not a list", "server {\n  login_groups = \"mfad\"\n}", []wantDiag{{`Invalid value "mfad" for server.login_groups`, "2:18"}}},
		{"login groups element type", "server {\n  login_groups = [\"ok\", 5]\n}", []wantDiag{{"Invalid value 5 in server.login_groups", "2:25"}}},
		{"admin groups empty name", "server {\n  admin_groups = [\"x\", \"\"]\n}", []wantDiag{{`Invalid group name "" in server.admin_groups`, "2:24"}}},
		{"admin groups colon", "server {\n  admin_groups = [\"a:b\"]\n}", []wantDiag{{`Invalid group name "a:b"`, "2:19"}}},
		{"max request bytes low", "server {\n  max_request_bytes = 1023\n}", []wantDiag{{"Out of range value 1023 for server.max_request_bytes", "2:23"}}},
		{"max request bytes high", "server {\n  max_request_bytes = 16777217\n}", []wantDiag{{"Out of range value 16777217", "2:23"}}},
		{"max request bytes fraction", "server {\n  max_request_bytes = 2048.5\n}", []wantDiag{{"Invalid value 2048.5 for server.max_request_bytes", "2:23"}}},
		{"max request bytes string", "server {\n  max_request_bytes = \"65536\"\n}", []wantDiag{{`Invalid value "65536"`, "2:23"}}},
		{"max request bytes huge", "server {\n  max_request_bytes = 1e400\n}", []wantDiag{{"Out of range value", "2:23"}}},
		{"read timeout bad duration", "server {\n  read_timeout = \"10x\"\n}", []wantDiag{{`Invalid duration "10x" for server.read_timeout`, "2:18"}}},
		{"read timeout zero", "server {\n  read_timeout = \"0s\"\n}", []wantDiag{{`Out of range duration "0s" for server.read_timeout`, "2:18"}}},
		{"read timeout number", "server {\n  read_timeout = 10\n}", []wantDiag{{"Invalid value 10 for server.read_timeout", "2:18"}}},
		{"write timeout high", "server {\n  write_timeout = \"11m\"\n}", []wantDiag{{`Out of range duration "11m" for server.write_timeout`, "2:19"}}},
		{"shutdown timeout high", "server {\n  shutdown_timeout = \"6m\"\n}", []wantDiag{{`Out of range duration "6m" for server.shutdown_timeout`, "2:22"}}},
		{"shutdown timeout negative", "server {\n  shutdown_timeout = \"-1s\"\n}", []wantDiag{{`Out of range duration "-1s"`, "2:22"}}},
		{"login ttl low", "server {\n  login_ttl = \"59s\"\n}", []wantDiag{{`Out of range duration "59s" for server.login_ttl`, "2:15"}}},
		{"login ttl high", "server {\n  login_ttl = \"2h\"\n}", []wantDiag{{`Out of range duration "2h" for server.login_ttl`, "2:15"}}},
		// storage
		{"storage dir empty", "storage {\n  dir = \"\"\n}", []wantDiag{{`Invalid path "" for storage.dir`, "2:9"}}},
		{"storage dir number", "storage {\n  dir = 1\n}", []wantDiag{{"Invalid value 1 for storage.dir", "2:9"}}},
		{"storage dir NUL", "storage {\n  dir = \"/a\\u0000b\"\n}", []wantDiag{{`Invalid path "/a\x00b" for storage.dir`, "2:9"}}},
		{"storage key file list", "storage {\n  key_file = [\"k\"]\n}", []wantDiag{{"Invalid value [...] for storage.key_file", "2:14"}}},
		// totp
		{"issuer empty", "totp {\n  issuer = \"\"\n}", []wantDiag{{`Invalid issuer "" for totp.issuer`, "2:12"}}},
		{"issuer colon", "totp {\n  issuer = \"a:b\"\n}", []wantDiag{{`Invalid issuer "a:b" for totp.issuer`, "2:12"}}},
		{"issuer too long", "totp {\n  issuer = \"" + strings.Repeat("x", 65) + "\"\n}", []wantDiag{{"Invalid issuer", "2:12"}}},
		{"issuer control character", "totp {\n  issuer = \"a\\tb\"\n}", []wantDiag{{`Invalid issuer "a\tb"`, "2:12"}}},
		{"issuer bool", "totp {\n  issuer = true\n}", []wantDiag{{"Invalid value true for totp.issuer", "2:12"}}},
		{"digits seven", "totp {\n  digits = 7\n}", []wantDiag{{"Invalid value 7 for totp.digits", "2:12"}}},
		{"digits nine", "totp {\n  digits = 9\n}", []wantDiag{{"Out of range value 9 for totp.digits", "2:12"}}},
		{"digits string", "totp {\n  digits = \"6\"\n}", []wantDiag{{`Invalid value "6" for totp.digits`, "2:12"}}},
		{"digits null", "totp {\n  digits = null\n}", []wantDiag{{"Invalid value null for totp.digits", "2:12"}}},
		{"period low", "totp {\n  period = \"10s\"\n}", []wantDiag{{`Out of range duration "10s" for totp.period`, "2:12"}}},
		{"period high", "totp {\n  period = \"121s\"\n}", []wantDiag{{`Out of range duration "121s" for totp.period`, "2:12"}}},
		{"period fraction", "totp {\n  period = \"30500ms\"\n}", []wantDiag{{`Invalid duration "30500ms" for totp.period`, "2:12"}}},
		{"period bad", "totp {\n  period = \"30\"\n}", []wantDiag{{`Invalid duration "30" for totp.period`, "2:12"}}},
		{"algorithm", "totp {\n  algorithm = \"MD5\"\n}", []wantDiag{{`Invalid value "MD5" for totp.algorithm`, "2:15"}}},
		{"skew high", "totp {\n  skew = 4\n}", []wantDiag{{"Out of range value 4 for totp.skew", "2:10"}}},
		{"skew negative", "totp {\n  skew = -1\n}", []wantDiag{{"Out of range value -1 for totp.skew", "2:10"}}},
		{"drift window below skew", "totp {\n  skew = 2\n  drift_window = 1\n}", []wantDiag{{"Out of range value 1 for totp.drift_window", "3:18"}}},
		{"drift window high", "totp {\n  drift_window = 61\n}", []wantDiag{{"Out of range value 61 for totp.drift_window", "2:18"}}},
		// recovery
		{"count low", "recovery {\n  count = 3\n}", []wantDiag{{"Out of range value 3 for recovery.count", "2:11"}}},
		{"count high", "recovery {\n  count = 33\n}", []wantDiag{{"Out of range value 33 for recovery.count", "2:11"}}},
		{"format", "recovery {\n  format = \"HEX-4X4\"\n}", []wantDiag{{`Invalid value "HEX-4X4" for recovery.format`, "2:12"}}},
		{"warn below above count", "recovery {\n  warn_below = 9\n}", []wantDiag{{"Out of range value 9 for recovery.warn_below", "2:16"}}},
		{"warn below above explicit count", "recovery {\n  count = 4\n  warn_below = 5\n}", []wantDiag{{"Out of range value 5 for recovery.warn_below", "3:16"}}},
		{"warn below negative", "recovery {\n  warn_below = -1\n}", []wantDiag{{"Out of range value -1", "2:16"}}},
		// lockout
		{"max failures zero", "lockout {\n  max_failures = 0\n}", []wantDiag{{"Out of range value 0 for lockout.max_failures", "2:18"}}},
		{"max failures high", "lockout {\n  max_failures = 101\n}", []wantDiag{{"Out of range value 101", "2:18"}}},
		{"window low", "lockout {\n  window = \"30s\"\n}", []wantDiag{{`Out of range duration "30s" for lockout.window`, "2:12"}}},
		{"window high", "lockout {\n  window = \"25h\"\n}", []wantDiag{{`Out of range duration "25h" for lockout.window`, "2:12"}}},
		{"duration bad", "lockout {\n  duration = \"15 minutes\"\n}", []wantDiag{{`Invalid duration "15 minutes" for lockout.duration`, "2:14"}}},
		// audit
		{"retention low", "audit {\n  retention = \"23h\"\n}", []wantDiag{{`Out of range duration "23h" for audit.retention`, "2:15"}}},
		{"retention high", "audit {\n  retention = \"87601h\"\n}", []wantDiag{{`Out of range duration "87601h"`, "2:15"}}},
		{"retention days", "audit {\n  retention = \"365d\"\n}", []wantDiag{{`Invalid duration "365d" for audit.retention`, "2:15"}}},
		// log
		{"log level", "log {\n  level = \"trace\"\n}", []wantDiag{{`Invalid value "trace" for log.level`, "2:11"}}},
		{"log format", "log {\n  format = \"xml\"\n}", []wantDiag{{`Invalid value "xml" for log.format`, "2:12"}}},
		// structure
		{"unknown attribute", "server {\n  sockett = \"x\"\n}", []wantDiag{{"Unsupported argument", "2:3"}}},
		{"unknown block", "modems \"usb0\" {\n}\n", []wantDiag{{"Unsupported block type", "1:1"}}},
		{"modem without device", "modem \"usb0\" {\n}\n", []wantDiag{{"Missing modem \"usb0\".device", "1:1"}}},
		{"pin in the config", "modem \"usb0\" {\n  device = \"/dev/ttyUSB0\"\n  pin = \"1234\"\n}\n", []wantDiag{{"PIN in the configuration for modem \"usb0\"", "3:3"}}},
		{"user in sms template", "sms {\n  template = \"{{code}} for {{user}}\"\n}\n", []wantDiag{{"User name in sms.template", "2:14"}}},
		{"top-level attribute", "\nsocket = \"/run/x.sock\"\n", []wantDiag{{"Unsupported argument", "2:1"}}},
		{"block as attribute", "log = {}\n", []wantDiag{{"Unsupported argument", "1:1"}}},
		{"block label", "log \"main\" {\n}\n", []wantDiag{{"Extraneous label for log", "1:5"}}},
		{"duplicate block", "log {\n}\ntotp {\n}\nlog {\n  level = \"debug\"\n}\n", []wantDiag{{"Duplicate log block", "5:1"}}},
		{"triple block", "audit {\n}\naudit {\n}\naudit {\n}\n", []wantDiag{{"Duplicate audit block", "3:1"}, {"Duplicate audit block", "5:1"}}},
		{"problem inside duplicate", "log {\n}\nlog {\n  level = \"loud\"\n}\n", []wantDiag{{"Duplicate log block", "3:1"}, {`Invalid value "loud"`, "4:11"}}},
		{"variable", "totp {\n  issuer = var.issuer\n}", []wantDiag{{"Variables not allowed", "2:12"}}},
		{"function call", "totp {\n  issuer = upper(\"x\")\n}", []wantDiag{{"Function calls not allowed", "2:12"}}},
		{"syntax missing equals", "server {\n  socket \"/x\"\n}\n", []wantDiag{{"Invalid block definition", "2:14"}}},
		{"syntax missing value", "log {\n  level =\n}\n", []wantDiag{{"Invalid expression", "2:10"}}},
		{"syntax unclosed block", "server {\n  socket = \"/x\"\n", []wantDiag{{"Unclosed configuration block", "1:8"}}},
		{"syntax unterminated string", "log {\n  level = \"info\n}\n", []wantDiag{
			{"Invalid multi-line string", "2:16"}, {"Unterminated template string", "2:16"}, {"Invalid multi-line string", "3:2"},
		}},
		{"syntax invalid character", "log {\n  level = \"info\" ;\n}\n", []wantDiag{{"Invalid character", "2:18"}, {"Missing newline after argument", "2:18"}}},
		{"several problems in file order", "log {\n  level = \"x\"\n}\nserver {\n  read_timeout = \"1\"\n  bogus = 1\n}\n", []wantDiag{
			{`Invalid value "x" for log.level`, "2:11"},
			{`Invalid duration "1" for server.read_timeout`, "5:18"},
			{"Unsupported argument", "6:3"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, tt)
		})
	}
}

func checkErrors(t *testing.T, tt errorCase) {
	t.Helper()
	cfg, files, diags := Parse("test.hcl", []byte(tt.src), rootEnv)
	if cfg != nil {
		t.Errorf("config = %+v, want nil", cfg)
	}
	var got []wantDiag
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			t.Errorf("severity of %q = %v, want error", d.Summary, d.Severity)
		}
		if d.Subject == nil {
			t.Errorf("diagnostic %q has no subject", d.Summary)
			continue
		}
		if d.Subject.Filename != "test.hcl" {
			t.Errorf("subject file = %q, want test.hcl", d.Subject.Filename)
		}
		if d.Detail == "" {
			t.Errorf("diagnostic %q has no detail", d.Summary)
		}
		got = append(got, wantDiag{d.Summary, fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)})
	}
	ok := len(got) == len(tt.want)
	for i := 0; ok && i < len(got); i++ {
		ok = strings.Contains(got[i].summary, tt.want[i].summary) && got[i].at == tt.want[i].at
	}
	if !ok {
		var b bytes.Buffer
		_ = WriteDiagnostics(&b, files, diags)
		t.Errorf("diagnostics = %q\nwant %q\n%s", got, tt.want, b.String())
	}
}

func TestDiagnosticDetails(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		detail string
	}{
		{"duration", "totp {\n period = \"10x\"\n}",
			`Use a Go duration such as "30s", in quotes; totp.period must be between 15s and 2m in steps of 1s.`},
		{"duration without step", "audit {\n retention = 1\n}",
			`Use a Go duration such as "30s" or "10m", in quotes; audit.retention must be between 24h and 87600h.`},
		{"number", "totp {\n skew = 9\n}", "totp.skew must be a whole number of time steps from 0 to 3, written without quotes."},
		{"dependent range", "totp {\n skew = 3\n drift_window = 2\n}",
			"totp.drift_window must be a whole number of time steps from totp.skew (3) to 60, written without quotes."},
		{"enum", "totp {\n algorithm = \"md5\"\n}", `totp.algorithm must be "SHA1", "SHA256" or "SHA512". Most authenticator apps only support "SHA1".`},
		{"single value", "recovery {\n format = \"x\"\n}", `recovery.format must be "hex-4x4", the only supported value.`},
		{"insecure mode", "server {\n socket_mode = \"0664\"\n}",
			`The socket must not be accessible to other users: the last octal digit must be 0. Use "0660" and grant access through server.socket_group.`},
		{"null", "log {\n level = null\n}", `log.level must be "debug", "info", "warn" or "error". To use the default, remove the line.`},
		{"duplicate", "log {\n}\n\nlog {\n}\n", "Only one log block is allowed; the first one is on line 1. Move these settings into that block and delete this one."},
		{"long value is shortened", "log {\n level = \"" + strings.Repeat("z", 100) + "\"\n}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, diags := Parse("test.hcl", []byte(tt.src), rootEnv)
			if len(diags) != 1 {
				t.Fatalf("got %d diagnostics, want 1: %v", len(diags), diags)
			}
			if tt.detail == "" {
				if want := `Invalid value "` + strings.Repeat("z", 40) + `..." for log.level`; diags[0].Summary != want {
					t.Errorf("summary = %q, want %q", diags[0].Summary, want)
				}
				return
			}
			if diags[0].Detail != tt.detail {
				t.Errorf("detail = %q\nwant     %q", diags[0].Detail, tt.detail)
			}
		})
	}
}

func TestGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "bad", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no testdata/bad/*.hcl files")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, files, diags := LoadFile(filepath.ToSlash(path), rootEnv)
			if cfg != nil || !diags.HasErrors() {
				t.Fatalf("config = %v, errors = %v; want nil config and errors", cfg, diags.HasErrors())
			}
			var b bytes.Buffer
			if err := WriteDiagnostics(&b, files, diags); err != nil {
				t.Fatal(err)
			}
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if b.String() != string(want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", golden, b.String())
			}
		})
	}
}

func TestGoldenManyReportsAll(t *testing.T) {
	_, _, diags := LoadFile(filepath.Join("testdata", "bad", "many.hcl"), rootEnv)
	var names []string
	for _, d := range diags {
		names = append(names, d.Summary)
	}
	wantParts := []string{"server.socket_mode", "server.max_request_bytes", "server.read_timeout", "server.login_groups",
		"totp.digits", "totp.period", "totp.algorithm", "totp.drift_window", "recovery.warn_below", "lockout.window", "log.level"}
	if len(names) != len(wantParts) {
		t.Fatalf("got %d diagnostics %q, want %d", len(names), names, len(wantParts))
	}
	for i, part := range wantParts {
		if !strings.Contains(names[i], part) {
			t.Errorf("diagnostic %d = %q, want it to mention %s", i, names[i], part)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteDiagnostics(t *testing.T) {
	src := []byte("log {\n\tlevel = \"ünï\"\n}\n")
	_, files, diags := Parse("tab.hcl", src, rootEnv)
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics, want 1", len(diags))
	}
	noSource := &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Something odd",
		Subject:  &hcl.Range{Filename: "gone.hcl", Start: hcl.Pos{Line: 3, Column: 1}, End: hcl.Pos{Line: 3, Column: 2}},
	}
	atEOF := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "At the end",
		Subject:  &hcl.Range{Filename: "tab.hcl", Start: hcl.Pos{Line: 3, Column: 2, Byte: 24}, End: hcl.Pos{Line: 3, Column: 2, Byte: 24}},
	}
	multiLine := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Whole block",
		Subject:  &hcl.Range{Filename: "tab.hcl", Start: hcl.Pos{Line: 1, Column: 1, Byte: 0}, End: hcl.Pos{Line: 3, Column: 2, Byte: 24}},
	}
	tests := []struct {
		name  string
		diags hcl.Diagnostics
		want  string
	}{
		{"tabs and multibyte characters", diags, "tab.hcl:2:10: Error: Invalid value \"ünï\" for log.level\n\n" +
			"  on tab.hcl line 2, in log:\n" +
			"   2: \tlevel = \"ünï\"\n" +
			"      \t        ^^^^^\n\n" +
			"log.level must be \"debug\", \"info\", \"warn\" or \"error\".\n\n"},
		{"no source and nil", hcl.Diagnostics{nil, noSource}, "gone.hcl:3:1: Warning: Something odd\n\n" +
			"  on gone.hcl line 3:\n  (source code not available)\n\n"},
		{"empty range at end of line", hcl.Diagnostics{atEOF}, "tab.hcl:3:2: Error: At the end\n\n" +
			"  on tab.hcl line 3:\n" +
			"   3: }\n" +
			"       ^\n\n"},
		{"range over several lines", hcl.Diagnostics{multiLine}, "tab.hcl:1:1: Error: Whole block\n\n" +
			"  on tab.hcl line 1, in log:\n" +
			"   1: log {\n" +
			"      ^^^^^\n" +
			"   2: \tlevel = \"ünï\"\n" +
			"      ^^^^^^^^^^^^^^\n" +
			"   3: }\n" +
			"      ^\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteDiagnostics(&b, files, tt.diags); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}

	t.Run("long detail is wrapped at 80 columns", func(t *testing.T) {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Detail: strings.Repeat("word ", 40)}
		var b bytes.Buffer
		if err := WriteDiagnostics(&b, nil, hcl.Diagnostics{d}); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if len(line) > 80 {
				t.Errorf("line longer than 80 columns: %q", line)
			}
		}
		if strings.Count(b.String(), "word") != 40 {
			t.Errorf("detail lost words: %q", b.String())
		}
	})

	t.Run("write error", func(t *testing.T) {
		err := WriteDiagnostics(failWriter{}, files, diags)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("err = %v, want the writer's error", err)
		}
	})
}

func TestChanges(t *testing.T) {
	tests := []struct {
		name           string
		edit           func(c *Config)
		wantReloadable []string
		wantRestart    []string
	}{
		{"nothing", func(c *Config) {}, nil, nil},
		{"socket", func(c *Config) { c.Server.Socket = "/run/other.sock" }, nil, []string{"server.socket"}},
		{"socket mode and group", func(c *Config) { c.Server.SocketMode = 0o600; c.Server.SocketGroup = "g" },
			nil, []string{"server.socket_mode", "server.socket_group"}},
		{"storage", func(c *Config) { c.Storage.Dir = "/srv"; c.Storage.KeyFile = "/k" }, nil, []string{"storage.dir", "storage.key_file"}},
		{"groups", func(c *Config) { c.Server.LoginGroups = []string{"a"}; c.Server.AdminGroups = nil },
			[]string{"server.login_groups", "server.admin_groups"}, nil},
		{"group order matters", func(c *Config) { c.Server.AdminGroups = []string{"b", "a"} }, nil, nil},
		{"server limits", func(c *Config) {
			c.Server.MaxRequestBytes = 2048
			c.Server.ReadTimeout = time.Second
			c.Server.WriteTimeout = time.Second
			c.Server.ShutdownTimeout = time.Second
			c.Server.LoginTTL = time.Hour
		}, []string{"server.max_request_bytes", "server.read_timeout", "server.write_timeout", "server.shutdown_timeout", "server.login_ttl"}, nil},
		{"totp", func(c *Config) {
			c.TOTP = TOTP{Issuer: "x", Digits: 8, Period: time.Minute, Algorithm: "SHA256", Skew: 2, DriftWindow: 2}
		}, []string{"totp.issuer", "totp.digits", "totp.period", "totp.algorithm", "totp.skew", "totp.drift_window"}, nil},
		{"recovery", func(c *Config) { c.Recovery = Recovery{Count: 10, Format: "other", WarnBelow: 1, AutoGenerate: true} },
			[]string{"recovery.count", "recovery.format", "recovery.warn_below"}, nil},
		{"lockout audit log", func(c *Config) {
			c.Lockout.MaxFailures, c.Lockout.Window, c.Lockout.Duration = 1, time.Hour, time.Hour
			c.Audit.Retention = 24 * time.Hour
			c.Log = Log{Level: slog.LevelDebug, Format: "json"}
		}, []string{"lockout.max_failures", "lockout.window", "lockout.duration", "audit.retention", "log.level", "log.format"}, nil},
		{"mixed", func(c *Config) { c.Server.Socket = "/s"; c.TOTP.Skew = 0; c.Storage.Dir = "/d" },
			[]string{"totp.skew"}, []string{"server.socket", "storage.dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := Default(rootEnv)
			if tt.name == "group order matters" {
				old.Server.AdminGroups = []string{"a", "b"}
				tt.wantReloadable = []string{"server.admin_groups"}
			}
			next := Default(rootEnv)
			tt.edit(next)
			reloadable, restart := Changes(old, next)
			if !slices.Equal(reloadable, tt.wantReloadable) {
				t.Errorf("reloadable = %q, want %q", reloadable, tt.wantReloadable)
			}
			if !slices.Equal(restart, tt.wantRestart) {
				t.Errorf("restart = %q, want %q", restart, tt.wantRestart)
			}
		})
	}

	t.Run("every option is listed once", func(t *testing.T) {
		reloadable, restart := Changes(&Config{}, Default(rootEnv))
		all := append(slices.Clone(reloadable), restart...)
		// These defaults equal the zero Config: "", "", slog.LevelInfo and "".
		all = append(all, "server.socket_group", "storage.key_file", "log.level", "u2f.app_id", "u2f.attestation_ca_file", "metrics.listen", "policy", "modem")
		slices.Sort(all)
		if n := len(slices.Compact(slices.Clone(all))); n != len(all) || n != 45 {
			t.Errorf("options = %q (%d), want 45 distinct", all, n)
		}
	})

	t.Run("nil configs", func(t *testing.T) {
		reloadable, restart := Changes(nil, nil)
		if reloadable != nil || restart != nil {
			t.Errorf("Changes(nil, nil) = %q, %q; want nothing", reloadable, restart)
		}
		reloadable, restart = Changes(nil, Default(rootEnv))
		if len(reloadable) == 0 || len(restart) == 0 {
			t.Errorf("Changes(nil, default) = %q, %q; want changes in both lists", reloadable, restart)
		}
	})
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"server {}",
		"totp {\n digits = 8\n skew = 3\n drift_window = 3\n}\n",
		"server {\n socket_mode = \"0660\"\n login_groups = [\"a\", \"b\"]\n}\n",
		"log {\n level = \"${x}\"\n}\n",
		"recovery {\n count = 1e100\n}\n",
		"storage {\n dir = \"rel\"\n}\n",
		"\x00\xff{{",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	paths, _ := filepath.Glob(filepath.Join("testdata", "*", "*.hcl"))
	paths = append(paths, filepath.Join("..", "config.hcl.example"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, files, diags := Parse("fuzz.hcl", src, rootEnv)
		switch {
		case cfg == nil && !diags.HasErrors():
			t.Fatal("nil config without an error diagnostic")
		case cfg != nil && diags.HasErrors():
			t.Fatal("config returned together with error diagnostics")
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Errorf("diagnostic without summary: %+v", d)
			}
		}
		if err := WriteDiagnostics(io.Discard, files, diags); err != nil {
			t.Fatalf("WriteDiagnostics: %v", err)
		}
		if cfg != nil {
			checkInvariants(t, cfg)
		}
	})
}

// checkInvariants asserts the contracts documented on the Config types.
func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	s := c.Server
	if s.Socket == "" || len(s.Socket) > maxSocketPath || s.SocketMode&0o007 != 0 || s.SocketMode > 0o777 ||
		s.MaxRequestBytes < 1024 || s.MaxRequestBytes > 16<<20 {
		t.Errorf("server settings out of contract: %+v", s)
	}
	if c.Storage.Dir == "" {
		t.Error("empty storage dir")
	}
	o := c.TOTP
	if (o.Digits != 6 && o.Digits != 8) || o.Period%time.Second != 0 || o.Period < 15*time.Second || o.Period > 120*time.Second ||
		o.Skew < 0 || o.Skew > 3 || o.DriftWindow < o.Skew || o.DriftWindow > 60 || !validIssuer(o.Issuer) ||
		!slices.Contains([]string{"SHA1", "SHA256", "SHA512"}, o.Algorithm) {
		t.Errorf("totp settings out of contract: %+v", o)
	}
	r := c.Recovery
	if r.Count < 4 || r.Count > 32 || r.WarnBelow < 0 || r.WarnBelow > r.Count || r.Format != "hex-4x4" {
		t.Errorf("recovery settings out of contract: %+v", r)
	}
	if c.Lockout.MaxFailures < 1 || c.Lockout.MaxFailures > 100 {
		t.Errorf("lockout settings out of contract: %+v", c.Lockout)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		t.Errorf("log format out of contract: %q", c.Log.Format)
	}
}

func TestParseConcurrent(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "config.hcl.example"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default(rootEnv)
	errs := make(chan error, 8)
	for i := 0; i < cap(errs); i++ {
		go func() {
			cfg, _, diags := Parse("example.hcl", src, rootEnv)
			switch {
			case diags.HasErrors():
				errs <- diags
			case !reflect.DeepEqual(cfg, want):
				errs <- fmt.Errorf("config differs: %+v", cfg)
			default:
				errs <- nil
			}
		}()
	}
	for i := 0; i < cap(errs); i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
