package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flynn/u2f/u2ftoken"
	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/internal/testenv"
)

const testAppID = "pam://host"

// seededRand returns a deterministic random source for a key.
func seededRand(seed uint64) *mrand.ChaCha8 {
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	return mrand.NewChaCha8(s)
}

func newTestKey(t testing.TB, seed uint64, p U2FPresence) *U2FKey {
	t.Helper()
	k, err := NewU2FKey(U2FKeyOptions{Name: fmt.Sprintf("test key %d", seed), Presence: p, Rand: seededRand(seed)})
	if err != nil {
		t.Fatalf("NewU2FKey: %v", err)
	}
	return k
}

func randomParam(t testing.TB) [32]byte {
	t.Helper()
	var p [32]byte
	if _, err := rand.Read(p[:]); err != nil {
		t.Fatal(err)
	}
	return p
}

// register registers the key for appID through flynn's token and verifies
// the response with the relying-party code.
func register(t testing.TB, k *U2FKey, appID string) *u2f.Registration {
	t.Helper()
	app, chal := u2f.AppParam(appID), randomParam(t)
	raw, err := u2ftoken.NewToken(k).Register(u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg, err := u2f.VerifyRegistration(raw, app, chal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	return reg
}

func authRequest(appID string, chal [32]byte, handle []byte) u2ftoken.AuthenticateRequest {
	app := u2f.AppParam(appID)
	return u2ftoken.AuthenticateRequest{Challenge: chal[:], Application: app[:], KeyHandle: handle}
}

// apdu encodes a request the way u2ftoken.Token.Message does.
func apdu(cla, ins, p1 byte, data []byte) []byte {
	b := []byte{cla, ins, p1, 0, byte(len(data) >> 16), byte(len(data) >> 8), byte(len(data))}
	return append(b, data...)
}

// authData is challengeParam | appParam | L | keyHandle.
func authData(appID string, chal [32]byte, handle []byte) []byte {
	app := u2f.AppParam(appID)
	d := append(append(chal[:0:0], chal[:]...), app[:]...)
	return append(append(d, byte(len(handle))), handle...)
}

func statusWord(t testing.TB, resp []byte) uint16 {
	t.Helper()
	if len(resp) < 2 {
		t.Fatalf("response is %d bytes, want at least a status word", len(resp))
	}
	return binary.BigEndian.Uint16(resp[len(resp)-2:])
}

func TestU2FKeyRegisterAuthenticate(t *testing.T) {
	k := newTestKey(t, 1, U2FPresenceAuto)
	tok := u2ftoken.NewToken(k)
	if v, err := tok.Version(); err != nil || v != "U2F_V2" {
		t.Fatalf("Version = %q, %v; want U2F_V2", v, err)
	}
	reg := register(t, k, testAppID)
	if len(reg.KeyHandle) != keyHandleLen {
		t.Errorf("key handle is %d bytes, want %d", len(reg.KeyHandle), keyHandleLen)
	}
	if !bytes.Equal(reg.Certificate, k.AttestationCertificate()) {
		t.Errorf("registration carries another certificate than the device's")
	}
	cert, err := x509.ParseCertificate(reg.Certificate)
	if err != nil {
		t.Fatalf("attestation certificate: %v", err)
	}
	if cert.Subject.CommonName != k.Name() {
		t.Errorf("attestation certificate subject %q, want %q", cert.Subject.CommonName, k.Name())
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("attestation certificate is not self-signed: %v", err)
	}

	app := u2f.AppParam(testAppID)
	var last uint32
	for i := range 3 {
		chal := randomParam(t)
		resp, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle))
		if err != nil {
			t.Fatalf("Authenticate %d: %v", i, err)
		}
		a, err := u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, app, chal, last, false)
		if err != nil {
			t.Fatalf("VerifyAuthentication %d: %v", i, err)
		}
		if !a.UserPresent || a.Counter != resp.Counter || a.Counter <= last {
			t.Fatalf("authentication %d = %+v after counter %d", i, a, last)
		}
		last = a.Counter
	}
	if k.Counter() != last {
		t.Errorf("Counter() = %d, want %d", k.Counter(), last)
	}

	// A second registration gets its own key; both keep working and share
	// the device's counter.
	reg2 := register(t, k, testAppID)
	if bytes.Equal(reg2.PublicKey, reg.PublicKey) || bytes.Equal(reg2.KeyHandle, reg.KeyHandle) {
		t.Fatalf("second registration reused the key pair or handle")
	}
	chal := randomParam(t)
	resp, err := tok.Authenticate(authRequest(testAppID, chal, reg2.KeyHandle))
	if err != nil {
		t.Fatalf("Authenticate with second handle: %v", err)
	}
	if _, err := u2f.VerifyAuthentication(resp.RawResponse, reg2.PublicKey, app, chal, last, false); err != nil {
		t.Fatalf("VerifyAuthentication with second handle: %v", err)
	}
	if _, err := u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, app, chal, 0, true); !errors.Is(err, u2f.ErrBadSignature) {
		t.Errorf("signature by second key verified with the first key: %v", err)
	}

	if err := tok.CheckAuthenticate(authRequest(testAppID, randomParam(t), reg.KeyHandle)); err != nil {
		t.Errorf("CheckAuthenticate(own handle) = %v, want nil (status 0x6985)", err)
	}
	foreign := bytes.Repeat([]byte{0x42}, keyHandleLen)
	if err := tok.CheckAuthenticate(authRequest(testAppID, randomParam(t), foreign)); !errors.Is(err, u2ftoken.ErrUnknownKeyHandle) {
		t.Errorf("CheckAuthenticate(foreign handle) = %v, want ErrUnknownKeyHandle", err)
	}
	if got := k.Counter(); got != last+1 {
		t.Errorf("check-only requests changed the counter to %d", got)
	}
}

