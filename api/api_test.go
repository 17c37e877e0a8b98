package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/api"
	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// testLog routes logs to t.Log and remembers every line, so tests can check
// that no secret is ever logged.
type testLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *testLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

type stack struct {
	cfg    *config.Config
	clock  *testenv.Clock
	db     *store.DB
	svc    *service.Service
	srv    *api.Server
	socket string
	cl     *client.Client
	log    *testLog
}

// newStack runs the real service and API on a real Unix socket over an
// in-memory (but encrypted) Badger store.
func newStack(t testing.TB) *stack {
	t.Helper()
	cfg := config.Default(config.Env{UID: 0})
	clk := testenv.NewClock(time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
	tl := &testLog{}
	log := slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelDebug}))
	master := bytes.Repeat([]byte{7}, 32)
	db, err := store.Open(store.Options{InMemory: true, MasterKey: master, Now: clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(db, store.DeriveKey(master, "recovery"), service.SettingsFrom(cfg), log)
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = clk.Now
	authz, _ := api.NewAuthorizer(os.Getuid(), nil, nil)
	srv := api.New(api.Options{Service: svc, Store: db, Authorizer: authz, Log: log, Now: clk.Now,
		Limits: api.Limits{MaxRequestBytes: cfg.Server.MaxRequestBytes, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}})
	dir, err := os.MkdirTemp("", "mfad-api-") // short path: sun_path is limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	cl := client.New(socket)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", tl.all())
		}
		cl.Close()
		_ = srv.Shutdown(context.Background())
		_ = db.Close()
		os.RemoveAll(dir)
	})
	return &stack{cfg: cfg, clock: clk, db: db, svc: svc, srv: srv, socket: socket, cl: cl, log: tl}
}

func (s *stack) params() otp.Params {
	return otp.Params{Digits: s.cfg.TOTP.Digits, Period: s.cfg.TOTP.Period, Algorithm: otp.Algorithm(s.cfg.TOTP.Algorithm)}
}

