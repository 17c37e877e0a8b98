package service

import (
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/store"
)

// U2FKeys is what the service needs from the U2F hardware layer;
// *u2f.Client implements it. Both methods wait for the user's touch until
// ctx ends and must return u2f.ErrNoKey / u2f.ErrUnknownHandle / u2f.ErrTimeout
// (possibly wrapped) for those outcomes. They are called outside any store
// transaction and may run concurrently.
type U2FKeys interface {
	Register(ctx context.Context, appParam, challengeParam [32]byte) (raw []byte, keyPath string, err error)
	Authenticate(ctx context.Context, appParam, challengeParam [32]byte, handles [][]byte) (handle, raw []byte, err error)
}

var _ U2FKeys = (*u2f.Client)(nil)

// U2F outcomes callers branch on.
var (
	// ErrU2FUnavailable: the daemon drives no U2F hardware.
	ErrU2FUnavailable = errors.New("no U2F hardware is configured")
	// ErrU2FNoKey: no security key is plugged in (enrollment).
	ErrU2FNoKey = errors.New("no security key is plugged in")
	// ErrU2FTimeout: nobody touched the key in time (enrollment).
	ErrU2FTimeout = errors.New("the security key was not touched in time")
	// ErrU2FUntrusted: the key's attestation does not chain to the
	// configured allow-list of CAs (u2f.attestation_ca_file).
	ErrU2FUntrusted = errors.New("this security key's attestation is not on the allow-list")
	// ErrU2FDevice: the key failed mid-request (pulled out, busy, garbage).
	ErrU2FDevice = errors.New("the security key stopped answering")
)

// Reasons a U2F login failed without counting as a wrong factor.
const (
	ReasonNoTouch = "no_touch" // nobody touched the key in time
	ReasonNoKey   = "no_key"   // no plugged key holds one of the user's handles
)

// u2fRecord is the relying-party state of one registered key.
type u2fRecord struct {
	KeyHandle []byte `json:"key_handle"`
	PublicKey []byte `json:"public_key"`
	Counter   uint32 `json:"counter"`
	// CertSHA256 is the attestation certificate's fingerprint (hex).
	CertSHA256 string `json:"cert_sha256"`
}

// AppID returns the U2F application identity in force: the configured one,
// or "pam://" + the host name.
func (s Settings) AppID() string {
	if s.U2F.AppID != "" {
		return s.U2F.AppID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "pam://" + host
}

func (s *Service) challenge() ([32]byte, error) {
	var c [32]byte
	_, err := io.ReadFull(s.rand(), c[:])
	return c, err
}

// EnrollU2F registers the security key the user touches now (any plugged
// key) as a new, active factor: the registration itself proves possession.
func (s *Service) EnrollU2F(ctx context.Context, c Caller, user, label string) (*FactorInfo, *RecoveryCodes, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, nil, err
	}
	if err := validateLabel(label); err != nil {
		return nil, nil, err
	}
	if s.U2F == nil {
		return nil, nil, ErrU2FUnavailable
	}
	st := s.Settings()
	appParam := u2f.AppParam(st.AppID())
	chal, err := s.challenge()
	if err != nil {
		return nil, nil, err
	}
	id, err := s.newID(8)
	if err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, st.touchTimeout())
	raw, keyPath, err := s.U2F.Register(wctx, appParam, chal)
	cancel()
	switch {
	case errors.Is(err, u2f.ErrNoKey):
		return nil, nil, ErrU2FNoKey
	case errors.Is(err, u2f.ErrTimeout), errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, nil, ErrU2FTimeout
	case err != nil:
		return nil, nil, fmt.Errorf("%w: %v", ErrU2FDevice, err)
	}
	reg, err := u2f.VerifyRegistration(raw, appParam, chal)
	if err != nil {
		return nil, nil, fmt.Errorf("the security key answered an invalid registration: %w", err)
	}
	if st.U2F.AttestationCAFile != "" {
		roots, err := LoadAttestationRoots(st.U2F.AttestationCAFile)
		if err != nil {
			return nil, nil, err
		}
		if err := u2f.VerifyAttestationCA(reg, roots, true); err != nil {
			ev := auditEvent(c, user, "u2f.enroll")
			ev.Method, ev.Result = "u2f", "fail"
			ev.Detail = fmt.Sprintf("attestation %x not trusted", reg.CertificateSHA256[:8])
			if err := s.change(ctx, &ev, nil); err != nil {
				return nil, nil, err
			}
			return nil, nil, ErrU2FUntrusted
		}
	}
	ev := auditEvent(c, user, "u2f.enroll")
	ev.Method, ev.Result = "u2f", "ok"
	ev.Detail = fmt.Sprintf("factor %s, key %s, attestation %x", id, keyPath, reg.CertificateSHA256[:8])
	auto, err := s.prepareAutoCodes()
	if err != nil {
		return nil, nil, err
	}
	var info FactorInfo
	var rc *RecoveryCodes
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		u, _, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if len(u.Factors) >= maxFactors {
			return invalid("user has %d factors already (the most allowed); remove one first", len(u.Factors))
		}
		for _, f := range u.Factors {
			if f.U2F != nil && subtle.ConstantTimeCompare(f.U2F.KeyHandle, reg.KeyHandle) == 1 {
				return fmt.Errorf("%w: this key is already enrolled for the user (factor %s)", ErrConflict, f.ID)
			}
		}
		now := txn.Now()
		f := &factorRecord{
			ID: id, Type: policy.MethodU2F, Status: StatusActive, Label: label, Created: now, Confirmed: now,
			U2F: &u2fRecord{KeyHandle: reg.KeyHandle, PublicKey: reg.PublicKey, CertSHA256: hex.EncodeToString(reg.CertificateSHA256[:])},
		}
		u.Factors = append(u.Factors, f)
		info = f.info()
		rc = auto.issue(s, txn, u, &ev)
		return saveUser(txn, u)
	})
	if err != nil {
		return nil, nil, err
	}
	return &info, rc, nil
}

