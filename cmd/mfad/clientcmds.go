package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/daemon"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/store"
)

const defaultSocketHelp = client.DefaultSocket

// socketPath resolves the socket: flag, $MFAD_SOCKET, the system socket, or
// the socket of the embedded defaults for this user.
func (g *globals) socketPath() string {
	if g.socket != "" {
		return g.socket
	}
	if s := os.Getenv("MFAD_SOCKET"); s != "" {
		return s
	}
	if _, err := os.Stat(client.DefaultSocket); err == nil {
		return client.DefaultSocket
	}
	return config.Default(config.EnvFromOS()).Server.Socket
}

func (g *globals) client() *client.Client { return client.New(g.socketPath()) }

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// output prints v as JSON with --json, else calls human.
func (g *globals) output(w io.Writer, v any, human func()) error {
	if g.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human()
	return nil
}

// prompter reads answers from stdin.
type prompter struct {
	in  *bufio.Reader
	out io.Writer
}

func newPrompter(cmd *cobra.Command) *prompter {
	return &prompter{in: bufio.NewReader(cmd.InOrStdin()), out: cmd.ErrOrStderr()}
}

func (p *prompter) ask(prompt string) (string, error) {
	fmt.Fprint(p.out, prompt)
	line, err := p.in.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("no answer (end of input)")
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func newStatus(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cancel := ctx()
			defer cancel()
			st, err := g.client().Status(c)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), st, func() {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintf(w, "version\t%s\n", st.Version)
				fmt.Fprintf(w, "socket\t%s\n", g.socketPath())
				fmt.Fprintf(w, "up since\t%s (%s)\n", st.StartedAt.Local().Format(time.RFC3339), time.Duration(st.UptimeS)*time.Second)
				fmt.Fprintf(w, "you\tuid %d (%s), roles %s\n", st.Caller.UID, st.Caller.User, strings.Join(st.Caller.Roles, ", "))
				if st.Store != nil {
					fmt.Fprintf(w, "store\t%s, schema %d, %d bytes LSM + %d bytes value log\n", st.Store.Dir, st.Store.Schema, st.Store.LSMBytes, st.Store.VlogBytes)
				}
				hw := "real devices"
				if st.Hardware.Simulated {
					hw = "simulated"
				}
				fmt.Fprintf(w, "hardware\t%s\n", hw)
				if len(st.Hardware.U2FKeys) == 0 {
					fmt.Fprintf(w, "u2f keys\tnone plugged in\n")
				}
				for _, k := range st.Hardware.U2FKeys {
					fmt.Fprintf(w, "u2f key\t%s (%s)\n", k.Path, k.Name)
				}
				if st.Hardware.U2FError != "" {
					fmt.Fprintf(w, "u2f problem\t%s\n", st.Hardware.U2FError)
				}
				if len(st.Hardware.Modems) == 0 {
					fmt.Fprintf(w, "modems\tnone configured (no SMS)\n")
				}
				for _, m := range st.Hardware.Modems {
					fmt.Fprintf(w, "modem %s\t%s on %s since %s", m.Name, m.State, m.Device, m.Since.Local().Format(time.RFC3339))
					if m.Error != "" {
						fmt.Fprintf(w, " (%s)", m.Error)
					}
					fmt.Fprintln(w)
					if m.Model != "" || m.SIM != "" {
						fmt.Fprintf(w, "\t%s %s %s; SIM %s; network %s %s; signal %d dBm; %s mode, delivery reports %v\n",
							m.Manufacturer, m.Model, m.Revision, m.SIM, m.Registration, m.Operator, m.SignalDBm, m.Mode, m.StatusReports)
					}
					fmt.Fprintf(w, "\tsent %d, failed %d, unknown %d, delivered %d\n", m.Sent, m.Failed, m.Unknown, m.Delivered)
				}
				w.Flush()
			})
		},
	}
}

