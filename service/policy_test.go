package service_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// withPolicies installs policies (and optional settings edits) in svc.
func withPolicies(svc *service.Service, edit func(*service.Settings), policies ...config.Policy) {
	st := svc.Settings()
	st.Policies = policies
	if edit != nil {
		edit(&st)
	}
	svc.SetSettings(st)
}

// pol returns the default policy renamed, edited by edit.
func pol(name string, edit func(*config.Policy)) config.Policy {
	p := config.DefaultPolicy(config.Default(config.Env{}).Lockout)
	p.Name = name
	if edit != nil {
		edit(&p)
	}
	return p
}

// enrollTOTP gives user an active TOTP factor and returns its secret. The
// confirmation uses the previous step's code so the current one stays
// fresh for a login.
func enrollTOTP(t *testing.T, svc *service.Service, clk *testenv.Clock, user string) otp.Secret {
	t.Helper()
	ctx := context.Background()
	e, err := svc.EnrollTOTP(ctx, service.Internal, user, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ConfirmTOTP(ctx, service.Internal, user, e.FactorID, otp.Code(e.Secret, otp.Counter(clk.Now(), params)-1, params)); err != nil {
		t.Fatal(err)
	}
	return e.Secret
}

// login starts a login and, when challenged and code is not "", verifies code.
func login(t *testing.T, svc *service.Service, user, rhost, token string) *service.Login {
	t.Helper()
	l, err := svc.StartLogin(context.Background(), service.Internal, service.LoginRequest{User: user, Service: "sshd", RHost: rhost, DeviceToken: token})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func currentCode(s otp.Secret, clk *testenv.Clock) string {
	return otp.Code(s, otp.Counter(clk.Now(), params), params)
}

func TestPolicySelectionAndUnenrolled(t *testing.T) {
	svc, clk := newService(t)
	deadline := clk.Now().Add(48 * time.Hour)
	local := true
	withPolicies(svc, nil,
		pol("nothing", func(p *config.Policy) { p.Match.Service = []string{"cron"}; p.Require = "never" }),
		pol("console", func(p *config.Policy) { p.Match.Local = &local; p.Unenrolled = "warn" }),
		pol("office", func(p *config.Policy) {
			p.Match.RHost = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
			p.Unenrolled, p.EnrollDeadline = "deadline", deadline
		}),
		pol("opt", func(p *config.Policy) { p.Match.User = []string{"olga"}; p.Require = "optional" }),
		pol("admins", func(p *config.Policy) { p.Match.Group = []string{"wheel"}; p.Methods = []string{"totp"} }),
	)
	svc.GroupsOf = func(u string) []string {
		if u == "root2" {
			return []string{"users", "wheel"}
		}
		return []string{"users"}
	}
	ctx := context.Background()
	start := func(user, service, rhost string) *service.Login {
		t.Helper()
		l, err := svc.StartLogin(ctx, serviceInternal, serviceReq(user, service, rhost))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name, user, service, rhost string
		policy                     string
		decision                   policy.Decision
		message                    bool
	}{
		{"never", "nobody", "cron", "", "nothing", policy.Allow, false},
		{"unenrolled warned at the console", "nobody", "login", "", "console", policy.Allow, true},
		{"unenrolled before the deadline", "nobody", "sshd", "10.1.2.3", "office", policy.Allow, true},
		{"unenrolled elsewhere is denied by a decoy", "nobody", "sshd", "192.0.2.1", "default", policy.Challenge, false},
		{"optional lets the unenrolled in", "olga", "sshd", "192.0.2.1", "opt", policy.Allow, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := start(tc.user, tc.service, tc.rhost)
			if l.Policy != tc.policy || l.Decision != tc.decision || (len(l.Messages) > 0) != tc.message {
				t.Fatalf("login = %+v, want policy %s decision %s message %v", l, tc.policy, tc.decision, tc.message)
			}
		})
	}
	t.Run("after the deadline the unenrolled are denied", func(t *testing.T) {
		clk.Add(49 * time.Hour)
		l := start("nobody", "sshd", "10.1.2.3")
		if l.Decision != policy.Challenge || l.Policy != "office" {
			t.Fatalf("login = %+v", l)
		}
	})
	t.Run("optional still challenges the enrolled", func(t *testing.T) {
		enrollTOTP(t, svc, clk, "olga")
		if l := start("olga", "sshd", "192.0.2.1"); l.Decision != policy.Challenge {
			t.Fatalf("login = %+v", l)
		}
	})
	t.Run("group policy restricts the methods", func(t *testing.T) {
		enrollTOTP(t, svc, clk, "root2")
		l := start("root2", "sshd", "192.0.2.1")
		if l.Policy != "admins" || !slices.Equal(l.Methods, []policy.Method{policy.MethodTOTP}) {
			t.Fatalf("login = %+v", l)
		}
	})
	t.Run("preferred method comes first", func(t *testing.T) {
		enrollTOTP(t, svc, clk, "pia")
		if err := svc.SetPreferences(ctx, service.Internal, "pia", service.Preferences{DefaultMethod: policy.MethodRecovery}); err != nil {
			t.Fatal(err)
		}
		l := start("pia", "sshd", "192.0.2.1")
		if l.Default != policy.MethodRecovery || l.Methods[0] != policy.MethodTOTP {
			t.Fatalf("login = %+v", l)
		}
		if err := svc.SetPreferences(ctx, service.Internal, "pia", service.Preferences{DefaultMethod: policy.MethodU2F}); !errors.Is(err, service.ErrInvalidInput) {
			t.Fatalf("preferring a method the user lacks: %v", err)
		}
	})
}

var serviceInternal = service.Internal

func serviceReq(user, svc, rhost string) service.LoginRequest {
	return service.LoginRequest{User: user, Service: svc, RHost: rhost}
}

func TestRiskyLogins(t *testing.T) {
	svc, clk := newService(t)
	withPolicies(svc, nil, pol("risky", func(p *config.Policy) { p.Require = "risky"; p.KnownFor = 24 * time.Hour }))
	secret := enrollTOTP(t, svc, clk, "rita")
	ctx := context.Background()

	l := login(t, svc, "rita", "10.1.2.3", "")
	if l.Decision != policy.Challenge || !strings.Contains(l.Reason, "new network") {
		t.Fatalf("first login = %+v", l)
	}
	clk.Add(30 * time.Second)
	if v, err := svc.VerifyLogin(ctx, service.Internal, l.ID, currentCode(secret, clk), "", false); err != nil || v.Result != service.ResultOK {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	if l := login(t, svc, "rita", "10.1.2.77", ""); l.Decision != policy.Allow || !strings.Contains(l.Reason, "known network") {
		t.Fatalf("same /24 = %+v", l)
	}
	if l := login(t, svc, "rita", "10.1.3.1", ""); l.Decision != policy.Challenge {
		t.Fatalf("other /24 = %+v", l)
	}
	// A failure makes even a known network risky.
	l = login(t, svc, "rita", "10.1.2.3", "")
	clk.Add(time.Minute)
	l2 := login(t, svc, "rita", "10.1.3.1", "")
	if v, _ := svc.VerifyLogin(ctx, service.Internal, l2.ID, "000000", "", false); v.Result != service.ResultFail {
		t.Fatalf("wrong code = %+v", v)
	}
	if l := login(t, svc, "rita", "10.1.2.3", ""); l.Decision != policy.Challenge || !strings.Contains(l.Reason, "recent failures") {
		t.Fatalf("known network after a failure = %+v", l)
	}
	_ = l
	// Known networks are forgotten after known_for.
	clk.Add(25 * time.Hour)
	if l := login(t, svc, "rita", "10.1.2.3", ""); l.Decision != policy.Challenge || !strings.Contains(l.Reason, "new network") {
		t.Fatalf("after known_for = %+v", l)
	}
}

func TestRememberDevice(t *testing.T) {
	svc, clk := newService(t)
	withPolicies(svc, nil, pol("remember", func(p *config.Policy) { p.RememberDevice = 24 * time.Hour }))
	secret := enrollTOTP(t, svc, clk, "rob")
	ctx := context.Background()

	l := login(t, svc, "rob", "192.0.2.10", "")
	if !l.Remember {
		t.Fatalf("login does not offer remembering: %+v", l)
	}
	clk.Add(30 * time.Second)
	v, err := svc.VerifyLogin(ctx, service.Internal, l.ID, currentCode(secret, clk), "", true)
	if err != nil || v.Result != service.ResultOK || !strings.HasPrefix(v.RememberToken, "mfad-rd1.") {
		t.Fatalf("verify = %+v, %v", v, err)
	}
	token := v.RememberToken
	if l := login(t, svc, "rob", "192.0.2.99", token); l.Decision != policy.Allow {
		t.Fatalf("remembered device = %+v", l)
	}
	if l := login(t, svc, "rob", "198.51.100.1", token); l.Decision != policy.Challenge {
		t.Fatalf("token from another network = %+v", l)
	}
	if l := login(t, svc, "eve", "192.0.2.99", token); l.Decision != policy.Challenge {
		t.Fatalf("token of another user = %+v", l)
	}
	tampered := token[:len(token)-2] + "AA"
	if l := login(t, svc, "rob", "192.0.2.99", tampered); l.Decision != policy.Challenge {
		t.Fatalf("tampered token = %+v", l)
	}
	ds, err := svc.Devices("rob")
	if err != nil || len(ds) != 1 || ds[0].Network != "192.0.2.0/24" || ds[0].LastUsed.IsZero() {
		t.Fatalf("devices = %+v, %v", ds, err)
	}
	// Expiry.
	clk.Add(25 * time.Hour)
	if l := login(t, svc, "rob", "192.0.2.99", token); l.Decision != policy.Challenge {
		t.Fatalf("expired token = %+v", l)
	}
	// Revocation.
	l = login(t, svc, "rob", "192.0.2.10", "")
	v, _ = svc.VerifyLogin(ctx, service.Internal, l.ID, currentCode(secret, clk), "", true)
	if l := login(t, svc, "rob", "192.0.2.10", v.RememberToken); l.Decision != policy.Allow {
		t.Fatalf("new token = %+v", l)
	}
	ds, _ = svc.Devices("rob")
	if n, err := svc.RevokeDevices(ctx, service.Internal, "rob", ds[len(ds)-1].ID); err != nil || n != 1 {
		t.Fatalf("revoke = %d, %v", n, err)
	}
	if l := login(t, svc, "rob", "192.0.2.10", v.RememberToken); l.Decision != policy.Challenge {
		t.Fatalf("revoked token = %+v", l)
	}
	// A policy without remember_device ignores tokens.
	withPolicies(svc, nil)
	if l := login(t, svc, "rob", "192.0.2.10", token); l.Remember || l.Decision != policy.Challenge {
		t.Fatalf("default policy = %+v", l)
	}
}

func TestSourceThrottleProtectsUsers(t *testing.T) {
	svc, clk := newService(t)
	withPolicies(svc, func(st *service.Settings) {
		st.Lockout.SourceMaxFailures = 4
		st.Lockout.SourceBackoff = 30 * time.Second
		st.Lockout.MaxFailures = 10
	})
	secret := enrollTOTP(t, svc, clk, "vic")
	ctx := context.Background()
	attack := func() *service.Verification {
		t.Helper()
		v, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "vic", Code: "000000", Service: "sshd", RHost: "203.0.113.7"})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := 0; i < 4; i++ {
		if v := attack(); v.Result == service.ResultLocked && i < 3 {
			t.Fatalf("attempt %d throttled early: %+v", i, v)
		}
	}
	// The source is slowed now: further guesses are refused without
	// counting against the user, with a growing delay.
	v := attack()
	if v.Result != service.ResultLocked || v.RetryAfter <= 0 || v.RetryAfter > 30*time.Second {
		t.Fatalf("throttled attempt = %+v", v)
	}
	u, _ := svc.User("vic")
	if u.Failures != 4 || !u.LockedUntil.IsZero() {
		t.Fatalf("user after the burst: failures %d locked %v", u.Failures, u.LockedUntil)
	}
	clk.Add(31 * time.Second)
	attack()
	if v := attack(); v.Result != service.ResultLocked || v.RetryAfter <= 30*time.Second {
		t.Fatalf("backoff did not grow: %+v", v)
	}
	// The real user, from elsewhere, gets in.
	clk.Add(30 * time.Second)
	v, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "vic", Code: currentCode(secret, clk), Service: "sshd", RHost: "198.51.100.20"})
	if err != nil || v.Result != service.ResultOK {
		t.Fatalf("real user = %+v, %v", v, err)
	}
	// The audit says what happened.
	evs, _ := svc.Audit(store.AuditQuery{User: "vic", Action: "verify"})
	if !slices.ContainsFunc(evs, func(e store.Event) bool {
		return e.Result == "throttled" && strings.Contains(e.Detail, "203.0.113.0/24")
	}) {
		t.Fatalf("no throttled audit event: %+v", evs)
	}
}

