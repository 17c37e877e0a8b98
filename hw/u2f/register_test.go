package u2f

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestAppAndChallengeParam(t *testing.T) {
	v := loadVectors(t)
	if got := AppParam(v.regAppID); got != v.regAppParam {
		t.Errorf("AppParam(%q) = %x, want %x", v.regAppID, got, v.regAppParam)
	}
	if got := ChallengeParam(v.regClientData); got != v.regChalParam {
		t.Errorf("ChallengeParam(§8.1 client data) = %x, want %x", got, v.regChalParam)
	}
	if got := ChallengeParam(v.authClientData); got != v.authChalParam {
		t.Errorf("ChallengeParam(§8.2 client data) = %x, want %x", got, v.authChalParam)
	}
	if got := AppParam("https://gstatic.com/securitykey/a/example.com"); got != v.authAppParam {
		t.Errorf("AppParam(§8.2 app ID) = %x, want %x", got, v.authAppParam)
	}
}

func TestVerifyRegistrationSpecExample(t *testing.T) {
	v := loadVectors(t)
	reg, err := VerifyRegistration(v.regRaw, AppParam(v.regAppID), ChallengeParam(v.regClientData))
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	if !bytes.Equal(reg.KeyHandle, v.regKeyHandle) {
		t.Errorf("key handle = %x, want %x", reg.KeyHandle, v.regKeyHandle)
	}
	if !bytes.Equal(reg.PublicKey, v.regUserPub) {
		t.Errorf("public key = %x, want %x", reg.PublicKey, v.regUserPub)
	}
	if !bytes.Equal(reg.Certificate, v.regCert) {
		t.Errorf("certificate differs from the published one (%d bytes, want %d)", len(reg.Certificate), len(v.regCert))
	}
	if want := sha256.Sum256(v.regCert); reg.CertificateSHA256 != want {
		t.Errorf("certificate fingerprint = %x, want %x", reg.CertificateSHA256, want)
	}

	_, sig, err := ParseRegistration(v.regRaw)
	if err != nil {
		t.Fatalf("ParseRegistration: %v", err)
	}
	if !bytes.Equal(sig, v.regSignature) {
		t.Errorf("signature = %x, want %x", sig, v.regSignature)
	}
	if got := registrationSignedBytes(v.regAppParam, v.regChalParam, reg.KeyHandle, reg.PublicKey); !bytes.Equal(got, v.regSignedBytes) {
		t.Errorf("signed bytes = %x, want %x", got, v.regSignedBytes)
	}

	att, err := attestationKey(reg.Certificate)
	if err != nil {
		t.Fatalf("attestationKey: %v", err)
	}
	point, err := att.Bytes()
	if err != nil {
		t.Fatalf("encoding attestation key: %v", err)
	}
	if !bytes.Equal(point, v.regAttPub) {
		t.Errorf("attestation key = %x, want %x", point, v.regAttPub)
	}
	// The published attestation signature is high-S; it must still verify.
	_, s := derSignatureScalars(t, v.regSignature)
	if half := new(big.Int).Rsh(elliptic.P256().Params().N, 1); s.Cmp(half) <= 0 {
		t.Errorf("expected the §8.1 attestation signature to be high-S")
	}

	// The returned registration must not alias the input.
	raw := bytes.Clone(v.regRaw)
	reg2, err := VerifyRegistration(raw, v.regAppParam, v.regChalParam)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	for i := range raw {
		raw[i] = 0
	}
	if !bytes.Equal(reg2.KeyHandle, v.regKeyHandle) || !bytes.Equal(reg2.PublicKey, v.regUserPub) {
		t.Errorf("registration aliases the input buffer")
	}
}

// derSignatureScalars decodes r and s from a DER ECDSA signature.
func derSignatureScalars(t *testing.T, sig []byte) (*big.Int, *big.Int) {
	t.Helper()
	// SEQUENCE(len) INTEGER(len) r INTEGER(len) s, all short-form here.
	if len(sig) < 8 || sig[0] != 0x30 || sig[2] != 0x02 {
		t.Fatalf("unexpected signature encoding")
	}
	rLen := int(sig[3])
	r := new(big.Int).SetBytes(sig[4 : 4+rLen])
	sOff := 4 + rLen
	if sig[sOff] != 0x02 {
		t.Fatalf("unexpected signature encoding")
	}
	s := new(big.Int).SetBytes(sig[sOff+2 : sOff+2+int(sig[sOff+1])])
	return r, s
}

