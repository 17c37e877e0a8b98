package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/policy"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

func newService(t *testing.T) (*service.Service, *testenv.Clock) {
	t.Helper()
	clk := testenv.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	master := bytes.Repeat([]byte{3}, 32)
	db, err := store.Open(store.Options{InMemory: true, MasterKey: master, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := service.New(db, store.DeriveKey(master, "recovery"), service.SettingsFrom(config.Default(config.Env{})), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = clk.Now
	return svc, clk
}

var params = otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}

func TestValidateUserName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"first.last@example.org", true},
		{"DOMAIN\\user", true},
		{"ünïcode", true},
		{"with/slash", true}, // store keys escape it
		{"", false},
		{" alice", false},
		{"alice\n", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
		{strings.Repeat("a", 257), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.name), func(t *testing.T) {
			err := service.ValidateUserName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateUserName = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, service.ErrInvalidInput) {
				t.Fatalf("error %v is not ErrInvalidInput", err)
			}
		})
	}
}

func TestPendingFactorExpires(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	e, err := svc.EnrollTOTP(ctx, service.Internal, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.User("alice")
	if err != nil || len(u.Factors) != 1 || u.Factors[0].Status != service.StatusPending {
		t.Fatalf("user = %+v, %v", u, err)
	}
	clk.Add(service.PendingTTL + time.Second)
	code := otp.Code(e.Secret, otp.Counter(clk.Now(), params), params)
	if _, err := svc.ConfirmTOTP(ctx, service.Internal, "alice", e.FactorID, code); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("confirming an expired pending factor: %v, want ErrNotFound", err)
	}
	if u, _ := svc.User("alice"); len(u.Factors) != 0 {
		t.Fatalf("expired pending factor still listed: %+v", u.Factors)
	}
}

func TestFactorLimit(t *testing.T) {
	svc, _ := newService(t)
	ctx := context.Background()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = svc.EnrollTOTP(ctx, service.Internal, "bob", "")
	}
	if !errors.Is(err, service.ErrInvalidInput) || !strings.Contains(err.Error(), "remove one first") {
		t.Fatalf("enrolling without bound: %v", err)
	}
}

func TestDeleteUserClearsEverything(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	e, _ := svc.EnrollTOTP(ctx, service.Internal, "carol", "")
	if _, err := svc.ConfirmTOTP(ctx, service.Internal, "carol", e.FactorID, otp.Code(e.Secret, otp.Counter(clk.Now(), params), params)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GenerateRecoveryCodes(ctx, service.Internal, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "carol", Code: "000000"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteUser(ctx, service.Internal, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.User("carol"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("deleted user: %v", err)
	}
	// The failure counter went with the user: a new enrollment starts clean.
	v, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "carol", Code: "000000"})
	if err != nil || v.AttemptsLeft != 4 {
		t.Fatalf("after delete: %+v %v", v, err)
	}
	if err := svc.DeleteUser(ctx, service.Internal, "carol"); !errors.Is(err, service.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestMethodRestriction(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	e, _ := svc.EnrollTOTP(ctx, service.Internal, "dave", "")
	now := otp.Counter(clk.Now(), params)
	if _, err := svc.ConfirmTOTP(ctx, service.Internal, "dave", e.FactorID, otp.Code(e.Secret, now-1, params)); err != nil {
		t.Fatal(err)
	}
	rc, _ := svc.GenerateRecoveryCodes(ctx, service.Internal, "dave")
	// A TOTP code offered as a recovery code is not tried as TOTP.
	v, _ := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "dave", Code: otp.Code(e.Secret, now, params), Method: policy.MethodRecovery})
	if v.Result != service.ResultFail {
		t.Fatalf("TOTP code as recovery: %+v", v)
	}
	// A recovery code restricted to TOTP fails, and stays unused.
	v, _ = svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "dave", Code: rc.Codes[0].Reveal(), Method: policy.MethodTOTP})
	if v.Result != service.ResultFail {
		t.Fatalf("recovery code as TOTP: %+v", v)
	}
	v, _ = svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "dave", Code: rc.Codes[0].Reveal()})
	if v.Result != service.ResultOK || v.Method != policy.MethodRecovery {
		t.Fatalf("recovery code by shape: %+v", v)
	}
	if _, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "dave", Code: "1", Method: "email"}); !errors.Is(err, service.ErrInvalidInput) {
		t.Fatalf("unavailable method: %v", err)
	}
}

func TestLoginDecisionHidesUnknownUsers(t *testing.T) {
	svc, clk := newService(t)
	ctx := context.Background()
	unknown, err := svc.StartLogin(ctx, service.Internal, service.LoginRequest{User: "nobody", Service: "sshd"})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := svc.EnrollTOTP(ctx, service.Internal, "erin", "")
	_, _ = svc.ConfirmTOTP(ctx, service.Internal, "erin", e.FactorID, otp.Code(e.Secret, otp.Counter(clk.Now(), params), params))
	_, _ = svc.GenerateRecoveryCodes(ctx, service.Internal, "erin")
	known, err := svc.StartLogin(ctx, service.Internal, service.LoginRequest{User: "erin", Service: "sshd"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(unknown.Decision, unknown.Methods, unknown.Default) != fmt.Sprint(known.Decision, known.Methods, known.Default) {
		t.Fatalf("unknown %+v differs from enrolled %+v", unknown, known)
	}
	if unknown.ID == known.ID || len(unknown.ID) != 32 {
		t.Fatalf("login ids: %q %q", unknown.ID, known.ID)
	}
	if _, err := svc.VerifyLogin(ctx, service.Internal, "does-not-exist", "123456", "", false); !errors.Is(err, service.ErrLoginExpired) {
		t.Fatalf("unknown login id: %v", err)
	}
}
