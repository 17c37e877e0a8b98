package otp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"
)

// Outcomes of Verify that callers branch on. ErrMalformed and ErrReplayed
// satisfy errors.Is(err, ErrInvalid), as does *ClockDriftError, so a caller
// that only needs "accepted or not" can test for ErrInvalid alone.
var (
	ErrInvalid         = errors.New("invalid code")
	ErrMalformed error = &invalidError{"malformed code"}
	ErrReplayed  error = &invalidError{"code already used"}
)

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// ClockDriftError rejects a code that is valid, but only for a time step
// outside the accepted skew. Steps is the signed distance in time steps:
// positive means the authenticator's clock is ahead of ours. The caller may
// use it to tell the user to fix their clock; the code is still rejected.
type ClockDriftError struct {
	Steps int
}

func (e *ClockDriftError) Error() string {
	return fmt.Sprintf("invalid code: matches %+d time steps away (clock drift)", e.Steps)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ClockDriftError) Is(target error) bool { return target == ErrInvalid }

// Match describes an accepted code.
type Match struct {
	Counter uint64 // time step the code belongs to; store it as the new lastUsed
	Offset  int    // Counter - Counter(now), within [-skew, skew]
}

// Verify checks code against s at time now.
//
// The code is accepted if it equals the code of a time step within
// [Counter(now)-skew, Counter(now)+skew] that is greater than lastUsed, the
// highest step ever accepted for this factor (0 = never; step 0 itself, the
// first period of 1970, is therefore never accepted). The closest such
// step wins and is returned; the caller must persist Match.Counter as the
// new lastUsed in the same transaction as its read of lastUsed.
//
// Otherwise the result is, in this order: ErrReplayed if the code matches a
// step in the window at or below lastUsed; *ClockDriftError if it matches a
// newer step within [now-drift, now+drift] (only when drift > skew);
// ErrReplayed if it matches an older step there; ErrInvalid if nothing
// matches. Input that NormalizeCode rejects yields ErrMalformed.
//
// Every step in [now-max(skew,drift), now+max(skew,drift)] is computed and
// compared with crypto/subtle, and which one matched does not change the
// amount of work: at most 2*max(skew,drift)+1 HMACs per call.
//
// Invalid p, or skew or drift outside [0, MaxSteps], yields an error
// wrapping ErrBadParams; a seed shorter than MinSecretLen yields
// ErrBadSecret.
func Verify(s Secret, code string, now time.Time, p Params, skew, drift int, lastUsed uint64) (Match, error) {
	g, err := newGenerator(s, p)
	if err != nil {
		return Match{}, fmt.Errorf("verifying code: %w", err)
	}
	if skew < 0 || skew > MaxSteps || drift < 0 || drift > MaxSteps {
		return Match{}, fmt.Errorf("verifying code: %w: skew and drift must be between 0 and %d", ErrBadParams, MaxSteps)
	}
	if len(s) < MinSecretLen {
		return Match{}, fmt.Errorf("verifying code: %w: shorter than %d bytes", ErrBadSecret, MinSecretLen)
	}
	want, ok := NormalizeCode(code, p)
	if !ok {
		return Match{}, ErrMalformed
	}

	current := Counter(now, p)
	reach := max(skew, drift)
	// One slot per kind of match; the slot is chosen from public data only
	// (offset and lastUsed), never from whether the step matched.
	var windowFresh, windowStale, driftFresh, driftStale slot
	// Visit offsets 0, -1, +1, -2, +2, ... so the first match a slot records
	// is the one closest to now.
	for dist := 0; dist <= reach; dist++ {
		offsets := [2]int{-dist, dist}
		n := 2
		if dist == 0 {
			n = 1
		}
		for _, off := range offsets[:n] {
			counter, ok := step(current, off)
			if !ok {
				continue
			}
			hit, err := g.matches(counter, want)
			if err != nil {
				return Match{}, fmt.Errorf("verifying code: %w", err)
			}
			fresh := counter > lastUsed
			switch {
			case dist <= skew && fresh:
				windowFresh.record(hit, off)
			case dist <= skew:
				windowStale.record(hit, off)
			case fresh:
				driftFresh.record(hit, off)
			default:
				driftStale.record(hit, off)
			}
		}
	}

	switch {
	case windowFresh.found == 1:
		counter, _ := step(current, windowFresh.offset)
		return Match{Counter: counter, Offset: windowFresh.offset}, nil
	case windowStale.found == 1:
		return Match{}, ErrReplayed
	case driftFresh.found == 1:
		return Match{}, &ClockDriftError{Steps: driftFresh.offset}
	case driftStale.found == 1:
		return Match{}, ErrReplayed
	}
	return Match{}, ErrInvalid
}

// slot remembers, without branching on hit, the first offset that matched.
type slot struct {
	found  int // 1 once a match was recorded
	offset int
}

func (sl *slot) record(hit, offset int) {
	take := hit &^ sl.found
	sl.offset = subtle.ConstantTimeSelect(take, offset, sl.offset)
	sl.found |= hit
}

// step returns current+off, or ok=false when that is before step 0.
func step(current uint64, off int) (uint64, bool) {
	if off < 0 {
		back := uint64(-off)
		if back > current {
			return 0, false
		}
		return current - back, true
	}
	return current + uint64(off), true
}
