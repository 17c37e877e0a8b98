package u2f

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// registerReserved is the first byte of every registration response.
const registerReserved = 0x05

var (
	oidPublicKeyECDSA = encasn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidCurveP256      = encasn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
)

// Registration is what a relying party keeps after a successful registration.
type Registration struct {
	KeyHandle   []byte
	PublicKey   []byte // 65-byte uncompressed P-256 point
	Certificate []byte // attestation certificate, DER as sent
	// CertificateSHA256 is the fingerprint of Certificate (to store and show).
	CertificateSHA256 [32]byte
}

// parsedRegistration holds a parsed response together with its keys.
type parsedRegistration struct {
	reg         *Registration
	signature   []byte
	userKey     *ecdsa.PublicKey
	attestation *ecdsa.PublicKey
}

// ParseRegistration parses a raw registration response without verifying it.
// It returns the registration and the attestation signature; all failures
// wrap ErrMalformed.
func ParseRegistration(raw []byte) (*Registration, []byte, error) {
	p, err := parseRegistration(raw)
	if err != nil {
		return nil, nil, err
	}
	return p.reg, p.signature, nil
}

func parseRegistration(raw []byte) (*parsedRegistration, error) {
	s := cryptobyte.String(raw)
	var reserved, khLen uint8
	var pub, kh []byte
	if !s.ReadUint8(&reserved) {
		return nil, fmt.Errorf("%w: empty registration response", ErrMalformed)
	}
	if reserved != registerReserved {
		return nil, fmt.Errorf("%w: reserved byte is 0x%02x, want 0x05", ErrMalformed, reserved)
	}
	if !s.ReadBytes(&pub, publicKeyLen) {
		return nil, fmt.Errorf("%w: registration response too short for public key (%d bytes)", ErrMalformed, len(raw))
	}
	userKey, err := parsePublicKey(pub)
	if err != nil {
		return nil, err
	}
	if !s.ReadUint8(&khLen) {
		return nil, fmt.Errorf("%w: registration response has no key handle length", ErrMalformed)
	}
	if khLen == 0 {
		return nil, fmt.Errorf("%w: empty key handle", ErrMalformed)
	}
	if !s.ReadBytes(&kh, int(khLen)) {
		return nil, fmt.Errorf("%w: key handle length %d exceeds the %d remaining bytes", ErrMalformed, khLen, len(s))
	}
	certOffset := len(raw) - len(s)
	var cert cryptobyte.String
	if !s.ReadASN1Element(&cert, asn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: no der certificate at offset %d", ErrMalformed, certOffset)
	}
	attKey, err := attestationKey(cert)
	if err != nil {
		return nil, err
	}
	sig := []byte(s)
	if err := checkSignatureDER(sig); err != nil {
		return nil, err
	}
	reg := &Registration{
		KeyHandle:         bytes.Clone(kh),
		PublicKey:         bytes.Clone(pub),
		Certificate:       bytes.Clone(cert),
		CertificateSHA256: sha256.Sum256(cert),
	}
	return &parsedRegistration{reg: reg, signature: bytes.Clone(sig), userKey: userKey, attestation: attKey}, nil
}

