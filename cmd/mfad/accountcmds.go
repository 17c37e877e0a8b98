package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
)

// weaken runs fn, an action that weakens user's account. A caller that is
// not an admin must prove a second factor first: with --code the proof is
// fetched at once, otherwise the daemon's reauth_required answer makes the
// command ask for a code and try again.
func weaken(cmd *cobra.Command, g *globals, c context.Context, user, code string, fn func(*client.Client) error) error {
	cl := g.client()
	if code == "" {
		err := fn(cl)
		if !client.IsCode(err, wire.CodeReauthRequired) {
			return err
		}
		if code, err = newPrompter(cmd).ask("This change weakens the account. Enter a current code (authenticator app, SMS or recovery code): "); err != nil {
			return err
		}
	}
	v, err := cl.Reauth(c, user, code)
	if err != nil {
		return err
	}
	if v.Proof == "" {
		return &exitError{code: 1, err: fmt.Errorf("second factor not accepted: %s", v.Message)}
	}
	return fn(cl.WithProof(v.Proof))
}

func newFactor(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "factor", Short: "Remove a user's factor"}
	cmd.AddCommand(newRemoveFactor(g, "remove USER FACTOR", "factor",
		"Remove one factor (users need a current code of another factor; admins do not, and are audited)"))
	return cmd
}

// newRemoveFactor is the verb that removes one factor (what names it in
// the output), asking self callers for a fresh second-factor code.
func newRemoveFactor(g *globals, use, what, short string) *cobra.Command {
	var code string
	remove := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			err := weaken(cmd, g, c, args[0], code, func(cl *client.Client) error { return cl.DeleteFactor(c, args[0], args[1]) })
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), wire.ConfirmResponse{Result: "ok"}, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s removed\n", what, args[1])
			})
		},
	}
	remove.Flags().StringVar(&code, "code", "", "a current second-factor code, proving it is you")
	return remove
}

func newDevice(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "device", Short: "List or revoke remembered devices"}
	list := &cobra.Command{
		Use:   "list USER",
		Short: "List the user's remember-device tokens",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			ds, err := g.client().Devices(c, args[0])
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), ds, func() {
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tNETWORK\tSERVICE\tRHOST\tPOLICY\tCREATED\tEXPIRES\tLAST USED")
				for _, d := range ds.Devices {
					last := "never"
					if d.LastUsed != nil {
						last = d.LastUsed.Local().Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, orAny(d.Network), d.Service, d.RHost, d.Policy,
						d.Created.Local().Format(time.RFC3339), d.Expires.Local().Format(time.RFC3339), last)
				}
				w.Flush()
			})
		},
	}
	var all bool
	revoke := &cobra.Command{
		Use:   "revoke USER [ID]",
		Short: "Revoke one remembered device, or all with --all",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 2 {
				id = args[1]
			}
			if (id == "") != all {
				return &exitError{code: 2, err: fmt.Errorf("give a device ID or --all")}
			}
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().RevokeDevices(c, args[0], id)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), r, func() { fmt.Fprintf(cmd.OutOrStdout(), "%d device(s) revoked\n", r.Revoked) })
		},
	}
	revoke.Flags().BoolVar(&all, "all", false, "revoke every remembered device of the user")
	cmd.AddCommand(list, revoke)
	return cmd
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

func printRecoveryRequest(out io.Writer, r *wire.RecoveryRequest) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "request\t%s (user %s)\n", r.ID, r.User)
	fmt.Fprintf(w, "status\t%s\n", r.Status)
	fmt.Fprintf(w, "action\t%s\n", r.Action)
	fmt.Fprintf(w, "reason\t%s\n", r.Reason)
	fmt.Fprintf(w, "opened\t%s\n", r.Opened.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "takes effect\t%s\n", r.EffectiveAt.Local().Format(time.RFC3339))
	if r.Closed != nil {
		fmt.Fprintf(w, "closed\t%s %s\n", r.Closed.Local().Format(time.RFC3339), r.ClosedHow)
	}
	if r.Notified != nil {
		fmt.Fprintf(w, "phones told\t%d\n", *r.Notified)
	}
	w.Flush()
}

func newAccountRecovery(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "recovery", Short: "Time-locked account recovery for users who lost every factor"}
	var reason string
	open := &cobra.Command{
		Use:   "open USER --reason TEXT",
		Short: "Open a recovery request; it takes effect after account_recovery.delay unless cancelled (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().OpenRecoveryRequest(c, args[0], reason)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), r, func() { printRecoveryRequest(cmd.OutOrStdout(), r) })
		},
	}
	open.Flags().StringVar(&reason, "reason", "", "why (ticket number, how the identity was checked); audited")
	_ = open.MarkFlagRequired("reason")
	status := &cobra.Command{
		Use:   "status USER",
		Short: "Show the user's latest recovery request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().RecoveryRequest(c, args[0])
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), r, func() { printRecoveryRequest(cmd.OutOrStdout(), r) })
		},
	}
	var code string
	cancelCmd := &cobra.Command{
		Use:   "cancel USER [--code CODE]",
		Short: "Cancel the user's open recovery request (users give the cancel code sent to their phones)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := g.client().CancelRecoveryRequest(c, args[0], code)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), r, func() { printRecoveryRequest(cmd.OutOrStdout(), r) })
		},
	}
	cancelCmd.Flags().StringVar(&code, "code", "", "the cancel code from the notice")
	cmd.AddCommand(open, status, cancelCmd)
	return cmd
}

func newBypass(g *globals) *cobra.Command {
	var dur time.Duration
	var reason string
	var end bool
	cmd := &cobra.Command{
		Use:   "bypass USER --for 48h --reason TEXT | bypass USER --end",
		Short: "Turn a user's second factor off for a bounded time, or end that early (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			if end {
				if err := g.client().EndBypass(c, args[0]); err != nil {
					return err
				}
				return g.output(cmd.OutOrStdout(), wire.ConfirmResponse{Result: "ok"}, func() {
					fmt.Fprintf(cmd.OutOrStdout(), "bypass for %s ended\n", args[0])
				})
			}
			if dur <= 0 || reason == "" {
				return &exitError{code: 2, err: fmt.Errorf("give --for (e.g. 48h) and --reason, or --end")}
			}
			b, err := g.client().GrantBypass(c, args[0], dur, reason)
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), b, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s logs in without a second factor until %s\n", args[0], b.Until.Local().Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().DurationVar(&dur, "for", 0, "how long, e.g. 48h (at most account_recovery.max_bypass)")
	cmd.Flags().StringVar(&reason, "reason", "", "why; audited")
	cmd.Flags().BoolVar(&end, "end", false, "end the user's bypass now")
	return cmd
}
