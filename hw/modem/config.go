package modem

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config describes one modem. The zero value of every field selects the
// documented default; Validate reports every problem at once.
type Config struct {
	// Name identifies the modem in logs, statuses and results. Letters,
	// digits, '.', '_' and '-'; required.
	Name string
	// Device is the modem's serial port, an absolute path. Prefer the
	// stable /dev/serial/by-id/usb-<vendor>_<product>_<serial>-if<NN>-port0
	// link: a USB modem that drops off the bus and comes back often returns
	// as another /dev/ttyUSBn, and the by-id link follows it. Multi-port
	// sticks expose several interfaces; the AT port is usually if00, if02
	// or if03 (see the vendor's documentation). Required.
	Device string
	// Baud is the port speed. USB modems ignore it. Default 115200.
	Baud int
	// PINFile names a file holding the SIM PIN (4 to 8 digits, surrounding
	// whitespace ignored). It must be a regular file that neither group nor
	// others can access (mode 0600 or 0400), like an ssh private key. Empty
	// when the SIM has no PIN. The PIN is read on every initialisation and
	// never logged; a PIN the SIM rejects is not tried again until the
	// file's content changes, so the SIM cannot be locked by retries.
	PINFile string
	// Mode is "pdu" (default) or "text". PDU mode sends any text: GSM 7-bit
	// with the extension table where it fits, UCS-2 otherwise, concatenated
	// over several parts when long. Text mode is a fallback for modems
	// whose PDU mode is broken: it sends a single part of plain ASCII
	// letters, digits and common punctuation and refuses anything else
	// with ErrNotEncodable.
	Mode string
	// InitCommands are sent, in order and without the "AT" prefix, after
	// the escape that aborts any half-typed command and before the SIM
	// check. Each must succeed. Nil selects DefaultInitCommands; an empty
	// non-nil slice sends none. Never put +CFUN=1,1 here: it reboots many
	// USB sticks, some into their mass-storage mode.
	InitCommands []string
	// NotifyCommand asks the modem to deliver status reports as +CDS
	// unsolicited result codes. Only sent when StatusReports is set.
	// Default "+CNMI=2,1,0,1,0". If the modem refuses it, status reports
	// are turned off for that modem (and logged) instead of failing.
	NotifyCommand string
	// CommandTimeout bounds every command but the final result of +CMGS,
	// including the wait for the "> " prompt of +CMGS: a modem that does
	// not prompt within it is taken as wedged. Default 10s.
	CommandTimeout time.Duration
	// SendTimeout bounds the wait for the final result of each +CMGS after
	// the message body was written. Real modems take 5-10 s and sometimes
	// much longer; when it expires the outcome is Unknown. Default 60s.
	SendTimeout time.Duration
	// RegisterTimeout bounds the wait for network registration (home or
	// roaming) during initialisation. Default 2m.
	RegisterTimeout time.Duration
	// HealthInterval is the time between health checks of an idle modem
	// (signal and registration). Default 30s.
	HealthInterval time.Duration
	// ReopenBackoff is the first pause before the device is opened and
	// initialised again after a failure; it doubles on every further
	// failure up to ReopenBackoffMax. Defaults 1s and 1m.
	ReopenBackoff, ReopenBackoffMax time.Duration
	// RatePerMinute limits the message parts sent in any 60 s window. A
	// message with more parts than the limit is still sent when the window
	// is empty. 0 means no limit.
	RatePerMinute int
	// MaxParts limits the parts of one message. Default 6.
	MaxParts int
	// StatusReports requests an SMS-STATUS-REPORT for every part and
	// reports it through OnDelivery.
	StatusReports bool
	// SMSC overrides the SIM's service centre number (E.164). Empty keeps
	// the SIM's.
	SMSC string

	// The fields below are set by the program, not by the configuration
	// file.

	// OnDelivery receives every status report (+CDS) the modem delivers.
	// It is called from one goroutine per modem, in order; a slow handler
	// delays later reports only (64 are buffered, further ones are
	// dropped and logged). Nil drops them.
	OnDelivery func(DeliveryReport)
	// Trace, when set, receives a line for every line read from and
	// written to the port ("r: OK", "w: AT+CSQ"), with PINs, phone numbers
	// and message bodies replaced by placeholders. For debugging and
	// measurements.
	Trace io.Writer
	// Clock is the time source for rate limits, backoff and health checks.
	// Nil uses the system clock. I/O deadlines always use the system clock.
	Clock Clock
	// Rand seeds the concatenation reference of long messages. Nil uses
	// crypto/rand.
	Rand io.Reader
}

// DefaultInitCommands reset the modem to its stored profile, turn command
// echo off and ask for numeric +CME/+CMS error codes.
var DefaultInitCommands = []string{"Z", "E0", "+CMEE=1"}