// VerifyLoginU2F runs the U2F step of a login: it waits (bounded) for a
// touch on a plugged key that holds one of the user's handles, then judges
// the signature and the key's counter in the login's decision transaction.
// No touch in time, or no key with the user's handles, fails the step
// without counting as a wrong factor; a bad signature or a counter that did
// not increase (a possible clone, unless u2f.counter_regression = "allow")
// counts as a failure and is audited.
func (s *Service) VerifyLoginU2F(ctx context.Context, c Caller, loginID string) (*Verification, error) {
	if loginID == "" || len(loginID) > 64 {
		return nil, ErrLoginExpired
	}
	if s.U2F == nil {
		return nil, ErrU2FUnavailable
	}
	st := s.Settings()
	var lr loginRecord
	var handles [][]byte
	err := s.db.View(func(txn *store.Txn) error {
		var found bool
		if lr, found = s.logins.get(loginID, txn.Now()); !found {
			return ErrLoginExpired
		}
		u, _, err := loadUser(txn, lr.User)
		if err != nil {
			return err
		}
		for _, f := range u.Factors {
			if f.Status == StatusActive && f.U2F != nil {
				handles = append(handles, f.U2F.KeyHandle)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	req := VerifyRequest{Method: policy.MethodU2F}
	if len(handles) == 0 {
		// Users without keys fail like a wrong factor, without waiting for
		// hardware. (A lock on codes does not stop a security key: a key
		// signature cannot be guessed.)
		return s.decide(ctx, c, req, loginID, func(*store.Txn, VerifyRequest, *Verification) (bool, string, error) {
			return false, "no u2f key enrolled", nil
		})
	}

	appParam := u2f.AppParam(st.AppID())
	chal, err := s.challenge()
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, st.touchTimeout())
	handle, raw, err := s.U2F.Authenticate(wctx, appParam, chal, handles)
	cancel()
	var reason string
	switch {
	case errors.Is(err, u2f.ErrNoKey): // includes ErrUnknownHandle
		reason = ReasonNoKey
	case errors.Is(err, u2f.ErrTimeout), errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		reason = ReasonNoTouch
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrU2FDevice, err)
	}
	if reason != "" {
		ev := auditEvent(c, lr.User, "verify")
		ev.Method, ev.Service, ev.RHost, ev.Result = "u2f", lr.Service, lr.RHost, "fail"
		ev.Detail = fmt.Sprintf("login %s %s", loginID, reason)
		if err := s.change(ctx, &ev, nil); err != nil {
			return nil, err
		}
		s.Metrics.Verification("u2f", string(ResultFail))
		return &Verification{Result: ResultFail, Reason: reason, AttemptsLeft: -1}, nil
	}

	allowRegression := st.U2F.CounterRegression == "allow"
	return s.decide(ctx, c, req, loginID, func(txn *store.Txn, req VerifyRequest, out *Verification) (bool, string, error) {
		u, _, err := loadUser(txn, req.User)
		if err != nil {
			return false, "", err
		}
		i := slices.IndexFunc(u.Factors, func(f *factorRecord) bool {
			return f.Status == StatusActive && f.U2F != nil && subtle.ConstantTimeCompare(f.U2F.KeyHandle, handle) == 1
		})
		if i < 0 {
			return false, "u2f key removed during the login", nil
		}
		f := u.Factors[i]
		auth, verr := u2f.VerifyAuthentication(raw, f.U2F.PublicKey, appParam, chal, f.U2F.Counter, false)
		detail := ""
		switch {
		case verr == nil:
		case errors.Is(verr, u2f.ErrCounterNotIncreased) && auth != nil:
			detail = fmt.Sprintf("u2f counter did not increase (%d after %d): possible cloned key, factor %s", auth.Counter, f.U2F.Counter, f.ID)
			if !allowRegression {
				return false, detail, nil
			}
		default:
			return false, fmt.Sprintf("u2f response rejected (%v)", verr), nil
		}
		f.U2F.Counter = max(f.U2F.Counter, auth.Counter)
		f.LastUsed = txn.Now()
		if err := saveUser(txn, u); err != nil {
			return false, "", err
		}
		out.Method = policy.MethodU2F
		return true, detail, nil
	})
}

// LoadAttestationRoots reads a PEM file of CA certificates for
// u2f.attestation_ca_file.
func LoadAttestationRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading u2f.attestation_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("u2f.attestation_ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// touchTimeout is how long to wait for a touch (30 s when unset).
func (s Settings) touchTimeout() time.Duration {
	if s.U2F.Timeout > 0 {
		return s.U2F.Timeout
	}
	return 30 * time.Second
}
