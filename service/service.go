// Package service is mfad's application layer: users, their factors, and the
// login flows that check them. It sits between the socket API (package api)
// and the store (package store), and asks package policy for decisions.
//
// Contracts:
//   - Every one-time decision (a TOTP time step, a recovery code, the failure
//     counter) is read, decided and written back in ONE store transaction,
//     retried on conflict, together with its audit event. Two concurrent
//     requests can therefore never both use the same code.
//   - A method returns only once its writes are durable (store.DB.Update).
//   - The login path (StartLogin, Verify) answers an unknown user exactly as it
//     answers a wrong code and does the same work for both.
//   - No secret, code or hash is ever logged or put into an error.
//
// A Service is safe for concurrent use. Settings can be swapped at run time
// with SetSettings (SIGHUP reload).
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/metrics"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/recovery"
	"github.com/mfad/mfad/store"
)

// Errors returned by the service. The api package maps them to HTTP statuses
// and stable error codes.
var (
	// ErrNotFound: the user, factor or login does not exist (never returned on
	// the login path for users).
	ErrNotFound = errors.New("not found")
	// ErrInvalidInput: a request field is malformed; the message says which.
	ErrInvalidInput = errors.New("invalid input")
	// ErrLoginExpired: the login id is unknown, expired or already finished.
	ErrLoginExpired = errors.New("login expired or unknown")
	// ErrConflict: the request does not fit the current state (e.g. confirming
	// an active factor).
	ErrConflict = errors.New("conflict")
)

// inputError is an ErrInvalidInput with a safe, specific message.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return ErrInvalidInput }

