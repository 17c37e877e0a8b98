package modem

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"unicode/utf8"

	"github.com/warthog618/sms"
	"github.com/warthog618/sms/encoding/tpdu"

	// The sms module's character tables must be built before any
	// goroutine encodes or decodes (a data race in sms v0.3.0).
	_ "github.com/mfad/mfad/internal/gsmtables"
)

// encoder turns texts into the parts one modem sends. It keeps one
// sms.Encoder per modem so that concatenated messages get distinct
// references (gsm.SendLongMessage always uses reference 1, and a phone
// merges parts of two messages with the same reference from one sender).
// It is safe for concurrent use.
type encoder struct {
	enc      *sms.Encoder
	maxParts int
}

// refCounter is a tpdu.Counter starting at a random value, so references
// do not restart at 1 when the daemon restarts.
type refCounter struct{ n atomic.Int64 }

func (c *refCounter) Count() int { return int(c.n.Add(1)) }

func newEncoder(r io.Reader, maxParts int) *encoder {
	if r == nil {
		r = rand.Reader
	}
	var seed [2]byte
	_, _ = io.ReadFull(r, seed[:]) // a zero seed is still correct, only less spread
	concat, mr := &refCounter{}, &refCounter{}
	concat.n.Store(int64(binary.BigEndian.Uint16(seed[:]) % 256))
	e := sms.NewEncoder(sms.AsSubmit)
	e.ConcatRef = concat
	e.MsgCount = mr
	return &encoder{enc: e, maxParts: maxParts}
}

// srr sets TP-SRR (status report request) in the SMS-SUBMIT template.
type srr struct{}

func (srr) ApplyTPDUOption(t *tpdu.TPDU) error {
	t.FirstOctet |= tpdu.FoSRR
	return nil
}

// pdus encodes text for E.164 number to in PDU mode: GSM 7-bit default
// alphabet with its extension table when every character fits (national
// language tables are not used, as many phones lack them), UCS-2
// otherwise, split into concatenated parts with 8-bit references.
func (e *encoder) pdus(to, text string, statusReport bool) ([][]byte, error) {
	if err := checkText(text); err != nil {
		return nil, err
	}
	opts := []sms.EncoderOption{sms.To(to)}
	if statusReport {
		opts = append(opts, sms.WithTemplateOption(srr{}))
	}
	tps, err := e.enc.Encode([]byte(text), opts...)
	if err != nil {
		return nil, fmt.Errorf("encoding message: %v", err)
	}
	if len(tps) > e.maxParts {
		return nil, fmt.Errorf("%w: %d parts, at most %d", ErrMessageTooLong, len(tps), e.maxParts)
	}
	out := make([][]byte, 0, len(tps))
	for i := range tps {
		b, err := tps[i].MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encoding message part %d: %v", i+1, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// checkText refuses texts no modem should send: empty, not UTF-8, or
// with control characters other than line breaks (an ESC, for one, would
// be sent as the GSM escape and arrive as a space).
func checkText(text string) error {
	switch {
	case text == "":
		return fmt.Errorf("%w: empty", ErrInvalidMessage)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidMessage)
	}
	for _, r := range text {
		if (r < 0x20 && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f) {
			return fmt.Errorf("%w: control character %U", ErrInvalidMessage, r)
		}
	}
	return nil
}

// textModeMax is the most characters a single text-mode part carries.
const textModeMax = 160

// checkTextMode reports whether text can be sent in text mode on any
// modem: one part of characters that are the same in ASCII (what the
// at package writes) and in the GSM 7-bit default alphabet (what the modem
// sends when its character set is "GSM"), so the result does not depend on
// the modem's +CSCS. That excludes @ $ _ ` [ \ ] ^ { | } ~ and line breaks.
func checkTextMode(text string) error {
	if err := checkText(text); err != nil {
		return err
	}
	if len(text) > textModeMax {
		return fmt.Errorf("%w: text mode sends at most %d characters", ErrNotEncodable, textModeMax)
	}
	for _, r := range text {
		if !textModeSafe(r) {
			return fmt.Errorf("%w: text mode cannot send %U", ErrNotEncodable, r)
		}
	}
	return nil
}

func textModeSafe(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	switch r {
	case ' ', '!', '"', '#', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
		':', ';', '<', '=', '>', '?':
		return true
	}
	return false
}
