// Package otp implements time-based one-time passwords (TOTP, RFC 6238) for
// mfad: seed generation and parsing, otpauth:// enrolment URIs and QR images,
// code computation and verification with replay and clock-drift detection.
//
// The package is pure: it performs no I/O, keeps no state and reads neither
// the clock nor a global random source unless told to (NewSecret falls back
// to crypto/rand when given a nil reader). Every function is therefore safe
// for concurrent use. Durability is the caller's business: Verify reports
// the accepted time step (Match.Counter) and the caller must persist it as
// the new "last used" counter in the same transaction in which it read the
// factor record, otherwise replay protection is lost.
//
// Codes are computed with github.com/pquerna/otp/hotp; the HOTP truncation
// is not reimplemented here.
//
// Errors callers branch on are sentinels: ErrInvalid (the code is not
// accepted), and its refinements ErrMalformed, ErrReplayed and
// *ClockDriftError, which all satisfy errors.Is(err, ErrInvalid).
// ErrBadParams and ErrBadSecret signal configuration or stored-data
// problems, not a wrong code. No error message or String form produced by
// this package contains a seed or a code.
package otp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// Algorithm is the HMAC hash function of a TOTP factor, spelled as in
// otpauth:// URIs.
type Algorithm string

// Supported algorithms. SHA1 is what nearly every authenticator app expects.
const (
	SHA1   Algorithm = "SHA1"
	SHA256 Algorithm = "SHA256"
	SHA512 Algorithm = "SHA512"
)

// Limits enforced by Params.Validate and Verify.
const (
	MinDigits = 6
	MaxDigits = 8
	// MaxSteps bounds skew and drift so that one Verify call never costs more
	// than 2*MaxSteps+1 HMAC computations.
	MaxSteps = 1000
)

// ErrBadParams is wrapped by every error about invalid Params, skew or drift.
var ErrBadParams = errors.New("invalid otp parameters")

// Params are the TOTP parameters of a factor. They are also what the user's
// authenticator app is told through the enrolment URI.
type Params struct {
	Digits    int           // number of decimal digits, 6 to 8
	Period    time.Duration // time step, a positive whole number of seconds
	Algorithm Algorithm     // SHA1, SHA256 or SHA512
}

// DefaultParams returns the parameters every common authenticator app
// supports: 6 digits, 30 second steps, SHA1.
func DefaultParams() Params {
	return Params{Digits: 6, Period: 30 * time.Second, Algorithm: SHA1}
}

// Validate reports whether p can be used. The returned error wraps ErrBadParams.
func (p Params) Validate() error {
	if p.Digits < MinDigits || p.Digits > MaxDigits {
		return fmt.Errorf("%w: digits must be between %d and %d", ErrBadParams, MinDigits, MaxDigits)
	}
	if p.Period < time.Second || p.Period%time.Second != 0 {
		return fmt.Errorf("%w: period must be a positive whole number of seconds", ErrBadParams)
	}
	if _, ok := p.Algorithm.lib(); !ok {
		return fmt.Errorf("%w: algorithm must be SHA1, SHA256 or SHA512", ErrBadParams)
	}
	return nil
}

func (a Algorithm) lib() (potp.Algorithm, bool) {
	switch a {
	case SHA1:
		return potp.AlgorithmSHA1, true
	case SHA256:
		return potp.AlgorithmSHA256, true
	case SHA512:
		return potp.AlgorithmSHA512, true
	}
	return 0, false
}

// Counter returns the RFC 6238 time step of t: floor(unix(t) / period) with
// T0 = 0. Times before the Unix epoch map to 0. p must be valid.
func Counter(t time.Time, p Params) uint64 {
	sec := t.Unix()
	if sec < 0 {
		return 0
	}
	return uint64(sec) / uint64(p.Period/time.Second)
}

// Code returns the zero-padded decimal code of s at the given counter,
// computed by github.com/pquerna/otp's HOTP. Code panics if p is invalid (see
// Params.Validate); validate configuration once when it is loaded.
func Code(s Secret, counter uint64, p Params) string {
	if err := p.Validate(); err != nil {
		panic("otp: " + err.Error())
	}
	alg, _ := p.Algorithm.lib()
	code, err := hotp.GenerateCodeCustom(s.Base32(), counter, hotp.ValidateOpts{Digits: potp.Digits(p.Digits), Algorithm: alg})
	if err != nil {
		// Unreachable: the base32 form is always produced by Secret.Base32.
		panic("otp: computing code: secret encoding rejected")
	}
	return code
}

// generator computes the codes of one secret on the verification path: one
// HMAC instance reused for every counter and no allocation per step, so that
// scanning the whole drift window stays cheap. It implements the same RFC
// 4226 dynamic truncation as Code; the tests check the two agree (and both
// against the RFC vectors and oathtool).
type generator struct {
	mac    hash.Hash
	digits int
	mod    uint32
	msg    [8]byte
	sum    [sha512.Size]byte
	out    [MaxDigits]byte
}

func newGenerator(s Secret, p Params) (*generator, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var h func() hash.Hash
	switch p.Algorithm {
	case SHA1:
		h = sha1.New
	case SHA256:
		h = sha256.New
	case SHA512:
		h = sha512.New
	}
	mod := uint32(1)
	for range p.Digits {
		mod *= 10
	}
	return &generator{mac: hmac.New(h, s), digits: p.Digits, mod: mod}, nil
}

// code returns the code at counter in g's buffer (valid until the next call).
func (g *generator) code(counter uint64) []byte {
	binary.BigEndian.PutUint64(g.msg[:], counter)
	g.mac.Reset()
	g.mac.Write(g.msg[:])
	sum := g.mac.Sum(g.sum[:0])
	off := sum[len(sum)-1] & 0x0f
	v := (binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff) % g.mod
	for i := g.digits - 1; i >= 0; i-- {
		g.out[i] = byte('0' + v%10)
		v /= 10
	}
	return g.out[:g.digits]
}

// matches reports in constant time whether the code at counter equals want
// (1 = equal, 0 = different).
func (g *generator) matches(counter uint64, want string) (int, error) {
	return subtle.ConstantTimeCompare(g.code(counter), []byte(want)), nil
}

// maxCodeInput bounds the input NormalizeCode looks at.
const maxCodeInput = 64

// NormalizeCode turns user input into a bare code. It removes ASCII spaces
// and at most one dash that has digits on both sides ("123 456", "123-456")
// and returns ok=false unless exactly p.Digits ASCII digits remain.
func NormalizeCode(input string, p Params) (code string, ok bool) {
	if p.Digits < MinDigits || p.Digits > MaxDigits || len(input) > maxCodeInput {
		return "", false
	}
	var buf [MaxDigits]byte
	n, dashAt := 0, -1
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c == ' ':
		case c == '-':
			if dashAt >= 0 || n == 0 {
				return "", false
			}
			dashAt = n
		case '0' <= c && c <= '9':
			if n == p.Digits {
				return "", false
			}
			buf[n] = c
			n++
		default:
			return "", false
		}
	}
	if n != p.Digits || dashAt == n {
		return "", false
	}
	return string(buf[:n]), true
}