// enroll creates an active TOTP factor for user and returns its secret. The
// confirmation uses the previous time step.
func (s *stack) enroll(t *testing.T, user string) otp.Secret {
	t.Helper()
	ctx := context.Background()
	e, err := s.cl.EnrollTOTP(ctx, user, "phone")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := otp.ParseBase32(e.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.cl.ConfirmTOTP(ctx, user, e.FactorID, s.code(secret, -1)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// code is the TOTP code at the current step plus offset.
func (s *stack) code(secret otp.Secret, offset int) string {
	p := s.params()
	return otp.Code(secret, uint64(int64(otp.Counter(s.clock.Now(), p))+int64(offset)), p)
}

func (s *stack) verify(t *testing.T, user, code string) *wire.VerifyResponse {
	t.Helper()
	v, err := s.cl.Verify(context.Background(), wire.VerifyRequest{User: user, Code: code, Service: "sshd", RHost: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTOTPLoginFlow(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	secret := s.enroll(t, "alice")

	l, err := s.cl.Login(ctx, wire.LoginRequest{User: "alice", Service: "sshd", RHost: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	// Confirming the first factor generated recovery codes, so both are offered.
	if l.Decision != "challenge" || l.Default != "totp" || !slices.Equal(l.Methods, []string{"totp", "recovery"}) {
		t.Fatalf("login = %+v, want a TOTP challenge", l)
	}
	code := s.code(secret, 0)
	v, err := s.cl.LoginVerify(ctx, l.LoginID, "  "+code[:3]+" "+code[3:]+" ", "")
	if err != nil {
		t.Fatal(err)
	}
	if v.Result != "ok" || v.Method != "totp" {
		t.Fatalf("verify = %+v, want ok totp", v)
	}
	// The login is finished: the same login id cannot be used again.
	if _, err := s.cl.LoginVerify(ctx, l.LoginID, code, ""); !client.IsCode(err, wire.CodeLoginExpired) {
		t.Fatalf("second verify on a finished login: %v, want login_expired", err)
	}
	// Replay of the same code in a new login is rejected.
	if v := s.verify(t, "alice", code); v.Result != "fail" {
		t.Fatalf("replay = %+v, want fail", v)
	}
	// The confirmation step cannot be used either (it is older).
	if v := s.verify(t, "alice", s.code(secret, -1)); v.Result != "fail" {
		t.Fatalf("confirmation code reused = %+v, want fail", v)
	}
	// The next step is fine.
	if v := s.verify(t, "alice", s.code(secret, 1)); v.Result != "ok" {
		t.Fatalf("next step = %+v, want ok", v)
	}
	// A login id expires with the login TTL.
	l2, err := s.cl.Login(ctx, wire.LoginRequest{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Add(s.cfg.Server.LoginTTL + time.Second)
	if _, err := s.cl.LoginVerify(ctx, l2.LoginID, s.code(secret, 0), ""); !client.IsCode(err, wire.CodeLoginExpired) {
		t.Fatalf("verify after login TTL: %v, want login_expired", err)
	}
}

func TestClockDriftIsReported(t *testing.T) {
	s := newStack(t)
	secret := s.enroll(t, "bob")
	v := s.verify(t, "bob", s.code(secret, 5))
	if v.Result != "fail" || v.Reason != "clock_drift" || !strings.Contains(v.Message, "out of sync") {
		t.Fatalf("code 5 steps ahead = %+v, want fail with clock_drift", v)
	}
	if v.AttemptsLeft == nil || *v.AttemptsLeft != s.cfg.Lockout.MaxFailures-1 {
		t.Fatalf("drift must count as a failure: %+v", v)
	}
	// Beyond the drift window it is a plain wrong code.
	if v := s.verify(t, "bob", s.code(secret, 40)); v.Reason != "invalid" {
		t.Fatalf("code 40 steps ahead = %+v, want reason invalid", v)
	}
}

func TestRecoveryCodes(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	s.enroll(t, "carol")
	rc, err := s.cl.GenerateRecoveryCodes(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if len(rc.Codes) != 8 {
		t.Fatalf("got %d codes, want 8", len(rc.Codes))
	}
	// Input is normalized: upper case, spaces instead of dashes.
	in := strings.ToUpper(strings.ReplaceAll(rc.Codes[0], "-", " "))
	v := s.verify(t, "carol", in)
	if v.Result != "ok" || v.Method != "recovery" || v.RecoveryRemaining == nil || *v.RecoveryRemaining != 7 {
		t.Fatalf("recovery verify = %+v, want ok with 7 left", v)
	}
	if v := s.verify(t, "carol", rc.Codes[0]); v.Result != "fail" {
		t.Fatalf("reused recovery code = %+v, want fail", v)
	}
	// Use codes until the low-water mark is flagged.
	var last *wire.VerifyResponse
	for _, c := range rc.Codes[1:6] {
		last = s.verify(t, "carol", c)
		if last.Result != "ok" {
			t.Fatalf("code = %+v", last)
		}
	}
	if *last.RecoveryRemaining != 2 || !last.RecoveryLow {
		t.Fatalf("after 6 codes: %+v, want 2 left and flagged low", last)
	}
	// A new set voids the old one.
	rc2, err := s.cl.GenerateRecoveryCodes(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if v := s.verify(t, "carol", rc.Codes[7]); v.Result != "fail" {
		t.Fatalf("old set still works: %+v", v)
	}
	if v := s.verify(t, "carol", rc2.Codes[7]); v.Result != "ok" {
		t.Fatalf("new set: %+v", v)
	}
	u, err := s.cl.User(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if u.Recovery == nil || u.Recovery.Remaining != 7 || u.Recovery.Total != 8 {
		t.Fatalf("user recovery = %+v", u.Recovery)
	}
	// Low codes were audited.
	a, err := s.cl.Audit(ctx, client.AuditQuery{User: "carol", Action: "verify"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range a.Events {
		if strings.Contains(e.Detail, "recovery codes left: 2") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit event records the low recovery-code count: %+v", a.Events)
	}
}

// concurrently sends n identical verifications at once and counts outcomes.
func concurrently(t *testing.T, s *stack, n int, user, code string) map[string]int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := s.cl.Verify(context.Background(), wire.VerifyRequest{User: user, Code: code})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				results["error: "+err.Error()]++
				return
			}
			results[v.Result]++
		}()
	}
	close(start)
	wg.Wait()
	return results
}

func TestOneTimeUnderConcurrency(t *testing.T) {
	s := newStack(t)
	// Enough failures are expected (49 per round) that the lockout must not
	// interfere with the property under test.
	st := s.svc.Settings()
	st.Lockout.MaxFailures = 1000
	st.Lockout.SourceMaxFailures = 1000
	s.svc.SetSettings(st)

	secret := s.enroll(t, "dave")
	rc, err := s.cl.GenerateRecoveryCodes(context.Background(), "dave")
	if err != nil {
		t.Fatal(err)
	}
	for name, code := range map[string]string{"totp": s.code(secret, 0), "recovery": rc.Codes[3]} {
		t.Run(name, func(t *testing.T) {
			got := concurrently(t, s, 50, "dave", code)
			if got["ok"] != 1 || got["fail"] != 49 {
				t.Fatalf("50 concurrent uses of one %s code: %v, want exactly 1 ok and 49 fail", name, got)
			}
		})
	}
}

func TestLockout(t *testing.T) {
	s := newStack(t)
	secret := s.enroll(t, "erin")
	max := s.cfg.Lockout.MaxFailures
	for i := 1; i < max; i++ {
		v := s.verify(t, "erin", "000000")
		if v.Result != "fail" || *v.AttemptsLeft != max-i {
			t.Fatalf("failure %d = %+v, want fail with %d left", i, v, max-i)
		}
	}
	v := s.verify(t, "erin", "000000")
	if v.Result != "locked" || v.RetryAfter == nil || *v.RetryAfter != int(s.cfg.Lockout.Duration/time.Second) {
		t.Fatalf("failure %d = %+v, want locked for the lockout duration", max, v)
	}
	// Even a correct code is refused while locked.
	if v := s.verify(t, "erin", s.code(secret, 0)); v.Result != "locked" {
		t.Fatalf("correct code while locked = %+v", v)
	}
	s.clock.Add(s.cfg.Lockout.Duration + time.Second)
	if v := s.verify(t, "erin", s.code(secret, 0)); v.Result != "ok" {
		t.Fatalf("correct code after the lockout = %+v", v)
	}
	// Success resets the counter.
	if v := s.verify(t, "erin", "000000"); *v.AttemptsLeft != max-1 {
		t.Fatalf("after success: %+v, want a fresh counter", v)
	}
	// Failures outside the window do not add up.
	s.clock.Add(s.cfg.Lockout.Window + time.Second)
	if v := s.verify(t, "erin", "000000"); *v.AttemptsLeft != max-1 {
		t.Fatalf("after the window: %+v, want a fresh counter", v)
	}
}

// The login path must not tell an unknown user from a wrong code.
func TestUnknownUserLooksLikeWrongCode(t *testing.T) {
	s := newStack(t)
	s.enroll(t, "frank")
	ctx := context.Background()
	raw := func(user, code string) string {
		v, err := s.cl.Verify(ctx, wire.VerifyRequest{User: user, Code: code})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	for i := range s.cfg.Lockout.MaxFailures + 1 {
		known, unknown := raw("frank", "123456"), raw("nobody-"+fmt.Sprint(0), "123456")
		if known != unknown {
			t.Fatalf("attempt %d: known user answers %s, unknown user %s", i, known, unknown)
		}
	}
	lk, err := s.cl.Login(ctx, wire.LoginRequest{User: "ghost"})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.cl.Login(ctx, wire.LoginRequest{User: "grace"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lk.Decision, lk.Methods, lk.Default) != fmt.Sprint(rc.Decision, rc.Methods, rc.Default) {
		t.Fatalf("unknown users differ: %+v vs %+v", lk, rc)
	}
	// An enrolled user with TOTP and recovery codes gets the same methods.
	s.cl.GenerateRecoveryCodes(ctx, "frank")
	fk, _ := s.cl.Login(ctx, wire.LoginRequest{User: "frank"})
	if fmt.Sprint(fk.Decision, fk.Methods, fk.Default) != fmt.Sprint(lk.Decision, lk.Methods, lk.Default) {
		t.Fatalf("unknown user %+v differs from an enrolled one %+v", lk, fk)
	}
}

func TestEnrollmentErrors(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	e, err := s.cl.EnrollTOTP(ctx, "heidi", "")
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := otp.ParseBase32(e.Secret)
	// A pending factor cannot log in.
	if v := s.verify(t, "heidi", s.code(secret, 0)); v.Result != "fail" {
		t.Fatalf("pending factor logged in: %+v", v)
	}
	if _, err := s.cl.ConfirmTOTP(ctx, "heidi", e.FactorID, "000000"); !client.IsCode(err, wire.CodeCodeRejected) {
		t.Fatalf("wrong confirmation code: %v", err)
	}
	_, err = s.cl.ConfirmTOTP(ctx, "heidi", e.FactorID, s.code(secret, 7))
	if !client.IsCode(err, wire.CodeCodeRejected) || !strings.Contains(err.Error(), "clock") {
		t.Fatalf("drifted confirmation code: %v, want a clock hint", err)
	}
	if _, err := s.cl.ConfirmTOTP(ctx, "heidi", e.FactorID, s.code(secret, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cl.ConfirmTOTP(ctx, "heidi", e.FactorID, s.code(secret, 1)); !client.IsCode(err, wire.CodeConflict) {
		t.Fatalf("confirming twice: %v, want conflict", err)
	}
	if _, err := s.cl.ConfirmTOTP(ctx, "heidi", "nope", "123456"); !client.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("unknown factor: %v", err)
	}
	if _, err := s.cl.User(ctx, "nobody"); !client.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := s.cl.DeleteFactor(ctx, "heidi", e.FactorID); err != nil {
		t.Fatal(err)
	}
	u, err := s.cl.User(ctx, "heidi")
	if err != nil || len(u.Factors) != 0 {
		t.Fatalf("after delete: %+v %v", u, err)
	}
	if err := s.cl.DeleteUser(ctx, "heidi"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cl.User(ctx, "heidi"); !client.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("deleted user: %v", err)
	}
}

// rawRequest sends a raw HTTP request over the socket.
func rawRequest(t *testing.T, socket, method, path, body string) (int, wire.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(method, "http://mfad"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e wire.Error
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s: status %d with body %q, not the error shape", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, e
}

func TestMalformedRequests(t *testing.T) {
	s := newStack(t)
	big := `{"user":"a","code":"` + strings.Repeat("1", 70000) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"syntax", "POST", "/v1/verify", `{"user":`, 400, wire.CodeInvalidJSON},
		{"empty", "POST", "/v1/verify", ``, 400, wire.CodeInvalidJSON},
		{"unknown field", "POST", "/v1/verify", `{"user":"a","code":"1","pin":"x"}`, 400, wire.CodeInvalidJSON},
		{"wrong type", "POST", "/v1/login", `{"user":5}`, 400, wire.CodeInvalidJSON},
		{"trailing data", "POST", "/v1/login", `{"user":"a"} {}`, 400, wire.CodeInvalidJSON},
		{"trailing brace", "POST", "/v1/login", `{"user":"a"}}`, 400, wire.CodeInvalidJSON},
		{"too large", "POST", "/v1/verify", big, 413, wire.CodeTooLarge},
		{"empty user", "POST", "/v1/login", `{"user":""}`, 400, wire.CodeBadRequest},
		{"control char in user", "POST", "/v1/login", `{"user":"a\u0007"}`, 400, wire.CodeBadRequest},
		{"bad method", "POST", "/v1/verify", `{"user":"a","code":"1","method":"carrier-pigeon"}`, 400, wire.CodeBadRequest},
		{"no route", "GET", "/v1/nope", ``, 404, wire.CodeNotFound},
		{"wrong http method", "PUT", "/v1/login", `{}`, 405, wire.CodeMethodNotAllowed},
		{"unknown login", "POST", "/v1/login/abc/verify", `{"code":"123456"}`, 404, wire.CodeLoginExpired},
		{"bad audit time", "GET", "/v1/audit?since=yesterday", ``, 400, wire.CodeBadRequest},
		{"garbage restore", "POST", "/v1/restore", `not a backup`, 400, wire.CodeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, e := rawRequest(t, s.socket, tc.method, tc.path, tc.body)
			if status != tc.status || (tc.code != "" && e.Error.Code != tc.code) {
				t.Fatalf("status %d code %q (%s), want %d %q", status, e.Error.Code, e.Error.Message, tc.status, tc.code)
			}
		})
	}
}

func TestRolesAreEnforced(t *testing.T) {
	s := newStack(t)
	s.enroll(t, "ivan")
	s.enroll(t, "judy")
	h := s.srv.Handler()
	self := &api.Identity{UID: 1000, GID: 1000, User: "judy"}
	loginOnly := &api.Identity{UID: 1001, GID: 1001, Login: true}
	tests := []struct {
		name         string
		id           *api.Identity
		method, path string
		body         string
		status       int
	}{
		{"self cannot run logins", self, "POST", "/v1/login", `{"user":"ivan"}`, 403},
		{"self cannot verify", self, "POST", "/v1/verify", `{"user":"ivan","code":"123456"}`, 403},
		{"self cannot read others", self, "GET", "/v1/users/ivan", ``, 403},
		{"self cannot enroll others", self, "POST", "/v1/users/ivan/totp", `{}`, 403},
		{"self cannot replace others' codes", self, "POST", "/v1/users/ivan/recovery-codes", ``, 403},
		{"self cannot delete others", self, "DELETE", "/v1/users/ivan", ``, 403},
		{"self cannot turn its 2FA off without a proof", self, "DELETE", "/v1/users/judy", ``, 403},
		{"self cannot grant bypasses", self, "POST", "/v1/users/judy/bypass", `{"for":"1h","reason":"x"}`, 403},
		{"self cannot open recovery requests", self, "POST", "/v1/users/judy/recovery-requests", `{"reason":"x"}`, 403},
		{"self cannot unlock", self, "POST", "/v1/users/judy/unlock", ``, 403},
		{"self cannot read others' audit", self, "GET", "/v1/audit?user=ivan", ``, 403},
		{"self cannot back up", self, "GET", "/v1/backup", ``, 403},
		{"self cannot restore", self, "POST", "/v1/restore", `x`, 403},
		{"self may enroll itself", self, "POST", "/v1/users/judy/totp", `{}`, 201},
		{"self may read its own audit", self, "GET", "/v1/audit", ``, 200},
		{"login may run logins", loginOnly, "POST", "/v1/login", `{"user":"ivan"}`, 200},
		{"login cannot manage users", loginOnly, "GET", "/v1/users/ivan", ``, 403},
		{"login cannot back up", loginOnly, "GET", "/v1/backup", ``, 403},
		{"unidentified caller", nil, "GET", "/v1/status", ``, 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://mfad"+tc.path, strings.NewReader(tc.body))
			req = req.WithContext(api.WithIdentity(req.Context(), tc.id))
			rec := &recorder{header: http.Header{}}
			h.ServeHTTP(rec, req)
			if rec.status != tc.status {
				t.Fatalf("status %d (%s), want %d", rec.status, rec.body.String(), tc.status)
			}
		})
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) { r.status = s }

func TestAuthorizerRoles(t *testing.T) {
	tests := []struct {
		name         string
		uid, gid     int
		groups       []int
		admin, login bool
		user         string
	}{
		{"root", 0, 0, nil, true, true, "root"},
		{"daemon's own uid", 500, 500, nil, true, true, "mfad"},
		{"admin group member", 1000, 1000, []int{4000}, true, true, "alice"},
		{"login group via primary gid", 1001, 3000, nil, false, true, "sshd-helper"},
		{"login group via supplementary", 1002, 1002, []int{3000}, false, true, "bob"},
		{"plain user", 1003, 1003, []int{27}, false, false, "carol"},
	}
	names := map[int]string{0: "root", 500: "mfad", 1000: "alice", 1001: "sshd-helper", 1002: "bob", 1003: "carol"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := api.NewTestAuthorizer(500, []int{3000}, []int{4000}, func(uid int) (string, []int, error) {
				n, ok := names[uid]
				if !ok {
					return "", nil, errors.New("unknown uid")
				}
				return n, tc.groups, nil
			})
			id := a.Identify(tc.uid, tc.gid, 1)
			if id.Admin != tc.admin || id.Login != tc.login || id.User != tc.user {
				t.Fatalf("identity %+v, want admin=%v login=%v user=%q", id, tc.admin, tc.login, tc.user)
			}
		})
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	e, err := s.cl.EnrollTOTP(ctx, "kate", "")
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := otp.ParseBase32(e.Secret)
	codes := []string{s.code(secret, -1), s.code(secret, 0)}
	if _, err := s.cl.ConfirmTOTP(ctx, "kate", e.FactorID, codes[0]); err != nil {
		t.Fatal(err)
	}
	s.verify(t, "kate", codes[1])
	s.verify(t, "kate", codes[1])
	rc, _ := s.cl.GenerateRecoveryCodes(ctx, "kate")
	s.verify(t, "kate", rc.Codes[0])
	s.verify(t, "kate", rc.Codes[0])
	logs := s.log.all()
	if !strings.Contains(logs, "action=verify") {
		t.Fatalf("expected audit lines in the log, got:\n%s", logs)
	}
	secrets := append([]string{e.Secret, fmt.Sprintf("%x", []byte(secret))}, codes...)
	for _, c := range rc.Codes {
		secrets = append(secrets, c, strings.ReplaceAll(c, "-", ""))
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Fatalf("log contains a secret or code %q", sec)
		}
	}
	// The audit log holds no secret either.
	a, _ := s.cl.Audit(ctx, client.AuditQuery{})
	b, _ := json.Marshal(a)
	for _, sec := range secrets {
		if strings.Contains(string(b), sec) {
			t.Fatalf("audit log contains a secret or code %q", sec)
		}
	}
}

func TestBackupRestoreOverSocket(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	secret := s.enroll(t, "leo")
	var buf bytes.Buffer
	if err := s.cl.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	if err := s.cl.DeleteUser(ctx, "leo"); err != nil {
		t.Fatal(err)
	}
	// A corrupted backup is refused and changes nothing.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 1
	if err := s.cl.Restore(ctx, bytes.NewReader(bad)); !client.IsCode(err, wire.CodeBadRequest) {
		t.Fatalf("tampered restore: %v", err)
	}
	if _, err := s.cl.User(ctx, "leo"); !client.IsCode(err, wire.CodeNotFound) {
		t.Fatalf("tampered restore changed data: %v", err)
	}
	if err := s.cl.Restore(ctx, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if v := s.verify(t, "leo", s.code(secret, 0)); v.Result != "ok" {
		t.Fatalf("after restore: %+v", v)
	}
}

func TestStatus(t *testing.T) {
	s := newStack(t)
	st, err := s.cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Caller.UID != os.Getuid() || st.Store == nil || st.Store.Schema != store.SchemaVersion {
		t.Fatalf("status = %+v", st)
	}
}

// Many verifications from many clients at once must all be answered.
func TestManyClients(t *testing.T) {
	s := newStack(t)
	const users = 20
	secrets := make([]otp.Secret, users)
	for i := range users {
		secrets[i] = s.enroll(t, fmt.Sprintf("u%d", i))
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := client.New(s.socket)
			defer cl.Close()
			v, err := cl.Verify(context.Background(), wire.VerifyRequest{User: fmt.Sprintf("u%d", i), Code: s.code(secrets[i], 0)})
			if err == nil && v.Result == "ok" {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != users {
		t.Fatalf("%d of %d verifications ok", ok.Load(), users)
	}
}

// A self caller needs a fresh second-factor proof for each action that
// weakens its account; the proof works once.
func TestWeakeningNeedsProofOverTheAPI(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	secret := s.enroll(t, "kim")
	h := s.srv.Handler()
	self := &api.Identity{UID: 1000, GID: 1000, User: "kim"}
	call := func(method, path, body, proof string) *recorder {
		t.Helper()
		req, _ := http.NewRequest(method, "http://mfad"+path, strings.NewReader(body))
		if proof != "" {
			req.Header.Set(wire.ProofHeader, proof)
		}
		req = req.WithContext(api.WithIdentity(req.Context(), self))
		rec := &recorder{header: http.Header{}}
		h.ServeHTTP(rec, req)
		return rec
	}
	u, _ := s.cl.User(ctx, "kim")
	factor := u.Factors[0].ID
	if rec := call("DELETE", "/v1/users/kim/factors/"+factor, "", ""); rec.status != 403 || !strings.Contains(rec.body.String(), wire.CodeReauthRequired) {
		t.Fatalf("without a proof: %d %s", rec.status, rec.body.String())
	}
	if rec := call("POST", "/v1/users/kim/recovery-codes", "", ""); rec.status != 403 {
		t.Fatalf("replacing codes without a proof: %d %s", rec.status, rec.body.String())
	}
	rec := call("POST", "/v1/users/kim/reauth", `{"code":"000000"}`, "")
	var v wire.VerifyResponse
	_ = json.Unmarshal(rec.body.Bytes(), &v)
	if rec.status != 200 || v.Result != "fail" || v.Proof != "" {
		t.Fatalf("reauth with a wrong code: %d %+v", rec.status, v)
	}
	rec = call("POST", "/v1/users/kim/reauth", `{"code":"`+s.code(secret, 0)+`"}`, "")
	v = wire.VerifyResponse{}
	_ = json.Unmarshal(rec.body.Bytes(), &v)
	if v.Result != "ok" || v.Proof == "" || v.ProofExpiresIn != 300 {
		t.Fatalf("reauth: %d %s", rec.status, rec.body.String())
	}
	if rec := call("POST", "/v1/users/kim/recovery-codes", "", v.Proof); rec.status != 201 {
		t.Fatalf("replacing codes with a proof: %d %s", rec.status, rec.body.String())
	}
	if rec := call("DELETE", "/v1/users/kim/factors/"+factor, "", v.Proof); rec.status != 403 {
		t.Fatalf("a proof used twice: %d %s", rec.status, rec.body.String())
	}
	// Admins need no proof; the audit records who did it.
	if err := s.cl.DeleteFactor(ctx, "kim", factor); err != nil {
		t.Fatal(err)
	}
	a, _ := s.cl.Audit(ctx, client.AuditQuery{User: "kim", Action: "factor.delete"})
	if len(a.Events) != 1 || a.Events[0].CallerUID != 0 {
		t.Fatalf("audit = %+v", a.Events)
	}
}

// A local user flooding the socket is slowed down to its own share; login
// flows go on at full speed meanwhile.
func TestSelfCallerFloodIsSlowed(t *testing.T) {
	s := newStack(t)
	h := s.srv.Handler()
	flooder := &api.Identity{UID: 1000, GID: 1000, User: "mallory"}
	const n = 60 // 40 pass at once (the burst), 20 more at 20 per second
	start := time.Now()
	var wg sync.WaitGroup
	var limited atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://mfad/v1/audit", nil)
			req = req.WithContext(api.WithIdentity(req.Context(), flooder))
			rec := &recorder{header: http.Header{}}
			h.ServeHTTP(rec, req)
			if rec.status == http.StatusTooManyRequests {
				limited.Add(1)
			}
		}()
	}
	// Meanwhile a login flow is answered at once.
	loginStart := time.Now()
	if _, err := s.cl.Login(context.Background(), wire.LoginRequest{User: "someone"}); err != nil {
		t.Fatal(err)
	}
	loginTook := time.Since(loginStart)
	wg.Wait()
	flood := time.Since(start)
	if flood < 700*time.Millisecond || limited.Load() != 0 {
		t.Fatalf("%d requests took %v (%d refused); want them slowed to about 1s, none refused", n, flood, limited.Load())
	}
	if loginTook > flood/2 {
		t.Fatalf("a login during the flood took %v (flood %v)", loginTook, flood)
	}
}
