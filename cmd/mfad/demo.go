package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/daemon"
	"github.com/mfad/mfad/internal/version"
	"github.com/mfad/mfad/otp"
)

func newDemo() *cobra.Command {
	var keep bool
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a daemon on a temporary directory with simulated hardware and walk through real logins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "mfad-demo-*")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			level := slog.LevelError
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir, log)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory (store, key, socket) afterwards")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "show the daemon's log (audit lines) on stderr")
	return cmd
}

// runDemo runs a real daemon in this process on dir and drives it over its
// socket exactly as a login stack and an operator would.
func runDemo(parent context.Context, out io.Writer, dir string, log *slog.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	cfg := config.Default(config.Env{UID: os.Getuid(), Home: dir})
	cfg.Storage.Dir = filepath.Join(dir, "state")
	cfg.Server.Socket = filepath.Join(dir, "mfad.sock")
	cfg.TOTP.Issuer = "mfad demo"
	cfg.Server.LoginGroups, cfg.Server.AdminGroups = nil, nil // the demo's caller is the daemon's own uid

	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Config: cfg, Simulated: true, Log: log, Version: version.String(),
			Ready: func(s string) { ready <- s },
		})
	}()
	var socket string
	select {
	case socket = <-ready:
	case err := <-done:
		return fmt.Errorf("starting the demo daemon: %w", err)
	case <-time.After(30 * time.Second):
		return errors.New("the demo daemon did not start within 30s")
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }
	say := func(format string, args ...any) { fmt.Fprintf(out, "    "+format+"\n", args...) }

	fmt.Fprintf(out, "mfad demo: a real daemon on %s (store in %s, simulated hardware)\n", socket, cfg.Storage.Dir)
	cl := client.New(socket)
	defer cl.Close()
	const user = "alice"

	step("Enroll an authenticator app for %q", user)
	e, err := cl.EnrollTOTP(ctx, user, "phone")
	if err != nil {
		return err
	}
	say("pending factor %s, otpauth URI: %s", e.FactorID, e.OTPAuthURI)
	secret, err := otp.ParseBase32(e.Secret)
	if err != nil {
		return err
	}
	p := otp.Params{Digits: cfg.TOTP.Digits, Period: cfg.TOTP.Period, Algorithm: otp.Algorithm(cfg.TOTP.Algorithm)}
	// Stay clear of a time-step boundary so the codes below are judged in
	// the step they were computed for.
	if left := p.Period - time.Duration(time.Now().UnixNano())%p.Period; left < time.Second {
		time.Sleep(left)
	}
	now := time.Now()
	// The app shows the previous step's code (still inside the ±1 window); the
	// login below uses the current one, so the confirmation does not use it up.
	first := otp.Code(secret, otp.Counter(now, p)-1, p)
	if _, err := cl.ConfirmTOTP(ctx, user, e.FactorID, first); err != nil {
		return err
	}
	say("confirmed with the app's first code %s: the factor is active", first)

	step("Log in with the code the app shows now")
	code := otp.Code(secret, otp.Counter(now, p), p)
	if err := demoLogin(ctx, cl, say, user, code, "ok"); err != nil {
		return err
	}

	step("Replay the same code (someone watched over the shoulder)")
	if err := demoLogin(ctx, cl, say, user, code, "fail"); err != nil {
		return err
	}

	step("Generate recovery codes")
	rc, err := cl.GenerateRecoveryCodes(ctx, user)
	if err != nil {
		return err
	}
	for _, c := range rc.Codes {
		say("%s", c)
	}

	step("Lost the phone: log in with a recovery code")
	if err := demoLogin(ctx, cl, say, user, rc.Codes[0], "ok"); err != nil {
		return err
	}

	step("Use the same recovery code again")
	if err := demoLogin(ctx, cl, say, user, rc.Codes[0], "fail"); err != nil {
		return err
	}

	step("Enroll a U2F security key (the simulated key, touched at once)")
	f, err := cl.EnrollU2F(ctx, user, "desk key")
	if err != nil {
		return err
	}
	say("factor %s (%s) is active", f.ID, f.Type)

	step("Log in at the console: the strongest factor, the key, is the default")
	l, err := cl.Login(ctx, wire.LoginRequest{User: user, Service: "login", TTY: "tty1"})
	if err != nil {
		return err
	}
	say("POST /v1/login -> %s, methods %v, default %s", l.Decision, l.Methods, l.Default)
	v, err := cl.LoginU2F(ctx, l.LoginID)
	if err != nil {
		return err
	}
	say("touch -> %s (%s)", v.Result, v.Method)
	if v.Result != "ok" {
		return fmt.Errorf("demo expected the key to log in, got %q", v.Result)
	}

	step("Enroll a phone: the simulated modem on a pseudo-terminal, driven by the real serial and AT code")
	const number = "+447911123456"
	if err := waitModem(ctx, cl); err != nil {
		return err
	}
	inbox := filepath.Join(cfg.Storage.Dir, daemon.SimInboxName)
	pr, err := cl.EnrollPhone(ctx, user, number, "mobile")
	if err != nil {
		return err
	}
	say("code sent to %s", pr.SentTo)
	code, err = readSimCode(ctx, inbox, number, 1)
	if err != nil {
		return err
	}
	say("the phone shows a %d-digit code", len(code))
	if _, err := cl.ConfirmPhone(ctx, user, pr.FactorID, code); err != nil {
		return err
	}
	say("phone %s confirmed", pr.FactorID)

	step("Log in over SSH with an SMS code (\"I left my authenticator app at home\")")
	l, err = cl.Login(ctx, wire.LoginRequest{User: user, Service: "sshd", RHost: "192.0.2.10"})
	if err != nil {
		return err
	}
	say("POST /v1/login -> %s, methods %v, default %s", l.Decision, l.Methods, l.Default)
	sent, err := cl.LoginSMS(ctx, l.LoginID, "")
	if err != nil {
		return err
	}
	say("POST /v1/login/{id}/sms -> code sent to %s, valid %ds", sent.SentTo, sent.ExpiresIn)
	if code, err = readSimCode(ctx, inbox, number, 2); err != nil {
		return err
	}
	v, err = cl.LoginVerify(ctx, l.LoginID, code, "")
	if err != nil {
		return err
	}
	say("the code from the phone -> %s (%s)", v.Result, v.Method)
	if v.Result != "ok" {
		return fmt.Errorf("demo expected the SMS code to log in, got %q", v.Result)
	}

	step("What the audit log recorded")
	a, err := cl.Audit(ctx, client.AuditQuery{User: user})
	if err != nil {
		return err
	}
	for i := len(a.Events) - 1; i >= 0; i-- {
		ev := a.Events[i]
		say("%s  %-18s %-8s %s %s", ev.Time.Local().Format("15:04:05.000"), ev.Action, ev.Result, ev.Method, ev.Detail)
	}

	cancel()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintln(out, "\ndemo finished: every step behaved as expected")
	return nil
}