func newUser(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Show, delete, unlock or set preferences of a user"}
	var code string
	cmd.AddCommand(&cobra.Command{
		Use:   "show USER",
		Short: "Show a user's factors, recovery codes and lockout state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			u, err := g.client().User(c, args[0])
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), u, func() { printUser(cmd.OutOrStdout(), u) })
		},
	}, &cobra.Command{
		Use:   "delete USER",
		Short: "Delete a user and all their factors, turning the second factor off (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			err := weaken(cmd, g, c, args[0], code, func(cl *client.Client) error { return cl.DeleteUser(c, args[0]) })
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), map[string]string{"result": "ok", "user": args[0]}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
			})
		},
	}, &cobra.Command{
		Use:   "unlock USER",
		Short: "Clear the user's failed attempts and lockout (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			if err := g.client().Unlock(c, args[0]); err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), wire.ConfirmResponse{Result: "ok"}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s unlocked\n", args[0])
			})
		},
	}, &cobra.Command{
		Use:   "prefer USER METHOD",
		Short: "Set the method offered first at login (u2f, totp, sms, recovery; \"\" for the strongest)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			p := wire.Preferences{DefaultMethod: args[1]}
			if err := g.client().SetPreferences(c, args[0], p); err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), p, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: default method %q\n", args[0], args[1])
			})
		},
	})
	cmd.PersistentFlags().StringVar(&code, "code", "", "delete: a current second-factor code, proving it is you (not needed by admins)")
	return cmd
}

func printUser(out io.Writer, u *wire.User) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "user\t%s (since %s)\n", u.User, u.Created.Local().Format(time.RFC3339))
	if len(u.Factors) == 0 {
		fmt.Fprintf(w, "factors\tnone\n")
	}
	for _, f := range u.Factors {
		label := ""
		if f.Label != "" {
			label = " " + f.Label
		}
		fmt.Fprintf(w, "factor %s\t%s%s, %s, %s\n", f.ID, f.Type, label, f.Status, lastUsed(f))
	}
	if u.Recovery != nil {
		fmt.Fprintf(w, "recovery codes\t%d of %d left (set of %s)\n", u.Recovery.Remaining, u.Recovery.Total, u.Recovery.Created.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "recovery codes\tnone; generate a set with: mfad recovery-codes generate %s\n", u.User)
	}
	if u.LockedUntil != nil {
		fmt.Fprintf(w, "locked until\t%s\n", u.LockedUntil.Local().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "recent failures\t%d\n", u.Failures)
	}
	w.Flush()
}

// lastUsed describes when a factor was last used.
func lastUsed(f wire.Factor) string {
	if f.LastUsed == nil {
		return "never used"
	}
	return "last used " + f.LastUsed.Local().Format(time.RFC3339)
}

