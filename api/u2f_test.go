package api_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/sim"
)

// plug gives the service a U2F client over the given simulated keys. The
// client polls on its own fake clock, so waiting for a touch costs no real
// time.
func (s *stack) plug(t testing.TB, keys ...*sim.U2FKey) *u2f.Client {
	t.Helper()
	var src u2f.StaticSource
	for i, k := range keys {
		src = append(src, u2f.Key{Path: "sim:" + string(rune('a'+i)), Name: k.Name(), Dev: k})
	}
	clk := testenv.NewClock(time.Unix(0, 0))
	c := &u2f.Client{
		Source:  src,
		Timeout: 5 * time.Second,
		Now:     clk.Now,
		Sleep:   func(ctx context.Context, d time.Duration) error { clk.Add(d); return ctx.Err() },
	}
	s.svc.U2F = c
	return c
}

func seededKey(t testing.TB, seed uint64, presence sim.U2FPresence) *sim.U2FKey {
	t.Helper()
	k, err := sim.NewU2FKey(sim.U2FKeyOptions{Presence: presence, Rand: rand.NewChaCha8([32]byte{byte(seed)})})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestU2FEnrollAndLogin(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	key := seededKey(t, 1, sim.U2FPresenceAuto)
	s.plug(t, key)

	f, err := s.cl.EnrollU2F(ctx, "alice", "desk")
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != "u2f" || f.Status != "active" || f.Label != "desk" {
		t.Fatalf("factor = %+v", f)
	}
	if key.Winks() != 1 {
		t.Fatalf("the key blinked %d times during enrollment, want 1", key.Winks())
	}
	// A console login offers the key first.
	l, err := s.cl.Login(ctx, wire.LoginRequest{User: "alice", Service: "login", TTY: "tty1"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Default != "u2f" || !strings.Contains(l.Prompt, "Touch") {
		t.Fatalf("console login = %+v, want u2f first", l)
	}
	for i := 1; i <= 2; i++ {
		l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "alice", Service: "login"})
		v, err := s.cl.LoginU2F(ctx, l.LoginID)
		if err != nil {
			t.Fatal(err)
		}
		if v.Result != "ok" || v.Method != "u2f" {
			t.Fatalf("touch %d = %+v", i, v)
		}
		if key.Counter() != uint32(i) {
			t.Fatalf("key counter %d after %d logins", key.Counter(), i)
		}
		// The finished login cannot be reused.
		if _, err := s.cl.LoginU2F(ctx, l.LoginID); !client.IsCode(err, wire.CodeLoginExpired) {
			t.Fatalf("reusing a finished login: %v", err)
		}
	}
	// A remote login never offers the key: it is plugged into this machine.
	rl, err := s.cl.Login(ctx, wire.LoginRequest{User: "alice", Service: "sshd", RHost: "192.0.2.9"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rl.Methods {
		if m == "u2f" {
			t.Fatalf("remote login offers u2f: %+v", rl)
		}
	}
}

func TestU2FNoTouchDoesNotCount(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	key := seededKey(t, 2, sim.U2FPresenceAuto)
	s.plug(t, key)
	if _, err := s.cl.EnrollU2F(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}
	key.SetPresence(sim.U2FPresenceNever)
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "bob"})
	v, err := s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != "fail" || v.Reason != "no_touch" || v.AttemptsLeft != nil {
		t.Fatalf("no touch = %+v", v)
	}
	u, _ := s.cl.User(ctx, "bob")
	if u.Failures != 0 {
		t.Fatalf("a missing touch counted as a failure: %d", u.Failures)
	}
	// The login is still open: touch now.
	key.Touch()
	if v, err := s.cl.LoginU2F(ctx, l.LoginID); err != nil || v.Result != "ok" {
		t.Fatalf("after a touch: %+v %v", v, err)
	}
	// Enrollment without a touch times out.
	if _, err := s.cl.EnrollU2F(ctx, "bob", ""); !client.IsCode(err, wire.CodeTimeout) {
		t.Fatalf("enrolling without a touch: %v", err)
	}
}

// A key whose counter goes backwards is a possible clone: refused, counted
// and audited.
func TestU2FClonedKeyIsRejected(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	original := seededKey(t, 3, sim.U2FPresenceAuto)
	s.plug(t, original)
	if _, err := s.cl.EnrollU2F(ctx, "carol", ""); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "carol"})
		if v, err := s.cl.LoginU2F(ctx, l.LoginID); err != nil || v.Result != "ok" {
			t.Fatalf("original key: %+v %v", v, err)
		}
	}
	// Same seed: same wrapping key and attestation, fresh counter.
	clone := seededKey(t, 3, sim.U2FPresenceAuto)
	s.plug(t, clone)
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "carol"})
	v, err := s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil {
		t.Fatal(err)
	}
	// Refused and audited, but not counted: a key cannot be guessed, and a
	// security key login is never locked out.
	if v.Result != "fail" || v.AttemptsLeft != nil {
		t.Fatalf("cloned key = %+v, want a refusal that does not count", v)
	}
	a, err := s.cl.Audit(ctx, client.AuditQuery{User: "carol", Action: "verify"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.Events[0].Detail, "possible cloned key") {
		t.Fatalf("clone not audited: %+v", a.Events[0])
	}
	// With counter_regression = "allow" it logs in, still audited.
	st := s.svc.Settings()
	st.U2F.CounterRegression = "allow"
	s.svc.SetSettings(st)
	if v, err := s.cl.LoginU2F(ctx, l.LoginID); err != nil || v.Result != "ok" {
		t.Fatalf("allowed regression: %+v %v", v, err)
	}
}

