package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// maxSocketPath is the longest Unix socket path Linux accepts with its
// terminating NUL (sizeof(sun_path) - 1).
const maxSocketPath = 107

// Parse parses and validates src; filename is used in diagnostics and its
// directory resolves relative paths. Attributes not given keep the
// Default(env) values. It returns the config (nil when diags.HasErrors()),
// the parsed files (filename -> *hcl.File, for WriteDiagnostics) and all
// diagnostics, sorted by position.
func Parse(filename string, src []byte, env Env) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	return parse(filename, filepath.Dir(filename), src, env)
}

// LoadFile reads the file at path and parses it like Parse. Relative paths
// in the file are resolved against the absolute directory of path. A read
// error is reported as a single diagnostic without a source range.
func LoadFile(path string, env Env) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		reason := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err.Error()
		}
		return nil, map[string]*hcl.File{}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Cannot read configuration file %q", path),
			Detail:   fmt.Sprintf("Reading the file failed: %s. Check the path and that the daemon's user may read the file.", reason),
		}}
	}
	base := filepath.Dir(path)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	return parse(path, base, src, env)
}

func parse(filename, base string, src []byte, env Env) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() || f == nil {
		return nil, p.Files(), sortDiags(diags)
	}

	var raw fileBlocks
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &raw)...)

	cfg := Default(env)
	c := &checker{}
	raw.apply(c, cfg, base)
	diags = sortDiags(append(diags, c.diags...))
	if diags.HasErrors() {
		return nil, p.Files(), diags
	}
	return cfg, p.Files(), diags
}

// sortDiags orders diagnostics by file position (those without a subject
// first), so output is stable and follows the file.
func sortDiags(diags hcl.Diagnostics) hcl.Diagnostics {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		default:
			return a.Start.Byte < b.Start.Byte
		}
	})
	return diags
}

// fileBlocks is the top level of the file. Blocks are decoded as slices so
// that duplicates can be reported with both positions; apply rejects more
// than one of each.
//
// Blocks planned for later releases go here, each as one more block struct
// with an apply method below:
//
//	Modems   []*modemBlock  `hcl:"modem,block"`  // modem "name" {}, several allowed
//	SMS      []*smsBlock    `hcl:"sms,block"`
//	Policies []*policyBlock `hcl:"policy,block"` // policy "name" {}, several allowed
type fileBlocks struct {
	Server   []*serverBlock   `hcl:"server,block"`
	Storage  []*storageBlock  `hcl:"storage,block"`
	TOTP     []*totpBlock     `hcl:"totp,block"`
	Recovery []*recoveryBlock `hcl:"recovery,block"`
	Lockout  []*lockoutBlock  `hcl:"lockout,block"`
	Audit    []*auditBlock    `hcl:"audit,block"`
	U2F      []*u2fBlock      `hcl:"u2f,block"`
	Metrics  []*metricsBlock  `hcl:"metrics,block"`
	Log      []*logBlock      `hcl:"log,block"`

	AccountRecovery []*accountRecoveryBlock `hcl:"account_recovery,block"`
	Policies        []*policyBlock          `hcl:"policy,block"`
	SMS             []*smsBlock             `hcl:"sms,block"`
	Modems          []*modemBlock           `hcl:"modem,block"`
}

func (f *fileBlocks) apply(c *checker, cfg *Config, base string) {
	applyAll(c, "server", f.Server, func(b *serverBlock) { b.apply(c, &cfg.Server, base) })
	applyAll(c, "storage", f.Storage, func(b *storageBlock) { b.apply(c, &cfg.Storage, base) })
	applyAll(c, "totp", f.TOTP, func(b *totpBlock) { b.apply(c, &cfg.TOTP) })
	applyAll(c, "recovery", f.Recovery, func(b *recoveryBlock) { b.apply(c, &cfg.Recovery) })
	applyAll(c, "lockout", f.Lockout, func(b *lockoutBlock) { b.apply(c, &cfg.Lockout) })
	applyAll(c, "audit", f.Audit, func(b *auditBlock) { b.apply(c, &cfg.Audit) })
	applyAll(c, "u2f", f.U2F, func(b *u2fBlock) { b.apply(c, &cfg.U2F, base) })
	applyAll(c, "metrics", f.Metrics, func(b *metricsBlock) { b.apply(c, &cfg.Metrics) })
	applyAll(c, "log", f.Log, func(b *logBlock) { b.apply(c, &cfg.Log) })
	applyAll(c, "account_recovery", f.AccountRecovery, func(b *accountRecoveryBlock) { b.apply(c, &cfg.AccountRecovery) })
	applyAll(c, "sms", f.SMS, func(b *smsBlock) { b.apply(c, &cfg.SMS) })
	cfg.Modems = applyModems(c, f.Modems, base)
	// Policies last: they inherit the global lockout settings.
	cfg.Policies = applyPolicies(c, f.Policies, cfg.Lockout, len(cfg.Modems) > 0)
}

