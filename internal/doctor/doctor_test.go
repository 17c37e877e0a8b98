package doctor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/sim"
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

func TestModemChecks(t *testing.T) {
	m, err := sim.NewModem(sim.ModemOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("1234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := modemDevice(config.Modem{Name: "a", Device: m.Path(), PINFile: pin})
	if len(got) != 2 || got[0].Status != OK || got[1].Status != Fail || !strings.Contains(got[1].Fix, "chmod 600") {
		t.Fatalf("checks = %+v", got)
	}
	if got := modemDevice(config.Modem{Name: "b", Device: filepath.Join(dir, "ttyUSB9")}); got[0].Status != Fail || !strings.Contains(got[0].Fix, "by-id") {
		t.Fatalf("missing device = %+v", got)
	}
	if got := modemDevice(config.Modem{Name: "c", Device: pin}); got[0].Status != Fail {
		t.Fatalf("regular file = %+v", got)
	}
	for _, tc := range []struct {
		m    wire.Modem
		want Status
		fix  string
	}{
		{wire.Modem{Name: "u", State: "ready", SignalDBm: -71, Registration: "home"}, OK, ""},
		{wire.Modem{Name: "u", State: "ready", SignalDBm: -111}, Warn, "antenna"},
		{wire.Modem{Name: "u", State: "registering", Registration: "searching"}, Warn, "network"},
		{wire.Modem{Name: "u", State: "down", Error: "SIM PIN required", SIM: "pin required"}, Fail, "pin_file"},
		{wire.Modem{Name: "u", State: "down", Error: "opening /dev/ttyUSB0: permission denied"}, Fail, "udev"},
		{wire.Modem{Name: "u", State: "down", Error: "modem did not answer in time"}, Fail, "AT port"},
	} {
		c := modemCheck(tc.m)
		if c.Status != tc.want || !strings.Contains(c.Fix, tc.fix) {
			t.Errorf("%+v -> %+v", tc.m, c)
		}
	}
}
