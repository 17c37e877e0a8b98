package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/store"
)

// ErrReauthRequired: a self caller asked for an action that weakens the
// account without a fresh second-factor proof (see Reauth).
var ErrReauthRequired = errors.New("a fresh second-factor proof is required")

// ProofTTL is how long a proof from Reauth stays valid; it is good for one
// weakening action.
const ProofTTL = 5 * time.Minute

// Token prefixes make tokens recognisable in support tickets and let the
// format change later.
const (
	deviceTokenPrefix = "mfad-rd1."
	proofTokenPrefix  = "mfad-pf1."
)

// deviceRecord is stored under device/<user>/<id>: one remember-device
// token, by the SHA-256 of its 256-bit secret.
type deviceRecord struct {
	ID       string    `json:"id"`
	Hash     []byte    `json:"hash"`
	Network  string    `json:"network,omitempty"` // bound source network ("" = any)
	Service  string    `json:"service,omitempty"`
	RHost    string    `json:"rhost,omitempty"`
	Policy   string    `json:"policy"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// seenRecord is stored under seen/<user>/<network> after a successful
// second-factor login from that network, with the policy's known_for TTL.
type seenRecord struct {
	Time time.Time `json:"time"`
}

// proofRecord is stored under proof/<id> (TTL ProofTTL).
type proofRecord struct {
	User    string    `json:"user"`
	Hash    []byte    `json:"hash"`
	Expires time.Time `json:"expires"`
}

func deviceKey(user, id string) []byte { return store.Key("device", user, id) }
func devicePrefix(user string) []byte  { return store.Key("device", user, "") }
func seenKey(user, net string) []byte  { return store.Key("seen", user, net) }
func sourceKey(net string) []byte      { return store.Key("failsrc", net) }
func proofKey(id string) []byte        { return store.Key("proof", id) }

// policyFor picks the policy of a login.
func (s *Service) policyFor(st Settings, user, service, rhost string) config.Policy {
	return policy.Select(st.Policies, config.DefaultPolicy(st.Lockout), policy.Request{
		User: user, Service: service, RHost: rhost,
		Groups: func() []string { return s.groupsOf(user) },
	})
}

// policyByName finds the policy a login was started under; a policy removed
// by a reload since falls back to the default.
func (st Settings) policyByName(name string) config.Policy {
	for _, p := range st.Policies {
		if p.Name == name {
			return p
		}
	}
	return config.DefaultPolicy(st.Lockout)
}

// groupsOf resolves the user's groups through GroupsOf or the host's user
// database.
func (s *Service) groupsOf(name string) []string {
	if s.GroupsOf != nil {
		return s.GroupsOf(name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []string
	for _, id := range ids {
		if g, err := user.LookupGroupId(id); err == nil {
			out = append(out, g.Name)
		}
	}
	return out
}

// newToken returns prefix+id+"."+secret and the secret's hash.
func (s *Service) newToken(prefix string) (token, id string, hash []byte, err error) {
	id, err = s.newID(8)
	if err != nil {
		return "", "", nil, err
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(s.rand(), secret); err != nil {
		return "", "", nil, fmt.Errorf("reading random token: %w", err)
	}
	enc := base64.RawURLEncoding.EncodeToString(secret)
	h := sha256.Sum256([]byte(enc))
	return prefix + id + "." + enc, id, h[:], nil
}

// parseToken splits a token into its id and the hash of its secret; ok is
// false for anything malformed.
func parseToken(prefix, token string) (id string, hash []byte, ok bool) {
	rest, found := strings.CutPrefix(token, prefix)
	if !found || len(token) > 128 {
		return "", nil, false
	}
	id, secret, found := strings.Cut(rest, ".")
	if !found || len(id) != 16 || strings.ContainsAny(id, "/.") || len(secret) != 43 {
		return "", nil, false
	}
	h := sha256.Sum256([]byte(secret))
	return id, h[:], true
}

// checkDevice reports whether token is a valid remember-device token of
// user for a login from network, and marks it used.
func checkDevice(txn *store.Txn, user, network, token string) (bool, error) {
	id, hash, ok := parseToken(deviceTokenPrefix, token)
	if !ok {
		return false, nil
	}
	var d deviceRecord
	found, err := txn.Get(deviceKey(user, id), &d)
	if err != nil || !found {
		return false, err
	}
	now := txn.Now()
	if subtle.ConstantTimeCompare(d.Hash, hash) != 1 || !now.Before(d.Expires) || (d.Network != "" && d.Network != network) {
		return false, nil
	}
	d.LastUsed = now
	return true, txn.PutTTL(deviceKey(user, id), d, d.Expires.Sub(now))
}

// issueDevice creates a remember-device token after a successful login.
func (s *Service) issueDevice(txn *store.Txn, p config.Policy, lr loginRecord) (string, error) {
	token, id, hash, err := s.newToken(deviceTokenPrefix)
	if err != nil {
		return "", err
	}
	now := txn.Now()
	d := deviceRecord{ID: id, Hash: hash, Service: lr.Service, RHost: lr.RHost, Policy: p.Name,
		Created: now, Expires: now.Add(p.RememberDevice)}
	if p.RememberBindRHost {
		d.Network = policy.Network(lr.RHost)
	}
	if err := txn.PutTTL(deviceKey(lr.User, id), d, p.RememberDevice); err != nil {
		return "", err
	}
	return token, nil
}

// Device describes a remember-device token, never its secret.
type Device struct {
	ID       string
	Network  string
	Service  string
	RHost    string
	Policy   string
	Created  time.Time
	Expires  time.Time
	LastUsed time.Time
}

// Devices lists the user's valid remember-device tokens, oldest first.
func (s *Service) Devices(user string) ([]Device, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, err
	}
	var out []Device
	err := s.db.View(func(txn *store.Txn) error {
		now := txn.Now()
		return txn.Scan(devicePrefix(user), false, func(_ []byte, val func(any) error) (bool, error) {
			var d deviceRecord
			if err := val(&d); err != nil {
				return false, err
			}
			if now.Before(d.Expires) {
				out = append(out, Device{ID: d.ID, Network: d.Network, Service: d.Service, RHost: d.RHost, Policy: d.Policy,
					Created: d.Created, Expires: d.Expires, LastUsed: d.LastUsed})
			}
			return true, nil
		})
	})
	slices.SortFunc(out, func(a, b Device) int { return a.Created.Compare(b.Created) })
	return out, err
}

// RevokeDevices revokes one remember-device token of the user, or all of
// them when id is "". It answers how many were revoked.
func (s *Service) RevokeDevices(ctx context.Context, c Caller, user, id string) (int, error) {
	if err := ValidateUserName(user); err != nil {
		return 0, err
	}
	ev := auditEvent(c, user, "device.revoke")
	n := 0
	err := s.change(ctx, &ev, func(txn *store.Txn) error {
		n = 0
		var keys [][]byte
		if id != "" {
			found, err := txn.Get(deviceKey(user, id), &deviceRecord{})
			if err != nil {
				return err
			}
			if !found {
				return ErrNotFound
			}
			keys = append(keys, deviceKey(user, id))
		} else {
			err := txn.Scan(devicePrefix(user), false, func(k []byte, _ func(any) error) (bool, error) {
				keys = append(keys, k)
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		ev.Result, ev.Detail = "ok", fmt.Sprintf("%d device tokens", n)
		if id != "" {
			ev.Detail = "device " + id
		}
		return nil
	})
	return n, err
}

// knownNetwork reports whether user logged in from network within within.
func knownNetwork(txn *store.Txn, user, network string, within time.Duration) (bool, error) {
	var r seenRecord
	found, err := txn.Get(seenKey(user, network), &r)
	if err != nil || !found {
		return false, err
	}
	return txn.Now().Sub(r.Time) < within, nil
}

// Reauth checks a second factor of user (a code: TOTP, SMS or recovery)
// outside a login, with the same lockout rules, and on success returns a
// proof good for one weakening action within ProofTTL. A self caller passes
// the proof as Caller.Proof.
func (s *Service) Reauth(ctx context.Context, c Caller, user, code string) (*Verification, string, error) {
	if err := ValidateUserName(user); err != nil {
		return nil, "", err
	}
	token, id, hash, err := s.newToken(proofTokenPrefix)
	if err != nil {
		return nil, "", err
	}
	v, err := s.verify(ctx, c, VerifyRequest{User: user, Code: code, Service: "mfad-reauth"}, "", func(txn *store.Txn) error {
		now := txn.Now()
		return txn.PutTTL(proofKey(id), proofRecord{User: user, Hash: hash, Expires: now.Add(ProofTTL)}, ProofTTL)
	})
	if err != nil || v.Result != ResultOK {
		return v, "", err
	}
	return v, token, nil
}

// authorizeWeakening lets an admin through (the caller is audited by the
// action itself) and makes a self caller spend a valid proof of user, in
// txn, so that the proof is used up exactly when the action commits.
func authorizeWeakening(txn *store.Txn, c Caller, user string) error {
	if c.Admin {
		return nil
	}
	id, hash, ok := parseToken(proofTokenPrefix, c.Proof)
	if !ok {
		return ErrReauthRequired
	}
	var p proofRecord
	found, err := txn.Get(proofKey(id), &p)
	if err != nil {
		return err
	}
	if !found || p.User != user || subtle.ConstantTimeCompare(p.Hash, hash) != 1 || !txn.Now().Before(p.Expires) {
		return ErrReauthRequired
	}
	return txn.Delete(proofKey(id))
}

// Preferences are a user's login preferences.
type Preferences struct {
	// DefaultMethod is offered first when usable ("" = strongest).
	DefaultMethod policy.Method
}

// SetPreferences stores the user's preferences. The preferred method must
// be one the user has enabled.
func (s *Service) SetPreferences(ctx context.Context, c Caller, user string, p Preferences) error {
	if err := ValidateUserName(user); err != nil {
		return err
	}
	switch p.DefaultMethod {
	case "", policy.MethodU2F, policy.MethodTOTP, policy.MethodSMS, policy.MethodRecovery:
	default:
		return invalid("default_method must be one of u2f, totp, sms, recovery or empty")
	}
	ev := auditEvent(c, user, "preferences.set")
	ev.Method = string(p.DefaultMethod)
	return s.change(ctx, &ev, func(txn *store.Txn) error {
		u, found, err := loadUser(txn, user)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotFound
		}
		if p.DefaultMethod != "" {
			enabled := slices.ContainsFunc(u.Factors, func(f *factorRecord) bool { return f.Status == StatusActive && f.Type == p.DefaultMethod })
			if p.DefaultMethod == policy.MethodRecovery {
				enabled = u.Recovery != nil && u.Recovery.Remaining() > 0
			}
			if !enabled {
				return invalid("the user has no active %s factor", p.DefaultMethod)
			}
		}
		u.Preferred = p.DefaultMethod
		ev.Result = "ok"
		return saveUser(txn, u)
	})
}

// Unlock clears the user's failure record, including a hard lock.
func (s *Service) Unlock(ctx context.Context, c Caller, user string) error {
	if err := ValidateUserName(user); err != nil {
		return err
	}
	ev := auditEvent(c, user, "user.unlock")
	return s.change(ctx, &ev, func(txn *store.Txn) error {
		ev.Result = "ok"
		return txn.Delete(failKey(user))
	})
}
