package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/store"
)

// Factor states.
const (
	StatusPending = "pending"
	StatusActive  = "active"
)

// PendingTTL bounds how long an unconfirmed factor is kept.
const PendingTTL = time.Hour

// maxFactors bounds the factors (pending included) one user may have, which
// bounds the record's size and the work of a verification.
const maxFactors = 16

// userRecord is stored under user/<name>: the user's whole enrollment in one
// key, so a verification reads and writes a single record (one point read,
// no scan) and every change to a user's factors is naturally atomic.
// Secrets in it are protected by the store's encryption at rest.
type userRecord struct {
	Name    string          `json:"name"`
	Created time.Time       `json:"created"`
	Factors []*factorRecord `json:"factors,omitempty"`
	// Recovery is the current recovery-code set (hashes only), or nil.
	Recovery *recovery.Set `json:"recovery,omitempty"`
	// Preferred is the method offered first when usable ("" = strongest).
	Preferred policy.Method `json:"preferred,omitempty"`
	// RecoveryPending mirrors an account recovery request waiting for its
	// delay (rreq/<name>), so that a successful login, which cancels it,
	// needs no extra read when there is none.
	RecoveryPending bool `json:"recovery_pending,omitempty"`
}

// factorRecord is one enrolled factor.
type factorRecord struct {
	ID        string        `json:"id"`
	Type      policy.Method `json:"type"`
	Status    string        `json:"status"`
	Label     string        `json:"label,omitempty"`
	Created   time.Time     `json:"created"`
	Confirmed time.Time     `json:"confirmed,omitzero"`
	LastUsed  time.Time     `json:"last_used,omitzero"`
	// Expires is when a pending factor is dropped (zero once active).
	Expires time.Time    `json:"expires,omitzero"`
	TOTP    *totpRecord  `json:"totp,omitempty"`
	U2F     *u2fRecord   `json:"u2f,omitempty"`
	Phone   *phoneRecord `json:"phone,omitempty"`
}

type totpRecord struct {
	// Secret holds the seed's bytes; otp.Secret refuses JSON encoding so that
	// it cannot leak through a logged struct.
	Secret    []byte        `json:"secret"`
	Digits    int           `json:"digits"`
	Period    time.Duration `json:"period"`
	Algorithm otp.Algorithm `json:"algorithm"`
	// LastCounter is the highest time step ever accepted; it is never
	// accepted again (replay protection).
	LastCounter uint64 `json:"last_counter"`
}

func (t *totpRecord) params() otp.Params {
	return otp.Params{Digits: t.Digits, Period: t.Period, Algorithm: t.Algorithm}
}

// loadUser reads the user's record; found is false for unknown users.
// Pending factors past their expiry are dropped from the returned record.
func loadUser(txn *store.Txn, user string) (u *userRecord, found bool, err error) {
	u = new(userRecord)
	found, err = txn.Get(userKey(user), u)
	if err != nil || !found {
		return &userRecord{Name: user}, false, err
	}
	now := txn.Now()
	u.Factors = slices.DeleteFunc(u.Factors, func(f *factorRecord) bool {
		return f.Status == StatusPending && !now.Before(f.Expires)
	})
	return u, true, nil
}

// saveUser writes the user's record, creating the user if needed.
func saveUser(txn *store.Txn, u *userRecord) error {
	if u.Created.IsZero() {
		u.Created = txn.Now()
	}
	return txn.Put(userKey(u.Name), u)
}

