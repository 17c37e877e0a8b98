package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/sim"
)

func newPhone(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "phone", Short: "Enroll, confirm and remove phones for SMS codes"}
	var label string
	add := &cobra.Command{
		Use:   "add USER NUMBER",
		Short: "Add a phone (international form, +44...); a confirmation code is sent to it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().EnrollPhone(c, args[0], args[1], label)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), r, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "code sent to %s (phone %s, valid %ds); confirm with: mfad phone confirm %s CODE\n",
					r.SentTo, r.FactorID, r.ExpiresIn, args[0])
			})
		},
	}
	add.Flags().StringVar(&label, "label", "", "a name for this phone, e.g. \"work mobile\"")
	confirm := &cobra.Command{
		Use:   "confirm USER CODE [PHONE]",
		Short: "Confirm a pending phone with the code it received (PHONE is needed when several are pending)",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			cl := g.client()
			id := ""
			if len(args) == 3 {
				id = args[2]
			} else {
				u, err := cl.User(c, args[0])
				if err != nil {
					return err
				}
				for _, f := range u.Factors {
					if f.Type == "sms" && f.Status == "pending" {
						if id != "" {
							return &exitError{code: 2, err: fmt.Errorf("several phones are pending; name one: mfad phone confirm %s CODE PHONE", args[0])}
						}
						id = f.ID
					}
				}
				if id == "" {
					return &exitError{code: 2, err: fmt.Errorf("%s has no pending phone; add one with: mfad phone add %s NUMBER", args[0], args[0])}
				}
			}
			res, err := cl.ConfirmPhone(c, args[0], id, args[1])
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "phone %s is active\n", id)
				printNewRecoveryCodes(cmd.OutOrStdout(), res.RecoveryCodes)
			})
		},
	}
	remove := newRemoveFactor(g, "remove USER PHONE", "phone",
		"Remove a phone (users need a current code of a factor; admins do not, and the user's phones are told)")
	cmd.AddCommand(add, confirm, remove)
	return cmd
}

func newSMS(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sms", Short: "Operator's SMS tools"}
	var text string
	test := &cobra.Command{
		Use:   "test NUMBER",
		Short: "Send a test message now through the modems and report what happened (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().SMSTest(c, args[0], text)
			if err != nil {
				return err
			}
			if err := g.output(cmd.OutOrStdout(), r, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s via %s (%d parts, %d attempts)", r.Outcome, r.Modem, r.Parts, r.Attempts)
				if r.Error != "" {
					fmt.Fprintf(cmd.OutOrStdout(), ": %s", r.Error)
				}
				fmt.Fprintln(cmd.OutOrStdout())
			}); err != nil {
				return err
			}
			if r.Outcome != "sent" {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	test.Flags().StringVar(&text, "text", "", "message text (default: a short test message)")
	cmd.AddCommand(test)
	return cmd
}

func newSim() *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Simulated hardware for trying mfad without devices"}
	var link, pin string
	var delay int
	mdm := &cobra.Command{
		Use:   "modem",
		Short: "Run a simulated GSM modem on a pseudo-terminal; prints its device path, then every message it sends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := sim.NewModem(sim.ModemOptions{PIN: pin, Link: link, DeliveryReports: true, SendDelay: msec(delay)})
			if err != nil {
				return err
			}
			defer m.Close()
			fmt.Fprintln(cmd.OutOrStdout(), m.Path())
			fmt.Fprintf(cmd.ErrOrStderr(), "simulated modem on %s; use it with: modem \"sim\" { device = %q }\n", m.Path(), m.Path())
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			seen := 0
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
				case <-tick.C:
				}
				inbox := m.Inbox()
				for _, s := range inbox[min(seen, len(inbox)):] {
					fmt.Fprintf(cmd.OutOrStdout(), "%s to %s (%d parts, %s): %s\n", s.Time.Format("15:04:05"), s.To, s.Parts, s.Encoding, s.Text)
				}
				seen = len(inbox)
				if ctx.Err() != nil {
					return nil
				}
			}
		},
	}
	mdm.Flags().StringVar(&link, "link", "", "also keep a symbolic link at this path pointing at the device (like /dev/serial/by-id)")
	mdm.Flags().StringVar(&pin, "pin", "", "SIM PIN the modem asks for (default: none)")
	mdm.Flags().IntVar(&delay, "send-delay-ms", 0, "how long each send takes, in milliseconds (real modems: 5000-10000)")
	cmd.AddCommand(mdm)
	return cmd
}

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }
