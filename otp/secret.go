package otp

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// SecretLen is the length of seeds made by NewSecret (160 bits, as
// recommended by RFC 4226).
const SecretLen = 20

// MinSecretLen is the shortest seed ParseBase32 and Verify accept (128 bits,
// the RFC 4226 minimum).
const MinSecretLen = 16

// ErrBadSecret is wrapped by errors about seeds that do not parse or are too
// short to use.
var ErrBadSecret = errors.New("invalid otp secret")

// redacted replaces secret values in every printed or logged form.
const redacted = "[redacted]"

// b32 is RFC 4648 base32 without padding.
func b32() *base32.Encoding { return base32.StdEncoding.WithPadding(base32.NoPadding) }

// Secret is a TOTP seed. Its printed forms are redacted: String, LogValue
// and Format (every fmt verb, including %#v) yield "[redacted]". JSON
// encoding fails instead of emitting the seed, so it cannot leak through
// structured logs either; to persist a seed store []byte(s) explicitly and
// convert back with Secret(b).
type Secret []byte

// NewSecret reads a new SecretLen-byte seed from r, or from crypto/rand
// when r is nil.
func NewSecret(r io.Reader) (Secret, error) {
	if r == nil {
		r = rand.Reader
	}
	s := make(Secret, SecretLen)
	if _, err := io.ReadFull(r, s); err != nil {
		return nil, fmt.Errorf("generating secret: %w", err)
	}
	return s, nil
}

// Base32 returns the RFC 4648 base32 form of s, upper case and without
// padding, which is what authenticator apps expect.
func (s Secret) Base32() string { return b32().EncodeToString(s) }

// ParseBase32 parses a base32 seed. It ignores case, ASCII spaces and
// trailing '=' padding, rejects non-canonical encodings (impossible lengths,
// non-zero trailing bits) and seeds shorter than MinSecretLen bytes.
// Errors wrap ErrBadSecret and never echo the input.
func ParseBase32(text string) (Secret, error) {
	text = strings.ToUpper(strings.ReplaceAll(text, " ", ""))
	text = strings.TrimRight(text, "=")
	s, err := b32().DecodeString(text)
	// The decoder tolerates impossible lengths and stray trailing bits;
	// insist on the canonical form so a mistyped seed is not half-accepted.
	if err != nil || b32().EncodeToString(s) != text {
		return nil, fmt.Errorf("%w: not valid base32", ErrBadSecret)
	}
	if len(s) < MinSecretLen {
		return nil, fmt.Errorf("%w: shorter than %d bytes", ErrBadSecret, MinSecretLen)
	}
	return s, nil
}

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// LogValue implements slog.LogValuer and returns "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format implements fmt.Formatter so that no verb prints the seed bytes.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON always fails so that a seed never ends up in JSON output.
func (Secret) MarshalJSON() ([]byte, error) {
	return nil, errors.New("otp secret is not JSON-encodable; store its bytes explicitly")
}