func TestU2FKeyDontEnforcePresence(t *testing.T) {
	k := newTestKey(t, 2, U2FPresenceNever)
	k.Touch()
	reg := register(t, k, testAppID)
	chal := randomParam(t)
	resp, err := k.Message(apdu(0, insAuthenticate, authDontEnforce, authData(testAppID, chal, reg.KeyHandle)))
	if err != nil {
		t.Fatal(err)
	}
	if sw := statusWord(t, resp); sw != swNoError {
		t.Fatalf("status 0x%04x, want 0x9000", sw)
	}
	raw := resp[:len(resp)-2]
	a, err := u2f.VerifyAuthentication(raw, reg.PublicKey, u2f.AppParam(testAppID), chal, 0, false)
	if !errors.Is(err, u2f.ErrNoUserPresence) || a != nil {
		t.Errorf("VerifyAuthentication = %+v, %v; want ErrNoUserPresence for a genuine signature", a, err)
	}
	if raw[0] != 0x00 || k.Counter() != 1 {
		t.Errorf("flags 0x%02x, counter %d; want 0x00 and 1", raw[0], k.Counter())
	}
}

func TestU2FKeyHandleBinding(t *testing.T) {
	k := newTestKey(t, 3, U2FPresenceAuto)
	other := newTestKey(t, 4, U2FPresenceAuto)
	reg := register(t, k, testAppID)

	tests := []struct {
		name   string
		key    *U2FKey
		appID  string
		mutate func([]byte) []byte
	}{
		{"other app", k, "pam://other", nil},
		{"other device", other, testAppID, nil},
		{"flipped bit", k, testAppID, func(h []byte) []byte { h[20] ^= 1; return h }},
		{"truncated", k, testAppID, func(h []byte) []byte { return h[:len(h)-1] }},
		{"extended", k, testAppID, func(h []byte) []byte { return append(h, 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := bytes.Clone(reg.KeyHandle)
			if tc.mutate != nil {
				h = tc.mutate(h)
			}
			before := tc.key.Counter()
			tok := u2ftoken.NewToken(tc.key)
			if err := tok.CheckAuthenticate(authRequest(tc.appID, randomParam(t), h)); !errors.Is(err, u2ftoken.ErrUnknownKeyHandle) {
				t.Errorf("CheckAuthenticate = %v, want ErrUnknownKeyHandle", err)
			}
			resp, err := tc.key.Message(apdu(0, insAuthenticate, authEnforce, authData(tc.appID, randomParam(t), h)))
			if err != nil {
				t.Fatal(err)
			}
			if sw := statusWord(t, resp); sw != swWrongData || len(resp) != 2 {
				t.Errorf("authenticate answered %x, want only status 0x6a80", resp)
			}
			if tc.key.Counter() != before {
				t.Errorf("counter moved on a rejected handle")
			}
		})
	}
}

func TestU2FKeyPresence(t *testing.T) {
	t.Run("never", func(t *testing.T) {
		k := newTestKey(t, 5, U2FPresenceNever)
		tok := u2ftoken.NewToken(k)
		app, chal := u2f.AppParam(testAppID), randomParam(t)
		for range 3 {
			if _, err := tok.Register(u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]}); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
				t.Fatalf("Register = %v, want ErrPresenceRequired", err)
			}
		}
		k.Touch()
		reg := register(t, k, testAppID)
		for range 2 {
			if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
				t.Fatalf("Authenticate = %v, want ErrPresenceRequired", err)
			}
		}
		// Check-only neither needs nor consumes a touch.
		k.Touch()
		if err := tok.CheckAuthenticate(authRequest(testAppID, chal, reg.KeyHandle)); err != nil {
			t.Fatalf("CheckAuthenticate = %v", err)
		}
		resp, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle))
		if err != nil {
			t.Fatalf("Authenticate after Touch: %v", err)
		}
		if _, err := u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, app, chal, 0, false); err != nil {
			t.Fatalf("VerifyAuthentication: %v", err)
		}
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
			t.Fatalf("a touch was used twice: %v", err)
		}
		if k.Counter() != 1 {
			t.Errorf("counter = %d, want 1: refused requests must not sign", k.Counter())
		}
	})
	t.Run("after 2", func(t *testing.T) {
		k := newTestKey(t, 6, U2FPresenceAfter(2))
		tok := u2ftoken.NewToken(k)
		app, chal := u2f.AppParam(testAppID), randomParam(t)
		req := u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]}
		for i := range 2 {
			if _, err := tok.Register(req); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
				t.Fatalf("Register %d = %v, want ErrPresenceRequired", i, err)
			}
		}
		reg := register(t, k, testAppID)
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); err != nil {
			t.Fatalf("Authenticate after presence was granted: %v", err)
		}
	})
	t.Run("set presence", func(t *testing.T) {
		k := newTestKey(t, 7, U2FPresenceAuto)
		reg := register(t, k, testAppID)
		k.SetPresence(U2FPresenceAfter(1))
		tok := u2ftoken.NewToken(k)
		chal := randomParam(t)
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
			t.Fatalf("first Authenticate = %v, want ErrPresenceRequired", err)
		}
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); err != nil {
			t.Fatalf("second Authenticate: %v", err)
		}
	})
	if U2FPresenceAfter(0) != U2FPresenceAuto || U2FPresenceAfter(-3) != U2FPresenceAuto {
		t.Errorf("U2FPresenceAfter(n <= 0) is not U2FPresenceAuto")
	}
}

