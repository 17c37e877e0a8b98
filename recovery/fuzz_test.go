package recovery_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/recovery"
)

func FuzzNormalize(f *testing.F) {
	for _, seed := range []string{
		"a1b2-c3d4-e5f6-a7b8", "A1B2 C3D4 E5F6 A7B8", "a1b2c3d4e5f6a7b8", "", "----",
		"a1b2-c3d4-e5f6-a7b", "a1b2-c3d4-e5f6-a7b8-0", "g1b2-c3d4-e5f6-a7b8", "ａ1b2c3d4e5f6a7b8", "\xff\xfe",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		canonical, ok := recovery.Normalize(input)
		if !ok {
			if canonical != "" {
				t.Fatalf("rejected input returned %q", canonical)
			}
			return
		}
		if len(canonical) != 16 || strings.Trim(canonical, "0123456789abcdef") != "" {
			t.Fatalf("Normalize(%q) = %q, want 16 lower-case hex digits", input, canonical)
		}
		// The input is the canonical form plus separators and case.
		stripped := strings.NewReplacer(" ", "", "-", "").Replace(strings.ToLower(input))
		if stripped != canonical {
			t.Fatalf("Normalize(%q) = %q, but input without separators is %q", input, canonical, stripped)
		}
		display := canonical[:4] + "-" + canonical[4:8] + "-" + canonical[8:12] + "-" + canonical[12:]
		for _, form := range []string{canonical, display, strings.ToUpper(display)} {
			if again, ok := recovery.Normalize(form); !ok || again != canonical {
				t.Fatalf("Normalize(%q) = %q, %v; want %q", form, again, ok, canonical)
			}
		}
	})
}

func FuzzConsume(f *testing.F) {
	h, codes, _ := fixture(f)
	for _, c := range codes {
		f.Add(c.Reveal(), uint8(0))
		f.Add(strings.ToUpper(c.Reveal()), uint8(3))
	}
	f.Add("ffff-ffff-ffff-ffff", uint8(0))
	f.Add("", uint8(15))
	f.Add("0001 0203 0405 0607", uint8(1))
	f.Fuzz(func(t *testing.T, input string, usedMask uint8) {
		_, _, s := fixture(t)
		// Start from a set with some codes already used.
		for i := range s.Used {
			if usedMask&(1<<i) != 0 {
				s.Used[i] = time.Unix(1700000050, 0)
			}
		}
		before := clone(t, s)
		remainingBefore := s.Remaining()
		now := time.Unix(1700000100, 0)

		got, err := s.Consume(h, input, now)

		canonical, ok := recovery.Normalize(input)
		match := -1
		for i, c := range codes {
			if want, _ := recovery.Normalize(c.Reveal()); ok && canonical == want {
				match = i
			}
		}
		switch {
		case !ok:
			if !errors.Is(err, recovery.ErrMalformed) {
				t.Fatalf("Consume(%q) = %v, want ErrMalformed", input, err)
			}
		case match < 0:
			if !errors.Is(err, recovery.ErrInvalid) || errors.Is(err, recovery.ErrUsed) || errors.Is(err, recovery.ErrMalformed) {
				t.Fatalf("Consume(%q) = %v, want plain ErrInvalid", input, err)
			}
		case usedMask&(1<<match) != 0:
			if !errors.Is(err, recovery.ErrUsed) {
				t.Fatalf("Consume(%q) = %v, want ErrUsed", input, err)
			}
		default:
			if err != nil || got != remainingBefore-1 || !s.Used[match].Equal(now) {
				t.Fatalf("Consume(%q) = %d, %v; want %d and code %d used", input, got, err, remainingBefore-1, match)
			}
			if _, err := s.Consume(h, input, now); !errors.Is(err, recovery.ErrUsed) {
				t.Fatalf("second Consume(%q) = %v, want ErrUsed", input, err)
			}
		}
		if err != nil && clone(t, s) != before {
			t.Fatalf("failed Consume(%q) changed the set", input)
		}
	})
}