func TestChainedRegisterThenAuthenticate(t *testing.T) {
	v := loadVectors(t)
	app := AppParam("http://example.com")
	// Both chained signatures use the §8.1 enrollment client data.
	chal := v.regChalParam
	reg, err := VerifyRegistration(v.chainRegRaw, app, chal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	if !bytes.Equal(reg.KeyHandle, v.chainKeyHandle) {
		t.Errorf("key handle = %x, want %x", reg.KeyHandle, v.chainKeyHandle)
	}
	if !bytes.Equal(reg.PublicKey, v.chainUserPub) {
		t.Errorf("public key = %x, want %x", reg.PublicKey, v.chainUserPub)
	}
	// crypto/x509 rejects this certificate; the lenient path must not care.
	if _, err := x509.ParseCertificate(reg.Certificate); err == nil {
		t.Errorf("expected crypto/x509 to reject the chained attestation certificate")
	}
	a, err := VerifyAuthentication(v.chainAuthRaw, reg.PublicKey, app, chal, 0, false)
	if err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	if !a.UserPresent || a.Counter != 34 {
		t.Errorf("authentication = %+v, want user present and counter 34", a)
	}
	// Trust policy is separate and fails clearly for an x509-unparseable cert.
	pool := x509.NewCertPool()
	err = VerifyAttestationCA(reg, pool, true)
	if !errors.Is(err, ErrUntrustedAttestation) || !strings.Contains(err.Error(), "crypto/x509") {
		t.Errorf("VerifyAttestationCA = %v, want ErrUntrustedAttestation mentioning crypto/x509", err)
	}
}

func flipBit(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// testKeyPoint returns the uncompressed point of a fresh P-256 key.
func testKeyPoint(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	p, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatalf("encoding key: %v", err)
	}
	return k, p
}

// buildRegistration assembles a registration response signed by signer.
func buildRegistration(t testing.TB, userPub, keyHandle, cert []byte, signer *ecdsa.PrivateKey, app, chal [32]byte) []byte {
	t.Helper()
	digest := sha256.Sum256(registrationSignedBytes(app, chal, keyHandle, userPub))
	sig, err := ecdsa.SignASN1(rand.Reader, signer, digest[:])
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	raw := []byte{registerReserved}
	raw = append(raw, userPub...)
	raw = append(raw, byte(len(keyHandle)))
	raw = append(raw, keyHandle...)
	raw = append(raw, cert...)
	return append(raw, sig...)
}

// makeCert creates a certificate for key, signed by parent/parentKey
// (self-signed when parent is nil).
func makeCert(t testing.TB, key crypto.Signer, parent *x509.Certificate, parentKey any, cn string, isCA bool, notBefore, notAfter time.Time) (*x509.Certificate, []byte) {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatalf("serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: isCA,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return c, der
}

func TestVerifyRegistrationRejects(t *testing.T) {
	v := loadVectors(t)
	app, chal := v.regAppParam, v.regChalParam
	const (
		pubOff  = 1
		khOff   = 1 + 65 + 1
		certOff = khOff + 64
	)
	sigOff := len(v.regRaw) - len(v.regSignature)
	attPointOff := bytes.Index(v.regCert, v.regAttPub)
	if attPointOff < 0 {
		t.Fatalf("attestation public key not found in the certificate")
	}
	attKey, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), v.regAttPriv)
	if err != nil {
		t.Fatalf("parsing attestation key: %v", err)
	}
	otherKey, _ := testKeyPoint(t)

	khTooLong := append([]byte{registerReserved}, v.regUserPub...)
	khTooLong = append(khTooLong, 0xff)
	khTooLong = append(khTooLong, v.regKeyHandle...)

	offCurve := make([]byte, 65)
	offCurve[0], offCurve[32], offCurve[64] = 0x04, 1, 1
	compressed := append([]byte{0x02}, v.regUserPub[1:33]...)

	withPoint := func(point []byte) []byte {
		raw := append([]byte{registerReserved}, point...)
		return append(raw, v.regRaw[1+65:]...)
	}
	zeroKH := append(bytes.Clone(v.regRaw[:khOff-1]), 0)
	zeroKH = append(zeroKH, v.regRaw[certOff:]...)

	tests := []struct {
		name      string
		raw       []byte
		app, chal [32]byte
		want      error
	}{
		{"wrong app param", v.regRaw, AppParam("https://evil.example"), chal, ErrBadSignature},
		{"wrong challenge param", v.regRaw, app, ChallengeParam([]byte("other")), ErrBadSignature},
		{"flipped bit in signature", flipBit(v.regRaw, len(v.regRaw)-1), app, chal, ErrBadSignature},
		{"flipped bit in signature r", flipBit(v.regRaw, sigOff+10), app, chal, ErrBadSignature},
		{"flipped bit in key handle", flipBit(v.regRaw, khOff+5), app, chal, ErrBadSignature},
		{"flipped bit in public key (off curve)", flipBit(v.regRaw, pubOff+10), app, chal, ErrMalformed},
		{"flipped bit in certificate key", flipBit(v.regRaw, certOff+attPointOff+20), app, chal, ErrMalformed},
		{"bad reserved byte", append([]byte{0x04}, v.regRaw[1:]...), app, chal, ErrMalformed},
		{"key handle length beyond data", khTooLong, app, chal, ErrMalformed},
		{"zero key handle length", zeroKH, app, chal, ErrMalformed},
		{"point not on p-256", withPoint(offCurve), app, chal, ErrMalformed},
		{"compressed point", withPoint(append(compressed, make([]byte, 32)...)), app, chal, ErrMalformed},
		{"trailing data after signature", append(bytes.Clone(v.regRaw), 0x00), app, chal, ErrMalformed},
		{"no signature", bytes.Clone(v.regRaw[:sigOff]), app, chal, ErrMalformed},
		{"empty", nil, app, chal, ErrMalformed},
		{"signed by another key", buildRegistration(t, v.regUserPub, v.regKeyHandle, v.regCert, otherKey, app, chal), app, chal, ErrBadSignature},
		{"re-signed with attestation key", buildRegistration(t, v.regUserPub, v.regKeyHandle, v.regCert, attKey, app, chal), app, chal, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := VerifyRegistration(tc.raw, tc.app, tc.chal)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("VerifyRegistration error = %v, want %v", err, tc.want)
			}
			if (reg == nil) == (err == nil) {
				t.Errorf("registration = %v with error %v", reg, err)
			}
		})
	}
}