func TestU2FKeyFaults(t *testing.T) {
	app, chal := u2f.AppParam(testAppID), randomParam(t)
	req := u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]}

	t.Run("busy", func(t *testing.T) {
		k := newTestKey(t, 8, U2FPresenceAuto)
		k.SetFault(U2FFaultBusy)
		for range 2 {
			if _, err := u2ftoken.NewToken(k).Register(req); !errors.Is(err, ErrU2FBusy) {
				t.Fatalf("Register = %v, want ErrU2FBusy", err)
			}
		}
		k.SetFault(U2FFaultNone)
		register(t, k, testAppID)
	})
	t.Run("garbage", func(t *testing.T) {
		k := newTestKey(t, 9, U2FPresenceAuto)
		reg := register(t, k, testAppID)
		k.SetFault(U2FFaultGarbage)
		tok := u2ftoken.NewToken(k)
		lengths := map[int]bool{}
		for i := range 50 {
			resp, err := k.Message(apdu(0, insVersion, 0, nil))
			if err != nil {
				t.Fatalf("Message: %v", err)
			}
			lengths[len(resp)] = true
			if _, err := tok.Register(req); err == nil {
				t.Fatalf("Register %d accepted garbage", i)
			}
			if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); err == nil {
				t.Fatalf("Authenticate %d accepted garbage", i)
			}
			if err := tok.CheckAuthenticate(authRequest(testAppID, chal, reg.KeyHandle)); err == nil {
				t.Fatalf("CheckAuthenticate %d accepted garbage", i)
			}
		}
		if len(lengths) < 10 {
			t.Errorf("garbage took only %d distinct lengths", len(lengths))
		}
		if k.Counter() != 0 {
			t.Errorf("garbage responses signed something")
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		k := newTestKey(t, 10, U2FPresenceAuto)
		reg := register(t, k, testAppID)
		k.SetFault(U2FFaultDisconnect)
		tok := u2ftoken.NewToken(k)
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); !errors.Is(err, ErrU2FDisconnected) {
			t.Fatalf("Authenticate = %v, want ErrU2FDisconnected", err)
		}
		k.SetFault(U2FFaultNone)
		for range 2 {
			if _, err := tok.Version(); !errors.Is(err, ErrU2FDisconnected) {
				t.Fatalf("Version after SetFault(U2FFaultNone) = %v, want ErrU2FDisconnected", err)
			}
		}
		if calls := k.Calls(); calls != 4 {
			t.Errorf("Calls() = %d, want 4", calls)
		}
	})
}

