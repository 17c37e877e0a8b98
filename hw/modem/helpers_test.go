package modem_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/sim"
)

// Generous bounds: the tests must pass on a loaded 2-core machine under
// -race. None of them is a timing assertion.
const (
	waitLong = 60 * time.Second
)

// testLog routes log lines to t.Log and keeps them, so tests can check
// what was (and was not) logged.
type testLog struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog(t testing.TB) (*slog.Logger, *testLog) {
	tl := &testLog{t: t}
	return slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelDebug})), tl
}

// newSim starts a simulated modem on a pseudo-terminal, reachable through
// a by-id style link in a temporary directory.
func newSim(t testing.TB, opts sim.ModemOptions) *sim.Modem {
	t.Helper()
	if opts.Link == "" {
		opts.Link = filepath.Join(t.TempDir(), "usb-mfad_sim_modem-if00-port0")
	}
	s, err := sim.NewModem(opts)
	if err != nil {
		t.Fatalf("starting simulated modem: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testConfig is a Config for a simulated modem with short timeouts.
func testConfig(name, device string) modem.Config {
	return modem.Config{
		Name:             name,
		Device:           device,
		CommandTimeout:   3 * time.Second,
		SendTimeout:      10 * time.Second,
		RegisterTimeout:  30 * time.Second,
		HealthInterval:   time.Hour,
		ReopenBackoff:    100 * time.Millisecond,
		ReopenBackoffMax: time.Second,
		StatusReports:    true,
	}
}

func open(t testing.TB, cfg modem.Config) *modem.Modem {
	t.Helper()
	log, tl := newLog(t)
	if cfg.Trace == nil {
		cfg.Trace = tl
	}
	m, err := modem.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// waitFor polls cond until it holds or waitLong passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitState(t testing.TB, m *modem.Modem, want modem.State) modem.Status {
	t.Helper()
	var st modem.Status
	waitFor(t, fmt.Sprintf("modem %s to be %s", m.Name(), want), func() bool {
		st = m.Status()
		return st.State == want
	})
	return st
}

// writePIN writes pin to a 0600 file and returns its path.
func writePIN(t testing.TB, pin string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sim.pin")
	if err := os.WriteFile(p, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func chmod(path string, mode os.FileMode) error { return os.Chmod(path, mode) }
