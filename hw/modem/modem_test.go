package modem_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/sim"
)

// These tests run the real serial, AT and PDU code against the simulated
// modem of package sim through its pseudo-terminal.

const recipient = "+15555550123"

func TestInitWithPINAndSend(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{PIN: "1234", DeliveryReports: true})
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, "1234")
	reports := make(chan modem.DeliveryReport, 4)
	cfg.OnDelivery = func(r modem.DeliveryReport) { reports <- r }
	m := open(t, cfg)
	st := waitState(t, m, modem.StateReady)
	if st.SIM != "ready" || st.Registration != "home" || st.Operator != sim.DefaultModemOperator ||
		st.Model != sim.DefaultModemModel || st.Manufacturer != sim.DefaultModemManufacturer ||
		st.Revision != sim.DefaultModemRevision || st.SignalDBm != -113+2*sim.DefaultModemRSSI ||
		!st.StatusReports || st.Opens != 1 || st.Error != "" {
		t.Errorf("status after init = %+v", st)
	}

	r, err := m.Send(ctxTimeout(t, waitLong), recipient, "Your code is 123456")
	if err != nil || r.Outcome != modem.Sent || r.Parts != 1 || len(r.Refs) != 1 || r.Modem != "gsm0" {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	got, err := s.WaitSMS(ctxTimeout(t, waitLong), recipient)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != "Your code is 123456" || got.Encoding != "gsm7" || got.Mode != "pdu" || got.Parts != 1 || got.Ref != r.Refs[0] {
		t.Errorf("simulated modem got %+v, refs %v", got, r.Refs)
	}
	select {
	case rep := <-reports:
		if rep.Modem != "gsm0" || rep.Ref != r.Refs[0] || !rep.Delivered || !rep.Final || rep.Status != 0 || rep.Discharged.IsZero() {
			t.Errorf("delivery report = %+v, want delivered for ref %d", rep, r.Refs[0])
		}
	case <-time.After(waitLong):
		t.Fatal("no delivery report")
	}
	waitFor(t, "delivered count", func() bool { return m.Status().Delivered == 1 })
	if st := m.Status(); st.Sent != 1 || st.Failed != 0 || st.Unknown != 0 || st.LastSend.IsZero() {
		t.Errorf("counters = %+v", st)
	}
}

func TestWrongPINIsNotRetried(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{PIN: "1234"})
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, "4321")
	m := open(t, cfg)
	waitFor(t, "pin rejected", func() bool { return m.Status().SIM == "pin rejected" })
	// Several re-initialisations pass; the SIM must still have attempts
	// left, so the right PIN unlocks it.
	waitFor(t, "several re-initialisations", func() bool { return strings.Contains(m.Status().Error, "not retried") })
	time.Sleep(2 * time.Second)
	if st := m.Status(); st.State == modem.StateReady || st.SIM != "pin rejected" {
		t.Fatalf("status = %+v", st)
	}
	if err := writeFile(cfg.PINFile, "1234\n"); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, m, modem.StateReady)
	if st.SIM != "ready" {
		t.Errorf("sim %q after fixing the pin file", st.SIM)
	}
}

func TestPINFileMustBePrivate(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{PIN: "1234"})
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, "1234")
	if err := chmod(cfg.PINFile, 0o644); err != nil {
		t.Fatal(err)
	}
	m := open(t, cfg)
	waitFor(t, "pin file refused", func() bool { return strings.Contains(m.Status().Error, "accessible by group or others") })
	if err := chmod(cfg.PINFile, 0o600); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, modem.StateReady)
}

func TestRegistrationDelayed(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	s.SetRegistered(2)
	m := open(t, testConfig("gsm0", s.Path()))
	st := waitState(t, m, modem.StateRegistering)
	waitFor(t, "searching", func() bool { return m.Status().Registration == "searching" })
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "x"); !errors.Is(err, modem.ErrNotReady) {
		t.Errorf("Send while registering: %v, want ErrNotReady", err)
	}
	s.SetRegistered(5)
	st = waitState(t, m, modem.StateReady)
	if st.Registration != "roaming" {
		t.Errorf("registration %q, want roaming", st.Registration)
	}
}

