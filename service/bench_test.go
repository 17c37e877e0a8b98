package service_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/otp"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// BenchmarkVerifyDurable measures TOTP verifications through the service on
// an on-disk store with group commit: every verification is fsynced before
// it returns. Run with -cpu to set the number of concurrent callers, e.g.
//
//	go test -run '^$' -bench VerifyDurable -cpu 32 ./service/
func BenchmarkVerifyDurable(b *testing.B) {
	const users = 2000
	svc, secrets := durableBenchService(b, users, func(st *service.Settings) { st.Lockout.MaxFailures = 100 })
	ctx := context.Background()
	p := benchParams
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)-1) % (2 * users)
			u, off := i%users, i/users
			code := otp.Code(secrets[u], otp.Counter(time.Now(), p)+uint64(off), p)
			if _, err := svc.Verify(ctx, service.Internal, service.VerifyRequest{User: fmt.Sprint("u", u), Code: code}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkLoginDurable measures what one PAM authentication asks of the
// service, one at a time: StartLogin for a remote login, then VerifyLogin
// with the user's TOTP code, on an on-disk store where the verification
// waits for its fsync. Users have their automatically generated recovery
// codes, as in production.
//
//	go test -run '^$' -bench LoginDurable -benchtime 2000x ./service/
func BenchmarkLoginDurable(b *testing.B) {
	const users = 4000
	svc, secrets := durableBenchService(b, users, nil)
	ctx := context.Background()
	p := benchParams
	if b.N > 2*users {
		b.Fatalf("at most %d logins (each user logs in with this step's and the next step's code)", 2*users)
	}
	b.ResetTimer()
	for i := range b.N {
		u, off := i%users, i/users
		l, err := svc.StartLogin(ctx, service.Internal, service.LoginRequest{User: fmt.Sprint("u", u), Service: "sshd", RHost: "192.0.2.7"})
		if err != nil {
			b.Fatal(err)
		}
		code := otp.Code(secrets[u], otp.Counter(time.Now(), p)+uint64(off), p)
		v, err := svc.VerifyLogin(ctx, service.Internal, l.ID, code, "", false)
		if err != nil || v.Result != service.ResultOK {
			b.Fatalf("login %d: %+v, %v", i, v, err)
		}
	}
}

// benchParams are the TOTP parameters of the benchmark users.
var benchParams = otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}

// durableBenchService returns a service on an on-disk store with group
// commit, with users users u0, u1, ... each holding a confirmed TOTP factor
// (confirmed with the previous step's code), and their secrets.
func durableBenchService(b *testing.B, users int, tune func(*service.Settings)) (*service.Service, []otp.Secret) {
	b.Helper()
	master := bytes.Repeat([]byte{1}, 32)
	db, err := store.Open(store.Options{Dir: b.TempDir(), MasterKey: master})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	st := service.SettingsFrom(config.Default(config.Env{UID: 0}))
	if tune != nil {
		tune(&st)
	}
	svc, err := service.New(db, store.DeriveKey(master, "r"), st, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	p := benchParams
	secrets := make([]otp.Secret, users)
	for i := range users {
		e, err := svc.EnrollTOTP(ctx, service.Internal, fmt.Sprint("u", i), "")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.ConfirmTOTP(ctx, service.Internal, fmt.Sprint("u", i), e.FactorID, otp.Code(e.Secret, otp.Counter(time.Now(), p)-1, p)); err != nil {
			b.Fatal(err)
		}
		secrets[i] = e.Secret
	}
	return svc, secrets
}
