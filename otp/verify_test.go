package otp_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mfad/mfad/otp"
)

func TestVerify(t *testing.T) {
	s := rfcKey(otp.SHA1)
	s512 := rfcKey(otp.SHA512)
	p6 := otp.DefaultParams()
	p8 := otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA1}
	p512 := otp.Params{Digits: 8, Period: time.Minute, Algorithm: otp.SHA512}
	now := time.Unix(1111111111, 0)
	n := otp.Counter(now, p6) // 37037037
	at := func(off int) string { return otp.Code(s, uint64(int64(n)+int64(off)), p6) }

	// A well-formed code that matches no step within 20 steps of now.
	notNear := func() string {
		near := map[string]bool{}
		for off := -20; off <= 20; off++ {
			near[at(off)] = true
		}
		for i := 0; ; i++ {
			if c := fmt.Sprintf("%06d", i); !near[c] {
				return c
			}
		}
	}()

	tests := []struct {
		name        string
		s           otp.Secret
		code        string
		now         time.Time
		p           otp.Params
		skew, drift int
		lastUsed    uint64
		want        otp.Match
		wantErr     error
		wantDrift   int // Steps of the expected *ClockDriftError
	}{
		{name: "exact", code: at(0), skew: 1, drift: 10, want: otp.Match{Counter: n}},
		{name: "exact with zero skew", code: at(0), want: otp.Match{Counter: n}},
		{name: "one step behind", code: at(-1), skew: 1, drift: 10, want: otp.Match{Counter: n - 1, Offset: -1}},
		{name: "one step ahead", code: at(1), skew: 1, drift: 10, want: otp.Match{Counter: n + 1, Offset: 1}},
		{name: "edge of wider skew", code: at(-3), skew: 3, want: otp.Match{Counter: n - 3, Offset: -3}},
		{name: "drift below skew is ignored", code: at(2), skew: 2, drift: 0, want: otp.Match{Counter: n + 2, Offset: 2}},
		{name: "authenticator ahead", code: at(5), skew: 1, drift: 10, wantDrift: 5},
		{name: "authenticator behind", code: at(-7), skew: 1, drift: 10, wantDrift: -7},
		{name: "just outside skew", code: at(2), skew: 1, drift: 10, wantDrift: 2},
		{name: "edge of drift", code: at(-10), skew: 1, drift: 10, wantDrift: -10},
		{name: "just outside drift", code: at(11), skew: 1, drift: 10, wantErr: otp.ErrInvalid},
		{name: "outside skew without drift", code: at(2), skew: 1, wantErr: otp.ErrInvalid},
		{name: "drift equal to skew", code: at(2), skew: 1, drift: 1, wantErr: otp.ErrInvalid},
		{name: "far outside", code: at(500), skew: 1, drift: 10, wantErr: otp.ErrInvalid},
		{name: "wrong code", code: notNear, skew: 1, drift: 10, wantErr: otp.ErrInvalid},
		{name: "replay same counter", code: at(0), skew: 1, drift: 10, lastUsed: n, wantErr: otp.ErrReplayed},
		{name: "replay older counter", code: at(-1), skew: 1, drift: 10, lastUsed: n, wantErr: otp.ErrReplayed},
		{name: "older than a future step used", code: at(0), skew: 1, lastUsed: n + 1, wantErr: otp.ErrReplayed},
		{name: "next step after last used", code: at(1), skew: 1, lastUsed: n, want: otp.Match{Counter: n + 1, Offset: 1}},
		{name: "last used long ago", code: at(-1), skew: 1, lastUsed: n - 100, want: otp.Match{Counter: n - 1, Offset: -1}},
		{name: "old code within drift is a replay", code: at(-6), skew: 1, drift: 10, lastUsed: n, wantErr: otp.ErrReplayed},
		{name: "space separated", code: at(0)[:3] + " " + at(0)[3:], skew: 1, want: otp.Match{Counter: n}},
		{name: "dash separated", code: at(0)[:3] + "-" + at(0)[3:], skew: 1, want: otp.Match{Counter: n}},
		{name: "surrounding spaces", code: " " + at(0) + " ", skew: 1, want: otp.Match{Counter: n}},
		{name: "too short", code: at(0)[:5], skew: 1, wantErr: otp.ErrMalformed},
		{name: "too long", code: at(0) + "0", skew: 1, wantErr: otp.ErrMalformed},
		{name: "empty", code: "", skew: 1, wantErr: otp.ErrMalformed},
		{name: "letters", code: "12a456", skew: 1, wantErr: otp.ErrMalformed},
		{name: "8-digit code for 6-digit params", code: otp.Code(s, n, p8), skew: 1, wantErr: otp.ErrMalformed},
		{name: "8-digit params", code: otp.Code(s, n, p8), p: p8, skew: 1, want: otp.Match{Counter: n}},
		{name: "8-digit params, 6-digit code", code: at(0), p: p8, skew: 1, wantErr: otp.ErrMalformed},
		{name: "8-digit params grouped", code: otp.Code(s, n+1, p8)[:4] + " " + otp.Code(s, n+1, p8)[4:], p: p8, skew: 1,
			want: otp.Match{Counter: n + 1, Offset: 1}},
		{name: "sha512 60s", s: s512, code: otp.Code(s512, otp.Counter(now, p512), p512), p: p512, skew: 1,
			want: otp.Match{Counter: otp.Counter(now, p512)}},
		{name: "sha512 60s drift", s: s512, code: otp.Code(s512, otp.Counter(now, p512)-4, p512), p: p512, skew: 1, drift: 5,
			wantDrift: -4},
		{name: "near epoch ahead", code: otp.Code(s, 3, p6), now: time.Unix(10, 0), skew: 1, drift: 10, wantDrift: 3},
		{name: "near epoch behind", code: otp.Code(s, 1, p6), now: time.Unix(65, 0), skew: 1, drift: 10,
			want: otp.Match{Counter: 1, Offset: -1}},
		{name: "step 0 counts as used", code: otp.Code(s, 0, p6), now: time.Unix(10, 0), skew: 1, wantErr: otp.ErrReplayed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.s == nil {
				tc.s = s
			}
			if tc.now.IsZero() {
				tc.now = now
			}
			if tc.p == (otp.Params{}) {
				tc.p = p6
			}
			m, err := otp.Verify(tc.s, tc.code, tc.now, tc.p, tc.skew, tc.drift, tc.lastUsed)
			switch {
			case tc.wantDrift != 0:
				var de *otp.ClockDriftError
				if !errors.As(err, &de) || de.Steps != tc.wantDrift {
					t.Fatalf("Verify = %+v, %v; want ClockDriftError{Steps: %d}", m, err, tc.wantDrift)
				}
				if !errors.Is(err, otp.ErrInvalid) {
					t.Error("ClockDriftError is not ErrInvalid")
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", m, err, tc.wantErr)
				}
				var de *otp.ClockDriftError
				if errors.As(err, &de) {
					t.Fatalf("Verify = %v, want no ClockDriftError", err)
				}
			default:
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			}
			if err == nil && m != tc.want || err != nil && m != (otp.Match{}) {
				t.Errorf("Match = %+v, want %+v", m, tc.want)
			}
			if err != nil && !errors.Is(err, otp.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if err == nil && otp.Counter(tc.now, tc.p)+uint64(int64(m.Offset)) != m.Counter {
				t.Errorf("Offset %d inconsistent with Counter %d", m.Offset, m.Counter)
			}
		})
	}
}