// waitModem waits until the simulated modem has registered on its network.
func waitModem(ctx context.Context, cl *client.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		if len(st.Hardware.Modems) > 0 && st.Hardware.Modems[0].State == "ready" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the simulated modem did not become ready: %+v", st.Hardware.Modems)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readSimCode waits for the nth message to number in the simulated phones'
// inbox and returns the code in it.
func readSimCode(ctx context.Context, path, number string, nth int) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		b, _ := os.ReadFile(path)
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m struct{ To, Text string }
			if json.Unmarshal([]byte(line), &m) != nil || m.To != number {
				continue
			}
			if n++; n == nth {
				if code := demoCodeRE.FindString(m.Text); code != "" {
					return code, nil
				}
				return "", fmt.Errorf("no code in the message %q", m.Text)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("message %d to %s did not arrive", nth, number)
}

var demoCodeRE = regexp.MustCompile(`\b\d{6,8}\b`)

// demoLogin runs one login as a login stack does and checks the outcome.
func demoLogin(ctx context.Context, cl *client.Client, say func(string, ...any), user, code, want string) error {
	l, err := cl.Login(ctx, wire.LoginRequest{User: user, Service: "sshd", RHost: "192.0.2.10"})
	if err != nil {
		return err
	}
	say("POST /v1/login -> %s, methods %v, default %s", l.Decision, l.Methods, l.Default)
	v, err := cl.LoginVerify(ctx, l.LoginID, code, "")
	if err != nil {
		return err
	}
	extra := ""
	switch {
	case v.AttemptsLeft != nil:
		extra = fmt.Sprintf(", %d attempts left", *v.AttemptsLeft)
	case v.RecoveryRemaining != nil:
		extra = fmt.Sprintf(", %d recovery codes left", *v.RecoveryRemaining)
	}
	method := ""
	if v.Method != "" {
		method = " (" + v.Method + ")"
	}
	say("%s -> %s%s%s", code, v.Result, method, extra)
	if v.Result != want {
		return fmt.Errorf("demo expected %q for this step, got %q", want, v.Result)
	}
	return nil
}
