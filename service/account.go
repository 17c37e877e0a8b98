package service

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/store"
)

// Notifier tells a user about something that happened to their account
// (a recovery request, a bypass, a factor removed by an admin) on every
// confirmed phone. Notify returns how many phones the notice was queued
// for; it must not block on the modem. Implementations must be safe for
// concurrent use; the text never contains the user's name.
type Notifier interface {
	Notify(ctx context.Context, user, text string) (phones int, err error)
}

// Account recovery request states.
const (
	RecoveryPending   = "pending"   // waiting for its delay; can be cancelled
	RecoveryCancelled = "cancelled" // cancelled by the user, a login or an admin
	RecoveryEffective = "effective" // took effect: the next login is let in once
	RecoveryDone      = "done"      // the action happened (bypass used or factors reset)
)

// recoveryRequest is stored under rreq/<user>: the user's latest account
// recovery request (one at a time).
type recoveryRequest struct {
	ID          string    `json:"id"`
	Reason      string    `json:"reason"`
	Action      string    `json:"action"`
	OpenedBy    int       `json:"opened_by"`
	Opened      time.Time `json:"opened"`
	EffectiveAt time.Time `json:"effective_at"`
	// CancelHash is the keyed hash of the cancel code sent to the phones.
	CancelHash   []byte    `json:"cancel_hash"`
	Status       string    `json:"status"`
	LastReminder time.Time `json:"last_reminder"`
	Closed       time.Time `json:"closed,omitzero"`
	ClosedHow    string    `json:"closed_how,omitempty"`
}

// bypassRecord is stored under bypass/<user> while a temporary bypass is
// granted; Tick removes it (audited) once it ended.
type bypassRecord struct {
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason"`
	By      int       `json:"by"`
	Created time.Time `json:"created"`
}

func recoveryRequestKey(user string) []byte { return store.Key("rreq", user) }
func bypassKey(user string) []byte          { return store.Key("bypass", user) }

// RecoveryRequest describes an account recovery request (never its code).
type RecoveryRequest struct {
	ID          string
	User        string
	Reason      string
	Action      string
	Status      string
	Opened      time.Time
	EffectiveAt time.Time
	Closed      time.Time
	ClosedHow   string
	// Notified is how many phones were told when it was opened.
	Notified int
}

func (r *recoveryRequest) info(user string) *RecoveryRequest {
	return &RecoveryRequest{ID: r.ID, User: user, Reason: r.Reason, Action: r.Action, Status: r.Status,
		Opened: r.Opened, EffectiveAt: r.EffectiveAt, Closed: r.Closed, ClosedHow: r.ClosedHow}
}

func validateReason(reason string) error {
	if strings.TrimSpace(reason) == "" || len(reason) > 256 || strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid("reason must be 1 to 256 printable characters")
	}
	return nil
}

// OpenRecoveryRequest (admin) opens a time-locked account recovery for a
// user who lost every factor. It takes effect after account_recovery.delay
// unless cancelled; every confirmed phone of the user is told at once, with
// a cancel code, and reminded every account_recovery.remind_every.
func (s *Service) OpenRecoveryRequest(ctx context.Context, c Caller, user, reason string) (*RecoveryRequest, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	st := s.Settings()
	id, err := s.newID(8)
	if err != nil {
		return nil, err
	}
	codes, err := recovery.Generate(s.rand(), 1)
	if err != nil {
		return nil, err
	}
	canonical, _ := recovery.Normalize(codes[0].Reveal())
	var rr recoveryRequest
	ev := auditEvent(c, user, "recovery_request.open")
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		u, found, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		var old recoveryRequest
		if ok, err := txn.Get(recoveryRequestKey(user), &old); err != nil {
			return err
		} else if ok && (old.Status == RecoveryPending || old.Status == RecoveryEffective) {
			return fmt.Errorf("%w: an account recovery request (%s) is already open; cancel it first", ErrConflict, old.ID)
		}
		now := txn.Now()
		rr = recoveryRequest{ID: id, Reason: reason, Action: st.AccountRecovery.Action, OpenedBy: c.UID, Opened: now,
			EffectiveAt: now.Add(st.AccountRecovery.Delay), CancelHash: s.hasher.Hash(canonical), Status: RecoveryPending, LastReminder: now}
		ev.Result = "ok"
		ev.Detail = fmt.Sprintf("request %s, action %s, effective %s: %s", id, rr.Action, rr.EffectiveAt.UTC().Format(time.RFC3339), reason)
		u.RecoveryPending = true
		if err := saveUser(txn, u); err != nil {
			return err
		}
		return txn.Put(recoveryRequestKey(user), rr)
	})
	if err != nil {
		return nil, err
	}
	info := rr.info(user)
	info.Notified = s.notify(ctx, user, fmt.Sprintf(
		"mfad: an administrator opened an account recovery for your login. It takes effect %s. If you did not ask for it, cancel it with code %s (mfad recovery cancel) or by logging in.",
		rr.EffectiveAt.UTC().Format("2006-01-02 15:04 MST"), codes[0].Reveal()))
	return info, nil
}