func TestRegistrationTruncated(t *testing.T) {
	v := loadVectors(t)
	for name, raw := range map[string][]byte{"spec example": v.regRaw, "chained": v.chainRegRaw} {
		t.Run(name, func(t *testing.T) {
			for n := 0; n < len(raw); n++ {
				if _, _, err := ParseRegistration(raw[:n]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseRegistration(prefix %d) error = %v, want ErrMalformed", n, err)
				}
				if _, err := VerifyRegistration(raw[:n], v.regAppParam, v.regChalParam); !errors.Is(err, ErrMalformed) {
					t.Fatalf("VerifyRegistration(prefix %d) error = %v, want ErrMalformed", n, err)
				}
			}
		})
	}
}

func TestGeneratedAttestation(t *testing.T) {
	app := AppParam("https://login.example.org")
	chal := ChallengeParam([]byte(`{"challenge":"generated"}`))
	_, userPub := testKeyPoint(t)
	kh := bytes.Repeat([]byte{0xab}, 48)
	longAgo, farAway := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	expiredFrom, expiredTo := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)

	selfKey, _ := testKeyPoint(t)
	selfCert, selfDER := makeCert(t, selfKey, nil, nil, "self-signed attestation", false, longAgo, farAway)
	expiredKey, _ := testKeyPoint(t)
	expiredCert, expiredDER := makeCert(t, expiredKey, nil, nil, "expired attestation", false, expiredFrom, expiredTo)
	caKey, _ := testKeyPoint(t)
	caCert, _ := makeCert(t, caKey, nil, nil, "attestation root", true, longAgo, farAway)
	leafKey, _ := testKeyPoint(t)
	_, leafDER := makeCert(t, leafKey, caCert, caKey, "attestation leaf", false, expiredFrom, expiredTo)
	otherKey, _ := testKeyPoint(t)
	otherCA, _ := makeCert(t, otherKey, nil, nil, "other root", true, longAgo, farAway)

	pool := func(certs ...*x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range certs {
			p.AddCert(c)
		}
		return p
	}
	tests := []struct {
		name         string
		certDER      []byte
		key          *ecdsa.PrivateKey
		roots        *x509.CertPool
		ignoreExpiry bool
		want         error
	}{
		{"self-signed in pool", selfDER, selfKey, pool(selfCert), false, nil},
		{"self-signed not in pool", selfDER, selfKey, pool(caCert), false, ErrUntrustedAttestation},
		{"empty pool", selfDER, selfKey, pool(), false, ErrUntrustedAttestation},
		{"nil pool", selfDER, selfKey, nil, false, ErrUntrustedAttestation},
		{"expired, expiry enforced", expiredDER, expiredKey, pool(expiredCert), false, ErrUntrustedAttestation},
		{"expired, expiry ignored", expiredDER, expiredKey, pool(expiredCert), true, nil},
		{"leaf chains to root, expiry ignored", leafDER, leafKey, pool(caCert), true, nil},
		{"leaf chains to root, expiry enforced", leafDER, leafKey, pool(caCert), false, ErrUntrustedAttestation},
		{"leaf with another root", leafDER, leafKey, pool(otherCA), true, ErrUntrustedAttestation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := buildRegistration(t, userPub, kh, tc.certDER, tc.key, app, chal)
			reg, err := VerifyRegistration(raw, app, chal)
			if err != nil {
				t.Fatalf("VerifyRegistration: %v", err)
			}
			if !bytes.Equal(reg.Certificate, tc.certDER) || !bytes.Equal(reg.KeyHandle, kh) || !bytes.Equal(reg.PublicKey, userPub) {
				t.Fatalf("registration fields differ from what was built")
			}
			err = VerifyAttestationCA(reg, tc.roots, tc.ignoreExpiry)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("VerifyAttestationCA error = %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("attestation signed by another key", func(t *testing.T) {
		raw := buildRegistration(t, userPub, kh, selfDER, otherKey, app, chal)
		if _, err := VerifyRegistration(raw, app, chal); !errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifyRegistration error = %v, want ErrBadSignature", err)
		}
	})
	t.Run("attestation key not p-256", func(t *testing.T) {
		k384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatalf("generating key: %v", err)
		}
		_, der := makeCert(t, k384, nil, nil, "p-384 attestation", false, longAgo, farAway)
		raw := buildRegistration(t, userPub, kh, der, k384, app, chal)
		if _, _, err := ParseRegistration(raw); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRegistration error = %v, want ErrMalformed", err)
		}
	})
	t.Run("nil registration", func(t *testing.T) {
		if err := VerifyAttestationCA(nil, pool(selfCert), true); !errors.Is(err, ErrUntrustedAttestation) {
			t.Errorf("VerifyAttestationCA(nil) error = %v, want ErrUntrustedAttestation", err)
		}
	})
}