func newTOTP(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "totp", Short: "Enroll an authenticator app (TOTP)"}
	var noConfirm bool
	var label string
	enroll := &cobra.Command{
		Use:   "enroll USER",
		Short: "Enroll an authenticator app: shows a QR code, then asks for the first code",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			user := args[0]
			c, cancel := ctx()
			defer cancel()
			cl := g.client()
			e, err := cl.EnrollTOTP(c, user, label)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if noConfirm {
				return g.output(out, map[string]string{"factor_id": e.FactorID, "secret": e.Secret, "otpauth_uri": e.OTPAuthURI}, func() {
					fmt.Fprintf(out, "factor %s is pending; confirm it with: mfad totp confirm %s %s CODE\n", e.FactorID, user, e.FactorID)
					fmt.Fprintf(out, "secret: %s\nuri: %s\n", e.Secret, e.OTPAuthURI)
				})
			}
			if g.json {
				return &exitError{code: 2, err: errors.New("--json needs --no-confirm for totp enroll (the confirmation is interactive)")}
			}
			fmt.Fprintln(out, "Scan this QR code with your authenticator app:")
			qrterminal.GenerateWithConfig(e.OTPAuthURI, qrterminal.Config{
				Level: qrterminal.L, Writer: out, HalfBlocks: true, QuietZone: 2,
				BlackChar: qrterminal.BLACK_BLACK, WhiteChar: qrterminal.WHITE_WHITE,
				BlackWhiteChar: qrterminal.BLACK_WHITE, WhiteBlackChar: qrterminal.WHITE_BLACK,
			})
			fmt.Fprintf(out, "or enter the key by hand: %s\n(%s)\n\n", e.Secret, e.OTPAuthURI)
			p := newPrompter(cmd)
			for attempt := 1; ; attempt++ {
				code, err := p.ask("Enter the code your app shows: ")
				if err != nil {
					return fmt.Errorf("factor %s left pending: %w", e.FactorID, err)
				}
				var res *wire.ConfirmResponse
				res, err = cl.ConfirmTOTP(c, user, e.FactorID, code)
				if err == nil {
					fmt.Fprintf(out, "Authenticator app enrolled (factor %s).\n", e.FactorID)
					printNewRecoveryCodes(out, res.RecoveryCodes)
					return nil
				}
				if !client.IsCode(err, wire.CodeCodeRejected) || attempt == 3 {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), err)
			}
		},
	}
	enroll.Flags().BoolVar(&noConfirm, "no-confirm", false, "do not ask for the first code; leave the factor pending")
	enroll.Flags().StringVar(&label, "label", "", "a name for this authenticator, e.g. \"phone\"")
	confirm := &cobra.Command{
		Use:   "confirm USER FACTOR CODE",
		Short: "Activate a pending TOTP factor with its first code",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			res, err := g.client().ConfirmTOTP(c, args[0], args[1], args[2])
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "factor %s is active\n", args[1])
				printNewRecoveryCodes(cmd.OutOrStdout(), res.RecoveryCodes)
			})
		},
	}
	cmd.AddCommand(enroll, confirm)
	return cmd
}

func newU2F(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "u2f", Short: "Enroll and list U2F security keys"}
	var label string
	enroll := &cobra.Command{
		Use:   "enroll USER",
		Short: "Enroll the security key plugged into this machine (touch it when it blinks)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			if !g.json {
				fmt.Fprintln(cmd.ErrOrStderr(), "Touch your security key...")
			}
			f, err := g.client().EnrollU2F(c, args[0], label)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), f, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "security key enrolled (factor %s)\n", f.ID)
				printNewRecoveryCodes(cmd.OutOrStdout(), f.RecoveryCodes)
			})
		},
	}
	enroll.Flags().StringVar(&label, "label", "", "a name for this key, e.g. \"blue yubikey\"")
	list := &cobra.Command{
		Use:   "list USER",
		Short: "List a user's security keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			u, err := g.client().User(c, args[0])
			if err != nil {
				return err
			}
			keys := []wire.Factor{}
			for _, f := range u.Factors {
				if f.Type == "u2f" {
					keys = append(keys, f)
				}
			}
			return g.output(cmd.OutOrStdout(), keys, func() {
				if len(keys) == 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "%s has no security keys\n", args[0])
				}
				for _, f := range keys {
					fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\tenrolled %s, %s\n", f.ID, f.Label, f.Created.Local().Format(time.RFC3339), lastUsed(f))
				}
			})
		},
	}
	cmd.AddCommand(enroll, list)
	return cmd
}

