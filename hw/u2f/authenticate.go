package u2f

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// authHeaderLen is the flags byte plus the 4-byte counter.
const authHeaderLen = 5

// flagUserPresent is bit 0 of the authentication flags byte.
const flagUserPresent = 0x01

// Authentication is the parsed content of an authentication response.
type Authentication struct {
	UserPresent bool
	Counter     uint32
}

// ParseAuthentication parses a raw authentication response without
// verifying it. It returns the parsed fields and the signature; all failures
// wrap ErrMalformed.
func ParseAuthentication(raw []byte) (*Authentication, []byte, error) {
	if len(raw) < authHeaderLen {
		return nil, nil, fmt.Errorf("%w: authentication response is %d bytes, want at least %d", ErrMalformed, len(raw), authHeaderLen)
	}
	sig := raw[authHeaderLen:]
	if err := checkSignatureDER(sig); err != nil {
		return nil, nil, err
	}
	a := &Authentication{
		UserPresent: raw[0]&flagUserPresent != 0,
		Counter:     binary.BigEndian.Uint32(raw[1:authHeaderLen]),
	}
	return a, bytes.Clone(sig), nil
}

// authenticationSignedBytes returns appParam | flags | counter | challengeParam,
// where header is the flags byte and the counter exactly as received.
func authenticationSignedBytes(appParam, challengeParam [32]byte, header []byte) []byte {
	msg := make([]byte, 0, 32+len(header)+32)
	msg = append(msg, appParam[:]...)
	msg = append(msg, header...)
	return append(msg, challengeParam[:]...)
}

// VerifyAuthentication verifies raw for the registered public key. It
// requires the user-presence flag (ErrNoUserPresence) and a counter strictly
// greater than lastCounter (ErrCounterNotIncreased: a possible cloned key;
// the Authentication is still returned so the caller can audit it) unless
// allowCounterReset is true. The signature is checked first, so
// ErrNoUserPresence and ErrCounterNotIncreased are only reported for
// responses genuinely signed by the key.
func VerifyAuthentication(raw []byte, publicKey []byte, appParam, challengeParam [32]byte, lastCounter uint32, allowCounterReset bool) (*Authentication, error) {
	pub, err := parsePublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	a, sig, err := ParseAuthentication(raw)
	if err != nil {
		return nil, err
	}
	if !verify(pub, authenticationSignedBytes(appParam, challengeParam, raw[:authHeaderLen]), sig) {
		return nil, fmt.Errorf("%w: authentication signature does not verify", ErrBadSignature)
	}
	if !a.UserPresent {
		return nil, fmt.Errorf("%w: flags 0x%02x", ErrNoUserPresence, raw[0])
	}
	if !allowCounterReset && a.Counter <= lastCounter {
		return a, fmt.Errorf("%w: counter %d, last seen %d", ErrCounterNotIncreased, a.Counter, lastCounter)
	}
	return a, nil
}
