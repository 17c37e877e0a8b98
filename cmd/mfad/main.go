// Command mfad is the mfad daemon and its command-line client.
//
// Daemon:
//
//	mfad serve [--config FILE] [--sim]   run the daemon (embedded defaults without --config)
//	mfad check-config [--config FILE]    validate a configuration; HCL diagnostics, exit 1 on errors
//	mfad demo                            run a daemon on a temporary directory and walk through real logins
//	mfad keygen [FILE]                   create the store's encryption key (default /etc/mfad/mfad.key)
//
// Client verbs talk to the daemon's Unix socket: --socket PATH, else
// $MFAD_SOCKET, else /run/mfad/mfad.sock (or, when that does not exist, the
// socket of the embedded defaults for the current user). Every verb accepts
// --json for machine-readable output.
//
//	mfad status
//	mfad user show USER | user delete USER
//	mfad totp enroll USER [--label L] [--no-confirm] | totp confirm USER FACTOR CODE
//	mfad u2f enroll USER [--label L] | u2f list USER
//	mfad recovery-codes generate USER [--no-confirm]
//	mfad verify USER CODE            exit 0 accepted, 1 rejected, 2 error
//	mfad login USER [--service S] [--rhost H]
//	mfad audit [USER] [--action A] [--since T] [--limit N]
//	mfad backup FILE | restore FILE
//	mfad doctor [--config FILE]      checks with fixes; exit 1 when one failed
//
// Configuration: see config.hcl.example; `mfad check-config` prints problems
// with file:line:column. Logging: text lines on stderr (journald captures
// them under systemd), level and format from the `log` block; SIGHUP reloads
// the configuration.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/internal/version"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func main() {
	root := newRoot()
	err := root.Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "mfad:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "mfad:", err)
	os.Exit(1)
}

// globals are the flags every client verb shares.
type globals struct {
	socket string
	json   bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "mfad",
		Short:         "Second-factor daemon for Linux login servers: TOTP, recovery codes, SMS and U2F",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "daemon socket (default $MFAD_SOCKET or "+defaultSocketHelp+")")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "machine-readable JSON output")
	root.AddCommand(
		newServe(), newCheckConfig(), newDemo(), newKeygen(),
		newStatus(g), newUser(g), newTOTP(g), newU2F(g), newRecoveryCodes(g), newVerify(g), newLogin(g),
		newAudit(g), newBackup(g), newRestore(g), newDoctor(g),
		newFactor(g), newDevice(g), newAccountRecovery(g), newBypass(g),
		newPhone(g), newSMS(g), newSim(),
	)
	return root
}
