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
	"github.com/mfad/mfad/api/wire"
	"os"
	"strings"
	"syscall"
	"time"

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
	for _, m := range in.Config.Modems {
		checks = append(checks, modemDevice(m)...)
	}
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
	for _, m := range st.Hardware.Modems {
		out = append(out, modemCheck(m))
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

// modemCheck judges a modem from the daemon's status, with a fix for each
// way it fails.
func modemCheck(m wire.Modem) Check {
	name := "modem " + m.Name
	info := fmt.Sprintf("%s %s on %s; SIM %s; network %s %s; signal %d dBm; sent %d, failed %d, delivered %d",
		m.Manufacturer, m.Model, m.Device, orUnknown(m.SIM), orUnknown(m.Registration), m.Operator, m.SignalDBm, m.Sent, m.Failed, m.Delivered)
	if m.State == "ready" {
		if m.SignalDBm != 0 && m.SignalDBm < -105 {
			return Check{Name: name, Status: Warn, Detail: "ready, but the signal is weak: " + info,
				Fix: "move the modem or fit an external antenna; below about -110 dBm sends fail"}
		}
		return Check{Name: name, Status: OK, Detail: "ready: " + info}
	}
	c := Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%s since %s: %s", m.State, m.Since.Local().Format(time.RFC3339), m.Error)}
	lower := strings.ToLower(m.Error + " " + m.SIM)
	switch {
	case m.State == "starting" || m.State == "initialising" || m.State == "registering":
		c.Status = Warn
		c.Fix = "wait a minute: the modem is starting up; if it stays here, check the SIM and the antenna"
		if m.State == "registering" {
			c.Fix = "the modem waits for a network: check the antenna, the coverage and that the SIM's plan is active (registration " + orUnknown(m.Registration) + ")"
		}
	case strings.Contains(lower, "permission denied"):
		c.Fix = "give the daemon's user access to the tty: install packaging/udev/70-mfad.rules (or add the user to the dialout group) and replug the modem"
	case strings.Contains(lower, "no such file") || strings.Contains(lower, "not exist"):
		c.Fix = "the device is gone: check the cable, and use the stable /dev/serial/by-id/ link in modem.device (ls -l /dev/serial/by-id/)"
	case strings.Contains(lower, "pin rejected") || strings.Contains(lower, "puk"):
		c.Fix = "the SIM refused the PIN in modem.pin_file; correct the file (the daemon will not try a rejected PIN again), or unblock the SIM with its PUK in a phone"
	case strings.Contains(lower, "pin"):
		c.Fix = "the SIM needs a PIN: put it alone in a file readable only by the daemon (chmod 600) and name it with modem.pin_file"
	case strings.Contains(lower, "absent") || strings.Contains(lower, "not inserted"):
		c.Fix = "insert a SIM card and restart the modem (replug it)"
	case strings.Contains(lower, "denied"):
		c.Fix = "the network refused the SIM: check that its plan is active and allows SMS"
	case strings.Contains(lower, "timeout") || strings.Contains(lower, "did not answer"):
		c.Fix = "the modem stopped answering: check that modem.device is its AT port (often if02 or if03 of a multi-port stick) and replug it"
	default:
		c.Fix = "check the modem with mfad status, the daemon's log (journalctl -u mfad) and modem.device / modem.init_commands"
	}
	return c
}

// modemDevice checks, from this machine, the device and PIN file of a
// configured modem.
func modemDevice(m config.Modem) []Check {
	name := "modem " + m.Name + " device"
	var out []Check
	fi, err := os.Stat(m.Device)
	switch {
	case err != nil:
		out = append(out, Check{Name: name, Status: Fail, Detail: err.Error(),
			Fix: "plug the modem in, and point modem.device at its stable link (ls -l /dev/serial/by-id/)"})
	case fi.Mode()&os.ModeCharDevice == 0:
		out = append(out, Check{Name: name, Status: Fail, Detail: m.Device + " is not a character device",
			Fix: "modem.device must name the modem's serial port, e.g. /dev/serial/by-id/usb-...-if02-port0"})
	default:
		f, err := os.OpenFile(m.Device, os.O_RDWR|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
		if err != nil {
			out = append(out, Check{Name: name, Status: Warn, Detail: "cannot open it as this user: " + err.Error(),
				Fix: "fine if the daemon runs as another user with access (the mfad user through the udev rules); otherwise install packaging/udev/70-mfad.rules"})
		} else {
			f.Close()
			out = append(out, Check{Name: name, Status: OK, Detail: m.Device + " can be opened"})
		}
	}
	if m.PINFile != "" {
		fi, err := os.Stat(m.PINFile)
		switch {
		case err != nil:
			out = append(out, Check{Name: "modem " + m.Name + " pin file", Status: Warn, Detail: err.Error(),
				Fix: "create it (chmod 600) with the SIM PIN alone on one line, or remove modem.pin_file if the SIM has no PIN"})
		case fi.Mode().Perm()&0o077 != 0:
			out = append(out, Check{Name: "modem " + m.Name + " pin file", Status: Fail, Detail: fmt.Sprintf("%s has mode %04o", m.PINFile, fi.Mode().Perm()),
				Fix: "chmod 600 " + m.PINFile})
		}
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
