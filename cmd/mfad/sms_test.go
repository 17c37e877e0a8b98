package main

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/sim"
)

var codeRE = regexp.MustCompile(`\b\d{6}\b`)

// simModem starts a simulated modem in the test process, on a real
// pseudo-terminal reached through a by-id style link, for a daemon process
// to drive.
func simModem(t *testing.T, dir string) (*sim.Modem, string) {
	t.Helper()
	link := filepath.Join(dir, "ttyMODEM")
	m, err := sim.NewModem(sim.ModemOptions{Link: link, DeliveryReports: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, link
}

func waitCode(t *testing.T, m *sim.Modem, number string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := m.WaitSMS(ctx, number)
	if err != nil {
		t.Fatalf("no SMS to %s: %v", number, err)
	}
	return codeRE.FindString(s.Text)
}

func waitModemReady(t *testing.T, d *daemonProc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var st wire.Status
		decodeJSON(t, d.run("", "status", "--json").mustOK(t), &st)
		if len(st.Hardware.Modems) == 1 && st.Hardware.Modems[0].State == "ready" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("modem not ready; daemon log:\n%s", d.stderr)
}

// The phone and SMS login path through the CLI, a daemon process, the real
// serial driver and a simulated modem; then the modem vanishes and comes
// back under a new device, and a queued message survives a daemon crash.
func TestSMSEndToEnd(t *testing.T) {
	d := newDaemonDir(t, "")
	m, link := simModem(t, d.dir)
	d.writeConfig(fmt.Sprintf("modem \"usb0\" {\n  device = %q\n  command_timeout = \"3s\"\n  send_timeout = \"5s\"\n}\n", link))
	d.start()
	waitModemReady(t, d)
	const number = "+447911123456"

	r := d.run("", "phone", "add", "sam", "+44 7911 123456").mustOK(t)
	if !strings.Contains(r.stdout, "+44••••••3456") || strings.Contains(r.stdout, "123456") {
		t.Fatalf("phone add output %q", r.stdout)
	}
	r = d.run("", "phone", "confirm", "sam", waitCode(t, m, number)).mustOK(t)
	if !strings.Contains(r.stdout, "is active") || !strings.Contains(r.stdout, "recovery codes") {
		t.Fatalf("phone confirm output %q", r.stdout)
	}
	var st wire.Status
	decodeJSON(t, d.run("", "status", "--json").mustOK(t), &st)
	if mo := st.Hardware.Modems[0]; mo.Model == "" || mo.SignalDBm == 0 || mo.Registration != "home" || mo.Sent < 1 {
		t.Fatalf("modem status %+v", mo)
	}

	// The login flow the PAM module runs, over the socket.
	login := func() {
		t.Helper()
		ctx := context.Background()
		cl := client.New(d.socket)
		defer cl.Close()
		l, err := cl.Login(ctx, wire.LoginRequest{User: "sam", Service: "sshd", RHost: "192.0.2.9"})
		if err != nil || l.Default != "sms" {
			t.Fatalf("login = %+v, %v", l, err)
		}
		if _, err := cl.LoginSMS(ctx, l.LoginID, ""); err != nil {
			t.Fatal(err)
		}
		if v, err := cl.LoginVerify(ctx, l.LoginID, waitCode(t, m, number), ""); err != nil || v.Result != "ok" {
			t.Fatalf("verify = %+v, %v", v, err)
		}
	}
	login()

	// The USB modem drops off the bus and comes back as another device;
	// the by-id style link follows it and the daemon re-opens it.
	m.Vanish()
	time.Sleep(200 * time.Millisecond)
	if err := m.Reappear(); err != nil {
		t.Fatal(err)
	}
	waitModemReady(t, d)
	login()

	// A message queued while no modem can send survives a crash of the
	// daemon and is sent after the restart.
	// (The driver notices a lost network at its next health check; the
	// send fails at once with "no network service" either way.)
	m.SetRegistered(0)
	d.run("", "phone", "add", "sam", "+33612345678").mustOK(t)
	time.Sleep(300 * time.Millisecond)
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	m.SetRegistered(1)
	d.start()
	code := waitCode(t, m, "+33612345678")
	if code == "" {
		t.Fatal("no code in the message sent after the restart")
	}
	// The outcome is recorded right after the modem answered.
	for i := 0; ; i++ {
		r = d.run("", "audit", "sam", "--jsonl").mustOK(t)
		if strings.Contains(r.stdout, "+33•••••5678 via usb0") {
			break
		}
		if i == 100 {
			t.Fatalf("audit after the restart:\n%s", r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