func TestU2FKeyMalformedAPDUs(t *testing.T) {
	k := newTestKey(t, 11, U2FPresenceAuto)
	reg := register(t, k, testAppID)
	good := authData(testAppID, randomParam(t), reg.KeyHandle)
	regData := make([]byte, 64)

	tests := []struct {
		name string
		apdu []byte
		want uint16
	}{
		{"empty", nil, swWrongLength},
		{"three bytes", []byte{0, insVersion, 0}, swWrongLength},
		{"wrong CLA", apdu(0x80, insVersion, 0, nil), swClaNotSupported},
		{"wrong CLA short", []byte{0x01, insVersion, 0, 0}, swClaNotSupported},
		{"unknown INS", apdu(0, 0x40, 0, nil), swInsNotSupported},
		{"vendor INS", apdu(0, 0xc0, 0, regData), swInsNotSupported},
		{"version header only", []byte{0, insVersion, 0, 0}, swNoError},
		{"version with Le", append(apdu(0, insVersion, 0, nil), 0, 0), swNoError},
		{"version with data", apdu(0, insVersion, 0, []byte{1}), swWrongLength},
		{"truncated Lc", []byte{0, insVersion, 0, 0, 0, 0}, swWrongLength},
		{"short-form Lc", []byte{0, insVersion, 0, 0, 1, 0}, swWrongLength},
		{"Lc larger than data", apdu(0, insRegister, 3, regData)[:7+63], swWrongLength},
		{"Lc smaller than data", append(apdu(0, insRegister, 3, regData), 1), swWrongLength},
		{"register 63 bytes", apdu(0, insRegister, 3, regData[:63]), swWrongLength},
		{"register 65 bytes", apdu(0, insRegister, 3, append(bytes.Clone(regData), 0)), swWrongLength},
		{"register with Le", append(apdu(0, insRegister, 3, regData), 0, 0), swNoError},
		{"authenticate without handle length", apdu(0, insAuthenticate, authEnforce, good[:64]), swWrongLength},
		{"authenticate L too large", apdu(0, insAuthenticate, authEnforce, good[:len(good)-1]), swWrongLength},
		{"authenticate L too small", apdu(0, insAuthenticate, authEnforce, append(bytes.Clone(good), 0)), swWrongLength},
		{"authenticate bad P1", apdu(0, insAuthenticate, 0x01, good), swIncorrectP1P2},
		{"authenticate empty handle", apdu(0, insAuthenticate, authEnforce, authData(testAppID, randomParam(t), nil)), swWrongData},
		{"authenticate", apdu(0, insAuthenticate, authEnforce, good), swNoError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.Clone(tc.apdu)
			resp, err := k.Message(in)
			if err != nil {
				t.Fatalf("Message: %v", err)
			}
			if sw := statusWord(t, resp); sw != tc.want {
				t.Errorf("status 0x%04x, want 0x%04x", sw, tc.want)
			}
			if tc.want != swNoError && len(resp) != 2 {
				t.Errorf("error response carries %d data bytes", len(resp)-2)
			}
			if !bytes.Equal(in, tc.apdu) {
				t.Errorf("Message modified its input")
			}
		})
	}
}

func TestU2FKeyDeterministic(t *testing.T) {
	chal, app := randomParam(t), u2f.AppParam(testAppID)
	var raws [2][]byte
	for i := range raws {
		k := newTestKey(t, 12, U2FPresenceAuto)
		raw, err := u2ftoken.NewToken(k).Register(u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]})
		if err != nil {
			t.Fatal(err)
		}
		raws[i] = raw
	}
	if !bytes.Equal(raws[0], raws[1]) {
		t.Errorf("keys built from the same seed registered differently")
	}
	if bytes.Equal(newTestKey(t, 13, U2FPresenceAuto).AttestationCertificate(), newTestKey(t, 12, U2FPresenceAuto).AttestationCertificate()) {
		t.Errorf("keys built from different seeds share an attestation certificate")
	}
}

