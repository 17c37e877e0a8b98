package u2f

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Sentinel errors; every error returned by this package wraps one of them.
var (
	// ErrMalformed reports a message, key or certificate that cannot be parsed.
	ErrMalformed = errors.New("u2f: malformed message")
	// ErrBadSignature reports a signature that does not verify.
	ErrBadSignature = errors.New("u2f: bad signature")
	// ErrNoUserPresence reports an authentication without the user-presence flag.
	ErrNoUserPresence = errors.New("u2f: user presence not asserted")
	// ErrCounterNotIncreased reports a counter not greater than the last one seen.
	ErrCounterNotIncreased = errors.New("u2f: counter did not increase")
	// ErrUntrustedAttestation reports an attestation certificate that does not
	// chain to a trusted root.
	ErrUntrustedAttestation = errors.New("u2f: untrusted attestation")
)

// publicKeyLen is the length of an uncompressed P-256 point (0x04|X|Y).
const publicKeyLen = 65

// AppParam returns SHA-256(appID), the application parameter.
func AppParam(appID string) [32]byte {
	return sha256.Sum256([]byte(appID))
}

// ChallengeParam returns SHA-256(clientData), the challenge parameter.
func ChallengeParam(clientData []byte) [32]byte {
	return sha256.Sum256(clientData)
}

// parsePublicKey parses a 65-byte uncompressed P-256 point.
func parsePublicKey(point []byte) (*ecdsa.PublicKey, error) {
	if len(point) != publicKeyLen {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrMalformed, len(point), publicKeyLen)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not an uncompressed p-256 point", ErrMalformed)
	}
	return pub, nil
}

// checkSignatureDER reports whether sig is exactly one DER
// SEQUENCE { INTEGER r, INTEGER s } with nothing trailing.
func checkSignatureDER(sig []byte) error {
	s := cryptobyte.String(sig)
	var seq, r, sv cryptobyte.String
	if !s.ReadASN1(&seq, asn1.SEQUENCE) || !s.Empty() ||
		!seq.ReadASN1(&r, asn1.INTEGER) || !seq.ReadASN1(&sv, asn1.INTEGER) || !seq.Empty() ||
		len(r) == 0 || len(sv) == 0 {
		return fmt.Errorf("%w: signature (%d bytes) is not a der ecdsa signature", ErrMalformed, len(sig))
	}
	return nil
}

// verify checks an ECDSA signature over SHA-256(msg). High-S is accepted.
func verify(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	digest := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, digest[:], sig)
}