func invalid(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// Settings are the reloadable parts of the configuration the service uses.
type Settings struct {
	TOTP           config.TOTP
	Recovery       config.Recovery
	Lockout        config.Lockout
	AuditRetention time.Duration
	LoginTTL       time.Duration
	U2F            config.U2F
	// Policies and AccountRecovery drive login decisions (package policy).
	Policies        []config.Policy
	AccountRecovery config.AccountRecovery
	SMS             config.SMS
}

// SettingsFrom extracts the service settings from a validated config.
func SettingsFrom(c *config.Config) Settings {
	return Settings{
		TOTP:           c.TOTP,
		Recovery:       c.Recovery,
		Lockout:        c.Lockout,
		AuditRetention: c.Audit.Retention,
		LoginTTL:       c.Server.LoginTTL,
		U2F:            c.U2F,

		Policies:        c.Policies,
		AccountRecovery: c.AccountRecovery,
		SMS:             c.SMS,
	}
}

func (s Settings) totpParams() otp.Params {
	return otp.Params{Digits: s.TOTP.Digits, Period: s.TOTP.Period, Algorithm: otp.Algorithm(s.TOTP.Algorithm)}
}

func (s Settings) lockout() policy.Lockout { return policy.LockoutFrom(s.Lockout) }

// Caller identifies who asked, for the audit log and for actions that
// weaken an account.
type Caller struct {
	UID int
	// Admin is set for callers with the admin role: they may weaken any
	// account without a proof (audited).
	Admin bool
	// Proof is a fresh second-factor proof from Reauth; a non-admin caller
	// needs one for each action that weakens its account.
	Proof string
}

// Internal is the caller recorded for actions the daemon takes by itself.
var Internal = Caller{UID: -1, Admin: true}

// Service implements mfad's user, enrollment and login operations.
type Service struct {
	db       *store.DB
	hasher   *recovery.Hasher
	log      *slog.Logger
	settings atomic.Pointer[Settings]
	decoy    otp.Secret

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Rand is the source of secrets, codes and ids; nil means crypto/rand.
	Rand io.Reader
	// U2F drives the plugged security keys; nil when the daemon has no U2F
	// hardware (U2F operations then fail with ErrU2FUnavailable).
	U2F U2FKeys
	// Metrics counts verifications and lockouts; nil disables them.
	Metrics *metrics.Metrics
	// Notifier tells users about changes to their account; nil tells no
	// one (the audit log still records everything).
	Notifier Notifier
	// SMS sends text messages; nil when the daemon has no modem (phones
	// and SMS codes are then unavailable).
	SMS SMSSender
	sms smsState
	// logins holds the logins in progress.
	logins loginTable
	// GroupsOf resolves a user's groups for policies that match on groups;
	// nil uses the host's user database (os/user).
	GroupsOf func(user string) []string
}

// New returns a Service over db. recoveryKey keys the recovery-code hashes and
// must come from outside the database (store.DeriveKey of the master key).
func New(db *store.DB, recoveryKey []byte, s Settings, log *slog.Logger) (*Service, error) {
	h, err := recovery.NewHasher(recoveryKey)
	if err != nil {
		return nil, fmt.Errorf("creating recovery hasher: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	svc := &Service{db: db, hasher: h, log: log.With("component", "service")}
	svc.settings.Store(&s)
	// The decoy secret keeps the work done for users without a TOTP factor
	// the same as for users with one.
	if svc.decoy, err = otp.NewSecret(nil); err != nil {
		return nil, fmt.Errorf("creating decoy secret: %w", err)
	}
	return svc, nil
}

// SetSettings replaces the reloadable settings; requests already running keep
// the settings they started with.
func (s *Service) SetSettings(st Settings) { s.settings.Store(&st) }

// Settings returns the settings in force.
func (s *Service) Settings() Settings { return *s.settings.Load() }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) rand() io.Reader {
	if s.Rand != nil {
		return s.Rand
	}
	return rand.Reader
}

func (s *Service) newID(nbytes int) (string, error) {
	b := make([]byte, nbytes)
	if _, err := io.ReadFull(s.rand(), b); err != nil {
		return "", fmt.Errorf("reading random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ValidateUserName checks a user name given by a caller. Names are what the
// login stack passes (PAM_USER): any UTF-8 text without control characters
// or surrounding space, at most 256 bytes.
func ValidateUserName(name string) error {
	switch {
	case name == "":
		return invalid("user name is empty")
	case len(name) > 256:
		return invalid("user name is longer than 256 bytes")
	case !utf8.ValidString(name):
		return invalid("user name is not valid UTF-8")
	case strings.TrimSpace(name) != name:
		return invalid("user name has leading or trailing space")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return invalid("user name contains a control character")
		}
	}
	return nil
}

// Key layout. Every key is namespaced; the schema version lives in the store.
//
//	user/<name>   userRecord: the user's factors and recovery-code hashes
//	fail/<name>   policy.FailState, also for names that are not users (TTL)
//	failsrc/<net> policy.SourceState of a source network (TTL)
//	device/<name>/<id>  deviceRecord: a remember-device token (TTL)
//	seen/<name>/<net>   seenRecord: last second-factor login from a network (TTL)
//	proof/<id>    proofRecord: a fresh second-factor proof (TTL 5m)
//	rreq/<name>   recoveryRequest: the latest account recovery request
//	bypass/<name> bypassRecord: a temporary bypass
//	smscode/<purpose>/<id>  smsCodeRecord: keyed hash of the SMS code in force (TTL)
//	smsq/<id>     queuedSMS: a message accepted and not yet sent
//	smsref/<modem>/<ref>    smsRefRecord: a sent part awaiting its delivery report (TTL)
//	smsrate/<scope>/<subject>/<hour>  int: hourly send counters (TTL)
//	audit/...     store.Event (TTL = audit retention)
//
// Logins in progress are not in the store but in memory (loginTable); keys
// login/<id> written by earlier versions expire by themselves.
func userKey(user string) []byte { return store.Key("user", user) }
func failKey(user string) []byte { return store.Key("fail", user) }
func auditEvent(c Caller, user, action string) store.Event {
	return store.Event{User: user, Action: action, CallerUID: c.UID}
}

// change runs fn in one store transaction that also appends *ev to the
// audit log, so the decision and its record commit together, and logs the
// event once it is durable. fn (which may be nil) fills in ev; it may run
// more than once (conflict retries). An error from fn aborts everything.
func (s *Service) change(ctx context.Context, ev *store.Event, fn func(txn *store.Txn) error) error {
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		if fn != nil {
			if err := fn(txn); err != nil {
				return err
			}
		}
		e := *ev
		e.Time = txn.Now()
		return txn.Audit(e, s.Settings().AuditRetention)
	})
	if err == nil {
		s.logEvent(*ev)
	}
	return err
}

// logEvent writes the structured log line for an audit event once the
// transaction is durable.
func (s *Service) logEvent(ev store.Event) {
	attrs := []any{"user", ev.User, "action", ev.Action, "result", ev.Result, "caller_uid", ev.CallerUID}
	if ev.Method != "" {
		attrs = append(attrs, "method", ev.Method)
	}
	if ev.Service != "" {
		attrs = append(attrs, "service", ev.Service)
	}
	if ev.RHost != "" {
		attrs = append(attrs, "rhost", ev.RHost)
	}
	if ev.Detail != "" {
		attrs = append(attrs, "detail", ev.Detail)
	}
	s.log.Info("audit", attrs...)
}

// Audit returns audit events matching q, newest first.
func (s *Service) Audit(q store.AuditQuery) ([]store.Event, error) {
	return s.db.Audit(q)
}

// Record writes an audit event for an action taken outside the service
// (a configuration reload, a restore) and logs it.
func (s *Service) Record(ctx context.Context, c Caller, action, result, detail string) error {
	ev := auditEvent(c, "", action)
	ev.Result, ev.Detail = result, detail
	err := s.change(ctx, &ev, nil)
	return err
}