// block is implemented by every block struct.
type block interface{ defRange() hcl.Range }

// applyAll reports every block after the first as a duplicate, and still
// applies all of them so that problems inside duplicates are reported too.
func applyAll[B block](c *checker, typ string, blocks []B, apply func(B)) {
	for i, b := range blocks {
		if i > 0 {
			first := blocks[0].defRange()
			c.errorf(b.defRange(),
				fmt.Sprintf("Only one %s block is allowed; the first one is on line %d. Move these settings into that block and delete this one.",
					typ, first.Start.Line),
				"Duplicate %s block", typ)
		}
		apply(b)
	}
}

type serverBlock struct {
	Socket          *hcl.Attribute `hcl:"socket,attr"`
	SocketMode      *hcl.Attribute `hcl:"socket_mode,attr"`
	SocketGroup     *hcl.Attribute `hcl:"socket_group,attr"`
	LoginGroups     *hcl.Attribute `hcl:"login_groups,attr"`
	AdminGroups     *hcl.Attribute `hcl:"admin_groups,attr"`
	MaxRequestBytes *hcl.Attribute `hcl:"max_request_bytes,attr"`
	ReadTimeout     *hcl.Attribute `hcl:"read_timeout,attr"`
	WriteTimeout    *hcl.Attribute `hcl:"write_timeout,attr"`
	ShutdownTimeout *hcl.Attribute `hcl:"shutdown_timeout,attr"`
	LoginTTL        *hcl.Attribute `hcl:"login_ttl,attr"`
	DefRange        hcl.Range      `hcl:",def_range"`
}

func (b *serverBlock) defRange() hcl.Range { return b.DefRange }

func (b *serverBlock) apply(c *checker, s *Server, base string) {
	if p, ok := c.path(b.Socket, "server.socket", base, false); ok {
		if len(p) > maxSocketPath {
			c.errorf(b.Socket.Expr.Range(),
				fmt.Sprintf("The resolved path is %d bytes long but Unix socket paths are limited to %d bytes. Use a shorter path such as \"/run/mfad/mfad.sock\".", len(p), maxSocketPath),
				"Socket path too long for server.socket")
		} else {
			s.Socket = p
		}
	}
	if m, ok := c.socketMode(b.SocketMode); ok {
		s.SocketMode = m
	}
	if g, ok := c.str(b.SocketGroup, "server.socket_group", "server.socket_group must be a group name in quotes, or \"\" for the daemon's primary group."); ok {
		if g != "" && !validGroupName(g) {
			c.errorf(b.SocketGroup.Expr.Range(), "Group names contain no whitespace, ':' or control characters; use \"\" for the daemon's primary group.",
				"Invalid group name %s for server.socket_group", quote(g))
		} else {
			s.SocketGroup = g
		}
	}
	if g, ok := c.groups(b.LoginGroups, "server.login_groups"); ok {
		s.LoginGroups = g
	}
	if g, ok := c.groups(b.AdminGroups, "server.admin_groups"); ok {
		s.AdminGroups = g
	}
	if n, ok := c.integer(b.MaxRequestBytes, "server.max_request_bytes", 1024, 16<<20, "a whole number of bytes from 1024 to 16777216"); ok {
		s.MaxRequestBytes = n
	}
	if d, ok := c.duration(b.ReadTimeout, "server.read_timeout", time.Second, 10*time.Minute, 0); ok {
		s.ReadTimeout = d
	}
	if d, ok := c.duration(b.WriteTimeout, "server.write_timeout", time.Second, 10*time.Minute, 0); ok {
		s.WriteTimeout = d
	}
	if d, ok := c.duration(b.ShutdownTimeout, "server.shutdown_timeout", time.Second, 5*time.Minute, 0); ok {
		s.ShutdownTimeout = d
	}
	if d, ok := c.duration(b.LoginTTL, "server.login_ttl", time.Minute, time.Hour, 0); ok {
		s.LoginTTL = d
	}
}