func (u *userRecord) factor(id string) *factorRecord {
	for _, f := range u.Factors {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// FactorInfo describes a factor without its secret.
type FactorInfo struct {
	ID        string
	Type      policy.Method
	Status    string
	Label     string
	Created   time.Time
	Confirmed time.Time
	LastUsed  time.Time
	// Phone is the masked number of an sms factor ("+44•••••0123").
	Phone string
}

// UserInfo describes a user's enrollment.
type UserInfo struct {
	Name    string
	Created time.Time
	Factors []FactorInfo
	// Recovery is nil when the user has no recovery codes.
	Recovery *RecoveryInfo
	// Failures in the current lockout window, and the end of a lockout.
	Failures    int
	LockedUntil time.Time
}

// RecoveryInfo describes a user's recovery-code set.
type RecoveryInfo struct {
	Total     int
	Remaining int
	Created   time.Time
}

func (f *factorRecord) info() FactorInfo {
	fi := FactorInfo{ID: f.ID, Type: f.Type, Status: f.Status, Label: f.Label, Created: f.Created, Confirmed: f.Confirmed, LastUsed: f.LastUsed}
	if f.Phone != nil {
		fi.Phone = MaskPhone(f.Phone.Number)
	}
	return fi
}

// User returns the user's enrollment, or ErrNotFound.
func (s *Service) User(user string) (*UserInfo, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	var info *UserInfo
	err := s.db.View(func(txn *store.Txn) error {
		u, found, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		info = &UserInfo{Name: u.Name, Created: u.Created}
		for _, f := range u.Factors {
			info.Factors = append(info.Factors, f.info())
		}
		if set := u.Recovery; set != nil {
			info.Recovery = &RecoveryInfo{Total: len(set.Hashes), Remaining: set.Remaining(), Created: set.Created}
		}
		var fs policy.FailState
		if _, err := txn.Get(failKey(user), &fs); err != nil {
			return err
		}
		now := s.now()
		lk := s.Settings().lockout()
		if locked, _ := lk.Locked(fs, now); locked {
			info.LockedUntil = fs.LockedUntil
		}
		info.Failures = lk.MaxFailures - lk.AttemptsLeft(fs, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return info, nil
}

// DeleteUser removes the user and everything stored for them.
func (s *Service) DeleteUser(ctx context.Context, c Caller, user string) error {
	if err := ValidateUserName(user); err != nil {
		return err
	}
	ev := auditEvent(c, user, "user.delete")
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		_, found, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if err := authorizeWeakening(txn, c, user); err != nil {
			return err
		}
		for _, k := range [][]byte{userKey(user), failKey(user), bypassKey(user)} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		for _, p := range [][]byte{devicePrefix(user), store.Key("seen", user, "")} {
			if err := txn.DeletePrefix(p); err != nil {
				return err
			}
		}
		ev.Result = "ok"
		return nil
	})
	if err != nil {
		return err
	}
	return nil
}

// DeleteFactor removes one factor of the user.
func (s *Service) DeleteFactor(ctx context.Context, c Caller, user, id string) error {
	if err := ValidateUserName(user); err != nil {
		return err
	}
	ev := auditEvent(c, user, "factor.delete")
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		f := u.factor(id)
		if f == nil {
			return ErrNotFound
		}
		// Dropping a factor that never worked weakens nothing.
		if f.Status == StatusActive {
			if err := authorizeWeakening(txn, c, user); err != nil {
				return err
			}
		}
		if u.Preferred == f.Type && !slices.ContainsFunc(u.Factors, func(x *factorRecord) bool { return x != f && x.Type == f.Type && x.Status == StatusActive }) {
			u.Preferred = ""
		}
		u.Factors = slices.DeleteFunc(u.Factors, func(x *factorRecord) bool { return x == f })
		if err := saveUser(txn, u); err != nil {
			return err
		}
		ev.Result, ev.Method, ev.Detail = "ok", string(f.Type), "factor "+id
		return nil
	})
	if err != nil {
		return err
	}
	s.noticeAdminChange(ctx, c, user, "an administrator removed a second factor from your login")
	return nil
}

// noticeAdminChange tells the user's phones when an admin weakened the
// account (users who did it themselves proved a factor just before).
func (s *Service) noticeAdminChange(ctx context.Context, c Caller, user, what string) {
	if !c.Admin || c.UID == Internal.UID || c.Proof != "" {
		return
	}
	s.notify(ctx, user, "mfad: "+what+". If you did not ask for this, tell your administrator.")
}

func validateLabel(label string) error {
	if len(label) > 64 || strings.ContainsFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid("label must be at most 64 printable characters")
	}
	return nil
}

// TOTPEnrollment is a pending TOTP factor: show the URI (as text or a QR
// code) to the user once, then confirm it with a first code.
type TOTPEnrollment struct {
	FactorID string
	Secret   otp.Secret
	URI      string
}

// EnrollTOTP creates a pending TOTP factor for user (creating the user if
// needed). The factor cannot be used to log in until ConfirmTOTP.
func (s *Service) EnrollTOTP(ctx context.Context, c Caller, user, label string) (*TOTPEnrollment, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	st := s.Settings()
	p := st.totpParams()
	secret, err := otp.NewSecret(s.rand())
	if err != nil {
		return nil, err
	}
	id, err := s.newID(8)
	if err != nil {
		return nil, err
	}
	uri := otp.URI(secret, st.TOTP.Issuer, user, p)
	ev := auditEvent(c, user, "totp.enroll")
	ev.Method, ev.Result, ev.Detail = "totp", "pending", "factor "+id
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if len(u.Factors) >= maxFactors {
			return invalid("user has %d factors already (the most allowed); remove one first", len(u.Factors))
		}
		now := txn.Now()
		u.Factors = append(u.Factors, &factorRecord{
			ID: id, Type: policy.MethodTOTP, Status: StatusPending, Label: label, Created: now, Expires: now.Add(PendingTTL),
			TOTP: &totpRecord{Secret: []byte(secret), Digits: p.Digits, Period: p.Period, Algorithm: p.Algorithm},
		})
		if err := saveUser(txn, u); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &TOTPEnrollment{FactorID: id, Secret: secret, URI: uri}, nil
}