func TestU2FWithoutHardwareOrKeys(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	if _, err := s.cl.EnrollU2F(ctx, "dave", ""); !client.IsCode(err, wire.CodeUnavailable) {
		t.Fatalf("no U2F hardware: %v", err)
	}
	s.plug(t) // hardware, but nothing plugged in
	if _, err := s.cl.EnrollU2F(ctx, "dave", ""); !client.IsCode(err, wire.CodeConflict) || !strings.Contains(err.Error(), "plugged") {
		t.Fatalf("no key plugged: %v", err)
	}
	key := seededKey(t, 4, sim.U2FPresenceAuto)
	s.plug(t, key)
	if _, err := s.cl.EnrollU2F(ctx, "dave", ""); err != nil {
		t.Fatal(err)
	}
	// The key is pulled: the login step fails cleanly.
	key.SetFault(sim.U2FFaultDisconnect)
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "dave"})
	if _, err := s.cl.LoginU2F(ctx, l.LoginID); !client.IsCode(err, wire.CodeUnavailable) || !strings.Contains(err.Error(), "stopped answering") {
		t.Fatalf("pulled key: %v", err)
	}
	// Another user's key does not hold dave's handle.
	s.plug(t, seededKey(t, 5, sim.U2FPresenceAuto))
	v, err := s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil || v.Result != "fail" || v.Reason != "no_key" {
		t.Fatalf("foreign key: %+v %v", v, err)
	}
}

// With an attestation allow-list only keys from the listed makers enroll.
func TestU2FAttestationAllowList(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	trusted := seededKey(t, 6, sim.U2FPresenceAuto)
	other := seededKey(t, 7, sim.U2FPresenceAuto)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: trusted.AttestationCertificate()})
	if err := os.WriteFile(ca, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	st := s.svc.Settings()
	st.U2F.AttestationCAFile = ca
	s.svc.SetSettings(st)

	s.plug(t, other)
	if _, err := s.cl.EnrollU2F(ctx, "erin", ""); !client.IsCode(err, wire.CodeCodeRejected) || !strings.Contains(err.Error(), "allow-list") {
		t.Fatalf("untrusted key: %v", err)
	}
	s.plug(t, trusted)
	if _, err := s.cl.EnrollU2F(ctx, "erin", ""); err != nil {
		t.Fatalf("trusted key: %v", err)
	}
	a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "erin", Action: "u2f.enroll"})
	if len(a.Events) != 2 || a.Events[1].Result != "fail" || a.Events[0].Result != "ok" {
		t.Fatalf("audit: %+v", a.Events)
	}
}

// BenchmarkU2FLoginOverSocket measures a whole console login with the
// simulated key over the real socket: POST /v1/login, then POST
// /v1/login/{id}/u2f (check-only, sign, relying-party verification, and the
// decision transaction). The store is in memory, so fsync is not included.
//
//	go test -run '^$' -bench U2FLoginOverSocket ./api/
func BenchmarkU2FLoginOverSocket(b *testing.B) {
	s := newStack(b)
	ctx := context.Background()
	s.plug(b, seededKey(b, 8, sim.U2FPresenceAuto))
	if _, err := s.cl.EnrollU2F(ctx, "bench", ""); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		l, err := s.cl.Login(ctx, wire.LoginRequest{User: "bench", Service: "login"})
		if err != nil {
			b.Fatal(err)
		}
		v, err := s.cl.LoginU2F(ctx, l.LoginID)
		if err != nil || v.Result != "ok" {
			b.Fatalf("%+v %v", v, err)
		}
	}
}