const defaultNotifyCommand = "+CNMI=2,1,0,1,0"

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Baud == 0 {
		c.Baud = 115200
	}
	if c.Mode == "" {
		c.Mode = "pdu"
	}
	if c.InitCommands == nil {
		c.InitCommands = slices.Clone(DefaultInitCommands)
	}
	if c.NotifyCommand == "" {
		c.NotifyCommand = defaultNotifyCommand
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.CommandTimeout, 10*time.Second)
	def(&c.SendTimeout, 60*time.Second)
	def(&c.RegisterTimeout, 2*time.Minute)
	def(&c.HealthInterval, 30*time.Second)
	def(&c.ReopenBackoff, time.Second)
	def(&c.ReopenBackoffMax, time.Minute)
	if c.ReopenBackoffMax < c.ReopenBackoff {
		c.ReopenBackoffMax = c.ReopenBackoff
	}
	if c.MaxParts == 0 {
		c.MaxParts = 6
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	return c
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	commandRE = regexp.MustCompile(`^[A-Za-z0-9+&%#$^*=?,;:"'()/._ -]{1,128}$`)
	cfunReset = regexp.MustCompile(`(?i)^\+CFUN=1,1\b`)
)

// baudRates are the speeds tarm/serial accepts on Linux.
var baudRates = map[int]bool{
	50: true, 75: true, 110: true, 134: true, 150: true, 200: true, 300: true,
	600: true, 1200: true, 1800: true, 2400: true, 4800: true, 9600: true,
	19200: true, 38400: true, 57600: true, 115200: true, 230400: true,
	460800: true, 500000: true, 576000: true, 921600: true, 1000000: true,
	1152000: true, 1500000: true, 2000000: true, 2500000: true, 3000000: true,
	3500000: true, 4000000: true,
}

// Validate returns every problem with c, joined, each naming the field and
// the offending value (never the PIN). It does not touch the device or the
// PIN file.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("modem %q: %s: %s", c.Name, field, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(c.Name) {
		bad("name", "must be 1 to 64 letters, digits, '.', '_' or '-'")
	}
	if !strings.HasPrefix(c.Device, "/") {
		bad("device", "%q is not an absolute path", c.Device)
	}
	if c.Baud != 0 && !baudRates[c.Baud] {
		bad("baud", "%d is not a supported speed", c.Baud)
	}
	switch c.Mode {
	case "", "pdu", "text":
	default:
		bad("mode", "%q is not \"pdu\" or \"text\"", c.Mode)
	}
	checkCmd := func(field, cmd string) {
		switch {
		case !commandRE.MatchString(cmd):
			bad(field, "%q is not a plain AT command (1 to 128 characters, no control characters)", cmd)
		case strings.HasPrefix(strings.ToUpper(cmd), "AT"):
			bad(field, "%q: leave out the \"AT\" prefix", cmd)
		case cfunReset.MatchString(strings.ReplaceAll(cmd, " ", "")):
			bad(field, "%q reboots the modem (some USB sticks into mass-storage mode); refused", cmd)
		}
	}
	for _, cmd := range c.InitCommands {
		checkCmd("init_commands", cmd)
	}
	if c.NotifyCommand != "" {
		checkCmd("notify_command", c.NotifyCommand)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"command_timeout", c.CommandTimeout}, {"send_timeout", c.SendTimeout},
		{"register_timeout", c.RegisterTimeout}, {"health_interval", c.HealthInterval},
		{"reopen_backoff", c.ReopenBackoff}, {"reopen_backoff_max", c.ReopenBackoffMax},
	} {
		if d.v < 0 {
			bad(d.field, "%v is negative", d.v)
		}
	}
	if c.RatePerMinute < 0 {
		bad("rate_limit", "%d is negative", c.RatePerMinute)
	}
	if c.MaxParts < 0 || c.MaxParts > 255 {
		bad("max_parts", "%d is not between 1 and 255", c.MaxParts)
	}
	if c.SMSC != "" {
		if _, err := NormalizeE164(c.SMSC); err != nil {
			bad("smsc", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// errPINFile marks a problem with the PIN file; such errors never hold the
// PIN.
var errPINFile = errors.New("pin file unusable")

// readPIN reads and checks the PIN file. It returns the PIN and a digest
// of it, which the caller keeps to recognise a PIN the SIM rejected.
func readPIN(path string) (pin string, digest [32]byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", digest, fmt.Errorf("%w: %v", errPINFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", digest, fmt.Errorf("%w: %v", errPINFile, err)
	}
	if !fi.Mode().IsRegular() {
		return "", digest, fmt.Errorf("%w: %s is not a regular file", errPINFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", digest, fmt.Errorf("%w: %s is accessible by group or others (mode %04o); chmod 600 it", errPINFile, path, perm)
	}
	buf, err := io.ReadAll(io.LimitReader(f, 65))
	if err != nil {
		return "", digest, fmt.Errorf("%w: reading %s: %v", errPINFile, path, err)
	}
	pin = strings.TrimSpace(string(buf))
	if len(buf) > 64 || len(pin) < 4 || len(pin) > 8 || strings.Trim(pin, "0123456789") != "" {
		return "", digest, fmt.Errorf("%w: %s does not hold a PIN of 4 to 8 digits", errPINFile, path)
	}
	return pin, sha256.Sum256([]byte(pin)), nil
}