// socketMode decodes server.socket_mode: an octal string without bits for
// "other" users.
func (c *checker) socketMode(a *hcl.Attribute) (fs.FileMode, bool) {
	const name = "server.socket_mode"
	detail := "Use an octal file mode in quotes such as \"0660\"; it must not grant any permission to other users, so its last digit is 0."
	s, ok := c.str(a, name, detail)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		c.errorf(a.Expr.Range(), detail, "Invalid file mode %s for %s", quote(s), name)
		return 0, false
	}
	if n&0o007 != 0 {
		c.errorf(a.Expr.Range(),
			"The socket must not be accessible to other users: the last octal digit must be 0. Use \"0660\" and grant access through server.socket_group.",
			"Insecure file mode %s for %s", quote(s), name)
		return 0, false
	}
	return fs.FileMode(n), true
}

type storageBlock struct {
	Dir      *hcl.Attribute `hcl:"dir,attr"`
	KeyFile  *hcl.Attribute `hcl:"key_file,attr"`
	DefRange hcl.Range      `hcl:",def_range"`
}

func (b *storageBlock) defRange() hcl.Range { return b.DefRange }

func (b *storageBlock) apply(c *checker, s *Storage, base string) {
	if p, ok := c.path(b.Dir, "storage.dir", base, false); ok {
		s.Dir = p
	}
	if p, ok := c.path(b.KeyFile, "storage.key_file", base, true); ok {
		s.KeyFile = p
	}
}

