// Package config loads, validates and compares the mfad daemon configuration.
//
// Operators write one HCL file (see config.hcl.example in the repository
// root). Parse and LoadFile decode it on top of Default, validate every
// setting and return all problems at once as hcl.Diagnostics: each one has a
// Subject range pointing at the offending value, a Summary naming the option
// and the bad value, and a Detail saying how to fix it. WriteDiagnostics
// renders them for a terminal or a log.
//
// Contracts:
//
//   - Parse, LoadFile, Default, Changes and WriteDiagnostics keep no state and
//     are safe for concurrent use. A returned *Config is a plain value owned by
//     the caller; treat it as read-only once it is shared between goroutines
//     (its slices are not copied by Changes or by plain struct copies).
//   - Parse and LoadFile return a non-nil *Config if and only if the returned
//     diagnostics contain no error. Only diagnostics are used for problems in
//     the file (including an unreadable file); nothing panics on bad input.
//   - Unknown blocks, unknown attributes, duplicate blocks, wrong value types
//     and out-of-range values are all errors. Every setting has a safe default,
//     so an empty file is a valid configuration.
//   - Relative paths in server.socket, storage.dir and storage.key_file are
//     resolved against the directory holding the configuration file (Parse
//     uses filepath.Dir(filename); LoadFile makes that directory absolute).
//   - Diagnostics never contain anything secret: the file holds no secrets,
//     only paths and settings.
//
// Nothing here is durable: the package reads the file and never writes.
package config

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is the validated, typed configuration. Each field group corresponds
// to one optional block of the same name in the file.
//
// Blocks planned for later releases (several labelled modem "name" {}, u2f {},
// sms {} and several labelled policy "name" {}) will each add one field here,
// one block struct and one apply function in parse.go, and entries in Changes.
type Config struct {
	Server   Server
	Storage  Storage
	TOTP     TOTP
	Recovery Recovery
	Lockout  Lockout
	Audit    Audit
	U2F      U2F
	Metrics  Metrics
	Log      Log
	// AccountRecovery is the account_recovery {} block.
	AccountRecovery AccountRecovery
	// Policies are the policy "name" {} blocks in file order; a login that
	// none of them matches gets DefaultPolicy(Lockout).
	Policies []Policy
	// SMS is the sms {} block.
	SMS SMS
	// Modems are the modem "name" {} blocks in file order; none means no
	// SMS (unless the daemon runs with simulated hardware).
	Modems []Modem
}

// Server is the server {} block: the Unix socket clients talk to and the
// limits applied to each request.
type Server struct {
	// Socket (socket) is the Unix socket path. Default: see Default.
	// Relative paths are resolved against the configuration file's
	// directory; the resolved path is at most 107 bytes long.
	// Changing it needs a restart.
	Socket string
	// SocketMode (socket_mode, an octal string such as "0660") is the
	// permission of the socket file. It never grants anything to "other"
	// (SocketMode&0o007 == 0) and has no bits above 0o777. Default 0660.
	// Changing it needs a restart.
	SocketMode fs.FileMode
	// SocketGroup (socket_group) is the group owning the socket; "" means
	// the daemon's primary group. Default "". Changing it needs a restart.
	SocketGroup string
	// LoginGroups (login_groups) lists groups whose members (and root) may
	// run login flows for any user. Default ["mfad-login"]; may be empty.
	LoginGroups []string
	// AdminGroups (admin_groups) lists groups whose members (and root) may
	// do everything. Default ["mfad-admin"]; may be empty.
	AdminGroups []string
	// MaxRequestBytes (max_request_bytes) caps the size of one request
	// body, 1024 .. 16777216. Default 65536.
	MaxRequestBytes int64
	// ReadTimeout (read_timeout) bounds reading one request, 1s .. 10m.
	// Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout (write_timeout) bounds handling and answering one
	// request, 1s .. 10m. Default 60s.
	WriteTimeout time.Duration
	// ShutdownTimeout (shutdown_timeout) is how long SIGTERM waits for
	// in-flight requests, 1s .. 5m. Default 10s.
	ShutdownTimeout time.Duration
	// LoginTTL (login_ttl) is how long a login id from POST /v1/login stays
	// valid, 1m .. 1h. Default 10m.
	LoginTTL time.Duration
}