func TestLockoutGrowsAndHardLimit(t *testing.T) {
	svc, clk := newService(t)
	withPolicies(svc, func(st *service.Settings) {
		st.Lockout.MaxFailures, st.Lockout.Duration, st.Lockout.MaxDuration, st.Lockout.HardLimit = 2, time.Minute, 3*time.Minute, 10
		st.Lockout.SourceMaxFailures = 1000
	})
	secret := enrollTOTP(t, svc, clk, "wes")
	ctx := context.Background()
	fail := func() *service.Verification {
		v, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "wes", Code: "000000", RHost: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var locks []time.Duration
	for i := 0; i < 9; i++ {
		v := fail()
		if v.Result == service.ResultLocked {
			locks = append(locks, v.RetryAfter)
			clk.Add(v.RetryAfter)
		}
	}
	if want := []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute}; !slices.Equal(locks, want) {
		t.Fatalf("lock durations = %v, want %v", locks, want)
	}
	// The tenth consecutive failure is the hard limit: no time-out ends it.
	if v := fail(); v.Result != service.ResultLocked {
		t.Fatalf("10th failure = %+v", v)
	}
	clk.Add(48 * time.Hour)
	v, _ := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "wes", Code: currentCode(secret, clk), RHost: "192.0.2.1"})
	if v.Result != service.ResultLocked {
		t.Fatalf("correct code under a hard lock = %+v", v)
	}
	if err := svc.Unlock(ctx, service.Internal, "wes"); err != nil {
		t.Fatal(err)
	}
	v, _ = svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "wes", Code: currentCode(secret, clk), RHost: "192.0.2.1"})
	if v.Result != service.ResultOK {
		t.Fatalf("after unlock = %+v", v)
	}
}

