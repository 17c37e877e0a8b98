package modem

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestNormalizeE164(t *testing.T) {
	for in, want := range map[string]string{
		"+4915112345678":      "+4915112345678",
		"+49 151 1234-5678":   "+4915112345678",
		"0049 (151) 12345678": "+4915112345678",
		"+1.555.555.0123":     "+15555550123",
		"+123456":             "+123456",
	} {
		if got, err := NormalizeE164(in); got != want || err != nil {
			t.Errorf("NormalizeE164(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "015112345678", "+0151123", "+12345", "+1234567890123456", "++49151", "+49a151", "49+151", "+49\n151"} {
		got, err := NormalizeE164(in)
		if !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("NormalizeE164(%q) = %q, %v; want ErrInvalidNumber", in, got, err)
		}
		if err != nil && len(in) > 3 && strings.Contains(err.Error(), in) {
			t.Errorf("error %q repeats the number", err)
		}
	}
	if got := phone("+4915112345678").String(); got != "+49*********78" {
		t.Errorf("masked number %q", got)
	}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{5,14}$`)

func FuzzNormalizeE164(f *testing.F) {
	for _, s := range []string{"+4915112345678", "0049 151", "+1 (555) 555-0123", "++1", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeE164(in)
		if err != nil {
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("NormalizeE164(%q) = %q", in, got)
		}
		if again, err := NormalizeE164(got); again != got || err != nil {
			t.Fatalf("not idempotent: %q -> %q, %v", got, again, err)
		}
	})
}

func TestValidate(t *testing.T) {
	good := Config{Name: "gsm0", Device: "/dev/serial/by-id/usb-x-if00-port0"}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(minimal) = %v", err)
	}
	bad := Config{
		Name:           "gsm 0",
		Device:         "ttyUSB0",
		Baud:           12345,
		Mode:           "fast",
		InitCommands:   []string{"ATZ", "+CFUN=1,1", "E0\r\nAT+CPIN=1", ""},
		NotifyCommand:  "+cfun = 1,1",
		CommandTimeout: -time.Second,
		RatePerMinute:  -1,
		MaxParts:       300,
		SMSC:           "0800",
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"name:", "device:", "baud:", "mode:", `"ATZ": leave out`, `"+CFUN=1,1" reboots`,
		"not a plain AT command", "notify_command:", "command_timeout:", "rate_limit:", "max_parts:", "smsc:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Open(t.Context(), bad, nil); err == nil {
		t.Error("Open accepted a bad config")
	}
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pin, d1, err := readPIN(write("ok", " 1234\n", 0o600))
	if pin != "1234" || err != nil {
		t.Fatalf("readPIN = %q, %v", pin, err)
	}
	if _, d2, _ := readPIN(write("ro", "1234", 0o400)); d1 != d2 {
		t.Error("same pin, different digest")
	}
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"group":   {"1234", 0o640, "accessible by group or others"},
		"world":   {"1234", 0o604, "accessible by group or others"},
		"short":   {"123", 0o600, "4 to 8 digits"},
		"long":    {"123456789", 0o600, "4 to 8 digits"},
		"letters": {"12a4", 0o600, "4 to 8 digits"},
		"big":     {strings.Repeat("1", 100), 0o600, "4 to 8 digits"},
	} {
		p := write(name, tc.content, tc.mode)
		_, _, err := readPIN(p)
		if !errors.Is(err, errPINFile) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.content) {
			t.Errorf("%s: error %q holds the file content", name, err)
		}
	}
	if _, _, err := readPIN(dir); !errors.Is(err, errPINFile) {
		t.Errorf("directory: %v", err)
	}
	if _, _, err := readPIN(filepath.Join(dir, "missing")); !errors.Is(err, errPINFile) {
		t.Errorf("missing: %v", err)
	}
}

func TestWindow(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := newWindow(3, time.Minute)
	for i := range 3 {
		now := start.Add(time.Duration(i) * 10 * time.Second)
		if d := w.wait(now, 1); d != 0 {
			t.Fatalf("event %d: wait %v", i, d)
		}
		w.add(now)
	}
	at := start.Add(30 * time.Second)
	if d := w.wait(at, 1); d != 30*time.Second {
		t.Errorf("wait for 1 = %v, want 30s (first event leaves at 60s)", d)
	}
	if d := w.wait(at, 2); d != 40*time.Second {
		t.Errorf("wait for 2 = %v, want 40s", d)
	}
	if d := w.wait(at, 5); d != 50*time.Second {
		t.Errorf("wait for 5 (more than the limit) = %v, want 50s (empty window)", d)
	}
	if d := w.wait(start.Add(time.Minute), 1); d != 0 {
		t.Errorf("at 60s: wait %v, want 0", d)
	}
	var none *window
	if d := none.wait(at, 100); d != 0 {
		t.Error("nil window limits")
	}
	if d := newWindow(0, time.Minute).wait(at, 100); d != 0 {
		t.Error("zero limit limits")
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(time.Second, 5*time.Second)
	var got []time.Duration
	for range 5 {
		got = append(got, b.step())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("steps %v, want %v", got, want)
		}
	}
	b.reset()
	if d := b.step(); d != time.Second {
		t.Errorf("after reset %v", d)
	}
}

// TestPoolSleep checks the pool's waits in the fake time of a synctest
// bubble: a wait runs its full length, and one that would outlast the
// deadline fails at once instead of sleeping in vain.
func TestPoolSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(nil, PoolOptions{RetryBackoff: time.Second, MaxBackoff: 4 * time.Second})
		start := time.Now()
		err := p.sleep(t.Context(), 3*time.Second, true)
		if err != nil || time.Since(start) != 3*time.Second {
			t.Fatalf("sleep: %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start = time.Now()
		if err := p.sleep(ctx, 5*time.Second, true); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 0 {
			t.Errorf("sleep past the deadline: %v after %v; want an immediate deadline error", err, time.Since(start))
		}
	})
}