// Through the socket: the handle on the second of two plugged keys, and a
// changed app ID that makes an enrolled key unusable.
func TestU2FTwoKeysAndAppID(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	first, second := seededKey(t, 9, sim.U2FPresenceNever), seededKey(t, 10, sim.U2FPresenceAuto)
	s.plug(t, second)
	if _, err := s.cl.EnrollU2F(ctx, "frank", ""); err != nil {
		t.Fatal(err)
	}
	s.plug(t, first, second) // the first key is never touched and holds nothing
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "frank"})
	v, err := s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil || v.Result != "ok" {
		t.Fatalf("handle on the second key: %+v %v", v, err)
	}
	if first.Counter() != 0 || second.Counter() != 1 {
		t.Fatalf("counters %d/%d: only the holding key may sign", first.Counter(), second.Counter())
	}
	// Another app ID: the key's handle is bound to the old one.
	st := s.svc.Settings()
	st.U2F.AppID = "pam://elsewhere"
	s.svc.SetSettings(st)
	l, _ = s.cl.Login(ctx, wire.LoginRequest{User: "frank"})
	v, err = s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil || v.Result != "fail" || v.Reason != "no_key" {
		t.Fatalf("after an app ID change: %+v %v", v, err)
	}
}

// A key that signs the wrong challenge, or replays its last answer, is
// refused and audited; the failure does not count toward the code lockout.
func TestU2FBadSignaturesAreRefused(t *testing.T) {
	for _, fault := range []sim.U2FFault{sim.U2FFaultWrongChallenge, sim.U2FFaultReplay} {
		t.Run(fault.String(), func(t *testing.T) {
			s := newStack(t)
			ctx := context.Background()
			key := seededKey(t, 11, sim.U2FPresenceAuto)
			s.plug(t, key)
			if _, err := s.cl.EnrollU2F(ctx, "grace", ""); err != nil {
				t.Fatal(err)
			}
			l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "grace"})
			if v, err := s.cl.LoginU2F(ctx, l.LoginID); err != nil || v.Result != "ok" {
				t.Fatalf("honest touch: %+v %v", v, err)
			}
			key.SetFault(fault)
			l, _ = s.cl.Login(ctx, wire.LoginRequest{User: "grace"})
			v, err := s.cl.LoginU2F(ctx, l.LoginID)
			if err != nil {
				t.Fatal(err)
			}
			// Refused and audited, but not counted: a key cannot be guessed, and a
			// security key login is never locked out.
			if v.Result != "fail" || v.AttemptsLeft != nil {
				t.Fatalf("%s: %+v, want a counted failure", fault, v)
			}
			a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "grace", Action: "verify"})
			if a.Events[0].Result != "fail" || !strings.Contains(a.Events[0].Detail, "u2f") {
				t.Fatalf("audit: %+v", a.Events[0])
			}
		})
	}
}

// Someone guessing codes over SSH, from many networks, locks the user's
// codes; the user at the console still logs in with the security key, and
// that login clears the lock.
func TestConsoleKeyNotLockedOutByRemoteGuessing(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	secret := s.enroll(t, "hana")
	key := seededKey(t, 21, sim.U2FPresenceAuto)
	s.plug(t, key)
	if _, err := s.cl.EnrollU2F(ctx, "hana", "desk"); err != nil {
		t.Fatal(err)
	}
	for i := range s.cfg.Lockout.MaxFailures {
		rhost := fmt.Sprintf("198.51.%d.9", 100+i) // a new network each time: no source is slowed
		l, err := s.cl.Login(ctx, wire.LoginRequest{User: "hana", Service: "sshd", RHost: rhost})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.cl.LoginVerify(ctx, l.LoginID, "000000", ""); err != nil {
			t.Fatal(err)
		}
	}
	// Codes are locked everywhere, the console included.
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "hana", Service: "login", TTY: "tty1"})
	if !slices.Contains(l.Methods, "u2f") || l.Default != "u2f" {
		t.Fatalf("console login = %+v, want the key offered first", l)
	}
	if v, _ := s.cl.LoginVerify(ctx, l.LoginID, s.code(secret, 0), ""); v.Result != "locked" {
		t.Fatalf("code at the console during the lock = %+v", v)
	}
	// The key is not.
	v, err := s.cl.LoginU2F(ctx, l.LoginID)
	if err != nil || v.Result != "ok" {
		t.Fatalf("key at the console during the lock = %+v, %v", v, err)
	}
	u, _ := s.cl.User(ctx, "hana")
	if u.LockedUntil != nil || u.Failures != 0 {
		t.Fatalf("after the key login: %+v", u)
	}
}

// A console login offers the key only while one is plugged in; without it
// the next factor is the default ("left my key at home").
func TestKeyOfferedOnlyWhenPlugged(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	s.enroll(t, "ines")
	key := seededKey(t, 31, sim.U2FPresenceAuto)
	s.plug(t, key)
	if _, err := s.cl.EnrollU2F(ctx, "ines", ""); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "ines", Service: "login"}); l.Default != "u2f" {
		t.Fatalf("with the key plugged: %+v", l)
	}
	s.plug(t) // pulled out
	l, _ := s.cl.Login(ctx, wire.LoginRequest{User: "ines", Service: "login"})
	if slices.Contains(l.Methods, "u2f") || l.Default != "totp" {
		t.Fatalf("without a key: %+v", l)
	}
}
