// Package recovery implements one-time recovery codes, the fallback second
// factor for users who lost their authenticator.
//
// A set holds N codes (DefaultCount unless told otherwise), each 64 bits
// from a random source, shown once as 16 lower-case hex digits in groups of
// four ("a1b2-c3d4-e5f6-a7b8"). Only keyed hashes are kept: HMAC-SHA256 under
// a key that lives outside the database, so a stolen database alone does not
// allow offline guessing. Input is normalised before hashing: case does not
// matter and spaces and dashes are ignored.
//
// The package is pure: no I/O, no clock, no global state. Code values and
// Hashers are immutable and safe for concurrent use. A *Set is a plain value
// that the caller loads, mutates with Consume and persists in the same
// transaction; it is not safe for concurrent mutation. Consume only changes
// the Set when it returns a nil error.
//
// Outcomes callers branch on are sentinels: ErrInvalid (no such code), and
// ErrMalformed and ErrUsed, which both satisfy errors.Is(err, ErrInvalid).
// No error message, log value or String form contains a code.
package recovery

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// DefaultCount is the number of codes Generate makes when n is 0.
const DefaultCount = 8

// MaxCount bounds the size of a set.
const MaxCount = 100

// MinKeyLen is the shortest HMAC key NewHasher accepts.
const MinKeyLen = 32

// Outcomes of Consume.
var (
	ErrInvalid         = errors.New("invalid recovery code")
	ErrMalformed error = &invalidError{"malformed recovery code"}
	ErrUsed      error = &invalidError{"recovery code already used"}
)

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

const redacted = "[redacted]"

// Code is a recovery code in display form. Its printed forms are redacted:
// String, LogValue and Format (every fmt verb) yield "[redacted]", and JSON
// encoding fails. Use Reveal to obtain the text when showing it, once, to
// its owner.
type Code string

// Reveal returns the display form, e.g. "a1b2-c3d4-e5f6-a7b8".
func (c Code) Reveal() string { return string(c) }

// String returns "[redacted]".
func (Code) String() string { return redacted }

// LogValue implements slog.LogValuer and returns "[redacted]".
func (Code) LogValue() slog.Value { return slog.StringValue(redacted) }

// Format implements fmt.Formatter so that no verb prints the code.
func (Code) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON always fails so that a code never ends up in JSON output;
// encode Reveal() explicitly where the code must be shown.
func (Code) MarshalJSON() ([]byte, error) {
	return nil, errors.New("recovery code is not JSON-encodable; use Reveal")
}

// Generate returns n new codes read from r, or from crypto/rand when r is
// nil. n = 0 means DefaultCount; n must not exceed MaxCount. It fails if
// the source yields a duplicate code, which only a broken source does.
func Generate(r io.Reader, n int) ([]Code, error) {
	if n == 0 {
		n = DefaultCount
	}
	if n < 0 || n > MaxCount {
		return nil, fmt.Errorf("generating recovery codes: count must be between 1 and %d", MaxCount)
	}
	if r == nil {
		r = rand.Reader
	}
	codes := make([]Code, 0, n)
	seen := make(map[Code]bool, n)
	var raw [8]byte
	for range n {
		if _, err := io.ReadFull(r, raw[:]); err != nil {
			return nil, fmt.Errorf("generating recovery codes: %w", err)
		}
		c := display(hex.EncodeToString(raw[:]))
		if seen[c] {
			return nil, errors.New("generating recovery codes: random source repeated itself")
		}
		seen[c] = true
		codes = append(codes, c)
	}
	return codes, nil
}

// display groups 16 hex digits as xxxx-xxxx-xxxx-xxxx.
func display(canonical string) Code {
	return Code(canonical[0:4] + "-" + canonical[4:8] + "-" + canonical[8:12] + "-" + canonical[12:16])
}

// maxInput bounds the input Normalize looks at.
const maxInput = 64

// Normalize returns the canonical form of a code: its 16 hex digits in
// lower case. ASCII spaces and dashes are ignored anywhere and A-F are
// folded to lower case; anything else, or a digit count other than 16,
// gives ok=false.
func Normalize(input string) (canonical string, ok bool) {
	if len(input) > maxInput {
		return "", false
	}
	var buf [16]byte
	n := 0
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c == ' ' || c == '-':
			continue
		case 'A' <= c && c <= 'F':
			c += 'a' - 'A'
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return "", false
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if n != len(buf) {
		return "", false
	}
	return string(buf[:]), true
}

