package policy

import (
	"time"

	"github.com/mfad/mfad/config"
)

// consecutiveMemory is how long a user's run of consecutive failures is
// remembered after the last failure: long enough that growing locks and the
// hard limit cannot be escaped by pausing between bursts.
const consecutiveMemory = 30 * 24 * time.Hour

// Lockout limits failed verifications of guessable methods per user:
// MaxFailures failures within Window lock the user for Duration, each
// further lock before a success for twice as long as the previous one (up to
// MaxDuration), and HardLimit consecutive failures lock the user until an
// admin unlocks it or a security key is used. While locked, even a correct
// code is refused.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
	MaxDuration time.Duration
	HardLimit   int
}

// LockoutFrom converts the config's lockout settings.
func LockoutFrom(c config.Lockout) Lockout {
	return Lockout{MaxFailures: c.MaxFailures, Window: c.Window, Duration: c.Duration,
		MaxDuration: max(c.MaxDuration, c.Duration), HardLimit: c.HardLimit}
}

// FailState is the durable per-user failure record. The zero value means no
// recent failures. It is stored as JSON.
type FailState struct {
	// Count is the number of failures in the current window.
	Count int `json:"count"`
	// WindowStart is the time of the first failure in the current window.
	WindowStart time.Time `json:"window_start"`
	// LockedUntil is when the current lockout ends (zero when not locked).
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// Consecutive counts failures since the last success, across windows.
	Consecutive int `json:"consecutive,omitempty"`
	// Locks counts lockouts since the last success (for growing locks).
	Locks int `json:"locks,omitempty"`
	// Hard is set once Consecutive reached the hard limit: locked until an
	// admin unlocks the user or a security key login succeeds.
	Hard bool `json:"hard,omitempty"`
	// LastFailure is the time of the latest failure.
	LastFailure time.Time `json:"last_failure,omitzero"`
}

// Locked reports whether st locks the user at now, and for how long (a hard
// lock reports MaxDuration: it has no end of its own).
func (l Lockout) Locked(st FailState, now time.Time) (bool, time.Duration) {
	if st.Hard {
		return true, l.maxDuration()
	}
	if now.Before(st.LockedUntil) {
		return true, st.LockedUntil.Sub(now)
	}
	return false, 0
}

func (l Lockout) maxDuration() time.Duration { return max(l.MaxDuration, l.Duration) }

// Fail records one failure at now in st and reports whether it locked the
// user. A failure outside the current window starts a new window; the run
// of consecutive failures goes on.
func (l Lockout) Fail(st *FailState, now time.Time) (locked bool) {
	if st.Count == 0 || now.Sub(st.WindowStart) >= l.Window || !st.LockedUntil.IsZero() && !now.Before(st.LockedUntil) {
		st.Count, st.WindowStart, st.LockedUntil = 0, now, time.Time{}
	}
	st.Count++
	st.Consecutive++
	st.LastFailure = now
	if l.HardLimit > 0 && st.Consecutive >= l.HardLimit {
		st.Hard = true
		return true
	}
	if st.Count >= l.MaxFailures {
		d := l.Duration
		for i := 0; i < st.Locks && d < l.maxDuration(); i++ {
			d *= 2
		}
		st.LockedUntil = now.Add(min(d, l.maxDuration()))
		st.Locks++
		return true
	}
	return false
}

// AttemptsLeft is how many more failures st allows before a lockout.
func (l Lockout) AttemptsLeft(st FailState, now time.Time) int {
	if locked, _ := l.Locked(st, now); locked {
		return 0
	}
	left := l.MaxFailures
	if st.Count > 0 && now.Sub(st.WindowStart) < l.Window && st.LockedUntil.IsZero() {
		left = max(l.MaxFailures-st.Count, 0)
	}
	if l.HardLimit > 0 {
		left = min(left, max(l.HardLimit-st.Consecutive, 0))
	}
	return left
}

// Recent reports whether st holds failures recent enough that a login
// should be treated as risky: within the current window, or a lock.
func (l Lockout) Recent(st FailState, now time.Time) bool {
	if locked, _ := l.Locked(st, now); locked {
		return true
	}
	return st.Count > 0 && now.Sub(st.WindowStart) < l.Window
}

// Retain is how long a FailState must be kept: until its window and any
// lockout are over and the run of consecutive failures is forgotten.
// Callers store the record with this TTL.
func (l Lockout) Retain(st FailState, now time.Time) time.Duration {
	end := st.WindowStart.Add(l.Window)
	if st.LockedUntil.After(end) {
		end = st.LockedUntil
	}
	if st.Consecutive > 0 {
		if e := st.LastFailure.Add(consecutiveMemory); e.After(end) {
			end = e
		}
	}
	if d := end.Sub(now); d > 0 {
		return d
	}
	return time.Second
}

// maxSourceBackoff caps the delay of a slowed source.
const maxSourceBackoff = time.Hour

// SourceLimit slows down a source (a network, see Network) that produces
// failures for any users: after Max failures within Window each further
// attempt must wait Backoff, doubled for every failure beyond Max, up to
// one hour. Failures from a slowed source are refused before they reach a
// user's failure count, so an attacker slows itself down long before it can
// lock out real users.
type SourceLimit struct {
	Max     int
	Window  time.Duration
	Backoff time.Duration
}

// SourceLimitFrom converts the config's lockout settings.
func SourceLimitFrom(c config.Lockout) SourceLimit {
	return SourceLimit{Max: c.SourceMaxFailures, Window: c.SourceWindow, Backoff: c.SourceBackoff}
}

// SourceState is the durable per-source failure record, stored as JSON.
type SourceState struct {
	Count       int       `json:"count"`
	WindowStart time.Time `json:"window_start"`
	Until       time.Time `json:"until,omitzero"`
}

// Blocked reports whether the source must wait at now, and how long.
func (l SourceLimit) Blocked(st SourceState, now time.Time) (bool, time.Duration) {
	if now.Before(st.Until) {
		return true, st.Until.Sub(now)
	}
	return false, 0
}

// Fail records one failure from the source at now.
func (l SourceLimit) Fail(st *SourceState, now time.Time) {
	if st.Count == 0 || now.Sub(st.WindowStart) >= l.Window && !now.Before(st.Until) {
		*st = SourceState{WindowStart: now}
	}
	st.Count++
	if st.Count >= l.Max {
		d := l.Backoff
		for i := l.Max; i < st.Count && d < maxSourceBackoff; i++ {
			d *= 2
		}
		st.Until = now.Add(min(d, maxSourceBackoff))
	}
}

// Retain is how long a SourceState must be kept.
func (l SourceLimit) Retain(st SourceState, now time.Time) time.Duration {
	end := st.WindowStart.Add(l.Window)
	if st.Until.After(end) {
		end = st.Until
	}
	if d := end.Sub(now); d > 0 {
		return d
	}
	return time.Second
}