// Storage is the storage {} block. Changing any of it needs a restart.
type Storage struct {
	// Dir (dir) is the state directory; the Badger database lives in
	// <Dir>/db. Never empty. Default: see Default. Relative paths are
	// resolved against the configuration file's directory.
	Dir string
	// KeyFile (key_file) is the database encryption key file (32 random
	// bytes, hex encoded). "" (the default) means "derive at start-up":
	// $CREDENTIALS_DIRECTORY/mfad.key when that exists, else <Dir>/mfad.key,
	// generated with mode 0600 on first start. The daemon resolves "", not
	// this package. Relative paths are resolved against the configuration
	// file's directory.
	KeyFile string
}

// TOTP is the totp {} block: parameters of newly enrolled authenticator
// apps and how codes are checked.
type TOTP struct {
	// Issuer (issuer) is shown in authenticator apps: 1..64 characters,
	// no ':' and no control characters. Default "mfad".
	Issuer string
	// Digits (digits) is the code length, 6 or 8. Default 6.
	Digits int
	// Period (period) is the time step, 15s .. 120s in whole seconds.
	// Default 30s.
	Period time.Duration
	// Algorithm (algorithm) is "SHA1", "SHA256" or "SHA512", always
	// upper-case here (the file may use any case). Default "SHA1".
	Algorithm string
	// Skew (skew) is how many steps either side of now are accepted, 0..3.
	// Default 1.
	Skew int
	// DriftWindow (drift_window) is how many steps either side are checked
	// only to tell the user their clock is off (never accepted),
	// Skew..60. Default 10.
	DriftWindow int
}

// Recovery is the recovery {} block: one-time recovery codes.
type Recovery struct {
	// Count (count) is the number of codes per set, 4..32. Default 8.
	Count int
	// Format (format) is the code format; only "hex-4x4" (16 lowercase hex
	// digits in four groups of four) exists. Default "hex-4x4".
	Format string
	// WarnBelow (warn_below) flags and audits a user when fewer than this
	// many unused codes remain, 0..Count (0 disables). Default 3.
	WarnBelow int
	// AutoGenerate (auto_generate) generates a set of recovery codes when a
	// user's first factor is confirmed and the user has none, and returns
	// them with the confirmation, so no user ends up with a second factor
	// and no way back in. Default true.
	AutoGenerate bool
}

// Lockout is the lockout {} block: locking users after failed verifications.
type Lockout struct {
	// MaxFailures (max_failures) failed verifications within Window lock the
	// user, 1..100. Default 5.
	MaxFailures int
	// Window (window) is the span failures are counted in, 1m .. 24h.
	// Default 15m.
	Window time.Duration
	// Duration (duration) is how long the first lock lasts, 1m .. 24h.
	// Default 15m. Each further lock before a successful login doubles it,
	// up to MaxDuration.
	Duration time.Duration
	// MaxDuration (max_duration) caps the growing lock, Duration .. 168h.
	// Default 24h.
	MaxDuration time.Duration
	// HardLimit (hard_limit) is the number of consecutive failures (across
	// windows, until a success) after which code methods stay locked until
	// an admin unlocks the user ("mfad user unlock") or the user logs in
	// with a security key at the console, 10..100 (NIST SP 800-63B allows
	// at most 100). Default 100.
	HardLimit int
	// SourceMaxFailures (source_max_failures) failures from one source
	// (a remote /24 or /64 network, or the local console) within
	// SourceWindow, for any users, slow that source down before any user
	// is locked, 1..1000000 (raise it when many users share one network, e.g. behind NAT). Default 10.
	SourceMaxFailures int
	// SourceWindow (source_window) is the span source failures are counted
	// in, 1m .. 24h. Default 15m.
	SourceWindow time.Duration
	// SourceBackoff (source_backoff) is the first delay a slowed source
	// gets; it doubles with every further failure from it, up to one hour,
	// 1s .. 1h. Default 30s.
	SourceBackoff time.Duration
}