// notices records what users were told.
type notices struct {
	mu   sync.Mutex
	sent map[string][]string
}

func (n *notices) Notify(_ context.Context, user, text string) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sent == nil {
		n.sent = map[string][]string{}
	}
	n.sent[user] = append(n.sent[user], text)
	return 1, nil
}

func (n *notices) of(user string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent[user])
}

var cancelCodeRE = regexp.MustCompile(`[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}`)

func TestAccountRecoveryRequest(t *testing.T) {
	svc, clk := newService(t)
	note := &notices{}
	svc.Notifier = note
	ctx := context.Background()
	secret := enrollTOTP(t, svc, clk, "lara")
	self := service.Caller{UID: 1000}

	if _, err := svc.OpenRecoveryRequest(ctx, service.Internal, "ghost", "ticket 1"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("request for an unknown user: %v", err)
	}
	rr, err := svc.OpenRecoveryRequest(ctx, service.Internal, "lara", "ticket 1: lost phone")
	if err != nil || rr.Status != service.RecoveryPending || rr.Notified != 1 || !rr.EffectiveAt.Equal(clk.Now().Add(24*time.Hour)) {
		t.Fatalf("open = %+v, %v", rr, err)
	}
	if _, err := svc.OpenRecoveryRequest(ctx, service.Internal, "lara", "again"); !errors.Is(err, service.ErrConflict) {
		t.Fatalf("second open request: %v", err)
	}
	texts := note.of("lara")
	code := cancelCodeRE.FindString(texts[0])
	if code == "" || strings.Contains(texts[0], "lara") {
		t.Fatalf("notice = %q", texts[0])
	}

	t.Run("cancelled with the code", func(t *testing.T) {
		if _, err := svc.CancelRecoveryRequest(ctx, self, "lara", "0000-0000-0000-0000"); err == nil {
			t.Fatal("wrong cancel code accepted")
		}
		rr, err := svc.CancelRecoveryRequest(ctx, self, "lara", code)
		if err != nil || rr.Status != service.RecoveryCancelled {
			t.Fatalf("cancel = %+v, %v", rr, err)
		}
		clk.Add(25 * time.Hour)
		if err := svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if l := login(t, svc, "lara", "192.0.2.1", ""); l.Decision != policy.Challenge {
			t.Fatalf("login after a cancelled request = %+v", l)
		}
	})

	t.Run("cancelled by a login with a factor", func(t *testing.T) {
		if _, err := svc.OpenRecoveryRequest(ctx, service.Internal, "lara", "ticket 2"); err != nil {
			t.Fatal(err)
		}
		l := login(t, svc, "lara", "192.0.2.1", "")
		clk.Add(30 * time.Second)
		if v, _ := svc.VerifyLogin(ctx, service.Internal, l.ID, currentCode(secret, clk), "", false); v.Result != service.ResultOK {
			t.Fatalf("verify = %+v", v)
		}
		rr, _ := svc.RecoveryRequestOf("lara")
		if rr.Status != service.RecoveryCancelled || !strings.Contains(rr.ClosedHow, "login") {
			t.Fatalf("request after a login = %+v", rr)
		}
	})

	t.Run("takes effect: one-time bypass", func(t *testing.T) {
		if _, err := svc.OpenRecoveryRequest(ctx, service.Internal, "lara", "ticket 3"); err != nil {
			t.Fatal(err)
		}
		before := len(note.of("lara"))
		clk.Add(7 * time.Hour)
		_ = svc.Tick(ctx) // a reminder
		if got := note.of("lara"); len(got) != before+1 || !strings.Contains(got[len(got)-1], "reminder") {
			t.Fatalf("reminders = %q", got[before:])
		}
		if l := login(t, svc, "lara", "192.0.2.1", ""); l.Decision != policy.Challenge {
			t.Fatalf("login before the delay = %+v", l)
		}
		clk.Add(18 * time.Hour)
		if err := svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if rr, _ := svc.RecoveryRequestOf("lara"); rr.Status != service.RecoveryEffective {
			t.Fatalf("after the delay = %+v", rr)
		}
		l := login(t, svc, "lara", "192.0.2.1", "")
		if l.Decision != policy.Allow || len(l.Messages) == 0 {
			t.Fatalf("login after the delay = %+v", l)
		}
		if l := login(t, svc, "lara", "192.0.2.1", ""); l.Decision != policy.Challenge {
			t.Fatalf("second login after the bypass = %+v", l)
		}
		evs, _ := svc.Audit(store.AuditQuery{User: "lara"})
		var actions []string
		for _, e := range evs {
			actions = append(actions, e.Action+":"+e.Result)
		}
		for _, want := range []string{"recovery_request.open:ok", "recovery_request.cancel:ok", "recovery_request.effective:ok", "login:allow"} {
			if !slices.Contains(actions, want) {
				t.Errorf("audit lacks %s: %v", want, actions)
			}
		}
	})

	t.Run("takes effect: reset", func(t *testing.T) {
		withPolicies(svc, func(st *service.Settings) { st.AccountRecovery.Action = "reset" })
		enrollTOTP(t, svc, clk, "max")
		if _, err := svc.OpenRecoveryRequest(ctx, service.Internal, "max", "ticket 4"); err != nil {
			t.Fatal(err)
		}
		clk.Add(24 * time.Hour)
		if err := svc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		u, _ := svc.User("max")
		if len(u.Factors) != 0 || u.Recovery != nil {
			t.Fatalf("user after reset = %+v", u)
		}
	})
}