// TestVerifyEveryOffset walks the whole drift range and checks each step is
// classified by its distance from now.
func TestVerifyEveryOffset(t *testing.T) {
	s := rfcKey(otp.SHA256)
	p := otp.Params{Digits: 8, Period: 30 * time.Second, Algorithm: otp.SHA256}
	now := time.Unix(1700000000, 0)
	n := otp.Counter(now, p)
	const skew, drift = 2, 6
	for off := -drift - 2; off <= drift+2; off++ {
		t.Run(fmt.Sprintf("offset %+d", off), func(t *testing.T) {
			c := uint64(int64(n) + int64(off))
			m, err := otp.Verify(s, otp.Code(s, c, p), now, p, skew, drift, 0)
			var de *otp.ClockDriftError
			switch abs := max(off, -off); {
			case abs <= skew:
				if err != nil || m != (otp.Match{Counter: c, Offset: off}) {
					t.Errorf("Verify = %+v, %v; want match", m, err)
				}
			case abs <= drift:
				if !errors.As(err, &de) || de.Steps != off {
					t.Errorf("Verify = %v, want drift %+d", err, off)
				}
			default:
				if !errors.Is(err, otp.ErrInvalid) || errors.As(err, &de) || errors.Is(err, otp.ErrReplayed) {
					t.Errorf("Verify = %v, want plain ErrInvalid", err)
				}
			}
		})
	}
}

