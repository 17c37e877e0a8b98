package pam

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/sim"
)

var smsCodeRe = regexp.MustCompile(`\b\d{6}\b`)

// TestPamtesterSMS sends codes by SMS through the daemon's real modem
// driver to a simulated modem on a pseudo-terminal: an empty answer and
// "sms" each send a code, which the user then types.
func TestPamtesterSMS(t *testing.T) {
	requireRoot(t)
	d := newDaemon(t, "")
	link := filepath.Join(d.dir, "ttyMODEM")
	m, err := sim.NewModem(sim.ModemOptions{Link: link, DeliveryReports: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	d.writeConfig(fmt.Sprintf("modem \"usb0\" {\n  device = %q\n  command_timeout = \"3s\"\n  send_timeout = \"5s\"\n}\n", link))
	d.start()
	waitModem(t, d)

	const number = "+447911123456"
	smsCode := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := m.WaitSMS(ctx, number)
		if err != nil {
			t.Fatalf("no SMS to %s: %v", number, err)
		}
		return smsCodeRe.FindString(s.Text)
	}
	d.cli(t, "phone", "add", "sam", number)
	d.cli(t, "phone", "confirm", "sam", smsCode())
	svc := pamService(t, "sms", "auth required @MODULE@ socket="+d.socket)

	// Enter: a code is sent; a wrong code; "sms": another; the right one.
	var first, second string
	r := runPamtester(t, pamCall{service: svc, user: "sam", items: []string{"rhost=192.0.2.7"}, answer: func(n int) (string, bool) {
		switch n {
		case 0:
			return "", true
		case 1:
			first = smsCode()
			return "000000", true
		case 2:
			return "SMS", true
		case 3:
			second = smsCode()
			return second, true
		}
		return "", false
	}})
	r.expect(t, pamOK, 4)
	if strings.Count(r.stdout, "Code sent to +44") != 2 || strings.Contains(r.stdout+r.stderr, "7911123456") {
		t.Errorf("want two masked notices:\n%v", r)
	}
	if !strings.Contains(r.stderr, "press Enter to get a code by SMS") || !strings.Contains(r.stderr, "code rejected") {
		t.Errorf("prompt or rejection missing:\n%v", r)
	}
	if first == "" || second == "" {
		t.Fatalf("codes %q %q", first, second)
	}

	// At most two SMS per login: a third request uses up a try instead,
	// and the latest code still works.
	var latest string
	r = runPamtester(t, pamCall{service: svc, user: "sam", items: []string{"rhost=192.0.2.7"}, answer: func(n int) (string, bool) {
		switch n {
		case 0, 1:
			return "", true
		case 2:
			smsCode()
			latest = smsCode()
			return "sms", true
		case 3:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if _, err := m.WaitSMS(ctx, number); err == nil {
				t.Error("a third SMS was sent")
			}
			return latest, true
		}
		return "", false
	}})
	r.expect(t, pamOK, 4)
	if strings.Count(r.stdout, "Code sent to +44") != 2 || !strings.Contains(r.stderr, "No more SMS for this login") {
		t.Errorf("want two SMS and the limit:\n%v", r)
	}
}

// waitModem waits until the daemon reports its modem ready.
func waitModem(t *testing.T, d *daemon) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var st wire.Status
		decodeJSON(t, d.cli(t, "status", "--json"), &st)
		if len(st.Hardware.Modems) == 1 && st.Hardware.Modems[0].State == "ready" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("modem not ready; daemon log:\n%s", d.stderr)
}
