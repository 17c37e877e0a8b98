package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/daemon"
	"github.com/mfad/mfad/internal/logging"
	"github.com/mfad/mfad/internal/version"
)

// loadConfig reads path, or returns the embedded defaults when path is "".
// Diagnostics are written to stderr.
func loadConfig(path string, env config.Env) (*config.Config, error) {
	if path == "" {
		return config.Default(env), nil
	}
	cfg, files, diags := config.LoadFile(path, env)
	if len(diags) > 0 {
		_ = config.WriteDiagnostics(os.Stderr, files, diags)
	}
	if diags.HasErrors() {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s: %d error(s) in configuration", path, countErrors(diags))}
	}
	return cfg, nil
}

func countErrors(d hcl.Diagnostics) int {
	n := 0
	for _, x := range d {
		if x.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

func newLogger(c *config.Config) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(c.Log.Level)
	// Under systemd, stderr is the journal's stream: write structured
	// entries to the journal instead.
	return slog.New(logging.New(logging.Choose(c.Log.Format), os.Stderr, lv)), lv
}

func newServe() *cobra.Command {
	var path string
	var sim bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon",
		Long: `Run the daemon on the socket and store from the configuration. Without
--config it runs on the embedded defaults: for root /run/mfad/mfad.sock and
/var/lib/mfad; for other users $XDG_RUNTIME_DIR/mfad and ~/.local/state/mfad;
under systemd $RUNTIME_DIRECTORY and $STATE_DIRECTORY. SIGHUP reloads the
configuration; SIGTERM drains in-flight requests and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := config.EnvFromOS()
			cfg, err := loadConfig(path, env)
			if err != nil {
				return err
			}
			log, lv := newLogger(cfg)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			reload := make(chan struct{}, 1)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default:
					}
				}
			}()
			err = daemon.Run(ctx, daemon.Options{
				Config: cfg, ConfigPath: path, Env: env, Simulated: sim,
				Log: log, Level: lv, Version: version.String(), Reload: reload,
			})
			if err != nil {
				log.Error("daemon stopped", "err", err)
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "HCL configuration file (default: embedded defaults)")
	cmd.Flags().BoolVar(&sim, "sim", false, "use the simulated hardware from package sim (no modem or key needed)")
	return cmd
}

func newCheckConfig() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config [FILE]",
		Short: "Validate a configuration file; exit 1 with diagnostics on errors",
		Long: `Validate a configuration file (given as argument or with --config) and exit 0,
or print every problem as an HCL diagnostic (FILE:LINE:COLUMN, the offending
snippet and how to fix it) and exit 1. Without a file it shows where the
embedded defaults would put the socket and the state.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if path != "" {
					return &exitError{code: 2, err: fmt.Errorf("give the file either as --config or as argument, not both")}
				}
				path = args[0]
			}
			if path == "" {
				cfg := config.Default(config.EnvFromOS())
				fmt.Fprintf(cmd.OutOrStdout(), "no configuration file given: mfad serve would run on the embedded defaults (socket %s, state %s)\n",
					cfg.Server.Socket, cfg.Storage.Dir)
				return nil
			}
			if _, err := loadConfig(path, config.EnvFromOS()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration is valid\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "", "HCL configuration file")
	return cmd
}
