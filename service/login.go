package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/store"
)

// LoginRequest starts a login.
type LoginRequest struct {
	User    string
	Service string // PAM service, e.g. "sshd"
	RHost   string // remote host, "" for local logins
	TTY     string
	// DeviceToken is a remember-device token from an earlier login.
	DeviceToken string
}

// Login is a login in progress, answered by StartLogin.
type Login struct {
	ID       string
	Decision policy.Decision
	Methods  []policy.Method
	Default  policy.Method
	Reason   string
	Expires  time.Time
	// Policy is the name of the policy that decided the login.
	Policy string
	// Messages are shown to the user (enrolment reminders and the like).
	Messages []string
	// Remember reports whether a successful verification may ask for a
	// remember-device token (the policy issues them).
	Remember bool
}

// loginRecord is a login in progress, held in the service's loginTable.
type loginRecord struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Service string    `json:"service,omitempty"`
	RHost   string    `json:"rhost,omitempty"`
	TTY     string    `json:"tty,omitempty"`
	Caller  int       `json:"caller_uid"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Done    bool      `json:"done,omitempty"`
	Policy  string    `json:"policy,omitempty"`
}

func validateContext(service, rhost, tty string) error {
	fields := [...]struct{ name, value string }{{"service", service}, {"rhost", rhost}, {"tty", tty}}
	for _, f := range fields {
		if len(f.value) > 256 || strings.ContainsFunc(f.value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return invalid("%s must be at most 256 printable characters", f.name)
		}
	}
	return nil
}

// StartLogin decides whether the login needs a second factor and which
// methods to offer, under the first policy that matches it. An unknown user
// gets the same kind of answer as a user without usable factors, and neither
// can ever pass verification. A temporary bypass or an account recovery
// request that took effect lets the login in, audited.
func (s *Service) StartLogin(ctx context.Context, c Caller, req LoginRequest) (*Login, error) {
	if err := ValidateUserName(req.User); err != nil {
		return nil, err
	}
	if err := validateContext(req.Service, req.RHost, req.TTY); err != nil {
		return nil, err
	}
	if len(req.DeviceToken) > 128 {
		return nil, invalid("device_token is longer than 128 bytes")
	}
	id, err := s.newID(16)
	if err != nil {
		return nil, err
	}
	st := s.Settings()
	pol := s.policyFor(st, req.User, req.Service, req.RHost)
	network := policy.Network(req.RHost)
	var out *Login
	var events []store.Event
	var changed bool
	var rec loginRecord
	// The login itself is held in memory (see loginTable); the transaction
	// writes only when the decision changes the account or lets the login
	// in, which is audited and waits for the disk.
	err = s.db.UpdateVolatile(ctx, func(txn *store.Txn) error {
		events, changed = events[:0], false
		now := txn.Now()
		rec = loginRecord{ID: id, User: req.User, Service: req.Service, RHost: req.RHost, TTY: req.TTY,
			Caller: c.UID, Created: now, Expires: now.Add(st.LoginTTL), Policy: pol.Name}
		out = &Login{ID: id, Expires: rec.Expires, Policy: pol.Name}
		u, found, err := loadUser(txn, req.User)
		if err != nil {
			return err
		}
		d, ev, err := s.accountOverride(txn, st, u, found, c, req, &changed)
		if err != nil {
			return err
		}
		if ev == nil {
			methods, enrolled := usableMethods(u, req.RHost == "" && s.keyPlugged(), s.SMS != nil && s.SMS.Ready())
			in := policy.LoginInput{Policy: pol, Enrolled: enrolled, Methods: methods, Preferred: u.Preferred, Now: now}
			if found && enrolled {
				var fs policy.FailState
				if _, err := txn.Get(failKey(req.User), &fs); err != nil {
					return err
				}
				in.RecentFailures = policy.LockoutFrom(pol.Lockout).Recent(fs, now)
				if req.DeviceToken != "" && pol.RememberDevice > 0 {
					if in.RememberedDevice, err = checkDevice(txn, req.User, network, req.DeviceToken); err != nil {
						return err
					}
				}
				if pol.Require == "risky" {
					if in.KnownNetwork, err = knownNetwork(txn, req.User, network, pol.KnownFor); err != nil {
						return err
					}
				}
			}
			d = policy.Decide(in)
			if d.Decision == policy.Allow {
				e := auditEvent(c, req.User, "login")
				e.Result, e.Detail = "allow", d.Reason
				ev = &e
			}
		}
		if d.Decision == policy.Allow {
			rec.Done = true
			if found && (u.Recovery == nil || u.Recovery.Remaining() == 0) && len(u.Factors) > 0 {
				d.Messages = append(d.Messages, noRecoveryMessage)
			}
		}
		out.Decision, out.Methods, out.Default, out.Reason, out.Messages = d.Decision, d.Methods, d.Default, d.Reason, d.Messages
		out.Remember = d.Decision == policy.Challenge && pol.RememberDevice > 0
		if ev != nil {
			ev.Service, ev.RHost, ev.Detail = req.Service, req.RHost, strings.TrimSpace(ev.Detail+" login "+id)
			events = append(events, *ev)
			if err := txn.Audit(*ev, st.AuditRetention); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && (len(events) > 0 || changed) {
		err = s.db.WaitDurable(ctx)
	}
	if err != nil {
		return nil, err
	}
	if !rec.Done {
		s.logins.add(rec, rec.Created)
	}
	for _, ev := range events {
		s.logEvent(ev)
	}
	s.log.Debug("login started", "user", req.User, "service", req.Service, "rhost", req.RHost, "policy", pol.Name, "decision", out.Decision)
	return out, nil
}

// keyPlugged reports whether the daemon drives U2F hardware and, when the
// hardware can tell (Plugged), a key is plugged in now.
func (s *Service) keyPlugged() bool {
	if s.U2F == nil {
		return false
	}
	if p, ok := s.U2F.(interface{ Plugged() bool }); ok {
		return p.Plugged()
	}
	return true
}

// noRecoveryMessage is shown at logins of users with factors but no unused
// recovery codes.
const noRecoveryMessage = "You have no recovery codes left: if you lose your other factors you cannot log in. Generate a set now: mfad recovery-codes generate"

// usableMethods lists the methods the user can complete right now, and
// whether the user has any active factor at all. U2F keys count only for
// local logins (a key must be plugged into this machine) when the daemon
// drives U2F hardware; phones only while a modem is ready.
func usableMethods(u *userRecord, u2fUsable, smsUsable bool) (methods []policy.Method, enrolled bool) {
	for _, f := range u.Factors {
		if f.Status != StatusActive {
			continue
		}
		enrolled = true
		switch f.Type {
		case policy.MethodU2F:
			if u2fUsable {
				methods = append(methods, f.Type)
			}
		case policy.MethodSMS:
			if smsUsable {
				methods = append(methods, f.Type)
			}
		default:
			methods = append(methods, f.Type)
		}
	}
	if u.Recovery != nil && u.Recovery.Remaining() > 0 {
		methods = append(methods, policy.MethodRecovery)
	}
	return methods, enrolled
}

// Result is the outcome of a verification.
type Result string

// Results.
const (
	ResultOK     Result = "ok"
	ResultFail   Result = "fail"
	ResultLocked Result = "locked"
)

// Reasons a code failed, safe to show to the user.
const (
	ReasonInvalid    = "invalid"     // wrong, malformed, already used, or no such user
	ReasonClockDrift = "clock_drift" // a TOTP code that matches only far from now
)

// VerifyRequest asks whether code is a valid second factor for User.
type VerifyRequest struct {
	User string
	Code string
	// Method restricts the code to one method; "" tries the methods whose
	// shape the code fits (TOTP: digits; recovery: 16 hex digits).
	Method  policy.Method
	Service string
	RHost   string
	// Remember asks for a remember-device token on success (login only).
	Remember bool

	// loginID is set by decide for the checks of a login's own codes.
	loginID string
}

// Verification is the answer to a verification.
type Verification struct {
	Result Result
	Method policy.Method // the method that matched, on ResultOK
	// AttemptsLeft before a lockout (on ResultFail).
	AttemptsLeft int
	// RetryAfter is how long the lockout lasts (on ResultLocked).
	RetryAfter time.Duration
	// Reason refines ResultFail (ReasonInvalid or ReasonClockDrift).
	Reason string
	// DriftSteps is the authenticator's offset in time steps when Reason is
	// ReasonClockDrift (positive: its clock is ahead).
	DriftSteps int
	// RecoveryRemaining is the number of unused recovery codes after a
	// recovery code was used; RecoveryLow flags when it fell below the
	// configured warning level.
	RecoveryRemaining int
	RecoveryLow       bool
	// RememberToken is a new remember-device token, issued on ResultOK when
	// the verification asked for one and the login's policy allows it.
	RememberToken string
	// Messages are shown to the user on ResultOK (e.g. no recovery codes).
	Messages []string

	// user is the record the check loaded (and may have updated), reused
	// by the success path of the same transaction.
	user *userRecord
}

// CodeError reports a rejected enrollment code.
type CodeError struct {
	Reason     string
	DriftSteps int
}

func (e *CodeError) Error() string {
	if e.Reason == ReasonClockDrift {
		return fmt.Sprintf("code rejected: the authenticator's clock looks %d time steps off; fix its time and try again", e.DriftSteps)
	}
	return "code rejected"
}

// VerifyLogin verifies a code for a login started with StartLogin. A
// successful verification finishes the login; later attempts get
// ErrLoginExpired. With remember set and a policy that allows it, a
// successful verification also returns a remember-device token.
func (s *Service) VerifyLogin(ctx context.Context, c Caller, loginID, code string, method policy.Method, remember bool) (*Verification, error) {
	if loginID == "" || len(loginID) > 64 {
		return nil, ErrLoginExpired
	}
	return s.verify(ctx, c, VerifyRequest{Code: code, Method: method, Remember: remember}, loginID, nil)
}

// Verify checks a code for a user in one step, without a login id (for
// login stacks that run their own flow, and for scripts).
func (s *Service) Verify(ctx context.Context, c Caller, req VerifyRequest) (*Verification, error) {
	if err := ValidateUserName(req.User); err != nil {
		return nil, err
	}
	if err := validateContext(req.Service, req.RHost, ""); err != nil {
		return nil, err
	}
	req.Remember = false
	return s.verify(ctx, c, req, "", nil)
}

// verify checks a code (TOTP or recovery) through decide; onOK runs in the
// decision's transaction when the code matched.
func (s *Service) verify(ctx context.Context, c Caller, req VerifyRequest, loginID string, onOK func(*store.Txn) error) (*Verification, error) {
	switch req.Method {
	case "", policy.MethodTOTP, policy.MethodRecovery, policy.MethodSMS:
	default:
		return nil, invalid("method %q is not available", req.Method)
	}
	if len(req.Code) > 128 {
		return nil, invalid("code is longer than 128 bytes")
	}
	tryTOTP := req.Method == "" || req.Method == policy.MethodTOTP
	tryRecovery := req.Method == "" || req.Method == policy.MethodRecovery
	trySMS := req.Method == "" || req.Method == policy.MethodSMS
	if req.Method == "" {
		// Try a code only as the methods whose shape it fits.
		_, isRecovery := recovery.Normalize(req.Code)
		tryRecovery = isRecovery
		tryTOTP, trySMS = !isRecovery, !isRecovery
		// Record what the code was tried as (audit, metrics).
		req.Method = policy.MethodTOTP
		if isRecovery {
			req.Method = policy.MethodRecovery
		}
	}

	return s.decide(ctx, c, req, loginID, func(txn *store.Txn, req VerifyRequest, out *Verification) (bool, string, error) {
		matched, detail, err := s.check(txn, req, tryTOTP, trySMS, tryRecovery, out)
		if matched && err == nil && onOK != nil {
			err = onOK(txn)
		}
		return matched, detail, err
	})
}

// checkFunc checks a second factor for req.User inside the decision's
// transaction, consuming what matched, and fills in out.Method and the
// method's details. detail is an audit note for a failure, never secret.
type checkFunc func(txn *store.Txn, req VerifyRequest, out *Verification) (matched bool, detail string, err error)

// decide is the one place a second factor is judged. The login's state, the
// source and user throttles, the check itself (which uses up the code, TOTP
// step or key counter), the failure counters, what a success unlocks
// (known network, remember-device token, cancelling a pending account
// recovery) and the audit event are one transaction.
//
// Guessable methods (codes) are refused while the source network is slowed
// down or the user is locked, and their failures count against both. A
// security key signature cannot be guessed: it is never refused by a lock,
// its failures do not count, and its success clears the user's lock, so a
// user at the console with a key is never locked out by code guessing
// elsewhere.
func (s *Service) decide(ctx context.Context, c Caller, req VerifyRequest, loginID string, check checkFunc) (*Verification, error) {
	st := s.Settings()
	var out *Verification
	var ev store.Event
	var lockStarted bool
	var lr loginRecord
	if loginID != "" {
		var end func(success bool)
		var err error
		if lr, end, err = s.logins.claim(loginID, s.now()); err != nil {
			return nil, err
		}
		// The login is over once a verification succeeded durably.
		defer func() { end(out != nil && out.Result == ResultOK) }()
	}
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		now := txn.Now()
		lockStarted = false
		var pol config.Policy
		if loginID != "" {
			if !now.Before(lr.Expires) {
				return ErrLoginExpired
			}
			req.User, req.Service, req.RHost = lr.User, lr.Service, lr.RHost
			pol = st.policyByName(lr.Policy)
		} else {
			pol = s.policyFor(st, req.User, req.Service, req.RHost)
		}
		lk, src := policy.LockoutFrom(pol.Lockout), policy.SourceLimitFrom(pol.Lockout)
		network := policy.Network(req.RHost)
		guessable := policy.Guessable(req.Method)
		req.loginID = loginID
		out = &Verification{}
		ev = auditEvent(c, req.User, "verify")
		ev.Service, ev.RHost, ev.Method = req.Service, req.RHost, string(req.Method)
		if loginID != "" {
			ev.Detail = "login " + loginID
		}

		var ss policy.SourceState
		var fs policy.FailState
		if _, err := txn.Get(failKey(req.User), &fs); err != nil {
			return err
		}
		if guessable {
			if _, err := txn.Get(sourceKey(network), &ss); err != nil {
				return err
			}
			if blocked, retry := src.Blocked(ss, now); blocked {
				out.Result, out.RetryAfter = ResultLocked, retry
				ev.Result = "throttled"
				ev.Detail = strings.TrimSpace(ev.Detail + " source " + network + " slowed down")
				return nil
			}
			if locked, retry := lk.Locked(fs, now); locked {
				out.Result, out.RetryAfter = ResultLocked, retry
				ev.Result = "locked"
				return nil
			}
		}

		matched, detail, err := check(txn, req, out)
		if err != nil {
			return err
		}
		if detail != "" {
			ev.Detail = strings.TrimSpace(ev.Detail + " " + detail)
		}
		if matched {
			out.Result = ResultOK
			ev.Result, ev.Method = "ok", string(out.Method)
			return s.succeeded(txn, pol, lr, req, fs, network, out, &ev)
		}
		ev.Result = "fail"
		out.Result, out.AttemptsLeft = ResultFail, -1
		if !guessable {
			return nil
		}
		src.Fail(&ss, now)
		if err := txn.PutTTL(sourceKey(network), ss, src.Retain(ss, now)); err != nil {
			return err
		}
		lockedNow := lk.Fail(&fs, now)
		if err := txn.PutTTL(failKey(req.User), fs, lk.Retain(fs, now)); err != nil {
			return err
		}
		if lockedNow {
			lockStarted = true
			_, out.RetryAfter = lk.Locked(fs, now)
			out.Result = ResultLocked
			ev.Result = "locked"
			ev.Detail = strings.TrimSpace(ev.Detail + " lockout started")
			if fs.Hard {
				ev.Detail += fmt.Sprintf(" (hard limit: %d consecutive failures; mfad user unlock)", fs.Consecutive)
			}
		} else {
			out.AttemptsLeft = lk.AttemptsLeft(fs, now)
		}
		return nil
	})
	if err != nil {
		out = nil
		return nil, err
	}
	method := out.Method
	if method == "" {
		method = req.Method
	}
	s.Metrics.Verification(string(method), string(out.Result))
	if lockStarted {
		s.Metrics.Lockout()
	}
	return out, nil
}

// succeeded applies what a successful verification unlocks, inside the
// decision's transaction.
func (s *Service) succeeded(txn *store.Txn, pol config.Policy, lr loginRecord, req VerifyRequest, fs policy.FailState,
	network string, out *Verification, ev *store.Event) error {
	now := txn.Now()
	if out.Method == policy.MethodRecovery {
		ev.Detail = strings.TrimSpace(ev.Detail + fmt.Sprintf(" recovery codes left: %d", out.RecoveryRemaining))
		if out.RecoveryLow {
			ev.Detail += " (low: generate a new set)"
		}
	}
	if fs != (policy.FailState{}) {
		if err := txn.Delete(failKey(req.User)); err != nil {
			return err
		}
	}
	// Known networks only matter to risk-based policies; other logins skip
	// the write.
	if pol.Require == "risky" {
		if err := txn.PutTTL(seenKey(req.User, network), seenRecord{Time: now}, pol.KnownFor); err != nil {
			return err
		}
	}
	u := out.user
	if u == nil {
		var err error
		if u, _, err = loadUser(txn, req.User); err != nil {
			return err
		}
	}
	if u.RecoveryPending {
		if err := s.cancelRecoveryByLogin(txn, u, ev); err != nil {
			return err
		}
	}
	if u.Recovery == nil || u.Recovery.Remaining() == 0 {
		out.Messages = append(out.Messages, noRecoveryMessage)
	}
	if lr.ID == "" {
		return nil
	}
	if req.Remember && pol.RememberDevice > 0 {
		token, err := s.issueDevice(txn, pol, lr)
		if err != nil {
			return err
		}
		out.RememberToken = token
		ev.Detail = strings.TrimSpace(ev.Detail + " device remembered")
	}
	return nil
}

// check tries the code against the user's factors, consuming what matched
// (in txn). It does the same work whether or not the user exists. detail is
// an audit note for a failure ("replay", "clock drift", ...), never secret.
func (s *Service) check(txn *store.Txn, req VerifyRequest, tryTOTP, trySMS, tryRecovery bool, out *Verification) (matched bool, detail string, err error) {
	now := txn.Now()
	st := s.Settings()
	out.Reason = ReasonInvalid
	u, _, err := loadUser(txn, req.User)
	if err != nil {
		return false, "", err
	}
	out.user = u
	if tryTOTP {
		checked := false
		for _, f := range u.Factors {
			if f.Status != StatusActive || f.TOTP == nil {
				continue
			}
			checked = true
			m, verr := otp.Verify(otp.Secret(f.TOTP.Secret), req.Code, now, f.TOTP.params(), st.TOTP.Skew, st.TOTP.DriftWindow, f.TOTP.LastCounter)
			var drift *otp.ClockDriftError
			switch {
			case verr == nil:
				f.TOTP.LastCounter = m.Counter
				f.LastUsed = now
				if err := saveUser(txn, u); err != nil {
					return false, "", err
				}
				out.Method = policy.MethodTOTP
				return true, "", nil
			case errors.Is(verr, otp.ErrReplayed):
				detail = "replayed totp code"
			case errors.As(verr, &drift):
				out.Reason, out.DriftSteps = ReasonClockDrift, drift.Steps
				detail = fmt.Sprintf("totp clock drift %d steps", drift.Steps)
			}
		}
		if !checked {
			// Same work as for a user with one factor.
			_, _ = otp.Verify(s.decoy, req.Code, now, st.totpParams(), st.TOTP.Skew, st.TOTP.DriftWindow, 0)
		}
	}
	if trySMS {
		m, d, err := s.checkLoginSMS(txn, u, req.loginID, req.Code, out)
		if err != nil || m {
			return m, d, err
		}
		if d != "" {
			detail = strings.TrimSpace(detail + "; " + d)
		}
	}
	if tryRecovery {
		set := u.Recovery
		if set == nil {
			set = &recovery.Set{} // same call, no match
		}
		remaining, cerr := set.Consume(s.hasher, req.Code, now)
		switch {
		case cerr == nil && u.Recovery != nil:
			if err := saveUser(txn, u); err != nil {
				return false, "", err
			}
			out.Method = policy.MethodRecovery
			out.RecoveryRemaining = remaining
			out.RecoveryLow = remaining < st.Recovery.WarnBelow
			out.Reason = ""
			return true, "", nil
		case errors.Is(cerr, recovery.ErrUsed):
			detail = "reused recovery code"
		}
	}
	return false, detail, nil
}