// attestationKey extracts the P-256 subject public key from a DER
// certificate without a full X.509 parse: it walks Certificate →
// TBSCertificate and skips to SubjectPublicKeyInfo.
func attestationKey(cert []byte) (*ecdsa.PublicKey, error) {
	malformed := func(what string) error {
		return fmt.Errorf("%w: attestation certificate (%d bytes): %s", ErrMalformed, len(cert), what)
	}
	s := cryptobyte.String(cert)
	var certSeq, tbs cryptobyte.String
	if !s.ReadASN1(&certSeq, asn1.SEQUENCE) || !certSeq.ReadASN1(&tbs, asn1.SEQUENCE) {
		return nil, malformed("no tbsCertificate")
	}
	if !tbs.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) || // version
		!tbs.SkipASN1(asn1.INTEGER) || // serialNumber
		!tbs.SkipASN1(asn1.SEQUENCE) || // signature
		!tbs.SkipASN1(asn1.SEQUENCE) || // issuer
		!tbs.SkipASN1(asn1.SEQUENCE) || // validity
		!tbs.SkipASN1(asn1.SEQUENCE) { // subject
		return nil, malformed("cannot skip to subjectPublicKeyInfo")
	}
	var spki, alg cryptobyte.String
	var algOID, curveOID encasn1.ObjectIdentifier
	var point []byte
	if !tbs.ReadASN1(&spki, asn1.SEQUENCE) || !spki.ReadASN1(&alg, asn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&algOID) {
		return nil, malformed("bad subjectPublicKeyInfo")
	}
	if !algOID.Equal(oidPublicKeyECDSA) || !alg.ReadASN1ObjectIdentifier(&curveOID) || !curveOID.Equal(oidCurveP256) {
		return nil, malformed("subject key is not an ecdsa p-256 key")
	}
	if !spki.ReadASN1BitStringAsBytes(&point) {
		return nil, malformed("bad subject public key bit string")
	}
	pub, err := parsePublicKey(point)
	if err != nil {
		return nil, malformed("subject public key is not a valid p-256 point")
	}
	return pub, nil
}

// registrationSignedBytes returns 0x00 | appParam | challengeParam | keyHandle | publicKey.
func registrationSignedBytes(appParam, challengeParam [32]byte, keyHandle, publicKey []byte) []byte {
	msg := make([]byte, 0, 1+32+32+len(keyHandle)+len(publicKey))
	msg = append(msg, 0x00)
	msg = append(msg, appParam[:]...)
	msg = append(msg, challengeParam[:]...)
	msg = append(msg, keyHandle...)
	return append(msg, publicKey...)
}

// VerifyRegistration parses raw and verifies its attestation signature for
// appParam and challengeParam. It does not judge whether the attestation
// certificate is trusted; see VerifyAttestationCA.
func VerifyRegistration(raw []byte, appParam, challengeParam [32]byte) (*Registration, error) {
	p, err := parseRegistration(raw)
	if err != nil {
		return nil, err
	}
	msg := registrationSignedBytes(appParam, challengeParam, p.reg.KeyHandle, p.reg.PublicKey)
	if !verify(p.attestation, msg, p.signature) {
		return nil, fmt.Errorf("%w: attestation signature does not verify", ErrBadSignature)
	}
	return p.reg, nil
}

// VerifyAttestationCA reports whether reg's certificate chains to one of
// roots (x509 path validation, ignoring expiry when ignoreExpiry is true,
// because many real attestation certs are expired). Without ignoreExpiry the
// current system time is used. Every failure wraps ErrUntrustedAttestation,
// including a certificate that crypto/x509 cannot parse.
func VerifyAttestationCA(reg *Registration, roots *x509.CertPool, ignoreExpiry bool) error {
	if reg == nil || len(reg.Certificate) == 0 {
		return fmt.Errorf("%w: no attestation certificate", ErrUntrustedAttestation)
	}
	if roots == nil {
		return fmt.Errorf("%w: no trusted roots", ErrUntrustedAttestation)
	}
	cert, err := x509.ParseCertificate(reg.Certificate)
	if err != nil {
		return fmt.Errorf("%w: attestation certificate cannot be parsed by crypto/x509 for path validation: %w",
			ErrUntrustedAttestation, err)
	}
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if !ignoreExpiry {
		if _, err := cert.Verify(opts); err != nil {
			return fmt.Errorf("%w: %w", ErrUntrustedAttestation, err)
		}
		return nil
	}
	// Validate as of an instant inside the certificate's own validity
	// window; try both ends so that a root issued slightly later than, or
	// expiring slightly before, the leaf is still accepted.
	var errs []error
	for _, at := range []time.Time{cert.NotBefore, cert.NotAfter} {
		opts.CurrentTime = at
		if _, err := cert.Verify(opts); err != nil {
			errs = append(errs, err)
			continue
		}
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUntrustedAttestation, errs[0])
}
