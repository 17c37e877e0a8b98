package otp_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mfad/mfad/otp"
)

func FuzzNormalizeCode(f *testing.F) {
	for _, seed := range []string{"123456", "123 456", "123-456", "1234-5678", "-123456", "12-34-56", "", "１２３４５６", "12a456", " 0 0 0 0 0 0 "} {
		f.Add(seed, 6)
		f.Add(seed, 8)
	}
	f.Fuzz(func(t *testing.T, input string, digits int) {
		p := otp.Params{Digits: digits, Period: 30 * time.Second, Algorithm: otp.SHA1}
		code, ok := otp.NormalizeCode(input, p)
		if !ok {
			if code != "" {
				t.Fatalf("rejected input returned %q", code)
			}
			return
		}
		if p.Validate() != nil {
			t.Fatalf("accepted %q with invalid params %+v", input, p)
		}
		if len(code) != digits {
			t.Fatalf("NormalizeCode(%q) = %q, want %d digits", input, code, digits)
		}
		for i := 0; i < len(code); i++ {
			if code[i] < '0' || code[i] > '9' {
				t.Fatalf("NormalizeCode(%q) = %q contains a non-digit", input, code)
			}
		}
		if again, ok := otp.NormalizeCode(code, p); !ok || again != code {
			t.Fatalf("NormalizeCode is not idempotent on %q: %q, %v", code, again, ok)
		}
	})
}

func FuzzVerify(f *testing.F) {
	s := rfcKey(otp.SHA1)
	p := otp.DefaultParams()
	now := time.Unix(1111111111, 0)
	n := otp.Counter(now, p)
	f.Add(otp.Code(s, n, p), int64(1111111111), 1, 10, uint64(0), uint8(0))
	f.Add(otp.Code(s, n+4, p), int64(1111111111), 1, 10, uint64(0), uint8(0))
	f.Add(otp.Code(s, n, p), int64(1111111111), 1, 10, n, uint8(0))
	f.Add("123 456", int64(0), 0, 0, uint64(0), uint8(1))
	f.Add("12345678", int64(-5), 3, 2, uint64(1<<63), uint8(2))
	f.Add("x", int64(1<<62), -1, 5000, uint64(0), uint8(3))
	algs := []otp.Algorithm{otp.SHA1, otp.SHA256, otp.SHA512}
	f.Fuzz(func(t *testing.T, code string, unix int64, skew, drift int, lastUsed uint64, sel uint8) {
		// Keep the work per input bounded: the window is what costs.
		skew, drift = skew%50, drift%50
		p := otp.Params{Digits: 6 + int(sel%3), Period: time.Duration(1+sel%90) * time.Second, Algorithm: algs[int(sel/3)%3]}
		now := time.Unix(unix, 0)
		check := func(code string) (otp.Match, error) {
			m, err := otp.Verify(s, code, now, p, skew, drift, lastUsed)
			if err != nil {
				if m != (otp.Match{}) {
					t.Fatalf("error %v with non-zero match %+v", err, m)
				}
				if skew >= 0 && drift >= 0 && !errors.Is(err, otp.ErrInvalid) {
					t.Fatalf("unexpected error %v", err)
				}
				return m, err
			}
			norm, ok := otp.NormalizeCode(code, p)
			if !ok {
				t.Fatalf("accepted malformed code %q", code)
			}
			if m.Counter <= lastUsed {
				t.Fatalf("accepted step %d at or below lastUsed %d", m.Counter, lastUsed)
			}
			if m.Offset < -skew || m.Offset > skew {
				t.Fatalf("offset %d outside skew %d", m.Offset, skew)
			}
			if got := otp.Code(s, m.Counter, p); got != norm {
				t.Fatalf("accepted %q for step %d whose code is %s", code, m.Counter, got)
			}
			return m, nil
		}
		check(code)
		if skew < 0 || drift < 0 {
			return
		}
		// The genuine current code is accepted at offset 0 unless that step
		// was already used.
		c := otp.Counter(now, p)
		m, err := check(otp.Code(s, c, p))
		switch {
		case c > lastUsed && (err != nil || m != otp.Match{Counter: c}):
			t.Fatalf("current code: %+v, %v; want match at %d", m, err, c)
		case c <= lastUsed && err != nil && !errors.Is(err, otp.ErrReplayed):
			t.Fatalf("current code at used step: %v, want ErrReplayed", err)
		}
	})
}
