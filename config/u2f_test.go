package config

import (
	"strings"
	"testing"
	"time"
)

func TestU2FBlock(t *testing.T) {
	cfg, _, diags := Parse("u2f.hcl", []byte("u2f {\n  app_id = \"pam://shared\"\n  timeout = \"45s\"\n  counter_regression = \"allow\"\n}\n"), rootEnv)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.U2F != (U2F{AppID: "pam://shared", Timeout: 45 * time.Second, CounterRegression: "allow"}) {
		t.Fatalf("u2f = %+v", cfg.U2F)
	}
	bad := []struct{ src, want string }{
		{"u2f {\n  timeout = \"0s\"\n}\n", "u2f.timeout"},
		{"u2f {\n  timeout = \"1h\"\n}\n", "u2f.timeout"},
		{"u2f {\n  counter_regression = \"ignore\"\n}\n", "u2f.counter_regression"},
		{"u2f {\n  app_id = 5\n}\n", "u2f.app_id"},
		{"u2f {\n  app_id = \"a\\nb\"\n}\n", "u2f.app_id"},
		{"u2f {\n  wink = true\n}\n", "wink"},
	}
	for _, tc := range bad {
		_, _, diags := Parse("u2f.hcl", []byte(tc.src), rootEnv)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("%q: diagnostics %v, want one about %s", tc.src, diags, tc.want)
		}
		for _, d := range diags {
			if d.Subject == nil || d.Subject.Start.Line != 2 {
				t.Errorf("%q: diagnostic %q not positioned on line 2", tc.src, d.Summary)
			}
		}
	}
}

func TestMetricsBlock(t *testing.T) {
	cfg, _, diags := Parse("m.hcl", []byte("metrics {\n  listen = \"127.0.0.1:9477\"\n}\n"), rootEnv)
	if diags.HasErrors() || cfg.Metrics.Listen != "127.0.0.1:9477" {
		t.Fatalf("metrics = %+v %v", cfg, diags)
	}
	for _, bad := range []string{`"9477"`, `"host:port"`, `"127.0.0.1:70000"`, `9477`} {
		_, _, diags := Parse("m.hcl", []byte("metrics {\n  listen = "+bad+"\n}\n"), rootEnv)
		if !diags.HasErrors() || !strings.Contains(diags.Error(), "metrics.listen") || diags[0].Subject.Start.Line != 2 {
			t.Errorf("listen = %s: %v", bad, diags)
		}
	}
}
