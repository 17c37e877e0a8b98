package modem

import (
	"fmt"
	"log/slog"
	"strings"
)

// NormalizeE164 returns number in E.164 form: "+" followed by 6 to 15
// digits, the first not 0. Spaces, hyphens, dots and parentheses are
// dropped, and an international prefix "00" is taken for "+". A national
// number (no "+" or "00") is refused with ErrInvalidNumber: the PDU encoder
// marks every number international, so guessing a country would send the
// code to a stranger. The error never repeats the number.
func NormalizeE164(number string) (string, error) {
	var b strings.Builder
	b.Grow(len(number))
	for _, r := range number {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && b.Len() == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("%w: unexpected character", ErrInvalidNumber)
		}
	}
	s := b.String()
	switch {
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	case strings.HasPrefix(s, "00"):
		s = s[2:]
	default:
		return "", fmt.Errorf("%w: not in international form (+ and country code)", ErrInvalidNumber)
	}
	if len(s) < 6 || len(s) > 15 {
		return "", fmt.Errorf("%w: %d digits, want 6 to 15", ErrInvalidNumber, len(s))
	}
	if s[0] == '0' {
		return "", fmt.Errorf("%w: country code cannot start with 0", ErrInvalidNumber)
	}
	return "+" + s, nil
}

// phone is a recipient number that logs only its first three and last two
// characters ("+49…67"), so a log never holds a full phone number.
type phone string

// LogValue implements slog.LogValuer.
func (p phone) LogValue() slog.Value { return slog.StringValue(p.String()) }

// String returns the masked number.
func (p phone) String() string {
	if len(p) <= 5 {
		return strings.Repeat("*", len(p))
	}
	return string(p[:3]) + strings.Repeat("*", len(p)-5) + string(p[len(p)-2:])
}