func TestSendEncodings(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	m := open(t, testConfig("gsm0", s.Path()))
	waitState(t, m, modem.StateReady)
	tests := []struct {
		name, text, encoding string
		parts                int
	}{
		{"gsm7", "Your mfad code is 123456", "gsm7", 1},
		{"gsm7 160", strings.Repeat("0123456789", 16), "gsm7", 1},
		{"gsm7 extension table", "€5 [a] {b} ~c^ \\d| 100%", "gsm7", 1},
		{"gsm7 161 concatenated", strings.Repeat("0123456789", 16) + "!", "gsm7", 2},
		{"gsm7 long", strings.Repeat("The quick brown fox jumps over the lazy dog. ", 10), "gsm7", 3},
		{"ucs2", "Ваш код: 123456", "ucs2", 1},
		{"ucs2 70", strings.Repeat("ж", 70), "ucs2", 1},
		{"ucs2 concatenated", strings.Repeat("ж", 71), "ucs2", 2},
		{"ucs2 surrogate pairs", "🔑 " + strings.Repeat("🙂", 40), "ucs2", 2},
		{"mixed script", "code 123456 – 確認", "ucs2", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Send(ctxTimeout(t, waitLong), recipient, tc.text)
			if err != nil || r.Outcome != modem.Sent || r.Parts != tc.parts || len(r.Refs) != tc.parts {
				t.Fatalf("Send = %+v, %v; want %d parts sent", r, err, tc.parts)
			}
			got, err := s.WaitSMS(ctxTimeout(t, waitLong), recipient)
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != tc.text || got.Encoding != tc.encoding || got.Parts != tc.parts {
				t.Errorf("simulated modem got %q (%s, %d parts), want %q (%s, %d parts)",
					got.Text, got.Encoding, got.Parts, tc.text, tc.encoding, tc.parts)
			}
		})
	}
}

func TestTextMode(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{DeliveryReports: true})
	cfg := testConfig("gsm0", s.Path())
	cfg.Mode = "text"
	reports := make(chan modem.DeliveryReport, 4)
	cfg.OnDelivery = func(r modem.DeliveryReport) { reports <- r }
	m := open(t, cfg)
	waitState(t, m, modem.StateReady)
	text := "Your mfad code is 123456. Valid 5 min (do not share)!"
	r, err := m.Send(ctxTimeout(t, waitLong), recipient, text)
	if err != nil || r.Outcome != modem.Sent || len(r.Refs) != 1 {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	got, err := s.WaitSMS(ctxTimeout(t, waitLong), recipient)
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != text || got.Mode != "text" {
		t.Errorf("got %+v", got)
	}
	select {
	case rep := <-reports:
		if rep.Ref != r.Refs[0] || !rep.Delivered || !rep.Final {
			t.Errorf("report %+v, want delivered for ref %d", rep, r.Refs[0])
		}
	case <-time.After(waitLong):
		t.Fatal("no text-mode delivery report")
	}
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "Ваш код 123456"); !errors.Is(err, modem.ErrNotEncodable) {
		t.Errorf("text mode with Cyrillic: %v, want ErrNotEncodable", err)
	}
}

func TestCMSErrors(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	m := open(t, testConfig("gsm0", s.Path()))
	waitState(t, m, modem.StateReady)
	s.FailSends(1, 42)
	r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello")
	if r.Outcome != modem.Failed || !errors.Is(err, modem.ErrRejected) || !strings.Contains(err.Error(), "42") {
		t.Fatalf("Send = %+v, %v; want Failed with +CMS ERROR 42", r, err)
	}
	// No network: the modem refuses with 331 (the driver has not noticed yet).
	s.SetRegistered(0)
	if r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello"); r.Outcome != modem.Failed || !strings.Contains(fmtErr(err), "331") {
		t.Fatalf("Send without network = %+v, %v", r, err)
	}
	s.SetRegistered(1)
	if r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello"); err != nil || r.Outcome != modem.Sent {
		t.Fatalf("Send after the faults = %+v, %v", r, err)
	}
	if st := m.Status(); st.State != modem.StateReady || st.Failed != 2 || st.Sent != 1 {
		t.Errorf("status = %+v", st)
	}
	if n := len(s.Inbox()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestURCNoiseDuringCommands(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{PIN: "1234"})
	s.SetURCNoise(true)
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, "1234")
	m := open(t, cfg)
	st := waitState(t, m, modem.StateReady)
	if st.Model != sim.DefaultModemModel || st.Manufacturer != sim.DefaultModemManufacturer ||
		st.Operator != sim.DefaultModemOperator || st.Registration != "home" || st.SignalDBm != -73 {
		t.Errorf("status with URC noise = %+v", st)
	}
	for i, text := range []string{"one", strings.Repeat("long ", 70), "Привет"} {
		r, err := m.Send(ctxTimeout(t, waitLong), recipient, text)
		if err != nil || r.Outcome != modem.Sent {
			t.Fatalf("Send %d = %+v, %v", i, r, err)
		}
		got, err := s.WaitSMS(ctxTimeout(t, waitLong), recipient)
		if err != nil || got.Text != text {
			t.Fatalf("got %q, %v", got.Text, err)
		}
	}
}

func TestSlowReplies(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{SendDelay: time.Second})
	s.SetReplyDelay(300 * time.Millisecond)
	m := open(t, testConfig("gsm0", s.Path()))
	waitState(t, m, modem.StateReady)
	r, err := m.Send(ctxTimeout(t, waitLong), recipient, strings.Repeat("slow ", 40))
	if err != nil || r.Outcome != modem.Sent || r.Parts != 2 {
		t.Fatalf("Send = %+v, %v", r, err)
	}
}

