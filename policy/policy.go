// Package policy makes mfad's login decisions: whether a login needs a second
// factor, which methods to offer and in which order, and when repeated failures
// lock a user out.
//
// The package is pure: it holds no state and does no I/O. Callers (the service
// layer) load the durable state from the store, ask policy what to do, and write
// the outcome back in the same transaction, so every decision here is applied
// atomically with the verification it belongs to.
package policy

import (
	"slices"
	"time"
)

// Method names a second-factor method, as it appears in the API.
type Method string

// The methods mfad knows, strongest first.
const (
	MethodU2F      Method = "u2f"
	MethodTOTP     Method = "totp"
	MethodSMS      Method = "sms"
	MethodRecovery Method = "recovery"
)

// strength orders methods from strongest to weakest: "default to the strongest
// factor the user enabled".
var strength = []Method{MethodU2F, MethodTOTP, MethodSMS, MethodRecovery}

// Rank returns m's position in the strength order (0 = strongest); unknown
// methods sort last.
func Rank(m Method) int {
	if i := slices.Index(strength, m); i >= 0 {
		return i
	}
	return len(strength)
}

// Decision is the answer to a login attempt.
type Decision string

// Decisions.
const (
	Allow     Decision = "allow"
	Challenge Decision = "challenge"
	Deny      Decision = "deny"
)

// LoginInput is what the decision may depend on. It deliberately has no
// "user exists" field: an unknown user and a user without usable factors must
// get the same answer, so the login path never reveals which names exist.
type LoginInput struct {
	// Methods the user has enabled and that can work right now, in any order.
	Methods []Method
}

// LoginDecision is the outcome of Decide.
type LoginDecision struct {
	Decision Decision
	// Methods offered for this login, strongest first.
	Methods []Method
	// Default is the method the login stack should prompt for first.
	Default Method
	Reason  string
}

// DecoyMethods is what a login is offered when the user has no usable factor
// (including a user that does not exist): the methods an ordinary enrolled
// user has, so the answer does not tell the two apart.
var DecoyMethods = []Method{MethodTOTP, MethodRecovery}

// Decide answers a login. Until per-service policies exist every login is
// challenged; a user without usable factors gets the decoy challenge, which
// no code can satisfy.
func Decide(in LoginInput) LoginDecision {
	methods := slices.Clone(in.Methods)
	if len(methods) == 0 {
		methods = slices.Clone(DecoyMethods)
	}
	slices.SortStableFunc(methods, func(a, b Method) int { return Rank(a) - Rank(b) })
	methods = slices.Compact(methods)
	return LoginDecision{
		Decision: Challenge,
		Methods:  methods,
		Default:  methods[0],
		Reason:   "second factor required",
	}
}

// Lockout limits failed verifications per user: after MaxFailures failures
// within Window the user is locked for Duration. While locked, even a correct
// code is refused.
type Lockout struct {
	MaxFailures int
	Window      time.Duration
	Duration    time.Duration
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
}

// Locked reports whether st locks the user at now, and for how long.
func (l Lockout) Locked(st FailState, now time.Time) (bool, time.Duration) {
	if now.Before(st.LockedUntil) {
		return true, st.LockedUntil.Sub(now)
	}
	return false, 0
}

// Fail records one failure at now in st and reports whether it locked the
// user. A failure outside the current window starts a new window.
func (l Lockout) Fail(st *FailState, now time.Time) (locked bool) {
	if st.Count == 0 || now.Sub(st.WindowStart) >= l.Window || !st.LockedUntil.IsZero() && !now.Before(st.LockedUntil) {
		*st = FailState{WindowStart: now}
	}
	st.Count++
	if st.Count >= l.MaxFailures {
		st.LockedUntil = now.Add(l.Duration)
		return true
	}
	return false
}

// AttemptsLeft is how many more failures st allows before a lockout.
func (l Lockout) AttemptsLeft(st FailState, now time.Time) int {
	if locked, _ := l.Locked(st, now); locked {
		return 0
	}
	if st.Count == 0 || now.Sub(st.WindowStart) >= l.Window || !st.LockedUntil.IsZero() {
		return l.MaxFailures
	}
	return max(l.MaxFailures-st.Count, 0)
}

// Retain is how long a FailState must be kept: until its window and any
// lockout are over. Callers store the record with this TTL.
func (l Lockout) Retain(st FailState, now time.Time) time.Duration {
	end := st.WindowStart.Add(l.Window)
	if st.LockedUntil.After(end) {
		end = st.LockedUntil
	}
	if d := end.Sub(now); d > 0 {
		return d
	}
	return time.Second
}
