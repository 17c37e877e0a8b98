package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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
}

// Login is a login in progress, answered by StartLogin.
type Login struct {
	ID       string
	Decision policy.Decision
	Methods  []policy.Method
	Default  policy.Method
	Reason   string
	Expires  time.Time
}

// loginRecord is stored under login/<id> with the login TTL.
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
// methods to offer. An unknown user gets the same kind of answer as a user
// without usable factors, and neither can ever pass verification.
func (s *Service) StartLogin(ctx context.Context, c Caller, req LoginRequest) (*Login, error) {
	if err := ValidateUserName(req.User); err != nil {
		return nil, err
	}
	if err := validateContext(req.Service, req.RHost, req.TTY); err != nil {
		return nil, err
	}
	id, err := s.newID(16)
	if err != nil {
		return nil, err
	}
	st := s.Settings()
	var out *Login
	err = s.db.Update(ctx, func(txn *store.Txn) error {
		methods, err := usableMethods(txn, req.User, req.RHost == "" && s.U2F != nil)
		if err != nil {
			return err
		}
		d := policy.Decide(policy.LoginInput{Methods: methods})
		now := txn.Now()
		rec := loginRecord{ID: id, User: req.User, Service: req.Service, RHost: req.RHost, TTY: req.TTY,
			Caller: c.UID, Created: now, Expires: now.Add(st.LoginTTL)}
		if err := txn.PutTTL(loginKey(id), rec, st.LoginTTL); err != nil {
			return err
		}
		out = &Login{ID: id, Decision: d.Decision, Methods: d.Methods, Default: d.Default, Reason: d.Reason, Expires: rec.Expires}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Debug("login started", "user", req.User, "service", req.Service, "rhost", req.RHost, "decision", out.Decision)
	return out, nil
}

// usableMethods lists the methods the user can complete right now.
// U2F keys count only for local logins (a key must be plugged into this
// machine) when the daemon drives U2F hardware.
func usableMethods(txn *store.Txn, user string, u2fUsable bool) ([]policy.Method, error) {
	u, _, err := loadUser(txn, user)
	if err != nil {
		return nil, err
	}
	var methods []policy.Method
	for _, f := range u.Factors {
		if f.Status == StatusActive && (f.Type != policy.MethodU2F || u2fUsable) {
			methods = append(methods, f.Type)
		}
	}
	if u.Recovery != nil && u.Recovery.Remaining() > 0 {
		methods = append(methods, policy.MethodRecovery)
	}
	return methods, nil
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
// ErrLoginExpired.
func (s *Service) VerifyLogin(ctx context.Context, c Caller, loginID, code string, method policy.Method) (*Verification, error) {
	if loginID == "" || len(loginID) > 64 {
		return nil, ErrLoginExpired
	}
	return s.verify(ctx, c, VerifyRequest{Code: code, Method: method}, loginID)
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
	return s.verify(ctx, c, req, "")
}

// verify checks a code (TOTP or recovery) through decide.
func (s *Service) verify(ctx context.Context, c Caller, req VerifyRequest, loginID string) (*Verification, error) {
	switch req.Method {
	case "", policy.MethodTOTP, policy.MethodRecovery:
	default:
		return nil, invalid("method %q is not available", req.Method)
	}
	if len(req.Code) > 128 {
		return nil, invalid("code is longer than 128 bytes")
	}
	tryTOTP := req.Method == "" || req.Method == policy.MethodTOTP
	tryRecovery := req.Method == "" || req.Method == policy.MethodRecovery
	if req.Method == "" {
		// Try a code only as the methods whose shape it fits.
		_, isRecovery := recovery.Normalize(req.Code)
		tryRecovery = isRecovery
		tryTOTP = !isRecovery
		// Record what the code was tried as (audit, metrics).
		req.Method = policy.MethodTOTP
		if isRecovery {
			req.Method = policy.MethodRecovery
		}
	}

	return s.decide(ctx, c, req, loginID, func(txn *store.Txn, req VerifyRequest, out *Verification) (bool, string, error) {
		return s.check(txn, req, tryTOTP, tryRecovery, out)
	})
}

// checkFunc checks a second factor for req.User inside the decision's
// transaction, consuming what matched, and fills in out.Method and the
// method's details. detail is an audit note for a failure, never secret.
type checkFunc func(txn *store.Txn, req VerifyRequest, out *Verification) (matched bool, detail string, err error)

// decide is the one place a second factor is judged. The login's state, the
// lockout check, the check itself (which uses up the code, TOTP step or key
// counter), the failure counter and the audit event are one transaction.
func (s *Service) decide(ctx context.Context, c Caller, req VerifyRequest, loginID string, check checkFunc) (*Verification, error) {
	lk := s.Settings().lockout()
	var out *Verification
	var ev store.Event
	var lockStarted bool
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		now := txn.Now()
		lockStarted = false
		var lr loginRecord
		if loginID != "" {
			found, err := txn.Get(loginKey(loginID), &lr)
			if err != nil {
				return err
			}
			if !found || lr.Done || !now.Before(lr.Expires) {
				return ErrLoginExpired
			}
			req.User, req.Service, req.RHost = lr.User, lr.Service, lr.RHost
		}
		out = &Verification{}
		ev = auditEvent(c, req.User, "verify")
		ev.Service, ev.RHost, ev.Method = req.Service, req.RHost, string(req.Method)
		if loginID != "" {
			ev.Detail = "login " + loginID
		}

		var fs policy.FailState
		if _, err := txn.Get(failKey(req.User), &fs); err != nil {
			return err
		}
		if locked, retry := lk.Locked(fs, now); locked {
			out.Result, out.RetryAfter = ResultLocked, retry
			ev.Result = "locked"
			return nil
		}

		matched, detail, err := check(txn, req, out)
		if err != nil {
			return err
		}
		if matched {
			out.Result = ResultOK
			ev.Result, ev.Method = "ok", string(out.Method)
			if detail != "" {
				ev.Detail = strings.TrimSpace(ev.Detail + " " + detail)
			}
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
			if loginID != "" {
				lr.Done = true
				if err := txn.PutTTL(loginKey(loginID), lr, max(lr.Expires.Sub(now), time.Second)); err != nil {
					return err
				}
			}
			return nil
		}

		lockedNow := lk.Fail(&fs, now)
		if err := txn.PutTTL(failKey(req.User), fs, lk.Retain(fs, now)); err != nil {
			return err
		}
		ev.Result = "fail"
		if detail != "" {
			ev.Detail = strings.TrimSpace(ev.Detail + " " + detail)
		}
		if lockedNow {
			lockStarted = true
			out.Result, out.RetryAfter = ResultLocked, fs.LockedUntil.Sub(now)
			ev.Result = "locked"
			ev.Detail = strings.TrimSpace(ev.Detail + " lockout started")
		} else {
			out.Result = ResultFail
			out.AttemptsLeft = lk.AttemptsLeft(fs, now)
		}
		return nil
	})
	if err != nil {
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

// check tries the code against the user's factors, consuming what matched
// (in txn). It does the same work whether or not the user exists. detail is
// an audit note for a failure ("replay", "clock drift", ...), never secret.
func (s *Service) check(txn *store.Txn, req VerifyRequest, tryTOTP, tryRecovery bool, out *Verification) (matched bool, detail string, err error) {
	now := txn.Now()
	st := s.Settings()
	out.Reason = ReasonInvalid
	u, _, err := loadUser(txn, req.User)
	if err != nil {
		return false, "", err
	}
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
