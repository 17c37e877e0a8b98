package modem

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Outcome is what is known about a message after a send attempt.
type Outcome int

const (
	// Unknown means the message may or may not have gone out: the modem
	// took it (the message body was written to the port) but no final
	// result came back in time, or the send was abandoned while waiting for
	// it. Sending it again may deliver it twice. It is the zero value, so a
	// Result that was never filled in is never mistaken for a safe failure.
	Unknown Outcome = iota
	// Sent means the modem answered +CMGS with a message reference for
	// every part: the network accepted the message.
	Sent
	// Failed means the message was certainly not sent (in whole; see
	// Result.Refs for parts that were): nothing reached the modem, or the
	// modem or network refused it with a final error. It is safe to retry.
	Failed
)

// String returns "unknown", "sent" or "failed".
func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Failed:
		return "failed"
	default:
		return "unknown"
	}
}

// MarshalText encodes the outcome as its String form.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Errors that callers branch on. Errors returned by this package wrap at
// most one of these; test with errors.Is.
var (
	// ErrUnknownOutcome accompanies every Unknown outcome: the message may
	// have been sent. Do not retry it without recording that it may arrive
	// twice.
	ErrUnknownOutcome = errors.New("sms outcome unknown")
	// ErrNotReady means the modem is not ready to send (it is starting,
	// initialising, waiting for the network, down or closed). Nothing was
	// sent.
	ErrNotReady = errors.New("modem not ready")
	// ErrNoModem means no modem of a Pool was ready to send before the
	// message's deadline. Nothing was sent by the attempt that reports it.
	ErrNoModem = errors.New("no modem available")
	// ErrRateLimited means the modem's rate limit would be exceeded. Nothing
	// was sent.
	ErrRateLimited = errors.New("modem rate limit reached")
	// ErrTimeout means the modem did not answer a command in time. Combined
	// with Failed, the modem never asked for the message body; combined
	// with Unknown, it had the body but gave no result.
	ErrTimeout = errors.New("modem did not answer in time")
	// ErrRejected means the modem or the network refused the message with a
	// final error (+CMS ERROR or ERROR). The underlying error carries the
	// code. Nothing was sent for that part.
	ErrRejected = errors.New("message rejected")
	// ErrInvalidNumber means the recipient is not an E.164 number. No modem
	// will take it; do not retry.
	ErrInvalidNumber = errors.New("invalid phone number")
	// ErrMessageTooLong means the text needs more parts than the modem's
	// MaxParts allows. Do not retry.
	ErrMessageTooLong = errors.New("message too long")
	// ErrNotEncodable means this modem cannot carry the text: a modem in
	// text mode takes only a single part of plain ASCII letters, digits and
	// common punctuation. A modem in PDU mode may still take it.
	ErrNotEncodable = errors.New("text not encodable in this modem's mode")
	// ErrInvalidMessage means the text is empty, not valid UTF-8 or holds
	// control characters other than line breaks. Do not retry.
	ErrInvalidMessage = errors.New("invalid message text")
	// ErrClosed means the Modem or Pool was closed.
	ErrClosed = errors.New("modem closed")
)

// permanent reports whether err is a property of the message itself, so
// that no modem will send it and retrying is pointless.
func permanent(err error) bool {
	return errors.Is(err, ErrInvalidNumber) || errors.Is(err, ErrMessageTooLong) ||
		errors.Is(err, ErrInvalidMessage)
}

// cmsError is a +CMS ERROR (message service failure, 3GPP TS 27.005
// §3.2.5) or a plain ERROR to an SMS command. It unwraps to ErrRejected.
type cmsError struct {
	code int    // -1 for a plain ERROR or a textual code
	text string // as reported when not numeric
}

func (e *cmsError) Error() string {
	switch {
	case e.code >= 0:
		if d := cmsText[e.code]; d != "" {
			return fmt.Sprintf("+cms error %d (%s)", e.code, d)
		}
		return fmt.Sprintf("+cms error %d", e.code)
	case e.text != "":
		return fmt.Sprintf("+cms error %q", e.text)
	default:
		return "error"
	}
}

func (e *cmsError) Unwrap() error { return ErrRejected }

// cmeError is a +CME ERROR (mobile equipment failure, 3GPP TS 27.007
// §9.2) to a non-SMS command.
type cmeError struct {
	code int
	text string
}

func (e *cmeError) Error() string {
	switch {
	case e.code >= 0:
		if d := cmeText[e.code]; d != "" {
			return fmt.Sprintf("+cme error %d (%s)", e.code, d)
		}
		return fmt.Sprintf("+cme error %d", e.code)
	case e.text != "":
		return fmt.Sprintf("+cme error %q", e.text)
	default:
		return "error"
	}
}

// newCMSError parses the value of a +CMS ERROR line as the at package
// reports it (numeric or textual).
func newCMSError(v string) *cmsError {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return &cmsError{code: n}
	}
	return &cmsError{code: -1, text: clip(v, 60)}
}

func newCMEError(v string) *cmeError {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		return &cmeError{code: n}
	}
	return &cmeError{code: -1, text: clip(v, 60)}
}

// cmeCode returns the numeric +CME ERROR code in err, or -1.
func cmeCode(err error) int {
	var e *cmeError
	if errors.As(err, &e) {
		return e.code
	}
	return -1
}

// clip shortens s to at most n bytes of printable ASCII, so that a modem's
// free text cannot flood a log line.
func clip(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r > 0x7e {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// A few common codes, for readable logs (3GPP TS 27.005 §3.2.5 and
// 24.011 annex E; 3GPP TS 27.007 §9.2).
var cmsText = map[int]string{
	1:   "unassigned number",
	8:   "operator determined barring",
	10:  "call barred",
	21:  "short message transfer rejected",
	27:  "destination out of service",
	28:  "unidentified subscriber",
	29:  "facility rejected",
	30:  "unknown subscriber",
	38:  "network out of order",
	41:  "temporary failure",
	42:  "congestion",
	47:  "resources unavailable",
	50:  "facility not subscribed",
	69:  "facility not implemented",
	96:  "invalid mandatory information",
	111: "protocol error",
	300: "me failure",
	302: "operation not allowed",
	303: "operation not supported",
	304: "invalid pdu mode parameter",
	305: "invalid text mode parameter",
	310: "sim not inserted",
	311: "sim pin required",
	313: "sim failure",
	314: "sim busy",
	316: "sim puk required",
	320: "memory failure",
	322: "memory full",
	330: "smsc address unknown",
	331: "no network service",
	332: "network timeout",
	500: "unknown error",
}

var cmeText = map[int]string{
	3:   "operation not allowed",
	4:   "operation not supported",
	5:   "ph-sim pin required",
	10:  "sim not inserted",
	11:  "sim pin required",
	12:  "sim puk required",
	13:  "sim failure",
	14:  "sim busy",
	15:  "sim wrong",
	16:  "incorrect password",
	17:  "sim pin2 required",
	18:  "sim puk2 required",
	30:  "no network service",
	31:  "network timeout",
	100: "unknown",
}

// Codes used in decisions.
const (
	cmeSIMNotInserted = 10
	cmeSIMPUK         = 12
	cmeSIMBusy        = 14
	cmeWrongPassword  = 16
)
