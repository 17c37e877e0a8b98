package service

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/store"
)

// Errors of the SMS path.
var (
	// ErrSMSUnavailable: the daemon has no modem (or none is ready).
	ErrSMSUnavailable = errors.New("sms is not available")
	// ErrSMSLimited: a send limit (per user, per number or global) was
	// reached; nothing was queued and the refusal was audited.
	ErrSMSLimited = errors.New("sms limit reached")
)

// phoneRecord is the phone of an sms factor.
type phoneRecord struct {
	// Number is E.164 ("+447700900123").
	Number string `json:"number"`
}

// NormalizePhone parses a number typed by a person into E.164. Numbers
// without "+" are read as national numbers of region ("" refuses them).
func NormalizePhone(number, region string) (string, error) {
	number = strings.TrimSpace(number)
	if number == "" || len(number) > 32 {
		return "", invalid("phone number must be 1 to 32 characters")
	}
	if !strings.HasPrefix(number, "+") && region == "" {
		return "", invalid("give the phone number in international form, starting with + and the country code")
	}
	n, err := phonenumbers.Parse(number, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", invalid("not a valid phone number")
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// MaskPhone shows a number with only its country code and last four digits,
// e.g. "+44•••••0123"; it is how numbers appear in every output and log.
func MaskPhone(e164 string) string {
	cc := ""
	if n, err := phonenumbers.Parse(e164, ""); err == nil {
		cc = fmt.Sprint(n.GetCountryCode())
	}
	digits := strings.TrimPrefix(e164, "+")
	if cc == "" || !strings.HasPrefix(digits, cc) || len(digits) < len(cc)+4 {
		if len(digits) <= 4 {
			return "+••••"
		}
		return "+" + strings.Repeat("•", len(digits)-4) + digits[len(digits)-4:]
	}
	rest := digits[len(cc):]
	return "+" + cc + strings.Repeat("•", len(rest)-4) + rest[len(rest)-4:]
}

// smsCodeRecord is stored under smscode/<purpose>/<id>: the keyed hash of
// the one code in force for a login or a phone confirmation.
type smsCodeRecord struct {
	User    string    `json:"user"`
	PhoneID string    `json:"phone_id"`
	Hash    []byte    `json:"hash"`
	Expires time.Time `json:"expires"`
	Tries   int       `json:"tries"`
}

func smsCodeKey(purpose, id string) []byte { return store.Key("smscode", purpose, id) }

// codeHash binds a code to its purpose and id, so a code sent for one login
// or phone is worthless for another.
func (s *Service) codeHash(purpose, id, code string) []byte {
	return s.hasher.Hash("sms:" + purpose + ":" + id + ":" + code)
}

// newSMSCode returns a uniformly random code of n digits.
func (s *Service) newSMSCode(n int) (string, error) {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(s.rand(), limit)
	if err != nil {
		return "", fmt.Errorf("reading random code: %w", err)
	}
	return fmt.Sprintf("%0*d", n, v), nil
}

// smsText renders the configured template.
func (st Settings) smsText(code string) string {
	r := strings.NewReplacer("{{code}}", code, "{{issuer}}", st.TOTP.Issuer,
		"{{minutes}}", fmt.Sprint(int((st.SMS.CodeTTL+time.Minute-1)/time.Minute)))
	return r.Replace(st.SMS.Template)
}

// checkSMSCode checks code against the record at key in txn: a match
// deletes it (one use), a miss counts a try and voids the code after
// sms.max_tries. found is false when no code is in force.
func (s *Service) checkSMSCode(txn *store.Txn, key []byte, purpose, id, code string) (found, matched bool, rec smsCodeRecord, err error) {
	ok, err := txn.Get(key, &rec)
	if err != nil || !ok {
		return false, false, rec, err
	}
	now := txn.Now()
	if !now.Before(rec.Expires) {
		return false, false, rec, txn.Delete(key)
	}
	if subtle.ConstantTimeCompare(rec.Hash, s.codeHash(purpose, id, normalizeDigits(code))) == 1 {
		return true, true, rec, txn.Delete(key)
	}
	rec.Tries++
	if rec.Tries >= s.Settings().SMS.MaxTries {
		return true, false, rec, txn.Delete(key)
	}
	return true, false, rec, txn.PutTTL(key, rec, rec.Expires.Sub(now))
}

// normalizeDigits drops spaces and dashes people type into codes.
func normalizeDigits(code string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
}

// PhoneEnrollment is a pending phone: a code was queued to it.
type PhoneEnrollment struct {
	FactorID string
	Masked   string
	Expires  time.Time
}

// EnrollPhone adds a pending phone to user (creating the user if needed)
// and queues a confirmation code to it. The phone works for logins and
// receives account notices once confirmed with that code.
func (s *Service) EnrollPhone(ctx context.Context, c Caller, user, number, label string) (*PhoneEnrollment, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, err
	}
	if s.SMS == nil {
		return nil, ErrSMSUnavailable
	}
	st := s.Settings()
	e164, err := NormalizePhone(number, st.SMS.DefaultRegion)
	if err != nil {
		return nil, err
	}
	id, err := s.newID(8)
	if err != nil {
		return nil, err
	}
	code, err := s.newSMSCode(st.SMS.CodeLength)
	if err != nil {
		return nil, err
	}
	out := &PhoneEnrollment{FactorID: id, Masked: MaskPhone(e164)}
	ev := auditEvent(c, user, "phone.enroll")
	ev.Method, ev.Detail = "sms", "factor "+id+" "+out.Masked
	var limited error
	h := s.reserveSMSWorker()
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		limited = nil
		h.reset()
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if len(u.Factors) >= maxFactors {
			return invalid("user has %d factors already (the most allowed); remove one first", len(u.Factors))
		}
		for _, f := range u.Factors {
			if f.Phone != nil && f.Phone.Number == e164 && f.Status == StatusActive {
				return fmt.Errorf("%w: this phone is already enrolled for the user (factor %s)", ErrConflict, f.ID)
			}
		}
		now := txn.Now()
		out.Expires = now.Add(st.SMS.CodeTTL)
		if err := s.smsAllowed(txn, st, user, e164, &ev); err != nil {
			limited = err
			return nil
		}
		u.Factors = append(u.Factors, &factorRecord{ID: id, Type: policy.MethodSMS, Status: StatusPending, Label: label,
			Created: now, Expires: now.Add(PendingTTL), Phone: &phoneRecord{Number: e164}})
		if err := saveUser(txn, u); err != nil {
			return err
		}
		rec := smsCodeRecord{User: user, PhoneID: id, Hash: s.codeHash("confirm", id, code), Expires: out.Expires}
		if err := txn.PutTTL(smsCodeKey("confirm", id), rec, st.SMS.CodeTTL); err != nil {
			return err
		}
		ev.Result = "pending"
		return s.enqueueSMS(txn, h, user, "confirm", e164, st.smsText(code), out.Expires)
	})
	s.startSMS(h, err)
	if err != nil {
		return nil, err
	}
	if limited != nil {
		return nil, limited
	}
	return out, nil
}

