package service_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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

// The store in testdata/store-v1-c57b7fa.tgz was written by the previous
// release (commit c57b7fa, schema version 1) through its CLI: user olivia
// with a confirmed TOTP factor, a set of recovery codes and one failed
// verification, on 2026-12-01 at 14:24 UTC. This release must open it (running
// any migrations) and keep every factor and the audit log working. (The
// failure record has a TTL on the wall clock, so it is long gone.)
func TestStoreFromPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	extract(t, filepath.Join("testdata", "store-v1-c57b7fa.tgz"), dir)
	keyHex, err := os.ReadFile(filepath.Join(dir, "fixture.key"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := store.LoadKey(filepath.Join(dir, "fixture.key"))
	if err != nil {
		t.Fatalf("key %q: %v", keyHex, err)
	}
	var enroll struct{ Secret string }
	var rc struct{ Codes []string }
	readJSON(t, filepath.Join(dir, "enroll.json"), &enroll)
	readJSON(t, filepath.Join(dir, "rc.json"), &rc)

	clk := testenv.NewClock(time.Date(2026, 12, 1, 14, 26, 0, 0, time.UTC))
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "state", "db"), MasterKey: master, Now: clk.Now})
	if err != nil {
		t.Fatalf("opening the previous release's store: %v", err)
	}
	defer db.Close()
	// The daemon derives the recovery-code key with this label.
	svc, err := service.New(db, store.DeriveKey(master, "mfad recovery-code hmac v1"), service.SettingsFrom(config.Default(config.Env{})), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = clk.Now

	u, err := svc.User("olivia")
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Factors) != 1 || u.Factors[0].Type != policy.MethodTOTP || u.Factors[0].Status != service.StatusActive ||
		u.Recovery == nil || u.Recovery.Remaining != 8 {
		t.Fatalf("user from the previous release = %+v", u)
	}
	ctx := context.Background()
	secret, err := otp.ParseBase32(enroll.Secret)
	if err != nil {
		t.Fatal(err)
	}
	p := otp.Params{Digits: 6, Period: 30 * time.Second, Algorithm: otp.SHA1}
	l, err := svc.StartLogin(ctx, service.Internal, service.LoginRequest{User: "olivia", Service: "sshd", RHost: "192.0.2.1"})
	if err != nil || l.Decision != policy.Challenge {
		t.Fatalf("login = %+v, %v", l, err)
	}
	v, err := svc.VerifyLogin(ctx, service.Internal, l.ID, otp.Code(secret, otp.Counter(clk.Now(), p), p), "", false)
	if err != nil || v.Result != service.ResultOK {
		t.Fatalf("TOTP from the previous release = %+v, %v", v, err)
	}
	v, err = svc.Verify(ctx, service.Internal, service.VerifyRequest{User: "olivia", Code: strings.ToUpper(rc.Codes[3])})
	if err != nil || v.Result != service.ResultOK || v.RecoveryRemaining != 7 {
		t.Fatalf("recovery code from the previous release = %+v, %v", v, err)
	}
	evs, _ := svc.Audit(store.AuditQuery{User: "olivia"})
	if len(evs) < 5 {
		t.Fatalf("audit from the previous release lost: %d events", len(evs))
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func extract(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(dst, filepath.Clean(dir)+string(os.PathSeparator)) {
			t.Fatalf("bad path in archive: %s", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}
