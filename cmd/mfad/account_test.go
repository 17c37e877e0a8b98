package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mfad/mfad/api/wire"
)

// Policies, remember-device, bypasses and account recovery through the CLI
// and a real daemon.
func TestCLIAccountPolicies(t *testing.T) {
	d := newDaemonDir(t, `
policy "remember" {
  match {
    service = ["sshd"]
  }
  remember_device = "24h"
}
`)
	d.start()
	secret := d.enroll(t, "alice")

	// A login that asks to be remembered gets a token that skips the next
	// challenge from the same network.
	r := d.run(totpCode(t, secret, 0)+"\n", "login", "alice", "--service", "sshd", "--rhost", "192.0.2.7", "--remember").mustOK(t)
	_, token, found := strings.Cut(r.stdout, "--device-token next time): ")
	token = strings.TrimSpace(token)
	if !found || !strings.HasPrefix(token, "mfad-rd1.") {
		t.Fatalf("no remember token in %q", r.stdout)
	}
	r = d.run("", "login", "alice", "--service", "sshd", "--rhost", "192.0.2.8", "--device-token", token).mustOK(t)
	if !strings.Contains(r.stderr, "remembered device") {
		t.Fatalf("remembered login: %q", r.stderr)
	}
	var ds wire.DevicesResponse
	decodeJSON(t, d.run("", "device", "list", "alice", "--json").mustOK(t), &ds)
	if len(ds.Devices) != 1 || ds.Devices[0].Network != "192.0.2.0/24" {
		t.Fatalf("devices = %+v", ds)
	}
	d.run("", "device", "revoke", "alice", "--all").mustOK(t)
	if r := d.run("", "login", "alice", "--service", "sshd", "--rhost", "192.0.2.8", "--device-token", token); r.code == 0 {
		t.Fatalf("revoked token still works: %q", r.stderr)
	}

	// A temporary bypass lets bob in without a code, audited.
	d.enroll(t, "bob")
	d.run("", "bypass", "bob", "--for", "2h", "--reason", "lost phone, ticket 7").mustOK(t)
	if r := d.run("", "login", "bob"); r.code != 0 || !strings.Contains(r.stderr, "temporary bypass") {
		t.Fatalf("login during the bypass: %d %q", r.code, r.stderr)
	}
	d.run("", "bypass", "bob", "--end").mustOK(t)

	// An account recovery request, opened and cancelled by an admin.
	var rr wire.RecoveryRequest
	decodeJSON(t, d.run("", "recovery", "open", "bob", "--reason", "ticket 8", "--json").mustOK(t), &rr)
	if rr.Status != "pending" || rr.Action != "bypass" {
		t.Fatalf("request = %+v", rr)
	}
	decodeJSON(t, d.run("", "recovery", "cancel", "bob", "--json").mustOK(t), &rr)
	if rr.Status != "cancelled" {
		t.Fatalf("cancelled request = %+v", rr)
	}

	// The audit exports JSON lines and filters by action.
	out := d.run("", "audit", "--jsonl", "--action", "bypass.grant").mustOK(t).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var ev wire.AuditEvent
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &ev) != nil || ev.User != "bob" || !strings.Contains(ev.Detail, "ticket 7") {
		t.Fatalf("audit export = %q", out)
	}
	// Preferences and unlock.
	d.run("", "user", "prefer", "bob", "recovery").mustOK(t)
	d.run("", "user", "unlock", "bob").mustOK(t)
}