// hashDomain separates recovery code hashes from any other use of the key.
const hashDomain = "mfad recovery v1\x00"

// Hasher computes the keyed hashes of recovery codes. It is immutable and
// safe for concurrent use.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher for key, which must be at least MinKeyLen
// bytes. The key is copied.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("recovery hasher: key must be at least %d bytes", MinKeyLen)
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Hash returns HMAC-SHA256(key, "mfad recovery v1\x00" || canonical).
// canonical should come from Normalize.
func (h *Hasher) Hash(canonical string) []byte {
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(hashDomain))
	mac.Write([]byte(canonical))
	return mac.Sum(nil)
}

// Set is the stored form of a user's recovery codes. It holds only hashes,
// never a code, and is JSON-serialisable.
type Set struct {
	ID      string      `json:"id"` // random 96-bit hex id, see NewID
	Created time.Time   `json:"created"`
	Hashes  [][]byte    `json:"hashes"`
	Used    []time.Time `json:"used"` // zero time = unused; same length as Hashes
}

// NewID returns a random 96-bit id in hex, read from r or from crypto/rand
// when r is nil.
func NewID(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	var id [12]byte
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return "", fmt.Errorf("generating recovery set id: %w", err)
	}
	return hex.EncodeToString(id[:]), nil
}

// NewSet returns the set storing the hashes of codes, all unused. The codes
// must come from Generate; NewSet panics on a code that does not normalise,
// which would otherwise be silently unusable.
func NewSet(h *Hasher, codes []Code, id string, now time.Time) *Set {
	s := &Set{
		ID:      id,
		Created: now.UTC(),
		Hashes:  make([][]byte, len(codes)),
		Used:    make([]time.Time, len(codes)),
	}
	for i, c := range codes {
		canonical, ok := Normalize(string(c))
		if !ok {
			panic(fmt.Sprintf("recovery: code %d of the new set is malformed", i))
		}
		s.Hashes[i] = h.Hash(canonical)
	}
	return s
}

// Consume marks the unused code matching input as used at now and returns
// the number of unused codes left.
//
// The candidate's hash is compared with every stored hash using
// crypto/subtle, without stopping at a match. Errors: ErrMalformed if input
// does not normalise, ErrUsed if it matches only used codes, ErrInvalid if
// it matches none; other errors mean the stored set is inconsistent or now
// is the zero time. s is modified only when the error is nil.
func (s *Set) Consume(h *Hasher, input string, now time.Time) (remaining int, err error) {
	if len(s.Used) != len(s.Hashes) {
		return 0, fmt.Errorf("consuming recovery code: set has %d hashes but %d used marks", len(s.Hashes), len(s.Used))
	}
	if now.IsZero() {
		// A zero time would record the code as unused.
		return 0, errors.New("consuming recovery code: zero time")
	}
	canonical, ok := Normalize(input)
	if !ok {
		return 0, ErrMalformed
	}
	candidate := h.Hash(canonical)

	// Whether a code is used is not secret; which one matched is. Select
	// the match with constant-time operations only.
	unusedMatch, anyMatch, index := 0, 0, 0
	for i, stored := range s.Hashes {
		eq := subtle.ConstantTimeCompare(candidate, stored)
		unused := 0
		if s.Used[i].IsZero() {
			unused = 1
		}
		take := eq & unused &^ unusedMatch
		index = subtle.ConstantTimeSelect(take, i, index)
		unusedMatch |= eq & unused
		anyMatch |= eq
	}
	switch {
	case unusedMatch == 1:
		s.Used[index] = now.UTC()
		return s.Remaining(), nil
	case anyMatch == 1:
		return 0, ErrUsed
	}
	return 0, ErrInvalid
}

// Remaining returns the number of unused codes. Hashes without a used mark
// (an inconsistent set) are not counted.
func (s *Set) Remaining() int {
	n := 0
	for i := range s.Hashes {
		if i < len(s.Used) && s.Used[i].IsZero() {
			n++
		}
	}
	return n
}
