package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/sim"
)

// A full flow at debug level, then every line the daemon logged is scanned
// for the secrets and codes the flow used: none may appear.
func TestLogsHoldNoSecrets(t *testing.T) {
	d := newDaemonDir(t, "")
	d.sim = true
	link := filepath.Join(d.dir, "ttyMODEM")
	const pin = "4921"
	m, err := sim.NewModem(sim.ModemOptions{Link: link, PIN: pin, DeliveryReports: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	pinFile := filepath.Join(d.dir, "sim.pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.writeConfig(fmt.Sprintf("log {\n  level = \"debug\"\n}\nmodem \"usb0\" {\n  device = %q\n  pin_file = %q\n}\n"+
		"policy \"all\" {\n  remember_device = \"1h\"\n}\n", link, pinFile))
	d.start()
	waitModemReady(t, d)
	var secrets []string
	keep := func(what ...string) { secrets = append(secrets, what...) }
	keep(pin)

	// TOTP: the secret, the confirmation code and a login code.
	secret := d.enroll(t, "vera")
	keep(secret, totpCode(t, secret, -1))
	freshStep(t)
	code := totpCode(t, secret, 0)
	keep(code)
	d.run(code+"\n", "login", "vera", "--rhost", "192.0.2.5").mustOK(t)

	// Recovery codes, one of them used.
	var rc wire.RecoveryCodesResponse
	decodeJSON(t, d.run("", "recovery-codes", "generate", "vera", "--no-confirm", "--json").mustOK(t), &rc)
	for _, c := range rc.Codes {
		n, _ := recovery.Normalize(c)
		keep(c, n)
	}
	d.run(rc.Codes[0]+"\n", "login", "vera").mustOK(t)

	// A phone and an SMS login, with a remember-device token.
	const number = "+447911123456"
	keep(number, strings.TrimPrefix(number, "+"), "7911123456")
	d.run("", "phone", "add", "vera", number).mustOK(t)
	confirm := waitCode(t, m, number)
	keep(confirm)
	d.run("", "phone", "confirm", "vera", confirm).mustOK(t)
	ctx := context.Background()
	cl := client.New(d.socket)
	defer cl.Close()
	l, err := cl.Login(ctx, wire.LoginRequest{User: "vera", Service: "sshd", RHost: "192.0.2.5"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.LoginSMS(ctx, l.LoginID, ""); err != nil {
		t.Fatal(err)
	}
	smsCode := waitCode(t, m, number)
	keep(smsCode)
	v, err := cl.LoginVerifyRequest(ctx, l.LoginID, wire.VerifyRequest{Code: smsCode, Remember: true})
	if err != nil || v.Result != "ok" || v.RememberToken == "" {
		t.Fatalf("sms login = %+v, %v", v, err)
	}
	keep(v.RememberToken)
	_, tokenSecret, _ := strings.Cut(strings.TrimPrefix(v.RememberToken, "mfad-rd1."), ".")
	keep(tokenSecret)

	// A proof for a weakening action (the next step's code: the current one
	// was used by the login above).
	p, err := cl.Reauth(ctx, "vera", totpCode(t, secret, 1))
	if err != nil || p.Proof == "" {
		t.Fatalf("reauth = %+v, %v", p, err)
	}
	keep(totpCode(t, secret, 1), p.Proof)

	// The simulated security key.
	d.run("", "u2f", "enroll", "vera").mustOK(t)
	d.run("", "login", "vera", "--service", "login", "--tty", "tty1").mustOK(t)

	// The store's master key.
	key, err := os.ReadFile(filepath.Join(d.dir, "state", "mfad.key"))
	if err != nil {
		t.Fatal(err)
	}
	keep(strings.TrimSpace(string(key)))

	d.stop()
	logs := d.stderr.String()
	if n := strings.Count(logs, "\n"); n < 50 {
		t.Fatalf("only %d log lines: the flow did not run at debug level?\n%s", n, logs)
	}
	for _, s := range secrets {
		if len(s) < 4 {
			t.Fatalf("secret %q too short to scan for", s)
		}
		// A short numeric code is looked for as a number of its own, so
		// that it is not "found" inside a longer number or a hex id.
		re := regexp.MustCompile(regexp.QuoteMeta(s))
		if strings.Trim(s, "0123456789") == "" {
			re = regexp.MustCompile(`(^|[^0-9a-f])` + s + `($|[^0-9a-f])`)
		}
		if loc := re.FindStringIndex(logs); loc != nil {
			i := loc[0]
			line := logs[strings.LastIndex(logs[:i], "\n")+1:]
			line, _, _ = strings.Cut(line, "\n")
			t.Errorf("a secret appears in the log: %s", line)
		}
	}
	t.Logf("scanned %d log lines for %d secrets", strings.Count(logs, "\n"), len(secrets))
}
