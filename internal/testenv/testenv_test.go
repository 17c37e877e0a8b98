package testenv_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mfad/mfad/internal/testenv"
)

// recorder captures Skip and Fatal instead of stopping the goroutine.
type recorder struct {
	testing.TB
	skipped, fatal []any
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped = append(r.skipped, args...) }
func (r *recorder) Fatal(args ...any) { r.fatal = append(r.fatal, args...) }

func TestRequireTool(t *testing.T) {
	bin := t.TempDir()
	prog := filepath.Join(bin, "present-prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const wantMsg = "absent-prog not installed (apt-get install absent-prog)"

	tests := []struct {
		name      string
		prog      string
		require   string
		wantPath  string
		wantSkip  []any
		wantFatal []any
	}{
		{name: "found", prog: "present-prog", wantPath: prog},
		{name: "found with require set", prog: "present-prog", require: "1", wantPath: prog},
		{name: "missing skips", prog: "absent-prog", wantSkip: []any{wantMsg}},
		{name: "missing with require=0 skips", prog: "absent-prog", require: "0", wantSkip: []any{wantMsg}},
		{name: "missing with require=1 fails", prog: "absent-prog", require: "1", wantFatal: []any{wantMsg}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", bin)
			t.Setenv(testenv.RequireEnv, tc.require)
			r := &recorder{TB: t}
			got := testenv.RequireTool(r, tc.prog, "apt-get install "+tc.prog)
			if got != tc.wantPath {
				t.Errorf("path = %q, want %q", got, tc.wantPath)
			}
			if !slices.Equal(r.skipped, tc.wantSkip) {
				t.Errorf("Skip args = %q, want %q", r.skipped, tc.wantSkip)
			}
			if !slices.Equal(r.fatal, tc.wantFatal) {
				t.Errorf("Fatal args = %q, want %q", r.fatal, tc.wantFatal)
			}
		})
	}
}