func FuzzParseRegistration(f *testing.F) {
	v := loadVectors(f)
	f.Add(v.regRaw)
	f.Add(v.chainRegRaw)
	f.Add(v.regRaw[:100])
	f.Add([]byte{registerReserved})
	f.Fuzz(func(t *testing.T, raw []byte) {
		reg, sig, err := ParseRegistration(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || reg != nil || sig != nil {
				t.Fatalf("error %v with registration %v", err, reg)
			}
			return
		}
		if len(reg.PublicKey) != 65 || len(reg.KeyHandle) == 0 || len(reg.Certificate) == 0 || len(sig) == 0 {
			t.Fatalf("empty or wrong-sized fields")
		}
		if 1+65+1+len(reg.KeyHandle)+len(reg.Certificate)+len(sig) != len(raw) {
			t.Fatalf("parsed lengths do not add up to %d", len(raw))
		}
		if int(raw[66]) != len(reg.KeyHandle) || !bytes.Equal(raw[67:67+len(reg.KeyHandle)], reg.KeyHandle) {
			t.Fatalf("key handle inconsistent with its length byte")
		}
		if reg.CertificateSHA256 != sha256.Sum256(reg.Certificate) {
			t.Fatalf("fingerprint mismatch")
		}
		if !bytes.HasSuffix(raw, sig) {
			t.Fatalf("signature is not the tail of the message")
		}
		// Verification must not panic either.
		_, _ = VerifyRegistration(raw, v.regAppParam, v.regChalParam)
	})
}