func TestU2FKeyConcurrent(t *testing.T) {
	k := newTestKey(t, 14, U2FPresenceAuto)
	reg := register(t, k, testAppID)
	const workers, each = 8, 5
	counters := make(chan uint32, workers*each)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			tok := u2ftoken.NewToken(k)
			for range each {
				chal := randomParam(t)
				resp, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle))
				if err == nil {
					_, err = u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, u2f.AppParam(testAppID), chal, 0, false)
				}
				if err != nil {
					errs <- err
					return
				}
				counters <- resp.Counter
			}
		})
	}
	wg.Wait()
	close(counters)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for c := range counters {
		if seen[c] || c < 1 || c > workers*each {
			t.Fatalf("counter %d repeated or out of range", c)
		}
		seen[c] = true
	}
	if k.Counter() != workers*each || k.Calls() != 1+workers*each {
		t.Errorf("Counter() = %d, Calls() = %d", k.Counter(), k.Calls())
	}
}

func FuzzU2FKeyMessage(f *testing.F) {
	k := newTestKey(f, 15, U2FPresenceAuto)
	reg := register(f, k, testAppID)
	var chal [32]byte
	f.Add(apdu(0, insVersion, 0, nil), uint8(U2FFaultNone))
	f.Add(apdu(0, insRegister, 3, make([]byte, 64)), uint8(U2FFaultNone))
	f.Add(apdu(0, insAuthenticate, authEnforce, authData(testAppID, chal, reg.KeyHandle)), uint8(U2FFaultNone))
	f.Add(apdu(0, insAuthenticate, authCheckOnly, authData(testAppID, chal, reg.KeyHandle)), uint8(U2FFaultNone))
	f.Add(apdu(0, insAuthenticate, authDontEnforce, authData("x", chal, reg.KeyHandle)), uint8(U2FFaultNone))
	f.Add([]byte{0, 1, 2}, uint8(U2FFaultNone))
	f.Add([]byte{}, uint8(U2FFaultGarbage))
	f.Add(apdu(0, insVersion, 0, nil), uint8(U2FFaultBusy))
	f.Add(apdu(0, insVersion, 0, nil), uint8(U2FFaultDisconnect))
	known := map[uint16]bool{
		swNoError: true, swWrongLength: true, swConditionsNotSatisfied: true, swWrongData: true,
		swIncorrectP1P2: true, swInsNotSupported: true, swClaNotSupported: true,
	}
	f.Fuzz(func(t *testing.T, in []byte, fault uint8) {
		injected := U2FFault(fault % 4)
		if injected == U2FFaultDisconnect {
			// Disconnection is permanent, so use a throwaway key.
			k := newTestKey(t, 16, U2FPresenceAuto)
			k.SetFault(injected)
			if _, err := k.Message(in); !errors.Is(err, ErrU2FDisconnected) {
				t.Fatalf("disconnected key answered %v", err)
			}
			return
		}
		k.SetFault(injected)
		defer k.SetFault(U2FFaultNone)
		resp, err := k.Message(in)
		switch injected {
		case U2FFaultBusy:
			if !errors.Is(err, ErrU2FBusy) {
				t.Fatalf("busy key answered %v", err)
			}
			return
		case U2FFaultGarbage:
			if err != nil {
				t.Fatalf("garbage fault returned error %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Message without fault: %v", err)
		}
		if sw := statusWord(t, resp); !known[sw] {
			t.Fatalf("unknown status word 0x%04x", sw)
		}
	})
}

// TestU2FKeyWithYubicoServer has Yubico's independent u2f-server verify a
// registration and an authentication made by the simulated key, with the
// FIDO JSON messages a browser would send.
func TestU2FKeyWithYubicoServer(t *testing.T) {
	server := testenv.RequireTool(t, "u2f-server", "apt-get install u2f-server")
	const origin = "https://mfad.example"
	appID := origin
	k := newTestKey(t, 17, U2FPresenceAuto)
	tok := u2ftoken.NewToken(k)
	app := u2f.AppParam(appID)
	dir := t.TempDir()
	khFile, pkFile := filepath.Join(dir, "keyhandle"), filepath.Join(dir, "userkey")
	b64 := base64.RawURLEncoding.EncodeToString

	// clientData builds the client data JSON for a fresh challenge.
	clientData := func(typ string) (challenge string, data []byte) {
		c := randomParam(t)
		challenge = b64(c[:])
		data, err := json.Marshal(map[string]string{"typ": typ, "challenge": challenge, "origin": origin})
		if err != nil {
			t.Fatal(err)
		}
		return challenge, data
	}
	exchange := func(stdin any, args ...string) (string, error) {
		t.Helper()
		in, err := json.Marshal(stdin)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(server, append([]string{"-o", origin, "-i", appID}, args...)...)
		cmd.Stdin = bytes.NewReader(in)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("u2f-server %s: %w\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out), nil
	}
	run := func(stdin any, args ...string) string {
		t.Helper()
		out, err := exchange(stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	challenge, cd := clientData("navigator.id.finishEnrollment")
	chal := u2f.ChallengeParam(cd)
	raw, err := tok.Register(u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg, err := u2f.VerifyRegistration(raw, app, chal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	out := run(map[string]string{"registrationData": b64(raw), "clientData": b64(cd)},
		"-a", "register", "-c", challenge, "-k", khFile, "-p", pkFile)
	if !strings.Contains(out, "Registration successful") {
		t.Fatalf("u2f-server registration output: %s", out)
	}
	kh, err := os.ReadFile(khFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(kh) != b64(reg.KeyHandle) {
		t.Fatalf("u2f-server saved key handle %q, want %q", kh, b64(reg.KeyHandle))
	}
	if pk, err := os.ReadFile(pkFile); err != nil || !bytes.Equal(pk, reg.PublicKey) {
		t.Fatalf("u2f-server saved user key %x (%v), want %x", pk, err, reg.PublicKey)
	}
	// u2f-server reads the key handle file into an unterminated buffer;
	// a trailing NUL keeps it from reading past the handle.
	if err := os.WriteFile(khFile, append(kh, 0), 0o600); err != nil {
		t.Fatal(err)
	}

	for want := uint32(1); want <= 2; want++ {
		challenge, cd := clientData("navigator.id.getAssertion")
		chal := u2f.ChallengeParam(cd)
		resp, err := tok.Authenticate(u2ftoken.AuthenticateRequest{Challenge: chal[:], Application: app[:], KeyHandle: reg.KeyHandle})
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		out := run(map[string]string{"signatureData": b64(resp.RawResponse), "clientData": b64(cd), "keyHandle": b64(reg.KeyHandle)},
			"-a", "authenticate", "-c", challenge, "-k", khFile, "-p", pkFile)
		if wantOut := fmt.Sprintf("Successful authentication, counter: %d, user presence 1", want); !strings.Contains(out, wantOut) {
			t.Fatalf("u2f-server authentication output %q, want %q", out, wantOut)
		}
		// The same exchange with one signature bit flipped must fail, so
		// the successes above are the server's verdict and not a default.
		bad := bytes.Clone(resp.RawResponse)
		bad[len(bad)-1] ^= 1
		out, err = exchange(map[string]string{"signatureData": b64(bad), "clientData": b64(cd), "keyHandle": b64(reg.KeyHandle)},
			"-a", "authenticate", "-c", challenge, "-k", khFile, "-p", pkFile)
		if err == nil || strings.Contains(out, "Successful authentication") {
			t.Fatalf("u2f-server accepted a tampered signature: %q", out)
		}
	}
}

func BenchmarkU2FKeyAuthenticate(b *testing.B) {
	k := newTestKey(b, 18, U2FPresenceAuto)
	reg := register(b, k, testAppID)
	tok := u2ftoken.NewToken(k)
	req := authRequest(testAppID, randomParam(b), reg.KeyHandle)
	for b.Loop() {
		if _, err := tok.Authenticate(req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestU2FKeyCounterExhausted(t *testing.T) {
	k := newTestKey(t, 19, U2FPresenceAuto)
	reg := register(t, k, testAppID)
	k.mu.Lock()
	k.counter = 0xfffffffe
	k.mu.Unlock()
	tok := u2ftoken.NewToken(k)
	chal := randomParam(t)
	resp, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle))
	if err != nil {
		t.Fatalf("last Authenticate: %v", err)
	}
	if _, err := u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, u2f.AppParam(testAppID), chal, 0xfffffffe, false); err != nil || resp.Counter != 0xffffffff {
		t.Fatalf("last authentication counter %d: %v", resp.Counter, err)
	}
	for range 2 {
		if _, err := tok.Authenticate(authRequest(testAppID, chal, reg.KeyHandle)); !errors.Is(err, u2ftoken.ErrPresenceRequired) {
			t.Fatalf("Authenticate with exhausted counter = %v, want status 0x6985", err)
		}
	}
	if k.Counter() != 0xffffffff {
		t.Errorf("counter wrapped to %d", k.Counter())
	}
}
