package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/store"
)

func TestClock(t *testing.T) {
	tests := []struct {
		name   string
		read   func() (bool, int64, error)
		status Status
		fix    bool
	}{
		{"synchronised", func() (bool, int64, error) { return true, 1500, nil }, OK, false},
		{"not synchronised", func() (bool, int64, error) { return false, 16000000, nil }, Warn, true},
		{"unreadable", func() (bool, int64, error) { return false, 0, errors.New("no adjtimex") }, Warn, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := clock(tc.read)
			if c.Status != tc.status || (c.Fix != "") != tc.fix {
				t.Fatalf("clock = %+v", c)
			}
		})
	}
	// The real kernel answers without error here.
	if _, _, err := adjtimex(); err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if _, err := store.CreateKey(good, nil); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	b, _ := os.ReadFile(good)
	os.WriteFile(open, b, 0o644)
	os.Chmod(open, 0o644)
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not hex"), 0o600)
	tests := []struct {
		path   string
		status Status
		fix    string
	}{
		{good, OK, ""},
		{open, Fail, "chmod 600"},
		{bad, Fail, "64 hex digits"},
		{filepath.Join(dir, "missing.key"), Warn, "keygen"},
		{"", OK, ""},
	}
	for _, tc := range tests {
		c := keyFile(tc.path)
		if c.Status != tc.status || !strings.Contains(c.Fix, tc.fix) {
			t.Errorf("%s: %+v", tc.path, c)
		}
	}
}

type failingSource struct{}

func (failingSource) Keys() ([]u2f.Key, error) { return nil, os.ErrPermission }

func TestKeysAndWorst(t *testing.T) {
	if c := keys(u2f.StaticSource{}); c.Status != OK || !strings.Contains(c.Detail, "none plugged") {
		t.Fatalf("no keys: %+v", c)
	}
	if c := keys(failingSource{}); c.Status != Warn || !strings.Contains(c.Fix, "udev") {
		t.Fatalf("unopenable keys: %+v", c)
	}
	if Worst([]Check{{Status: OK}, {Status: Warn}}) != Warn || Worst([]Check{{Status: Warn}, {Status: Fail}, {Status: OK}}) != Fail || Worst(nil) != OK {
		t.Fatal("Worst")
	}
}