// notify tells the user's phones, logging (never the text) what failed.
func (s *Service) notify(ctx context.Context, user, text string) int {
	if s.Notifier == nil {
		return 0
	}
	n, err := s.Notifier.Notify(ctx, user, text)
	if err != nil {
		s.log.Warn("notifying user failed", "user", user, "err", err)
	}
	return n
}

// RecoveryRequestOf returns the user's latest account recovery request.
func (s *Service) RecoveryRequestOf(user string) (*RecoveryRequest, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	var out *RecoveryRequest
	err := s.db.View(func(txn *store.Txn) error {
		var rr recoveryRequest
		found, err := txn.Get(recoveryRequestKey(user), &rr)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		out = rr.info(user)
		return nil
	})
	return out, err
}

// CancelRecoveryRequest cancels the user's open account recovery request.
// An admin needs no code; anyone else must give the cancel code sent to the
// user's phones.
func (s *Service) CancelRecoveryRequest(ctx context.Context, c Caller, user, code string) (*RecoveryRequest, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	var out *RecoveryRequest
	ev := auditEvent(c, user, "recovery_request.cancel")
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		var rr recoveryRequest
		found, err := txn.Get(recoveryRequestKey(user), &rr)
		if err != nil {
			return err
		}
		if !found || (rr.Status != RecoveryPending && rr.Status != RecoveryEffective) {
			return ErrNotFound
		}
		how := "by admin"
		if !c.Admin {
			canonical, ok := recovery.Normalize(code)
			if !ok || subtle.ConstantTimeCompare(rr.CancelHash, s.hasher.Hash(canonical)) != 1 {
				ev.Result, ev.Detail = "fail", "request "+rr.ID+": wrong cancel code"
				out = nil
				return nil
			}
			how = "with the cancel code"
		}
		rr.Status, rr.Closed, rr.ClosedHow = RecoveryCancelled, txn.Now(), how
		ev.Result, ev.Detail = "ok", "request "+rr.ID+" cancelled "+how
		out = rr.info(user)
		if u, found, err := loadUser(txn, user); err != nil {
			return err
		} else if found && u.RecoveryPending {
			u.RecoveryPending = false
			if err := saveUser(txn, u); err != nil {
				return err
			}
		}
		return txn.Put(recoveryRequestKey(user), rr)
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, &CodeError{Reason: ReasonInvalid}
	}
	s.notify(ctx, user, "mfad: the account recovery for your login was cancelled.")
	return out, nil
}

// cancelRecoveryByLogin cancels a pending request when the user proves a
// factor: whoever asked for the recovery evidently still has one.
func (s *Service) cancelRecoveryByLogin(txn *store.Txn, u *userRecord, ev *store.Event) error {
	user := u.Name
	u.RecoveryPending = false
	if err := saveUser(txn, u); err != nil {
		return err
	}
	var rr recoveryRequest
	found, err := txn.Get(recoveryRequestKey(user), &rr)
	if err != nil || !found || rr.Status != RecoveryPending {
		return err
	}
	rr.Status, rr.Closed, rr.ClosedHow = RecoveryCancelled, txn.Now(), "by a login with a second factor"
	ev.Detail = strings.TrimSpace(ev.Detail + " account recovery " + rr.ID + " cancelled")
	return txn.Put(recoveryRequestKey(user), rr)
}