// autoCodes is a recovery-code set prepared before a transaction that may
// enable a user's second factor (recovery.auto_generate).
type autoCodes struct {
	codes []recovery.Code
	id    string
}

func (s *Service) prepareAutoCodes() (*autoCodes, error) {
	st := s.Settings()
	if !st.Recovery.AutoGenerate {
		return nil, nil
	}
	codes, err := recovery.Generate(s.rand(), st.Recovery.Count)
	if err != nil {
		return nil, err
	}
	id, err := s.newID(12)
	if err != nil {
		return nil, err
	}
	return &autoCodes{codes: codes, id: id}, nil
}

// issue gives u the prepared codes when u has no usable recovery codes, so
// that enabling a second factor never leaves the user without a way back in.
// It returns the codes to show once, or nil.
func (a *autoCodes) issue(s *Service, txn *store.Txn, u *userRecord, ev *store.Event) *RecoveryCodes {
	if a == nil || (u.Recovery != nil && u.Recovery.Remaining() > 0) {
		return nil
	}
	u.Recovery = recovery.NewSet(s.hasher, a.codes, a.id, txn.Now())
	ev.Detail = strings.TrimSpace(ev.Detail + fmt.Sprintf(", %d recovery codes generated", len(a.codes)))
	return &RecoveryCodes{Codes: a.codes}
}

// ConfirmTOTP activates a pending TOTP factor with a first correct code. The
// step of that code is recorded, so it cannot be used again to log in. When
// the user has no recovery codes (and recovery.auto_generate is on), a set is
// generated and returned to show once.
func (s *Service) ConfirmTOTP(ctx context.Context, c Caller, user, id, code string) (*RecoveryCodes, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	auto, err := s.prepareAutoCodes()
	if err != nil {
		return nil, err
	}
	ev := auditEvent(c, user, "totp.confirm")
	ev.Method, ev.Detail = "totp", "factor "+id
	st := s.Settings()
	var verr error
	var rc *RecoveryCodes
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		verr, rc = nil, nil
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		f := u.factor(id)
		if f == nil || f.TOTP == nil {
			return ErrNotFound
		}
		if f.Status != StatusPending {
			return fmt.Errorf("%w: factor is already confirmed", ErrConflict)
		}
		m, err := otp.Verify(otp.Secret(f.TOTP.Secret), code, txn.Now(), f.TOTP.params(), st.TOTP.Skew, st.TOTP.DriftWindow, 0)
		if err != nil {
			verr = err
			ev.Result = "fail"
			return nil
		}
		f.Status, f.Confirmed, f.Expires = StatusActive, txn.Now(), time.Time{}
		f.TOTP.LastCounter = m.Counter
		rc = auto.issue(s, txn, u, &ev)
		if err := saveUser(txn, u); err != nil {
			return err
		}
		ev.Result = "ok"
		return nil
	})
	if err != nil {
		return nil, err
	}
	if verr != nil {
		var drift *otp.ClockDriftError
		if errors.As(verr, &drift) {
			return nil, &CodeError{Reason: ReasonClockDrift, DriftSteps: drift.Steps}
		}
		return nil, &CodeError{Reason: ReasonInvalid}
	}
	return rc, nil
}

// RecoveryCodes is a freshly generated set, to show to the user once.
type RecoveryCodes struct {
	Codes []recovery.Code
}

// GenerateRecoveryCodes creates a new set of recovery codes for user and
// voids the previous set.
func (s *Service) GenerateRecoveryCodes(ctx context.Context, c Caller, user string) (*RecoveryCodes, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	st := s.Settings()
	codes, err := recovery.Generate(s.rand(), st.Recovery.Count)
	if err != nil {
		return nil, err
	}
	id, err := s.newID(12)
	if err != nil {
		return nil, err
	}
	ev := auditEvent(c, user, "recovery.generate")
	ev.Method, ev.Result = "recovery", "ok"
	replaced := false
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		ev.Detail = fmt.Sprintf("%d codes", len(codes))
		replaced = false
		if u.Recovery != nil && u.Recovery.Remaining() > 0 {
			replaced = true
			// Replacing usable codes voids them: a weakening action.
			if err := authorizeWeakening(txn, c, user); err != nil {
				return err
			}
		}
		if u.Recovery != nil {
			ev.Detail += fmt.Sprintf(", previous set void (%d unused)", u.Recovery.Remaining())
		}
		u.Recovery = recovery.NewSet(s.hasher, codes, id, txn.Now())
		if err := saveUser(txn, u); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if replaced {
		s.noticeAdminChange(ctx, c, user, "an administrator replaced the recovery codes of your login")
	}
	return &RecoveryCodes{Codes: codes}, nil
}
