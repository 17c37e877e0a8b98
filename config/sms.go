package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// SMS is the sms {} block: one-time codes sent by text message, and the
// limits that keep the modems from being used for SMS pumping.
type SMS struct {
	// CodeLength (code_length) is the number of digits of a code, 6..8.
	// Default 6.
	CodeLength int
	// CodeTTL (code_ttl) is how long a code works, and how long a queued
	// message carrying it may wait for a modem, "1m" .. "30m". Default "10m".
	CodeTTL time.Duration
	// MaxTries (max_tries) wrong entries void a code, 1..10. Default 3.
	MaxTries int
	// Template (template) is the message text: {{code}} (required),
	// {{minutes}} and {{issuer}} (totp.issuer) are replaced; the user name
	// is never put into a message. At most 300 characters.
	Template string
	// PerUserHourly (per_user_hourly), PerNumberHourly (per_number_hourly)
	// and GlobalHourly (global_hourly) cap the messages per clock hour to one
	// user, to one number, and in all, against SMS pumping; refused sends
	// are audited. Defaults 5, 5 and 500.
	PerUserHourly, PerNumberHourly, GlobalHourly int
	// DefaultRegion (default_region) is the ISO 3166 country whose national
	// numbers are accepted without "+", e.g. "GB"; "" (default) requires
	// international numbers.
	DefaultRegion string
}

// Modem is one modem "name" {} block: a GSM modem on a serial port.
type Modem struct {
	// Name is the block label.
	Name string
	// Device (device) is the serial port. Prefer the stable
	// /dev/serial/by-id/... link over /dev/ttyUSBn, which can change when
	// the modem drops off the bus and comes back. Required.
	Device string
	// Baud (baud) is the port speed, 1200..4000000. Default 115200.
	Baud int
	// PINFile (pin_file) names a 0600 file holding the SIM PIN; the PIN
	// itself never goes into this file. "" when the SIM has no PIN.
	PINFile string
	// Mode (mode) is "pdu" (default) or "text" (a fallback for modems
	// whose PDU mode is broken; ASCII only, one part).
	Mode string
	// RateLimit (rate_limit) is the most message parts per minute this
	// modem may send, 0 (no limit) .. 600. Default 20.
	RateLimit int
	// InitCommands (init_commands) are sent, without "AT", after the reset
	// escape; null or unset uses the driver's defaults (Z, E0, +CMEE=1).
	InitCommands []string
	// StatusReports (status_reports) asks the network for delivery
	// reports. Default true.
	StatusReports bool
	// SMSC (smsc) overrides the SIM's service centre (E.164); "" keeps it.
	SMSC string
	// CommandTimeout (command_timeout), SendTimeout (send_timeout) and
	// RegisterTimeout (register_timeout): how long a command, the result of
	// a send, and network registration may take. Defaults "10s", "60s",
	// "2m".
	CommandTimeout, SendTimeout, RegisterTimeout time.Duration
}

// DefaultSMSTemplate is the default message text.
const DefaultSMSTemplate = "{{code}} is your {{issuer}} login code. It expires in {{minutes}} minutes. Do not share it."

type smsBlock struct {
	CodeLength      *hcl.Attribute `hcl:"code_length,attr"`
	CodeTTL         *hcl.Attribute `hcl:"code_ttl,attr"`
	MaxTries        *hcl.Attribute `hcl:"max_tries,attr"`
	Template        *hcl.Attribute `hcl:"template,attr"`
	PerUserHourly   *hcl.Attribute `hcl:"per_user_hourly,attr"`
	PerNumberHourly *hcl.Attribute `hcl:"per_number_hourly,attr"`
	GlobalHourly    *hcl.Attribute `hcl:"global_hourly,attr"`
	DefaultRegion   *hcl.Attribute `hcl:"default_region,attr"`
	DefRange        hcl.Range      `hcl:",def_range"`
}

func (b *smsBlock) defRange() hcl.Range { return b.DefRange }