// GrantBypass (admin) lets the user log in without a second factor until
// now+d (at most account_recovery.max_bypass), audited; the user's phones
// are told.
func (s *Service) GrantBypass(ctx context.Context, c Caller, user string, d time.Duration, reason string) (time.Time, error) {
	if err := ValidateUserName(user); err != nil {
		return time.Time{}, err
	}
	if err := validateReason(reason); err != nil {
		return time.Time{}, err
	}
	st := s.Settings()
	if d <= 0 || d > st.AccountRecovery.MaxBypass {
		return time.Time{}, invalid("bypass duration must be between 1s and account_recovery.max_bypass (%s)", st.AccountRecovery.MaxBypass)
	}
	var until time.Time
	ev := auditEvent(c, user, "bypass.grant")
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		now := txn.Now()
		until = now.Add(d)
		ev.Result, ev.Detail = "ok", fmt.Sprintf("until %s: %s", until.UTC().Format(time.RFC3339), reason)
		return txn.Put(bypassKey(user), bypassRecord{Until: until, Reason: reason, By: c.UID, Created: now})
	})
	if err != nil {
		return time.Time{}, err
	}
	s.notify(ctx, user, "mfad: an administrator turned off the second factor for your login until "+
		until.UTC().Format("2006-01-02 15:04 MST")+". If you did not ask for this, tell your administrator.")
	return until, nil
}

// EndBypass (admin) ends the user's temporary bypass now.
func (s *Service) EndBypass(ctx context.Context, c Caller, user string) error {
	if err := ValidateUserName(user); err != nil {
		return err
	}
	ev := auditEvent(c, user, "bypass.end")
	return s.change(ctx, &ev, func(txn *store.Txn) error {
		found, err := txn.Get(bypassKey(user), &bypassRecord{})
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		ev.Result = "ok"
		return txn.Delete(bypassKey(user))
	})
}

// accountOverride answers a login that a bypass or an account recovery
// request decides instead of the policy; ev is nil when neither applies.
//
// changed is set when it wrote anything beyond the login (a request taking
// effect): the caller must then make the transaction durable.
func (s *Service) accountOverride(txn *store.Txn, st Settings, u *userRecord, found bool, c Caller, req LoginRequest, changed *bool) (policy.LoginDecision, *store.Event, error) {
	now := txn.Now()
	var b bypassRecord
	if ok, err := txn.Get(bypassKey(req.User), &b); err != nil {
		return policy.LoginDecision{}, nil, err
	} else if ok && now.Before(b.Until) {
		ev := auditEvent(c, req.User, "login")
		ev.Result, ev.Detail = "allow", "temporary bypass until "+b.Until.UTC().Format(time.RFC3339)
		return policy.LoginDecision{Decision: policy.Allow, Reason: "temporary bypass",
			Messages: []string{"Your second factor is turned off until " + b.Until.UTC().Format("2006-01-02 15:04 MST") + "."}}, &ev, nil
	}
	if !found {
		return policy.LoginDecision{}, nil, nil
	}
	var rr recoveryRequest
	ok, err := txn.Get(recoveryRequestKey(req.User), &rr)
	if err != nil || !ok {
		return policy.LoginDecision{}, nil, err
	}
	if rr.Status == RecoveryPending && !now.Before(rr.EffectiveAt) {
		*changed = true
		if err := s.takeEffect(txn, st, u, &rr); err != nil {
			return policy.LoginDecision{}, nil, err
		}
	}
	if rr.Status != RecoveryEffective {
		return policy.LoginDecision{}, nil, nil
	}
	// A bypass request that took effect: this login is let in, once, and
	// the user must enrol again.
	rr.Status, rr.Closed, rr.ClosedHow = RecoveryDone, now, "bypass used by a login"
	if err := txn.Put(recoveryRequestKey(req.User), rr); err != nil {
		return policy.LoginDecision{}, nil, err
	}
	ev := auditEvent(c, req.User, "login")
	ev.Result, ev.Detail = "allow", "account recovery "+rr.ID+" (one-time bypass)"
	return policy.LoginDecision{Decision: policy.Allow, Reason: "account recovery",
		Messages: []string{"Your account was recovered. Set up a second factor now: mfad totp enroll; then mfad recovery-codes generate."}}, &ev, nil
}