type totpBlock struct {
	Issuer      *hcl.Attribute `hcl:"issuer,attr"`
	Digits      *hcl.Attribute `hcl:"digits,attr"`
	Period      *hcl.Attribute `hcl:"period,attr"`
	Algorithm   *hcl.Attribute `hcl:"algorithm,attr"`
	Skew        *hcl.Attribute `hcl:"skew,attr"`
	DriftWindow *hcl.Attribute `hcl:"drift_window,attr"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

func (b *totpBlock) defRange() hcl.Range { return b.DefRange }

func (b *totpBlock) apply(c *checker, t *TOTP) {
	issuerDetail := "totp.issuer must be 1 to 64 characters in quotes, without ':' or control characters; authenticator apps show it next to the account name."
	if s, ok := c.str(b.Issuer, "totp.issuer", issuerDetail); ok {
		if !validIssuer(s) {
			c.errorf(b.Issuer.Expr.Range(), issuerDetail, "Invalid issuer %s for totp.issuer", quote(s))
		} else {
			t.Issuer = s
		}
	}
	if n, ok := c.integer(b.Digits, "totp.digits", 6, 8, "6 or 8"); ok {
		if n != 6 && n != 8 {
			c.errorf(b.Digits.Expr.Range(), "totp.digits must be 6 or 8, written without quotes.", "Invalid value %d for totp.digits", n)
		} else {
			t.Digits = int(n)
		}
	}
	if d, ok := c.duration(b.Period, "totp.period", 15*time.Second, 120*time.Second, time.Second); ok {
		t.Period = d
	}
	if s, ok := c.oneOf(b.Algorithm, "totp.algorithm", []string{"SHA1", "SHA256", "SHA512"}, true,
		"Most authenticator apps only support \"SHA1\"."); ok {
		t.Algorithm = s
	}
	if n, ok := c.integer(b.Skew, "totp.skew", 0, 3, "a whole number of time steps from 0 to 3"); ok {
		t.Skew = int(n)
	}
	rule := fmt.Sprintf("a whole number of time steps from totp.skew (%d) to 60", t.Skew)
	if n, ok := c.integer(b.DriftWindow, "totp.drift_window", int64(t.Skew), 60, rule); ok {
		t.DriftWindow = int(n)
	}
}

func validIssuer(s string) bool {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 64 || !utf8.ValidString(s) || strings.Contains(s, ":") {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

type recoveryBlock struct {
	Count        *hcl.Attribute `hcl:"count,attr"`
	Format       *hcl.Attribute `hcl:"format,attr"`
	WarnBelow    *hcl.Attribute `hcl:"warn_below,attr"`
	AutoGenerate *hcl.Attribute `hcl:"auto_generate,attr"`
	DefRange     hcl.Range      `hcl:",def_range"`
}

func (b *recoveryBlock) defRange() hcl.Range { return b.DefRange }

func (b *recoveryBlock) apply(c *checker, r *Recovery) {
	if n, ok := c.integer(b.Count, "recovery.count", 4, 32, "a whole number of codes from 4 to 32"); ok {
		r.Count = int(n)
	}
	if s, ok := c.oneOf(b.Format, "recovery.format", []string{"hex-4x4"}, false, ""); ok {
		r.Format = s
	}
	rule := fmt.Sprintf("a whole number of codes from 0 to recovery.count (%d)", r.Count)
	if n, ok := c.integer(b.WarnBelow, "recovery.warn_below", 0, int64(r.Count), rule); ok {
		r.WarnBelow = int(n)
	}
	if v, ok := c.boolean(b.AutoGenerate, "recovery.auto_generate"); ok {
		r.AutoGenerate = v
	}
}

type lockoutBlock struct {
	MaxFailures       *hcl.Attribute `hcl:"max_failures,attr"`
	Window            *hcl.Attribute `hcl:"window,attr"`
	Duration          *hcl.Attribute `hcl:"duration,attr"`
	MaxDuration       *hcl.Attribute `hcl:"max_duration,attr"`
	HardLimit         *hcl.Attribute `hcl:"hard_limit,attr"`
	SourceMaxFailures *hcl.Attribute `hcl:"source_max_failures,attr"`
	SourceWindow      *hcl.Attribute `hcl:"source_window,attr"`
	SourceBackoff     *hcl.Attribute `hcl:"source_backoff,attr"`
	DefRange          hcl.Range      `hcl:",def_range"`
}

func (b *lockoutBlock) defRange() hcl.Range { return b.DefRange }

func (b *lockoutBlock) apply(c *checker, l *Lockout) {
	if n, ok := c.integer(b.MaxFailures, "lockout.max_failures", 1, 100, "a whole number of failures from 1 to 100"); ok {
		l.MaxFailures = int(n)
	}
	if d, ok := c.duration(b.Window, "lockout.window", time.Minute, 24*time.Hour, 0); ok {
		l.Window = d
	}
	if d, ok := c.duration(b.Duration, "lockout.duration", time.Minute, 24*time.Hour, 0); ok {
		l.Duration = d
	}
	if d, ok := c.duration(b.MaxDuration, "lockout.max_duration", l.Duration, 168*time.Hour, 0); ok {
		l.MaxDuration = d
	} else if b.MaxDuration == nil && l.MaxDuration < l.Duration {
		l.MaxDuration = l.Duration
	}
	if n, ok := c.integer(b.HardLimit, "lockout.hard_limit", 10, 100, "a whole number of consecutive failures from 10 to 100"); ok {
		l.HardLimit = int(n)
	}
	if n, ok := c.integer(b.SourceMaxFailures, "lockout.source_max_failures", 1, 1000000, "a whole number of failures from 1 to 1000000"); ok {
		l.SourceMaxFailures = int(n)
	}
	if d, ok := c.duration(b.SourceWindow, "lockout.source_window", time.Minute, 24*time.Hour, 0); ok {
		l.SourceWindow = d
	}
	if d, ok := c.duration(b.SourceBackoff, "lockout.source_backoff", time.Second, time.Hour, 0); ok {
		l.SourceBackoff = d
	}
}

type accountRecoveryBlock struct {
	Delay       *hcl.Attribute `hcl:"delay,attr"`
	Action      *hcl.Attribute `hcl:"action,attr"`
	RemindEvery *hcl.Attribute `hcl:"remind_every,attr"`
	MaxBypass   *hcl.Attribute `hcl:"max_bypass,attr"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

func (b *accountRecoveryBlock) defRange() hcl.Range { return b.DefRange }

func (b *accountRecoveryBlock) apply(c *checker, a *AccountRecovery) {
	if d, ok := c.duration(b.Delay, "account_recovery.delay", time.Hour, 720*time.Hour, 0); ok {
		a.Delay = d
	}
	if s, ok := c.oneOf(b.Action, "account_recovery.action", []string{"bypass", "reset"}, false, ""); ok {
		a.Action = s
	}
	if d, ok := c.duration(b.RemindEvery, "account_recovery.remind_every", time.Hour, 24*time.Hour, 0); ok {
		a.RemindEvery = d
	}
	if d, ok := c.duration(b.MaxBypass, "account_recovery.max_bypass", time.Hour, 720*time.Hour, 0); ok {
		a.MaxBypass = d
	}
}

type metricsBlock struct {
	Listen   *hcl.Attribute `hcl:"listen,attr"`
	DefRange hcl.Range      `hcl:",def_range"`
}

func (b *metricsBlock) defRange() hcl.Range { return b.DefRange }

func (b *metricsBlock) apply(c *checker, m *Metrics) {
	detail := `metrics.listen must be a TCP address such as "127.0.0.1:9477" (host:port), or "" to serve metrics only on the Unix socket.`
	s, ok := c.str(b.Listen, "metrics.listen", detail)
	if !ok {
		return
	}
	if s != "" {
		_, port, err := net.SplitHostPort(s)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			c.errorf(b.Listen.Expr.Range(), detail, "Invalid address %s for metrics.listen", quote(s))
			return
		}
	}
	m.Listen = s
}