func TestWedgedModemIsMarkedDown(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	m := open(t, testConfig("gsm0", s.Path()))
	waitState(t, m, modem.StateReady)
	s.Wedge(true)
	start := time.Now()
	r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello")
	took := time.Since(start)
	if r.Outcome != modem.Failed || !errors.Is(err, modem.ErrTimeout) {
		t.Fatalf("Send to a wedged modem = %+v, %v; want Failed, timeout", r, err)
	}
	t.Logf("send to the wedged modem returned after %v", took)
	if st := m.Status(); st.State == modem.StateReady {
		t.Errorf("wedged modem still %s", st.State)
	}
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello"); !errors.Is(err, modem.ErrNotReady) {
		t.Errorf("second Send: %v, want ErrNotReady", err)
	}
	s.Wedge(false)
	waitState(t, m, modem.StateReady)
	if r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello"); err != nil || r.Outcome != modem.Sent {
		t.Fatalf("Send after unwedging = %+v, %v", r, err)
	}
	if n := len(s.Inbox()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
}

func TestVanishedDeviceIsReopened(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{PIN: "1234"})
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, "1234")
	m := open(t, cfg)
	waitState(t, m, modem.StateReady)
	s.Vanish()
	st := waitState(t, m, modem.StateDown)
	if st.Error == "" {
		t.Error("down without an error")
	}
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello"); !errors.Is(err, modem.ErrNotReady) {
		t.Errorf("Send while vanished: %v, want ErrNotReady", err)
	}
	// Let a few reopen attempts fail against the missing link.
	waitFor(t, "reopen attempts", func() bool { return strings.Contains(m.Status().Error, "device unavailable") })
	if err := s.Reappear(); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, m, modem.StateReady)
	if st.Opens != 2 || st.SIM != "ready" {
		t.Errorf("status after reappearing = %+v", st)
	}
	if r, err := m.Send(ctxTimeout(t, waitLong), recipient, "back again"); err != nil || r.Outcome != modem.Sent {
		t.Fatalf("Send after reappearing = %+v, %v", r, err)
	}
	if got, err := s.WaitSMS(ctxTimeout(t, waitLong), recipient); err != nil || got.Text != "back again" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestVanishDuringSend(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{SendDelay: 5 * time.Second})
	cfg := testConfig("gsm0", s.Path())
	bodyWritten := make(chan struct{})
	cfg.Trace = &onWrite{prefix: "w: <message body", fire: func() { close(bodyWritten) }}
	m := open(t, cfg)
	waitState(t, m, modem.StateReady)
	go func() {
		// The body is with the modem, which takes SendDelay to answer.
		<-bodyWritten
		s.Vanish()
	}()
	r, err := m.Send(ctxTimeout(t, waitLong), recipient, "hello")
	if r.Outcome != modem.Unknown || !errors.Is(err, modem.ErrUnknownOutcome) {
		t.Fatalf("Send across a vanishing device = %+v, %v; want Unknown", r, err)
	}
	if err := s.Reappear(); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, modem.StateReady)
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	const pin, text = "97531", "Your mfad code is 864209"
	s := newSim(t, sim.ModemOptions{PIN: pin, DeliveryReports: true})
	cfg := testConfig("gsm0", s.Path())
	cfg.PINFile = writePIN(t, pin)
	log, tl := newLog(t)
	cfg.Trace = tl
	m, err := modem.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitState(t, m, modem.StateReady)
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, text); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery report", func() bool { return m.Status().Delivered == 1 })
	s.FailSends(1, 21)
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, text); err == nil {
		t.Fatal("injected failure did not fail")
	}
	out := tl.String()
	for _, secret := range []string{pin, "864209", strings.TrimPrefix(recipient, "+"), "5555550123"} {
		if strings.Contains(out, secret) {
			t.Errorf("log or trace holds %q", secret)
		}
	}
	if !strings.Contains(out, "w: AT+CPIN=<redacted>") || !strings.Contains(out, "<message body") {
		t.Error("trace lacks the redacted PIN and body lines")
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	m := open(t, testConfig("gsm0", s.Path()))
	waitState(t, m, modem.StateReady)
	done := make(chan struct{})
	go func() { m.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLong):
		t.Fatal("Close hangs")
	}
	if st := m.Status(); st.State != modem.StateClosed {
		t.Errorf("state after Close = %s", st.State)
	}
	if _, err := m.Send(context.Background(), recipient, "x"); !errors.Is(err, modem.ErrClosed) && !errors.Is(err, modem.ErrNotReady) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestMissingDevice(t *testing.T) {
	t.Parallel()
	cfg := testConfig("gsm0", "/dev/serial/by-id/usb-mfad-missing-if00-port0")
	m := open(t, cfg)
	waitFor(t, "down", func() bool {
		st := m.Status()
		return st.State == modem.StateDown && strings.Contains(st.Error, "device unavailable")
	})
}

// onWrite is a Config.Trace that calls fire once, at the first trace line
// starting with prefix.
type onWrite struct {
	prefix string
	once   sync.Once
	fire   func()
}

func (o *onWrite) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), o.prefix) {
		o.once.Do(o.fire)
	}
	return len(p), nil
}