func newRecoveryCodes(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "recovery-codes", Short: "Manage one-time recovery codes"}
	var noConfirm bool
	var code string
	gen := &cobra.Command{
		Use:   "generate USER",
		Short: "Generate a new set of recovery codes (the old set stops working)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			var rc *wire.RecoveryCodesResponse
			err := weaken(cmd, g, c, args[0], code, func(cl *client.Client) error {
				var err error
				rc, err = cl.GenerateRecoveryCodes(c, args[0])
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return g.output(out, rc, nil)
			}
			fmt.Fprintf(out, "Recovery codes for %s (each works once; the previous set no longer works):\n\n", args[0])
			for _, code := range rc.Codes {
				fmt.Fprintf(out, "    %s\n", code)
			}
			fmt.Fprintln(out, "\nStore them somewhere safe, away from this computer.")
			if noConfirm {
				return nil
			}
			// Make the user prove they saved the set; the code stays valid.
			p := newPrompter(cmd)
			for {
				ans, err := p.ask("To confirm you saved them, type any one of the codes: ")
				if err != nil {
					return fmt.Errorf("the new codes are active, but you did not confirm saving them: %w", err)
				}
				if savedCode(ans, rc.Codes) {
					fmt.Fprintln(out, "Thanks, that code matches. (It is still valid.)")
					return nil
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "That is not one of the codes above; check what you saved.")
			}
		},
	}
	gen.Flags().BoolVar(&noConfirm, "no-confirm", false, "do not ask to type a code back")
	gen.Flags().StringVar(&code, "code", "", "replacing a set: a current second-factor code, proving it is you (not needed by admins)")
	cmd.AddCommand(gen)
	return cmd
}

// printNewRecoveryCodes shows the recovery codes generated when a user's
// first factor was enabled.
func printNewRecoveryCodes(out io.Writer, codes []string) {
	if len(codes) == 0 {
		return
	}
	fmt.Fprintln(out, "\nYour second factor is on. These recovery codes get you in if you lose it; each works once:")
	fmt.Fprintln(out)
	for _, c := range codes {
		fmt.Fprintf(out, "    %s\n", c)
	}
	fmt.Fprintln(out, "\nStore them somewhere safe, away from this computer.")
}

func savedCode(answer string, codes []string) bool {
	a, ok := recovery.Normalize(answer)
	if !ok {
		return false
	}
	for _, c := range codes {
		if n, _ := recovery.Normalize(c); n == a {
			return true
		}
	}
	return false
}

func newVerify(g *globals) *cobra.Command {
	var service, rhost, method string
	cmd := &cobra.Command{
		Use:   "verify USER CODE",
		Short: "Check a code for a user (exit 0 accepted, 1 rejected, 2 error)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			v, err := g.client().Verify(c, wire.VerifyRequest{User: args[0], Code: args[1], Method: method, Service: service, RHost: rhost})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if err := g.output(cmd.OutOrStdout(), v, func() { printVerification(cmd.OutOrStdout(), v) }); err != nil {
				return &exitError{code: 2, err: err}
			}
			if v.Result != "ok" {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&service, "service", "mfad-cli", "service recorded in the audit log")
	cmd.Flags().StringVar(&rhost, "rhost", "", "remote host recorded in the audit log")
	cmd.Flags().StringVar(&method, "method", "", "totp or recovery (default: by the code's shape)")
	return cmd
}