type u2fBlock struct {
	AppID             *hcl.Attribute `hcl:"app_id,attr"`
	Timeout           *hcl.Attribute `hcl:"timeout,attr"`
	CounterRegression *hcl.Attribute `hcl:"counter_regression,attr"`
	AttestationCAFile *hcl.Attribute `hcl:"attestation_ca_file,attr"`
	DefRange          hcl.Range      `hcl:",def_range"`
}

func (b *u2fBlock) defRange() hcl.Range { return b.DefRange }

func (b *u2fBlock) apply(c *checker, u *U2F, base string) {
	if p, ok := c.path(b.AttestationCAFile, "u2f.attestation_ca_file", base, true); ok {
		u.AttestationCAFile = p
	}
	if s, ok := c.str(b.AppID, "u2f.app_id", `Use a URL-like identity such as "pam://login.example.org", or "" for "pam://" + this host's name.`); ok {
		if len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			c.errorf(b.AppID.Expr.Range(), "u2f.app_id must be at most 256 printable characters.", "Invalid u2f.app_id")
		} else {
			u.AppID = s
		}
	}
	if d, ok := c.duration(b.Timeout, "u2f.timeout", time.Second, 5*time.Minute, 0); ok {
		u.Timeout = d
	}
	if s, ok := c.oneOf(b.CounterRegression, "u2f.counter_regression", []string{"reject", "allow"}, false, ""); ok {
		u.CounterRegression = s
	}
}

type auditBlock struct {
	Retention *hcl.Attribute `hcl:"retention,attr"`
	DefRange  hcl.Range      `hcl:",def_range"`
}

func (b *auditBlock) defRange() hcl.Range { return b.DefRange }

func (b *auditBlock) apply(c *checker, a *Audit) {
	if d, ok := c.duration(b.Retention, "audit.retention", 24*time.Hour, 87600*time.Hour, 0); ok {
		a.Retention = d
	}
}

type logBlock struct {
	Level    *hcl.Attribute `hcl:"level,attr"`
	Format   *hcl.Attribute `hcl:"format,attr"`
	DefRange hcl.Range      `hcl:",def_range"`
}

func (b *logBlock) defRange() hcl.Range { return b.DefRange }

func (b *logBlock) apply(c *checker, l *Log) {
	if s, ok := c.oneOf(b.Level, "log.level", []string{"debug", "info", "warn", "error"}, true, ""); ok {
		levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
		l.Level = levels[s]
	}
	if s, ok := c.oneOf(b.Format, "log.format", []string{"text", "json"}, true, ""); ok {
		l.Format = s
	}
}
