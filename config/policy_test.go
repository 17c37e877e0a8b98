package config

import (
	"github.com/hashicorp/hcl/v2"
	"net/netip"
	"testing"
	"time"
)

func TestParsePolicies(t *testing.T) {
	src := `
lockout {
  max_failures = 7
}
policy "office" {
  match {
    service = ["sshd", "sudo"]
    group   = ["staff"]
    user    = ["alice"]
    rhost   = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
    local   = false
  }
  require         = "risky"
  methods         = ["totp", "u2f"]
  unenrolled      = "deadline"
  enroll_deadline = "2027-01-31T00:00:00Z"
  remember_device = "720h"
  remember_bind_rhost = false
  known_for       = "48h"
  lockout {
    max_failures = 3
  }
}
policy "rest" {}
`
	cfg, _, diags := Parse("p.hcl", []byte(src), rootEnv)
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	if len(cfg.Policies) != 2 {
		t.Fatalf("policies = %d, want 2", len(cfg.Policies))
	}
	p := cfg.Policies[0]
	if p.Name != "office" || p.Require != "risky" || p.Unenrolled != "deadline" || p.RememberDevice != 720*time.Hour ||
		p.RememberBindRHost || p.KnownFor != 48*time.Hour {
		t.Errorf("policy = %+v", p)
	}
	if got := p.EnrollDeadline; !got.Equal(time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("deadline = %v", got)
	}
	if len(p.Methods) != 2 || p.Methods[0] != "totp" || p.Methods[1] != "u2f" {
		t.Errorf("methods = %q", p.Methods)
	}
	m := p.Match
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("192.0.2.7/32")}
	if len(m.RHost) != 3 || m.RHost[0] != want[0] || m.RHost[1] != want[1] || m.RHost[2] != want[2] {
		t.Errorf("rhost = %v", m.RHost)
	}
	if m.Local == nil || *m.Local || len(m.Service) != 2 || m.Group[0] != "staff" || m.User[0] != "alice" {
		t.Errorf("match = %+v", m)
	}
	// The policy's lockout overrides one setting and inherits the others.
	if p.Lockout.MaxFailures != 3 || p.Lockout.Window != cfg.Lockout.Window {
		t.Errorf("policy lockout = %+v", p.Lockout)
	}
	rest := cfg.Policies[1]
	if !rest.Match.Empty() || rest.Require != "always" || rest.Lockout.MaxFailures != 7 || len(rest.Methods) != 4 {
		t.Errorf("catch-all = %+v", rest)
	}
}

func TestPolicyUnreachable(t *testing.T) {
	src := "policy \"all\" {}\npolicy \"ssh\" {\n  match {\n    service = [\"sshd\"]\n  }\n}\n"
	_, _, diags := Parse("p.hcl", []byte(src), rootEnv)
	if !diags.HasErrors() || diags[0].Summary != `Unreachable policy "ssh"` || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("diagnostics = %v", diags)
	}
}

func TestPolicySMSWithoutModemWarns(t *testing.T) {
	src := "policy \"sms\" {\n  methods = [\"sms\"]\n}\n"
	cfg, _, diags := Parse("p.hcl", []byte(src), rootEnv)
	if cfg == nil || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("diagnostics = %v", diags)
	}
	src += "modem \"a\" {\n  device = \"/dev/ttyUSB0\"\n}\n"
	if _, _, diags := Parse("p.hcl", []byte(src), rootEnv); len(diags) != 0 {
		t.Fatalf("with a modem: %v", diags)
	}
}