// AccountRecovery is the account_recovery {} block: time-locked recovery of
// users who lost every factor, and temporary bypasses.
type AccountRecovery struct {
	// Delay (delay) is how long a recovery request waits before it takes
	// effect, during which the user is notified and can cancel it,
	// 1h .. 720h. Default 24h.
	Delay time.Duration
	// Action (action) is what happens when a request takes effect:
	// "bypass" (the next login is let in once and the user must enrol
	// again) or "reset" (every factor and recovery code is removed).
	// Default "bypass".
	Action string
	// RemindEvery (remind_every) is how often the user's phones are
	// reminded of a pending request, 1h .. 24h. Default 6h.
	RemindEvery time.Duration
	// MaxBypass (max_bypass) is the longest temporary bypass an admin may
	// grant, 1h .. 720h. Default 168h (a week).
	MaxBypass time.Duration
}

// Audit is the audit {} block.
// Metrics is the metrics {} block: Prometheus metrics.
type Metrics struct {
	// Listen (listen) is a TCP host:port that serves GET /metrics to
	// Prometheus, e.g. "127.0.0.1:9477"; "" (default) serves metrics only
	// on the Unix socket (admin role). Restart required.
	Listen string
}

// U2F is the u2f {} block: USB U2F security keys.
type U2F struct {
	// AppID (app_id) is the U2F application identity keys bind their
	// registrations to. "" means "pam://" + the host name at start-up, as
	// pam_u2f does; set the same value on several hosts to share
	// enrolments. Changing it makes existing registrations unusable.
	AppID string
	// Timeout (timeout) is how long enrollment and login wait for a touch,
	// 1s .. 5m. Default 30s.
	Timeout time.Duration
	// AttestationCAFile (attestation_ca_file) is a PEM file of CA
	// certificates; when set, only keys whose attestation certificate
	// chains to one of them can be enrolled (expiry is ignored: many
	// genuine attestation certificates are long expired). "" accepts any
	// key. Resolved against the configuration file's directory.
	AttestationCAFile string
	// CounterRegression (counter_regression) is what happens when a key's
	// signature counter did not increase, the mark of a cloned key:
	// "reject" (default) refuses the login and audits it; "allow" accepts
	// it and audits it.
	CounterRegression string
}

type Audit struct {
	// Retention (retention) drops audit events older than this,
	// 24h .. 87600h. Default 8760h (one year).
	Retention time.Duration
}

// Log is the log {} block.
type Log struct {
	// Level (level) is "debug", "info", "warn" or "error" in the file.
	// Default info.
	Level slog.Level
	// Format (format) is "text" or "json", always lower-case here.
	// Default "text".
	Format string
}

// Env carries the environment the defaults depend on, so tests can pin it.
// Relative directories in it are ignored, as if unset.
type Env struct {
	UID              int    // effective user id of the daemon
	Home             string // $HOME
	RuntimeDirectory string // $RUNTIME_DIRECTORY (systemd RuntimeDirectory=)
	StateDirectory   string // $STATE_DIRECTORY (systemd StateDirectory=)
	XDGRuntimeDir    string // $XDG_RUNTIME_DIR
	XDGStateHome     string // $XDG_STATE_HOME
}

// EnvFromOS reads the process environment: os.Getuid(), $HOME,
// $RUNTIME_DIRECTORY, $STATE_DIRECTORY, $XDG_RUNTIME_DIR and $XDG_STATE_HOME.
func EnvFromOS() Env {
	return Env{
		UID:              os.Getuid(),
		Home:             os.Getenv("HOME"),
		RuntimeDirectory: os.Getenv("RUNTIME_DIRECTORY"),
		StateDirectory:   os.Getenv("STATE_DIRECTORY"),
		XDGRuntimeDir:    os.Getenv("XDG_RUNTIME_DIR"),
		XDGStateHome:     os.Getenv("XDG_STATE_HOME"),
	}
}