// ConfirmPhone activates a pending phone with the code sent to it. When the
// user had no other way back in (no recovery codes and not two confirmed
// phones), recovery codes are generated and returned to show once.
func (s *Service) ConfirmPhone(ctx context.Context, c Caller, user, id, code string) (*RecoveryCodes, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	auto, err := s.prepareAutoCodes()
	if err != nil {
		return nil, err
	}
	ev := auditEvent(c, user, "phone.confirm")
	ev.Method, ev.Detail = "sms", "factor "+id
	var rc *RecoveryCodes
	rejected := false
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		rc, rejected = nil, false
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		f := u.factor(id)
		if f == nil || f.Phone == nil {
			return ErrNotFound
		}
		if f.Status != StatusPending {
			return fmt.Errorf("%w: phone is already confirmed", ErrConflict)
		}
		found, matched, rec, err := s.checkSMSCode(txn, smsCodeKey("confirm", id), "confirm", id, code)
		if err != nil {
			return err
		}
		if !matched || rec.User != user {
			rejected = true
			ev.Result = "fail"
			if !found {
				ev.Detail += " (no code in force: expired or too many tries)"
			}
			return nil
		}
		f.Status, f.Confirmed, f.Expires = StatusActive, txn.Now(), time.Time{}
		ev.Detail += " " + MaskPhone(f.Phone.Number)
		phones := 0
		for _, g := range u.Factors {
			if g.Phone != nil && g.Status == StatusActive {
				phones++
			}
		}
		if phones < 2 {
			rc = auto.issue(s, txn, u, &ev)
		}
		ev.Result = "ok"
		return saveUser(txn, u)
	})
	if err != nil {
		return nil, err
	}
	if rejected {
		return nil, &CodeError{Reason: ReasonInvalid}
	}
	return rc, nil
}