func printVerification(out io.Writer, v *wire.VerifyResponse) {
	switch v.Result {
	case "ok":
		fmt.Fprintf(out, "accepted (%s)\n", v.Method)
		if v.RecoveryRemaining != nil {
			fmt.Fprintf(out, "%d recovery codes left\n", *v.RecoveryRemaining)
		}
		if v.RememberToken != "" {
			fmt.Fprintf(out, "remember-device token (pass it with --device-token next time): %s\n", v.RememberToken)
		}
	case "locked":
		fmt.Fprintf(out, "locked: too many failed attempts; retry in %ds\n", deref(v.RetryAfter))
	default:
		if v.AttemptsLeft == nil {
			fmt.Fprintf(out, "rejected: %s\n", v.Message)
			return
		}
		fmt.Fprintf(out, "rejected: %s (%d attempts left)\n", v.Message, deref(v.AttemptsLeft))
	}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func newLogin(g *globals) *cobra.Command {
	var service, rhost, tty, deviceToken string
	var remember bool
	cmd := &cobra.Command{
		Use:   "login USER",
		Short: "Run the login flow a login stack runs (prompts for codes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			cl := g.client()
			l, err := cl.Login(c, wire.LoginRequest{User: args[0], Service: service, RHost: rhost, TTY: tty, DeviceToken: deviceToken})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(cmd.ErrOrStderr(), "decision: %s (methods: %s; %s)\n", l.Decision, strings.Join(l.Methods, ", "), l.Reason)
			for _, m := range l.Messages {
				fmt.Fprintln(cmd.ErrOrStderr(), m)
			}
			switch l.Decision {
			case "allow":
				return g.output(out, l, func() {})
			case "deny":
				return &exitError{code: 1, err: fmt.Errorf("login denied: %s", l.Reason)}
			}
			if l.Default == "u2f" {
				fmt.Fprintln(cmd.ErrOrStderr(), "Touch your security key...")
				v, err := cl.LoginU2F(c, l.LoginID)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if v.Result != "fail" || !g.json {
					_ = g.output(out, v, func() { printVerification(out, v) })
				}
				switch {
				case v.Result == "ok":
					return nil
				case v.Result == "locked":
					return &exitError{code: 1}
				case len(l.Methods) == 1:
					return &exitError{code: 1}
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "Falling back to a code.")
			}
			p := newPrompter(cmd)
			hasSMS := slices.Contains(l.Methods, "sms")
			sendSMS := func() error {
				r, err := cl.LoginSMS(c, l.LoginID, "")
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Code sent to %s (valid %d minutes).\n", r.SentTo, (r.ExpiresIn+59)/60)
				return nil
			}
			if l.Default == "sms" {
				if err := sendSMS(); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
				}
			}
			for {
				code, err := p.ask(codePrompt(l))
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if hasSMS && (code == "" || strings.EqualFold(code, "sms")) {
					if err := sendSMS(); err != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), err)
					}
					continue
				}
				v, err := cl.LoginVerifyRequest(c, l.LoginID, wire.VerifyRequest{Code: code, Remember: remember && l.Remember})
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				for _, m := range v.Messages {
					fmt.Fprintln(cmd.ErrOrStderr(), m)
				}
				if v.Result != "fail" || !g.json {
					// With --json only the final answer is printed.
					_ = g.output(out, v, func() { printVerification(out, v) })
				} else {
					fmt.Fprintln(cmd.ErrOrStderr(), v.Message)
				}
				switch v.Result {
				case "ok":
					return nil
				case "locked":
					return &exitError{code: 1}
				}
			}
		},
	}
	cmd.Flags().StringVar(&service, "service", "mfad-cli", "PAM-style service name")
	cmd.Flags().StringVar(&rhost, "rhost", "", "remote host (empty for a local login)")
	cmd.Flags().StringVar(&tty, "tty", "", "terminal")
	cmd.Flags().StringVar(&deviceToken, "device-token", "", "a remember-device token from an earlier login")
	cmd.Flags().BoolVar(&remember, "remember", false, "ask for a remember-device token (when the policy issues them)")
	return cmd
}

// codePrompt is the prompt for a code, also after a U2F step.
func codePrompt(l *wire.LoginResponse) string {
	if l.Default != "u2f" {
		return l.Prompt
	}
	if slices.Contains(l.Methods, "sms") {
		return "Verification code (authenticator app, SMS or recovery code; press Enter to get a code by SMS): "
	}
	return "Verification code (authenticator app or recovery code): "
}