// takeEffect applies a request whose delay is over: "reset" removes every
// factor and recovery code now; "bypass" waits for the next login.
func (s *Service) takeEffect(txn *store.Txn, st Settings, u *userRecord, rr *recoveryRequest) error {
	now := txn.Now()
	ev := auditEvent(Internal, u.Name, "recovery_request.effective")
	ev.Result = "ok"
	u.RecoveryPending = false
	switch rr.Action {
	case "reset":
		n := len(u.Factors)
		u.Factors, u.Recovery, u.Preferred = nil, nil, ""
		if err := saveUser(txn, u); err != nil {
			return err
		}
		if err := txn.Delete(failKey(u.Name)); err != nil {
			return err
		}
		rr.Status, rr.Closed, rr.ClosedHow = RecoveryDone, now, "factors reset"
		ev.Detail = fmt.Sprintf("request %s: %d factors and the recovery codes removed", rr.ID, n)
	default:
		if err := saveUser(txn, u); err != nil {
			return err
		}
		rr.Status = RecoveryEffective
		ev.Detail = fmt.Sprintf("request %s: the next login is let in once", rr.ID)
	}
	if err := txn.Put(recoveryRequestKey(u.Name), *rr); err != nil {
		return err
	}
	return txn.Audit(ev, st.AuditRetention)
}

// Tick does the time-driven work: account recovery requests whose delay is
// over take effect, pending ones are reminded, and ended bypasses are
// removed, all audited. The daemon calls it every few seconds; tests call it
// with an injected clock. It is safe to call concurrently with requests.
func (s *Service) Tick(ctx context.Context) error {
	st := s.Settings()
	type notice struct{ user, text string }
	var notices []notice
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		notices = notices[:0]
		now := txn.Now()
		var users []string
		err := txn.Scan(store.Key("rreq", ""), false, func(k []byte, _ func(any) error) (bool, error) {
			users = append(users, keyUser(k, "rreq/"))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, name := range users {
			var rr recoveryRequest
			if _, err := txn.Get(recoveryRequestKey(name), &rr); err != nil {
				return err
			}
			if rr.Status != RecoveryPending {
				continue
			}
			if !now.Before(rr.EffectiveAt) {
				u, found, err := loadUser(txn, name)
				if err != nil {
					return err
				}
				if !found {
					continue
				}
				if err := s.takeEffect(txn, st, u, &rr); err != nil {
					return err
				}
				notices = append(notices, notice{name, "mfad: the account recovery for your login took effect."})
				continue
			}
			if now.Sub(rr.LastReminder) >= st.AccountRecovery.RemindEvery {
				rr.LastReminder = now
				if err := txn.Put(recoveryRequestKey(name), rr); err != nil {
					return err
				}
				notices = append(notices, notice{name, "mfad: reminder: an account recovery for your login takes effect " +
					rr.EffectiveAt.UTC().Format("2006-01-02 15:04 MST") + ". Cancel it with the code sent earlier, or by logging in, if you did not ask for it."})
			}
		}
		var ended []string
		err = txn.Scan(store.Key("bypass", ""), false, func(k []byte, val func(any) error) (bool, error) {
			var b bypassRecord
			if err := val(&b); err != nil {
				return false, err
			}
			if !now.Before(b.Until) {
				ended = append(ended, keyUser(k, "bypass/"))
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, name := range ended {
			if err := txn.Delete(bypassKey(name)); err != nil {
				return err
			}
			ev := auditEvent(Internal, name, "bypass.expired")
			ev.Result = "ok"
			if err := txn.Audit(ev, st.AuditRetention); err != nil {
				return err
			}
			notices = append(notices, notice{name, "mfad: your second factor is required again."})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range notices {
		s.notify(ctx, n.user, n.text)
	}
	return nil
}

// keyUser recovers the user name from a key "<ns>/<escaped name>".
func keyUser(k []byte, prefix string) string {
	name := strings.TrimPrefix(string(k), prefix)
	if u, err := url.PathUnescape(name); err == nil {
		return u
	}
	return name
}