func TestTemporaryBypass(t *testing.T) {
	svc, clk := newService(t)
	note := &notices{}
	svc.Notifier = note
	ctx := context.Background()
	enrollTOTP(t, svc, clk, "bea")
	if _, err := svc.GrantBypass(ctx, service.Internal, "bea", 200*time.Hour, "travel"); !errors.Is(err, service.ErrInvalidInput) {
		t.Fatalf("bypass beyond max_bypass: %v", err)
	}
	until, err := svc.GrantBypass(ctx, service.Internal, "bea", 48*time.Hour, "travel")
	if err != nil || !until.Equal(clk.Now().Add(48*time.Hour)) {
		t.Fatalf("grant = %v, %v", until, err)
	}
	if l := login(t, svc, "bea", "192.0.2.1", ""); l.Decision != policy.Allow || l.Reason != "temporary bypass" {
		t.Fatalf("login during the bypass = %+v", l)
	}
	clk.Add(48*time.Hour + time.Second)
	if l := login(t, svc, "bea", "192.0.2.1", ""); l.Decision != policy.Challenge {
		t.Fatalf("login after the bypass = %+v", l)
	}
	if err := svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _ := svc.Audit(store.AuditQuery{User: "bea", Action: "bypass.expired"})
	if len(evs) != 1 {
		t.Fatalf("bypass.expired events = %+v", evs)
	}
	if got := note.of("bea"); len(got) != 2 {
		t.Fatalf("notices = %q", got)
	}
}

