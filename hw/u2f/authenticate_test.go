package u2f

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
)

// buildAuthentication assembles an authentication response signed by key.
func buildAuthentication(t testing.TB, key *ecdsa.PrivateKey, flags byte, counter uint32, app, chal [32]byte) []byte {
	t.Helper()
	header := binary.BigEndian.AppendUint32([]byte{flags}, counter)
	digest := sha256.Sum256(authenticationSignedBytes(app, chal, header))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return append(header, sig...)
}

func TestVerifyAuthenticationSpecExample(t *testing.T) {
	v := loadVectors(t)
	a, err := VerifyAuthentication(v.authRaw, v.authUserPub, v.authAppParam, v.authChalParam, 0, false)
	if err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	if !a.UserPresent || a.Counter != 1 {
		t.Errorf("authentication = %+v, want user present and counter 1", a)
	}
	if got := authenticationSignedBytes(v.authAppParam, v.authChalParam, v.authRaw[:5]); !bytes.Equal(got, v.authSignedBytes) {
		t.Errorf("signed bytes = %x, want %x", got, v.authSignedBytes)
	}
	_, sig, err := ParseAuthentication(v.authRaw)
	if err != nil {
		t.Fatalf("ParseAuthentication: %v", err)
	}
	if !bytes.Equal(sig, v.authSignature) {
		t.Errorf("signature = %x, want %x", sig, v.authSignature)
	}
}

func TestVerifyAuthenticationRejects(t *testing.T) {
	v := loadVectors(t)
	app, chal := v.authAppParam, v.authChalParam
	userKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.authUserPriv)
	if err != nil {
		t.Fatalf("parsing user key: %v", err)
	}
	if p, _ := userKey.PublicKey.Bytes(); !bytes.Equal(p, v.authUserPub) {
		t.Fatalf("user private key does not match the published public key")
	}
	otherKey, _ := testKeyPoint(t)
	offCurve := make([]byte, 65)
	offCurve[0], offCurve[32], offCurve[64] = 0x04, 1, 1

	tests := []struct {
		name        string
		raw         []byte
		pub         []byte
		app, chal   [32]byte
		last        uint32
		allowReset  bool
		want        error
		wantCounter uint32 // checked when an Authentication is returned
	}{
		{"valid", v.authRaw, v.authUserPub, app, chal, 0, false, nil, 1},
		{"wrong app param", v.authRaw, v.authUserPub, v.regAppParam, chal, 0, false, ErrBadSignature, 0},
		{"wrong challenge param", v.authRaw, v.authUserPub, app, v.regChalParam, 0, false, ErrBadSignature, 0},
		{"flipped bit in signature", flipBit(v.authRaw, len(v.authRaw)-1), v.authUserPub, app, chal, 0, false, ErrBadSignature, 0},
		{"flipped bit in counter", flipBit(v.authRaw, 4), v.authUserPub, app, chal, 0, false, ErrBadSignature, 0},
		{"user presence bit cleared after signing", flipBit(v.authRaw, 0), v.authUserPub, app, chal, 0, false, ErrBadSignature, 0},
		{"§8.1 user key (vectors cannot be chained)", v.authRaw, v.regUserPub, app, chal, 0, false, ErrBadSignature, 0},
		{"flipped bit in public key", v.authRaw, flipBit(v.authUserPub, 10), app, chal, 0, false, ErrMalformed, 0},
		{"public key off curve", v.authRaw, offCurve, app, chal, 0, false, ErrMalformed, 0},
		{"public key too short", v.authRaw, v.authUserPub[:64], app, chal, 0, false, ErrMalformed, 0},
		{"trailing data", append(bytes.Clone(v.authRaw), 0), v.authUserPub, app, chal, 0, false, ErrMalformed, 0},
		{"signed by another key", buildAuthentication(t, otherKey, 0x01, 2, app, chal), v.authUserPub, app, chal, 0, false, ErrBadSignature, 0},
		{"user presence flag clear", buildAuthentication(t, userKey, 0x00, 2, app, chal), v.authUserPub, app, chal, 0, false, ErrNoUserPresence, 0},
		{"other flag bits ignored", buildAuthentication(t, userKey, 0xfd, 2, app, chal), v.authUserPub, app, chal, 1, false, nil, 2},
		{"counter equal", v.authRaw, v.authUserPub, app, chal, 1, false, ErrCounterNotIncreased, 1},
		{"counter lower", v.authRaw, v.authUserPub, app, chal, 5, false, ErrCounterNotIncreased, 1},
		{"counter equal, reset allowed", v.authRaw, v.authUserPub, app, chal, 1, true, nil, 1},
		{"counter lower, reset allowed", v.authRaw, v.authUserPub, app, chal, 5, true, nil, 1},
		{"max counter", buildAuthentication(t, userKey, 0x01, 0xffffffff, app, chal), v.authUserPub, app, chal, 0xfffffffe, false, nil, 0xffffffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := VerifyAuthentication(tc.raw, tc.pub, tc.app, tc.chal, tc.last, tc.allowReset)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("VerifyAuthentication error = %v, want %v", err, tc.want)
			}
			wantAuth := tc.want == nil || errors.Is(tc.want, ErrCounterNotIncreased)
			if (a != nil) != wantAuth {
				t.Fatalf("authentication = %+v, want returned: %v", a, wantAuth)
			}
			if a != nil && (a.Counter != tc.wantCounter || !a.UserPresent) {
				t.Errorf("authentication = %+v, want user present and counter %d", a, tc.wantCounter)
			}
		})
	}
}

func TestAuthenticationTruncated(t *testing.T) {
	v := loadVectors(t)
	for name, tc := range map[string]struct{ raw, pub []byte }{
		"spec example": {v.authRaw, v.authUserPub},
		"chained":      {v.chainAuthRaw, v.chainUserPub},
	} {
		t.Run(name, func(t *testing.T) {
			for n := 0; n < len(tc.raw); n++ {
				if _, _, err := ParseAuthentication(tc.raw[:n]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseAuthentication(prefix %d) error = %v, want ErrMalformed", n, err)
				}
				if _, err := VerifyAuthentication(tc.raw[:n], tc.pub, v.authAppParam, v.authChalParam, 0, false); !errors.Is(err, ErrMalformed) {
					t.Fatalf("VerifyAuthentication(prefix %d) error = %v, want ErrMalformed", n, err)
				}
			}
		})
	}
}

func FuzzParseAuthentication(f *testing.F) {
	v := loadVectors(f)
	f.Add(v.authRaw)
	f.Add(v.chainAuthRaw)
	f.Add(v.authRaw[:5])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, sig, err := ParseAuthentication(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || a != nil || sig != nil {
				t.Fatalf("error %v with authentication %v", err, a)
			}
			return
		}
		if len(sig) == 0 || 5+len(sig) != len(raw) || !bytes.Equal(raw[5:], sig) {
			t.Fatalf("signature is not the %d-byte tail", len(raw)-5)
		}
		if a.Counter != binary.BigEndian.Uint32(raw[1:5]) || a.UserPresent != (raw[0]&1 == 1) {
			t.Fatalf("parsed %+v inconsistent with header", a)
		}
		// Verification must not panic either.
		_, _ = VerifyAuthentication(raw, v.authUserPub, v.authAppParam, v.authChalParam, 0, false)
	})
}

func BenchmarkVerifyAuthentication(b *testing.B) {
	v := loadVectors(b)
	for b.Loop() {
		if _, err := VerifyAuthentication(v.authRaw, v.authUserPub, v.authAppParam, v.authChalParam, 0, false); err != nil {
			b.Fatal(err)
		}
	}
}