// Default returns the built-in defaults for env. Every call returns a new
// Config. The environment-dependent defaults are:
//
//	server.socket: $RUNTIME_DIRECTORY/mfad.sock if set; else for uid 0
//	  /run/mfad/mfad.sock; else $XDG_RUNTIME_DIR/mfad/mfad.sock if set;
//	  else <os.TempDir()>/mfad-<uid>/mfad.sock.
//	storage.dir: $STATE_DIRECTORY if set; else for uid 0 /var/lib/mfad;
//	  else $XDG_STATE_HOME/mfad if set; else <Home>/.local/state/mfad;
//	  else (no usable home) <os.TempDir()>/mfad-<uid>/state.
//
// systemd may pass several colon-separated directories in RUNTIME_DIRECTORY
// and STATE_DIRECTORY; the first is used.
func Default(env Env) *Config {
	return &Config{
		Server: Server{
			Socket:          defaultSocket(env),
			SocketMode:      0o660,
			SocketGroup:     "",
			LoginGroups:     []string{"mfad-login"},
			AdminGroups:     []string{"mfad-admin"},
			MaxRequestBytes: 65536,
			ReadTimeout:     10 * time.Second,
			WriteTimeout:    60 * time.Second,
			ShutdownTimeout: 10 * time.Second,
			LoginTTL:        10 * time.Minute,
		},
		Storage: Storage{
			Dir:     defaultStateDir(env),
			KeyFile: "",
		},
		TOTP: TOTP{
			Issuer:      "mfad",
			Digits:      6,
			Period:      30 * time.Second,
			Algorithm:   "SHA1",
			Skew:        1,
			DriftWindow: 10,
		},
		Recovery: Recovery{
			Count:        8,
			Format:       "hex-4x4",
			WarnBelow:    3,
			AutoGenerate: true,
		},
		Lockout: Lockout{
			MaxFailures:       5,
			Window:            15 * time.Minute,
			Duration:          15 * time.Minute,
			MaxDuration:       24 * time.Hour,
			HardLimit:         100,
			SourceMaxFailures: 10,
			SourceWindow:      15 * time.Minute,
			SourceBackoff:     30 * time.Second,
		},
		SMS: SMS{
			CodeLength:      6,
			CodeTTL:         10 * time.Minute,
			MaxTries:        3,
			Template:        DefaultSMSTemplate,
			PerUserHourly:   5,
			PerNumberHourly: 5,
			GlobalHourly:    500,
		},
		AccountRecovery: AccountRecovery{
			Delay:       24 * time.Hour,
			Action:      "bypass",
			RemindEvery: 6 * time.Hour,
			MaxBypass:   168 * time.Hour,
		},
		Audit: Audit{
			Retention: 8760 * time.Hour,
		},
		U2F: U2F{
			AppID:             "",
			Timeout:           30 * time.Second,
			CounterRegression: "reject",
		},
		Log: Log{
			Level:  slog.LevelInfo,
			Format: "text",
		},
	}
}

func defaultSocket(env Env) string {
	if d := firstDir(env.RuntimeDirectory); d != "" {
		return filepath.Join(d, "mfad.sock")
	}
	if env.UID == 0 {
		return "/run/mfad/mfad.sock"
	}
	if d := firstDir(env.XDGRuntimeDir); d != "" {
		return filepath.Join(d, "mfad", "mfad.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("mfad-%d", env.UID), "mfad.sock")
}

func defaultStateDir(env Env) string {
	if d := firstDir(env.StateDirectory); d != "" {
		return d
	}
	if env.UID == 0 {
		return "/var/lib/mfad"
	}
	if d := firstDir(env.XDGStateHome); d != "" {
		return filepath.Join(d, "mfad")
	}
	if filepath.IsAbs(env.Home) {
		return filepath.Join(env.Home, ".local", "state", "mfad")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("mfad-%d", env.UID), "state")
}

// firstDir returns the first entry of a colon-separated directory list, or
// "" when it is empty or not absolute.
func firstDir(list string) string {
	first, _, _ := strings.Cut(list, ":")
	if !filepath.IsAbs(first) {
		return ""
	}
	return filepath.Clean(first)
}