// TestWeakeningNeedsFreshProof is a property test: whatever sequence of
// calls a self caller makes, it never removes a factor, replaces its
// recovery codes or deletes its user without spending a proof obtained
// with a correct code within the last five minutes, and no proof works
// twice.
func TestWeakeningNeedsFreshProof(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			svc, clk := newService(t)
			withPolicies(svc, func(st *service.Settings) { st.Lockout.MaxFailures, st.Lockout.SourceMaxFailures = 100, 1000 })
			ctx := context.Background()
			r := rand.New(rand.NewPCG(seed, 42))
			self := service.Caller{UID: 1000}
			var secrets []otp.Secret
			var recoveryCodes []string
			setup := func() {
				secrets = []otp.Secret{enrollTOTP(t, svc, clk, "sam"), enrollTOTP(t, svc, clk, "sam")}
				rc, err := svc.GenerateRecoveryCodes(ctx, service.Internal, "sam")
				if err != nil {
					t.Fatal(err)
				}
				recoveryCodes = nil
				for _, c := range rc.Codes {
					recoveryCodes = append(recoveryCodes, c.Reveal())
				}
			}
			setup()
			type proof struct {
				token string
				at    time.Time
				used  bool
			}
			var proofs []*proof
			for step := 0; step < 60; step++ {
				clk.Add(time.Duration(r.IntN(240)) * time.Second)
				switch op := r.IntN(6); op {
				case 0, 1: // reauth with a right or wrong code
					code := "123456"
					if op == 0 && len(secrets) > 0 {
						code = currentCode(secrets[r.IntN(len(secrets))], clk)
					} else if op == 0 && len(recoveryCodes) > 0 {
						code = recoveryCodes[0]
					}
					v, tok, err := svc.Reauth(ctx, self, "sam", code)
					if err != nil {
						t.Fatal(err)
					}
					if tok != "" {
						if v.Result != service.ResultOK {
							t.Fatalf("proof without success: %+v", v)
						}
						proofs = append(proofs, &proof{token: tok, at: clk.Now()})
					}
				default: // a weakening action, with some proof or none
					c := self
					var p *proof
					if len(proofs) > 0 && r.IntN(4) > 0 {
						p = proofs[r.IntN(len(proofs))]
						c.Proof = p.token
					} else if r.IntN(2) == 0 {
						c.Proof = "mfad-pf1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
					}
					var err error
					u, uerr := svc.User("sam")
					switch op {
					case 2:
						if uerr != nil || len(u.Factors) == 0 {
							continue
						}
						err = svc.DeleteFactor(ctx, c, "sam", u.Factors[r.IntN(len(u.Factors))].ID)
					case 3:
						var rc *service.RecoveryCodes
						rc, err = svc.GenerateRecoveryCodes(ctx, c, "sam")
						if err == nil && uerr == nil && u.Recovery != nil && u.Recovery.Remaining > 0 {
							recoveryCodes = nil
							for _, code := range rc.Codes {
								recoveryCodes = append(recoveryCodes, code.Reveal())
							}
						}
						if err == nil && (uerr != nil || u.Recovery == nil || u.Recovery.Remaining == 0) {
							continue // creating a first set weakens nothing
						}
					case 4, 5:
						if uerr != nil {
							setup()
							continue
						}
						err = svc.DeleteUser(ctx, c, "sam")
					}
					fresh := p != nil && !p.used && clk.Now().Sub(p.at) < service.ProofTTL
					if err == nil {
						if !fresh {
							t.Fatalf("step %d: weakening op %d succeeded without a fresh proof (%+v)", step, op, p)
						}
						p.used = true
						if op == 4 || op == 5 {
							secrets, recoveryCodes = nil, nil
						}
					} else if !errors.Is(err, service.ErrReauthRequired) && !errors.Is(err, service.ErrNotFound) {
						t.Fatalf("step %d: %v", step, err)
					} else if errors.Is(err, service.ErrReauthRequired) && fresh {
						t.Fatalf("step %d: a fresh proof was refused", step)
					}
				}
				// Recovery codes already used are dropped from the model.
				if u, err := svc.User("sam"); err == nil && u.Recovery != nil {
					recoveryCodes = recoveryCodes[max(0, len(recoveryCodes)-u.Recovery.Remaining):]
				}
			}
		})
	}
}