func newAudit(g *globals) *cobra.Command {
	var action, since, until string
	var limit int
	var jsonl bool
	cmd := &cobra.Command{
		Use:   "audit [USER]",
		Short: "Show audit events, newest first (query by user, action and time; --jsonl exports JSON lines)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := client.AuditQuery{Action: action, Limit: limit}
			if len(args) == 1 {
				q.User = args[0]
			}
			for _, f := range []struct {
				name, value string
				dst         *time.Time
			}{{"--since", since, &q.Since}, {"--until", until, &q.Until}} {
				if f.value == "" {
					continue
				}
				if d, err := time.ParseDuration(f.value); err == nil {
					*f.dst = time.Now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, f.value); err == nil {
					*f.dst = t
				} else {
					return &exitError{code: 2, err: fmt.Errorf("%s %q: give a duration ago such as 24h or an RFC 3339 time", f.name, f.value)}
				}
			}
			c, cancel := ctx()
			defer cancel()
			a, err := g.client().Audit(c, q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonl {
				enc := json.NewEncoder(out)
				for _, e := range a.Events {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			return g.output(out, a, func() {
				w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "TIME\tUSER\tACTION\tRESULT\tMETHOD\tUID\tSERVICE\tRHOST\tDETAIL")
				for _, e := range a.Events {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Time.Local().Format(time.RFC3339), e.User, e.Action,
						e.Result, e.Method, e.CallerUID, e.Service, e.RHost, e.Detail)
				}
				w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&action, "action", "", "only this action (verify, login, factor.delete, recovery_request.open, bypass.grant, ...)")
	cmd.Flags().StringVar(&since, "since", "", "only events since a duration ago (24h) or a time (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "only events before a duration ago (1h) or a time (RFC 3339)")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many events")
	cmd.Flags().BoolVar(&jsonl, "jsonl", false, "export as JSON lines, one event per line")
	return cmd
}

func newBackup(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write an encrypted backup of the store to FILE (admin; restore needs the same key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			c, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			if err := g.client().Backup(c, f); err != nil {
				f.Close()
				return err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(f.Name(), path); err != nil {
				return err
			}
			fi, _ := os.Stat(path)
			return g.output(cmd.OutOrStdout(), map[string]any{"result": "ok", "file": path, "bytes": fi.Size()}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes)\n", path, fi.Size())
			})
		},
	}
}

func newRestore(g *globals) *cobra.Command {
	var yes, offline bool
	var configPath string
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the store's content with a backup (admin)",
		Long: `Replace the store's content with a backup. The running daemon validates the
whole backup before it touches live data. With --offline the daemon must be
stopped: the store named by --config (or the embedded defaults) is restored
directly, which also repairs a store whose restore was interrupted by a
crash (the daemon then refuses to start until a restore completes).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			if offline {
				cfg, err := loadConfig(configPath, config.EnvFromOS())
				if err != nil {
					return err
				}
				keyPath, _ := daemon.KeyPath(cfg, os.Getenv("CREDENTIALS_DIRECTORY"))
				key, err := store.LoadKey(keyPath)
				if err != nil {
					return err
				}
				if err := store.RestoreDir(store.Options{Dir: daemon.DBDir(cfg), MasterKey: key}, f); err != nil {
					return err
				}
				return g.output(cmd.OutOrStdout(), map[string]string{"result": "ok", "file": args[0], "store": daemon.DBDir(cfg)}, func() {
					fmt.Fprintf(cmd.OutOrStdout(), "restored %s from %s\n", daemon.DBDir(cfg), args[0])
				})
			}
			if !yes && term.IsTerminal(int(os.Stdin.Fd())) {
				ans, err := newPrompter(cmd).ask("This replaces ALL data in the running daemon with the backup. Type yes to continue: ")
				if err != nil || ans != "yes" {
					return &exitError{code: 1, err: errors.New("restore cancelled")}
				}
			}
			c, cancel := context.WithTimeout(context.Background(), time.Hour)
			defer cancel()
			if err := g.client().Restore(c, f); err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), map[string]string{"result": "ok", "file": args[0]}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "restored from %s\n", args[0])
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&offline, "offline", false, "restore the store directly while the daemon is stopped")
	cmd.Flags().StringVar(&configPath, "config", "", "with --offline: the daemon's configuration file")
	return cmd
}
