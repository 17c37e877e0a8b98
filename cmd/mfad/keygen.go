package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mfad/mfad/store"
)

func newKeygen() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen [FILE]",
		Short: "Create a new store encryption key file (default /etc/mfad/mfad.key), mode 0600",
		Long: `Create the store's master key: 32 random bytes, hex encoded, in a new file
with mode 0600 (an existing file is never overwritten). The systemd unit
passes /etc/mfad/mfad.key to the daemon as the credential mfad.key. Back the
key up apart from the database: without it neither the store nor a backup
can be read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/etc/mfad/mfad.key"
			if len(args) == 1 {
				path = args[0]
			}
			if _, err := store.CreateKey(path, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s\n", path)
			return nil
		},
	}
}
