package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/internal/daemon"
	"github.com/mfad/mfad/internal/doctor"
)

func newDoctor(g *globals) *cobra.Command {
	var path string
	var noKeys bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration, daemon, store, key file, clock and security keys; say how to fix problems",
		Long: `Check what mfad depends on and print one line per check: the configuration,
whether the daemon answers, the store, the encryption key file's permissions,
whether the system clock is synchronised (TOTP depends on it), and whether
plugged security keys can be opened. Exit 0 when nothing failed (warnings
included), 1 when a check failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := config.EnvFromOS()
			cfg, err := loadConfig(path, env)
			if err != nil {
				return err
			}
			source := "the embedded defaults"
			if path != "" {
				source = path
			}
			keyPath, _ := daemon.KeyPath(cfg, os.Getenv("CREDENTIALS_DIRECTORY"))
			in := doctor.Inputs{Config: cfg, ConfigSource: source, KeyPath: keyPath, Client: g.client()}
			if !noKeys {
				in.Keys = u2f.HID{}
			}
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			checks := doctor.Run(c, in)
			out := cmd.OutOrStdout()
			if err := g.output(out, checks, func() {
				w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				for _, ch := range checks {
					fmt.Fprintf(w, "%s\t%s\t%s\n", ch.Status, ch.Name, ch.Detail)
					if ch.Fix != "" {
						fmt.Fprintf(w, "\t\tfix: %s\n", ch.Fix)
					}
				}
				w.Flush()
			}); err != nil {
				return err
			}
			if doctor.Worst(checks) == doctor.Fail {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "the daemon's configuration file (default: embedded defaults)")
	cmd.Flags().BoolVar(&noKeys, "no-keys", false, "skip looking for security keys on this machine")
	return cmd
}
