// Package doctor runs mfad's operator checks: is the configuration valid,
// does the daemon answer, is the store healthy, is the key file private, is
// the system clock synchronised (TOTP depends on it), and can security keys
// be opened. Each check says what is wrong and how to fix it.
//
// Checks only read; none changes the system.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/store"
)

// Status of one check.
type Status string

// Statuses, in increasing severity.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Inputs are what the checks look at.
type Inputs struct {
	// Config is the configuration in force (file or embedded defaults).
	Config *config.Config
	// ConfigSource describes where Config came from.
	ConfigSource string
	// KeyPath is where the daemon reads its key.
	KeyPath string
	// Client talks to the daemon.
	Client *client.Client
	// Keys lists plugged security keys; nil skips that check.
	Keys u2f.Source
	// ClockState reads the kernel's clock discipline; nil means adjtimex.
	ClockState func() (synced bool, maxErrorMicros int64, err error)
}

// Run runs every check.
func Run(ctx context.Context, in Inputs) []Check {
	checks := []Check{{Name: "config", Status: OK, Detail: "valid: " + in.ConfigSource}}
	checks = append(checks, daemon(ctx, in)...)
	checks = append(checks, keyFile(in.KeyPath), clock(in.ClockState))
	if in.Keys != nil {
		checks = append(checks, keys(in.Keys))
	}
	return checks
}

// Worst returns the most severe status of checks.
func Worst(checks []Check) Status {
	worst := OK
	for _, c := range checks {
		switch {
		case c.Status == Fail:
			return Fail
		case c.Status == Warn:
			worst = Warn
		}
	}
	return worst
}

func daemon(ctx context.Context, in Inputs) []Check {
	st, err := in.Client.Status(ctx)
	if err != nil {
		return []Check{{Name: "daemon", Status: Fail, Detail: err.Error(),
			Fix: "start the daemon (systemctl start mfad, or mfad serve) or point --socket / $MFAD_SOCKET at its socket"}}
	}
	out := []Check{{Name: "daemon", Status: OK, Detail: fmt.Sprintf("version %s answering on %s, up %ds", st.Version, in.Client.Socket(), st.UptimeS)}}
	if st.Store == nil {
		out = append(out, Check{Name: "store", Status: Warn, Detail: "not shown to this caller",
			Fix: "run mfad doctor as root or as a member of server.admin_groups"})
	} else {
		out = append(out, Check{Name: "store", Status: OK, Detail: fmt.Sprintf("%s, schema %d, %d bytes LSM + %d bytes value log",
			st.Store.Dir, st.Store.Schema, st.Store.LSMBytes, st.Store.VlogBytes)})
	}
	if st.Hardware.U2FError != "" {
		out = append(out, Check{Name: "daemon u2f", Status: Warn, Detail: "the daemon cannot open every key: " + st.Hardware.U2FError,
			Fix: "install packaging/udev/70-mfad.rules, run udevadm trigger, and replug the key"})
	}
	return out
}

func keyFile(path string) Check {
	if path == "" {
		return Check{Name: "key file", Status: OK, Detail: "passed by systemd as a credential"}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return Check{Name: "key file", Status: Warn, Detail: path + " does not exist yet",
			Fix: "the daemon creates it on first start with the default location; otherwise run mfad keygen " + path}
	}
	if _, err := store.LoadKey(path); err != nil {
		fix := "check the file holds the 64 hex digits mfad keygen writes"
		if errors.Is(err, store.ErrInsecureKeyFile) {
			fix = "chmod 600 " + path
		}
		if errors.Is(err, os.ErrPermission) {
			return Check{Name: "key file", Status: Warn, Detail: "cannot read " + path + " as this user",
				Fix: "run mfad doctor as root to check the key file"}
		}
		return Check{Name: "key file", Status: Fail, Detail: err.Error(), Fix: fix}
	}
	return Check{Name: "key file", Status: OK, Detail: path + " is private and well-formed"}
}

// adjtimex reads the kernel clock's synchronisation state.
func adjtimex() (bool, int64, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, 0, err
	}
	synced := state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
	return synced, tx.Maxerror, nil
}

func clock(read func() (bool, int64, error)) Check {
	if read == nil {
		read = adjtimex
	}
	synced, maxErr, err := read()
	switch {
	case err != nil:
		return Check{Name: "clock", Status: Warn, Detail: "cannot read the clock's state: " + err.Error()}
	case !synced:
		return Check{Name: "clock", Status: Warn, Detail: "the system clock is not synchronised; TOTP codes are checked against it",
			Fix: "enable time synchronisation: systemctl enable --now systemd-timesyncd (or chrony)"}
	}
	return Check{Name: "clock", Status: OK, Detail: fmt.Sprintf("synchronised (estimated error %d µs)", maxErr)}
}

func keys(src u2f.Source) Check {
	ks, err := src.Keys()
	var names []string
	for _, k := range ks {
		names = append(names, k.Path+" ("+k.Name+")")
		k.Close()
	}
	switch {
	case err != nil:
		return Check{Name: "u2f keys", Status: Warn, Detail: fmt.Sprintf("%d usable; %v", len(ks), err),
			Fix: "install packaging/udev/70-mfad.rules, run udevadm trigger, replug the key, and make sure this user is in group mfad-u2f"}
	case len(ks) == 0:
		return Check{Name: "u2f keys", Status: OK, Detail: "none plugged into this machine"}
	}
	return Check{Name: "u2f keys", Status: OK, Detail: strings.Join(names, ", ")}
}
