package config

import (
	"reflect"
	"slices"
)

// option describes one setting for Changes.
type option struct {
	name    string // dotted name as written in the file, e.g. "totp.period"
	restart bool   // true when a new value only takes effect after a restart
	same    func(a, b *Config) bool
}

// options lists every setting in file order.
func options() []option {
	return []option{
		{"server.socket", true, func(a, b *Config) bool { return a.Server.Socket == b.Server.Socket }},
		{"server.socket_mode", true, func(a, b *Config) bool { return a.Server.SocketMode == b.Server.SocketMode }},
		{"server.socket_group", true, func(a, b *Config) bool { return a.Server.SocketGroup == b.Server.SocketGroup }},
		{"server.login_groups", false, func(a, b *Config) bool { return slices.Equal(a.Server.LoginGroups, b.Server.LoginGroups) }},
		{"server.admin_groups", false, func(a, b *Config) bool { return slices.Equal(a.Server.AdminGroups, b.Server.AdminGroups) }},
		{"server.max_request_bytes", false, func(a, b *Config) bool { return a.Server.MaxRequestBytes == b.Server.MaxRequestBytes }},
		{"server.read_timeout", false, func(a, b *Config) bool { return a.Server.ReadTimeout == b.Server.ReadTimeout }},
		{"server.write_timeout", false, func(a, b *Config) bool { return a.Server.WriteTimeout == b.Server.WriteTimeout }},
		{"server.shutdown_timeout", false, func(a, b *Config) bool { return a.Server.ShutdownTimeout == b.Server.ShutdownTimeout }},
		{"server.login_ttl", false, func(a, b *Config) bool { return a.Server.LoginTTL == b.Server.LoginTTL }},
		{"storage.dir", true, func(a, b *Config) bool { return a.Storage.Dir == b.Storage.Dir }},
		{"storage.key_file", true, func(a, b *Config) bool { return a.Storage.KeyFile == b.Storage.KeyFile }},
		{"totp.issuer", false, func(a, b *Config) bool { return a.TOTP.Issuer == b.TOTP.Issuer }},
		{"totp.digits", false, func(a, b *Config) bool { return a.TOTP.Digits == b.TOTP.Digits }},
		{"totp.period", false, func(a, b *Config) bool { return a.TOTP.Period == b.TOTP.Period }},
		{"totp.algorithm", false, func(a, b *Config) bool { return a.TOTP.Algorithm == b.TOTP.Algorithm }},
		{"totp.skew", false, func(a, b *Config) bool { return a.TOTP.Skew == b.TOTP.Skew }},
		{"totp.drift_window", false, func(a, b *Config) bool { return a.TOTP.DriftWindow == b.TOTP.DriftWindow }},
		{"recovery.count", false, func(a, b *Config) bool { return a.Recovery.Count == b.Recovery.Count }},
		{"recovery.format", false, func(a, b *Config) bool { return a.Recovery.Format == b.Recovery.Format }},
		{"recovery.warn_below", false, func(a, b *Config) bool { return a.Recovery.WarnBelow == b.Recovery.WarnBelow }},
		{"recovery.auto_generate", false, func(a, b *Config) bool { return a.Recovery.AutoGenerate == b.Recovery.AutoGenerate }},
		{"lockout.max_failures", false, func(a, b *Config) bool { return a.Lockout.MaxFailures == b.Lockout.MaxFailures }},
		{"lockout.window", false, func(a, b *Config) bool { return a.Lockout.Window == b.Lockout.Window }},
		{"lockout.duration", false, func(a, b *Config) bool { return a.Lockout.Duration == b.Lockout.Duration }},
		{"lockout.max_duration", false, func(a, b *Config) bool { return a.Lockout.MaxDuration == b.Lockout.MaxDuration }},
		{"lockout.hard_limit", false, func(a, b *Config) bool { return a.Lockout.HardLimit == b.Lockout.HardLimit }},
		{"lockout.source_max_failures", false, func(a, b *Config) bool { return a.Lockout.SourceMaxFailures == b.Lockout.SourceMaxFailures }},
		{"lockout.source_window", false, func(a, b *Config) bool { return a.Lockout.SourceWindow == b.Lockout.SourceWindow }},
		{"lockout.source_backoff", false, func(a, b *Config) bool { return a.Lockout.SourceBackoff == b.Lockout.SourceBackoff }},
		{"metrics.listen", true, func(a, b *Config) bool { return a.Metrics.Listen == b.Metrics.Listen }},
		{"u2f.app_id", false, func(a, b *Config) bool { return a.U2F.AppID == b.U2F.AppID }},
		{"u2f.timeout", false, func(a, b *Config) bool { return a.U2F.Timeout == b.U2F.Timeout }},
		{"u2f.attestation_ca_file", false, func(a, b *Config) bool { return a.U2F.AttestationCAFile == b.U2F.AttestationCAFile }},
		{"u2f.counter_regression", false, func(a, b *Config) bool { return a.U2F.CounterRegression == b.U2F.CounterRegression }},
		{"audit.retention", false, func(a, b *Config) bool { return a.Audit.Retention == b.Audit.Retention }},
		{"log.level", false, func(a, b *Config) bool { return a.Log.Level == b.Log.Level }},
		{"log.format", false, func(a, b *Config) bool { return a.Log.Format == b.Log.Format }},
		{"account_recovery.delay", false, func(a, b *Config) bool { return a.AccountRecovery.Delay == b.AccountRecovery.Delay }},
		{"account_recovery.action", false, func(a, b *Config) bool { return a.AccountRecovery.Action == b.AccountRecovery.Action }},
		{"account_recovery.remind_every", false, func(a, b *Config) bool { return a.AccountRecovery.RemindEvery == b.AccountRecovery.RemindEvery }},
		{"account_recovery.max_bypass", false, func(a, b *Config) bool { return a.AccountRecovery.MaxBypass == b.AccountRecovery.MaxBypass }},
		{"policy", false, func(a, b *Config) bool { return reflect.DeepEqual(a.Policies, b.Policies) }},
		{"sms", false, func(a, b *Config) bool { return a.SMS == b.SMS }},
		{"modem", true, func(a, b *Config) bool { return reflect.DeepEqual(a.Modems, b.Modems) }},
	}
}

// Changes compares two configs for a SIGHUP reload and returns the dotted
// names of the options that differ, in file order. reloadable holds options
// the daemon applies live (totp.*, recovery.*, lockout.*, audit.*, log.*,
// account_recovery.*, policy (all policy blocks, compared as one), sms (the
// block, compared as one),
// server.login_groups, server.admin_groups, server.max_request_bytes,
// server.read_timeout, server.write_timeout, server.shutdown_timeout,
// server.login_ttl); restart holds options that only take effect after a
// restart (server.socket, server.socket_mode, server.socket_group,
// storage.*, modem: all modem blocks, compared as one). Both are nil when
// nothing changed. A nil config compares like an all-zero Config.
func Changes(old, new *Config) (reloadable, restart []string) {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	for _, o := range options() {
		if o.same(old, new) {
			continue
		}
		if o.restart {
			restart = append(restart, o.name)
		} else {
			reloadable = append(reloadable, o.name)
		}
	}
	return reloadable, restart
}