func TestVerifyRejectsBadInput(t *testing.T) {
	s := rfcKey(otp.SHA1)
	p := otp.DefaultParams()
	now := time.Unix(1111111111, 0)
	code := otp.Code(s, otp.Counter(now, p), p)
	tests := []struct {
		name        string
		s           otp.Secret
		p           otp.Params
		skew, drift int
		wantErr     error
	}{
		{"invalid params", s, otp.Params{Digits: 6, Algorithm: otp.SHA1}, 1, 1, otp.ErrBadParams},
		{"negative skew", s, p, -1, 1, otp.ErrBadParams},
		{"negative drift", s, p, 1, -1, otp.ErrBadParams},
		{"skew too large", s, p, otp.MaxSteps + 1, 0, otp.ErrBadParams},
		{"drift too large", s, p, 1, otp.MaxSteps + 1, otp.ErrBadParams},
		{"empty secret", nil, p, 1, 1, otp.ErrBadSecret},
		{"short secret", s[:otp.MinSecretLen-1], p, 1, 1, otp.ErrBadSecret},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := otp.Verify(tc.s, code, now, tc.p, tc.skew, tc.drift, 0)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify = %+v, %v; want %v", m, err, tc.wantErr)
			}
			if errors.Is(err, otp.ErrInvalid) {
				t.Errorf("configuration error %v must not look like a wrong code", err)
			}
		})
	}
}

func TestErrorRelations(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		invalid bool
	}{
		{"ErrInvalid", otp.ErrInvalid, true},
		{"ErrMalformed", otp.ErrMalformed, true},
		{"ErrReplayed", otp.ErrReplayed, true},
		{"ClockDriftError", &otp.ClockDriftError{Steps: -3}, true},
		{"wrapped ErrReplayed", fmt.Errorf("login: %w", otp.ErrReplayed), true},
		{"ErrBadParams", otp.ErrBadParams, false},
		{"ErrBadSecret", otp.ErrBadSecret, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, otp.ErrInvalid); got != tc.invalid {
				t.Errorf("errors.Is(%v, ErrInvalid) = %v, want %v", tc.err, got, tc.invalid)
			}
		})
	}
	if errors.Is(otp.ErrMalformed, otp.ErrReplayed) || errors.Is(otp.ErrReplayed, otp.ErrMalformed) {
		t.Error("ErrMalformed and ErrReplayed must be distinguishable")
	}
	if got := (&otp.ClockDriftError{Steps: 4}).Error(); got != "invalid code: matches +4 time steps away (clock drift)" {
		t.Errorf("ClockDriftError text = %q", got)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := rfcKey(otp.SHA1)
	p := otp.DefaultParams()
	now := time.Unix(1700000000, 0)
	hit := otp.Code(s, otp.Counter(now, p), p)
	miss := "000000"
	for off := -10; off <= 10; off++ {
		if otp.Code(s, uint64(int64(otp.Counter(now, p))+int64(off)), p) == miss {
			b.Fatal("benchmark miss code happens to match")
		}
	}
	benches := []struct {
		name    string
		code    string
		wantErr error
	}{
		{"hit", hit, nil},
		{"miss drift 10", miss, otp.ErrInvalid},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := otp.Verify(s, bc.code, now, p, 1, 10, 0); !errors.Is(err, bc.wantErr) {
					b.Fatalf("Verify = %v, want %v", err, bc.wantErr)
				}
			}
		})
	}
}