// LoginSMS answers SendLoginSMS.
type LoginSMS struct {
	Masked  string
	Expires time.Time
}

// SendLoginSMS queues a new code for a login to the user's phone (phoneID,
// or the first confirmed one). A new code voids the previous one of the
// login; the failure counts are untouched.
func (s *Service) SendLoginSMS(ctx context.Context, c Caller, loginID, phoneID string) (*LoginSMS, error) {
	if loginID == "" || len(loginID) > 64 {
		return nil, ErrLoginExpired
	}
	if s.SMS == nil || !s.SMS.Ready() {
		return nil, ErrSMSUnavailable
	}
	st := s.Settings()
	code, err := s.newSMSCode(st.SMS.CodeLength)
	if err != nil {
		return nil, err
	}
	var out *LoginSMS
	var limited error
	ev := auditEvent(c, "", "sms.login")
	ev.Method = "sms"
	h := s.reserveSMSWorker()
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		out, limited = nil, nil
		h.reset()
		now := txn.Now()
		lr, found := s.logins.get(loginID, now)
		if !found {
			return ErrLoginExpired
		}
		ev.User, ev.Service, ev.RHost = lr.User, lr.Service, lr.RHost
		u, _, err := loadUser(txn, lr.User)
		if err != nil {
			return err
		}
		var phone *factorRecord
		for _, f := range u.Factors {
			if f.Phone != nil && f.Status == StatusActive && (phoneID == "" || f.ID == phoneID) {
				phone = f
				break
			}
		}
		if phone == nil {
			return fmt.Errorf("%w: no SMS method for this login", ErrConflict)
		}
		if err := s.smsAllowed(txn, st, lr.User, phone.Phone.Number, &ev); err != nil {
			limited = err
			return nil
		}
		expires := now.Add(st.SMS.CodeTTL)
		if lr.Expires.Before(expires) {
			expires = lr.Expires
		}
		rec := smsCodeRecord{User: lr.User, PhoneID: phone.ID, Hash: s.codeHash("login", loginID, code), Expires: expires}
		if err := txn.PutTTL(smsCodeKey("login", loginID), rec, max(expires.Sub(now), time.Second)); err != nil {
			return err
		}
		out = &LoginSMS{Masked: MaskPhone(phone.Phone.Number), Expires: expires}
		ev.Result, ev.Detail = "queued", "login "+loginID+" to "+out.Masked
		return s.enqueueSMS(txn, h, lr.User, "login", phone.Phone.Number, st.smsText(code), expires)
	})
	s.startSMS(h, err)
	if err != nil {
		return nil, err
	}
	if limited != nil {
		return nil, limited
	}
	return out, nil
}

// checkLoginSMS tries code as the SMS code of loginID.
func (s *Service) checkLoginSMS(txn *store.Txn, u *userRecord, loginID, code string, out *Verification) (matched bool, detail string, err error) {
	if loginID == "" {
		return false, "", nil
	}
	found, matched, rec, err := s.checkSMSCode(txn, smsCodeKey("login", loginID), "login", loginID, code)
	if err != nil || !found {
		return false, "", err
	}
	if !matched {
		if rec.Tries >= s.Settings().SMS.MaxTries {
			return false, "sms code voided after too many tries", nil
		}
		return false, "wrong sms code", nil
	}
	if f := u.factor(rec.PhoneID); f != nil {
		f.LastUsed = txn.Now()
		if err := saveUser(txn, u); err != nil {
			return false, "", err
		}
	}
	out.Method = policy.MethodSMS
	return true, "", nil
}