func (b *smsBlock) apply(c *checker, s *SMS) {
	if n, ok := c.integer(b.CodeLength, "sms.code_length", 6, 8, "a whole number of digits from 6 to 8"); ok {
		s.CodeLength = int(n)
	}
	if d, ok := c.duration(b.CodeTTL, "sms.code_ttl", time.Minute, 30*time.Minute, 0); ok {
		s.CodeTTL = d
	}
	if n, ok := c.integer(b.MaxTries, "sms.max_tries", 1, 10, "a whole number of tries from 1 to 10"); ok {
		s.MaxTries = int(n)
	}
	detail := "sms.template is the message text in quotes, at most 300 characters, with {{code}} where the code goes; {{minutes}} and {{issuer}} are optional. It must not name the user."
	if t, ok := c.str(b.Template, "sms.template", detail); ok {
		switch {
		case len(t) > 300 || !strings.Contains(t, "{{code}}"):
			c.errorf(b.Template.Expr.Range(), detail, "Invalid sms.template")
		case strings.Contains(t, "{{user}}") || strings.Contains(t, "{{name}}"):
			c.errorf(b.Template.Expr.Range(), "Messages must not contain the user name: an SMS can be read on a locked phone's screen. Remove the placeholder.",
				"User name in sms.template")
		default:
			s.Template = t
		}
	}
	for _, f := range []struct {
		a    *hcl.Attribute
		name string
		dst  *int
	}{{b.PerUserHourly, "sms.per_user_hourly", &s.PerUserHourly}, {b.PerNumberHourly, "sms.per_number_hourly", &s.PerNumberHourly}, {b.GlobalHourly, "sms.global_hourly", &s.GlobalHourly}} {
		if n, ok := c.integer(f.a, f.name, 1, 100000, "a whole number of messages per hour from 1 to 100000"); ok {
			*f.dst = int(n)
		}
	}
	regionDetail := "sms.default_region is a two-letter ISO 3166 country code in capitals such as \"GB\", or \"\" to require numbers in international form (+44...)."
	if r, ok := c.str(b.DefaultRegion, "sms.default_region", regionDetail); ok {
		if r != "" && (len(r) != 2 || strings.ToUpper(r) != r || strings.ContainsFunc(r, func(x rune) bool { return x < 'A' || x > 'Z' })) {
			c.errorf(b.DefaultRegion.Expr.Range(), regionDetail, "Invalid sms.default_region %s", quote(r))
		} else {
			s.DefaultRegion = r
		}
	}
}

type modemBlock struct {
	Name            string         `hcl:"name,label"`
	Device          *hcl.Attribute `hcl:"device,attr"`
	Baud            *hcl.Attribute `hcl:"baud,attr"`
	PINFile         *hcl.Attribute `hcl:"pin_file,attr"`
	PIN             *hcl.Attribute `hcl:"pin,attr"`
	Mode            *hcl.Attribute `hcl:"mode,attr"`
	RateLimit       *hcl.Attribute `hcl:"rate_limit,attr"`
	InitCommands    *hcl.Attribute `hcl:"init_commands,attr"`
	StatusReports   *hcl.Attribute `hcl:"status_reports,attr"`
	SMSC            *hcl.Attribute `hcl:"smsc,attr"`
	CommandTimeout  *hcl.Attribute `hcl:"command_timeout,attr"`
	SendTimeout     *hcl.Attribute `hcl:"send_timeout,attr"`
	RegisterTimeout *hcl.Attribute `hcl:"register_timeout,attr"`
	DefRange        hcl.Range      `hcl:",def_range"`
}

