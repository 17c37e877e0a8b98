// Package policy makes mfad's login decisions: which policy a login falls
// under, whether it needs a second factor, which methods to offer and in
// which order, and when repeated failures slow a source down or lock a user
// out.
//
// The package is pure: it holds no state and does no I/O. Callers (the service
// layer) load the durable state from the store, ask policy what to do, and write
// the outcome back in the same transaction, so every decision here is applied
// atomically with the verification it belongs to.
package policy

import (
	"net/netip"
	"slices"
	"time"

	"github.com/mfad/mfad/config"
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

// Guessable reports whether m is checked by comparing a code a person types,
// which an attacker can guess; lockouts and source throttling apply to these
// methods only. A security key signature cannot be guessed.
func Guessable(m Method) bool { return m != MethodU2F }

// Decision is the answer to a login attempt.
type Decision string

// Decisions.
const (
	Allow     Decision = "allow"
	Challenge Decision = "challenge"
	Deny      Decision = "deny"
)

// Request is the context of a login, used to pick its policy.
type Request struct {
	User    string
	Service string
	// RHost is the remote host ("" for a local login).
	RHost string
	// Groups lists the user's groups; only consulted when a policy matches
	// on groups, so callers may resolve them lazily through GroupsFunc.
	Groups func() []string
}

// Local reports whether the login is local (console, su, sudo).
func (r Request) Local() bool { return r.RHost == "" }

// Select returns the first policy in policies that matches r, or def.
func Select(policies []config.Policy, def config.Policy, r Request) config.Policy {
	var groups []string
	resolved := false
	for _, p := range policies {
		m := p.Match
		if len(m.Service) > 0 && !slices.Contains(m.Service, r.Service) {
			continue
		}
		if len(m.User) > 0 && !slices.Contains(m.User, r.User) {
			continue
		}
		if m.Local != nil && *m.Local != r.Local() {
			continue
		}
		if len(m.RHost) > 0 && !inNetworks(r.RHost, m.RHost) {
			continue
		}
		if len(m.Group) > 0 {
			if !resolved {
				if r.Groups != nil {
					groups = r.Groups()
				}
				resolved = true
			}
			if !slices.ContainsFunc(m.Group, func(g string) bool { return slices.Contains(groups, g) }) {
				continue
			}
		}
		return p
	}
	return def
}

func inNetworks(rhost string, nets []netip.Prefix) bool {
	a, err := netip.ParseAddr(rhost)
	if err != nil {
		return false // a host name never matches a network
	}
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// Network names the source of a login for throttling and for "known
// network" checks: "local" for local logins, the /24 of an IPv4 address,
// the /64 of an IPv6 address, or the host name as given (lower-cased by
// the caller is not needed: PAM passes what the resolver returned).
func Network(rhost string) string {
	if rhost == "" {
		return "local"
	}
	a, err := netip.ParseAddr(rhost)
	if err != nil {
		return "host:" + rhost
	}
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.WithZone("").Prefix(bits)
	return p.String()
}

// LoginInput is what the decision depends on. An unknown user looks exactly
// like a user without factors (Enrolled false, no Methods), so the answer
// never tells the two apart.
type LoginInput struct {
	Policy config.Policy
	// Enrolled reports whether the user has any active factor, usable now
	// or not.
	Enrolled bool
	// Methods the user has enabled and that can work right now, in any
	// order.
	Methods []Method
	// Preferred is the user's chosen default method ("" for none).
	Preferred Method
	// RememberedDevice: the login carried a valid remember-device token.
	RememberedDevice bool
	// KnownNetwork: the login's network saw a successful second-factor
	// login by this user within Policy.KnownFor.
	KnownNetwork bool
	// RecentFailures: the user had failed verifications recently.
	RecentFailures bool
	Now            time.Time
}

// LoginDecision is the outcome of Decide.
type LoginDecision struct {
	Decision Decision
	// Methods offered for this login, in the policy's order.
	Methods []Method
	// Default is the method the login stack should prompt for first.
	Default Method
	// Reason says why, for the audit log and the login stack (never
	// anything that tells an unknown user from a known one).
	Reason string
	// Messages are shown to the user (e.g. an enrolment reminder).
	Messages []string
}

// DecoyMethods is what a login is offered when the user has no usable factor
// (including a user that does not exist): the methods an ordinary enrolled
// user has, so the answer does not tell the two apart.
var DecoyMethods = []Method{MethodTOTP, MethodRecovery}

// Decide answers a login under in.Policy:
//
//   - require = "never": allow.
//   - no usable method: "optional" allows; otherwise a user with factors
//     that cannot work now, and a user without factors under unenrolled =
//     "deny" (or past the enrolment deadline), gets the decoy challenge that
//     no code can satisfy; unenrolled = "warn" (or before the deadline)
//     allows with a message asking the user to enrol.
//   - a valid remember-device token allows (when the policy issues them).
//   - require = "risky": a known network without recent failures allows.
//   - otherwise: challenge with the usable methods in the policy's order,
//     the default being the user's preferred method when usable, else the
//     first (strongest, with the default order).
func Decide(in LoginInput) LoginDecision {
	p := in.Policy
	if p.Require == "never" {
		return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": no second factor required"}
	}
	methods := order(in.Methods, p.Methods)
	if len(methods) == 0 {
		switch {
		case p.Require == "optional" && !in.Enrolled:
			return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": second factor optional"}
		case !in.Enrolled && p.Unenrolled == "warn":
			return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": not enrolled (warned)",
				Messages: []string{"Your account has no second factor. Set one up now: mfad totp enroll"}}
		case !in.Enrolled && p.Unenrolled == "deadline" && in.Now.Before(p.EnrollDeadline):
			return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": not enrolled (before deadline)",
				Messages: []string{"Your account has no second factor. Set one up before " +
					p.EnrollDeadline.UTC().Format("2006-01-02 15:04 MST") + " or you will not be able to log in: mfad totp enroll"}}
		}
		return decoy(p)
	}
	if in.RememberedDevice && p.RememberDevice > 0 {
		return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": remembered device"}
	}
	reason := "policy " + p.Name + ": second factor required"
	if p.Require == "risky" {
		switch {
		case in.KnownNetwork && !in.RecentFailures:
			return LoginDecision{Decision: Allow, Reason: "policy " + p.Name + ": known network"}
		case in.RecentFailures:
			reason = "policy " + p.Name + ": recent failures"
		default:
			reason = "policy " + p.Name + ": new network"
		}
	}
	def := methods[0]
	if in.Preferred != "" && slices.Contains(methods, in.Preferred) {
		def = in.Preferred
	}
	return LoginDecision{Decision: Challenge, Methods: methods, Default: def, Reason: reason}
}

// order returns the user's methods that the policy allows, in the policy's
// order (strongest first when the policy lists none), without duplicates.
func order(user []Method, allowed []string) []Method {
	if len(allowed) == 0 {
		allowed = []string{string(MethodU2F), string(MethodTOTP), string(MethodSMS), string(MethodRecovery)}
	}
	var out []Method
	for _, a := range allowed {
		if m := Method(a); slices.Contains(user, m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// decoy is the challenge for a login no code can satisfy, shaped like an
// ordinary user's challenge under the same policy.
func decoy(p config.Policy) LoginDecision {
	methods := order(DecoyMethods, p.Methods)
	if len(methods) == 0 {
		methods = order([]Method{MethodSMS, MethodTOTP, MethodRecovery}, p.Methods)
	}
	if len(methods) == 0 {
		methods = []Method{MethodTOTP}
	}
	return LoginDecision{Decision: Challenge, Methods: methods, Default: methods[0],
		Reason: "policy " + p.Name + ": second factor required"}
}