func TestAdminWeakeningTellsTheUser(t *testing.T) {
	svc, clk := newService(t)
	note := &notices{}
	svc.Notifier = note
	ctx := context.Background()
	enrollTOTP(t, svc, clk, "zoe")
	admin := service.Caller{UID: 0, Admin: true}
	if _, err := svc.GenerateRecoveryCodes(ctx, admin, "zoe"); err != nil {
		t.Fatal(err)
	}
	u, _ := svc.User("zoe")
	if err := svc.DeleteFactor(ctx, admin, "zoe", u.Factors[0].ID); err != nil {
		t.Fatal(err)
	}
	got := note.of("zoe")
	if len(got) != 2 || !strings.Contains(got[0], "recovery codes") || !strings.Contains(got[1], "removed a second factor") {
		t.Fatalf("notices = %q", got)
	}
}

// A login succeeds once, even when verifications of it race with different
// valid factors: each one is either the success, refused as a concurrent
// verification of the same login, or refused because the login is over.
func TestLoginSucceedsOnceUnderConcurrentVerifications(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	secret := enrollTOTP(t, svc, clk, "pat")
	rc, err := svc.GenerateRecoveryCodes(ctx, service.Internal, "pat")
	if err != nil {
		t.Fatal(err)
	}
	for round := range len(rc.Codes) {
		l := login(t, svc, "pat", "192.0.2.9", "")
		if l.Decision != policy.Challenge {
			t.Fatalf("round %d: decision %q", round, l.Decision)
		}
		codes := []string{rc.Codes[round].Reveal(), currentCode(secret, clk)}
		var wg sync.WaitGroup
		var ok atomic.Int32
		for _, code := range codes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := svc.VerifyLogin(ctx, service.Internal, l.ID, code, "", false)
				switch {
				case err == nil && v.Result == service.ResultOK:
					ok.Add(1)
				case errors.Is(err, service.ErrConflict), errors.Is(err, service.ErrLoginExpired):
				default:
					t.Errorf("round %d: verify = %+v, %v", round, v, err)
				}
			}()
		}
		wg.Wait()
		if n := ok.Load(); n != 1 {
			t.Fatalf("round %d: %d verifications succeeded, want exactly 1", round, n)
		}
		if _, err := svc.VerifyLogin(ctx, service.Internal, l.ID, currentCode(secret, clk), "", false); !errors.Is(err, service.ErrLoginExpired) {
			t.Fatalf("round %d: verify after the success = %v, want ErrLoginExpired", round, err)
		}
		clk.Add(30 * time.Second) // a fresh TOTP step for the next round
	}
}