// applyModems decodes the modem blocks, checking names and devices.
func applyModems(c *checker, blocks []*modemBlock, base string) []Modem {
	var out []Modem
	seen := map[string]hcl.Range{}
	devices := map[string]string{}
	for _, b := range blocks {
		name := "modem " + quote(b.Name)
		if !validPolicyName(b.Name) {
			c.errorf(b.DefRange, "Modem names are 1 to 64 letters, digits, '-', '_' or '.'.", "Invalid modem name %s", quote(b.Name))
		}
		if first, dup := seen[b.Name]; dup {
			c.errorf(b.DefRange, fmt.Sprintf("Modem names must be unique; the first %s is on line %d.", name, first.Start.Line), "Duplicate %s", name)
		}
		seen[b.Name] = b.DefRange
		m := Modem{Name: b.Name, Baud: 115200, Mode: "pdu", RateLimit: 20, StatusReports: true,
			CommandTimeout: 10 * time.Second, SendTimeout: 60 * time.Second, RegisterTimeout: 2 * time.Minute}
		if b.Device == nil {
			c.errorf(b.DefRange, "Every modem needs device = \"/dev/serial/by-id/...\" (the stable link to its AT port).", "Missing %s.device", name)
		} else if p, ok := c.path(b.Device, name+".device", base, false); ok {
			if other, dup := devices[p]; dup {
				c.errorf(b.Device.Expr.Range(), "Two modems cannot share a serial port; "+other+" uses it already.", "Duplicate device for %s", name)
			}
			devices[p] = name
			m.Device = p
		}
		if b.PIN != nil {
			c.errorf(b.PIN.NameRange, "The SIM PIN never goes into the configuration file. Put it alone in a file readable only by the daemon (mode 0600) and name that file with pin_file.",
				"PIN in the configuration for %s", name)
		}
		if p, ok := c.path(b.PINFile, name+".pin_file", base, true); ok {
			m.PINFile = p
			if p != "" {
				if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
					c.errorf(b.PINFile.Expr.Range(), fmt.Sprintf("The PIN file is readable by others (mode %04o); run chmod 600 %s.", fi.Mode().Perm(), filepath.Clean(p)),
						"Insecure PIN file for %s", name)
				}
			}
		}
		if n, ok := c.integer(b.Baud, name+".baud", 1200, 4000000, "a whole number of bits per second from 1200 to 4000000"); ok {
			m.Baud = int(n)
		}
		if s, ok := c.oneOf(b.Mode, name+".mode", []string{"pdu", "text"}, true, "Use \"text\" only for modems whose PDU mode is broken."); ok {
			m.Mode = s
		}
		if n, ok := c.integer(b.RateLimit, name+".rate_limit", 0, 600, "a whole number of message parts per minute from 0 (no limit) to 600"); ok {
			m.RateLimit = int(n)
		}
		if l, ok := c.strings(b.InitCommands, name+".init_commands", "AT commands without the \"AT\" prefix", validInitCommand); ok {
			m.InitCommands = l
			if m.InitCommands == nil {
				m.InitCommands = []string{}
			}
		}
		if v, ok := c.boolean(b.StatusReports, name+".status_reports"); ok {
			m.StatusReports = v
		}
		smscDetail := name + ".smsc is the service centre number in international form such as \"+447785016005\", or \"\" to keep the SIM's."
		if s, ok := c.str(b.SMSC, name+".smsc", smscDetail); ok {
			if s != "" && !validE164(s) {
				c.errorf(b.SMSC.Expr.Range(), smscDetail, "Invalid %s.smsc %s", name, quote(s))
			} else {
				m.SMSC = s
			}
		}
		if d, ok := c.duration(b.CommandTimeout, name+".command_timeout", time.Second, 2*time.Minute, 0); ok {
			m.CommandTimeout = d
		}
		if d, ok := c.duration(b.SendTimeout, name+".send_timeout", 5*time.Second, 5*time.Minute, 0); ok {
			m.SendTimeout = d
		}
		if d, ok := c.duration(b.RegisterTimeout, name+".register_timeout", 5*time.Second, 30*time.Minute, 0); ok {
			m.RegisterTimeout = d
		}
		out = append(out, m)
	}
	return out
}

// validInitCommand accepts a command without "AT", printable, and refuses
// the reset that turns many USB sticks into mass-storage devices.
func validInitCommand(s string) bool {
	u := strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	return s != "" && len(s) <= 64 && !strings.HasPrefix(u, "AT") && !strings.HasPrefix(u, "+CFUN=1,1") &&
		!strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e })
}

func validE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
