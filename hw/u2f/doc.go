// Package u2f is mfad's FIDO U2F support, both sides of it.
//
// As the relying party it parses and verifies the raw registration and
// authentication responses produced by a U2F security key (FIDO U2F Raw
// Message Formats); those functions are pure and do no I/O.
//
// As the key's client, Client registers and authenticates against the keys
// a Source lists at the start of every operation (so keys plugged or pulled
// while the daemon runs are noticed), at the APDU layer of flynn/u2f's
// u2ftoken.Device: HID finds real keys on hidraw (usage page 0xF1D0), or
// through its Devices field the simulated key of package sim behind its HID
// framing, and StaticSource serves a simulated key at the APDU layer. A
// Client waits a bounded time for the user's touch, asks only keys that hold
// one of the handles to sign, and turns a pulled key into a clean error.
// Storage of registrations lives in the service layer.
//
// # Parameters
//
// AppParam and ChallengeParam compute the 32-byte SHA-256 parameters that the
// key signs over: appParam = SHA-256(appID) and challengeParam =
// SHA-256(clientData). Callers that already hold the 32-byte values may pass
// them directly.
//
// # Registration
//
// ParseRegistration checks only the framing of a registration response
// (status word already stripped): the 0x05 reserved byte, a 65-byte
// uncompressed public key that is a valid P-256 point, a non-empty key handle
// that fits in the data, an attestation certificate whose length is taken
// from its DER SEQUENCE header and whose subject public key is a P-256 key,
// and a DER ECDSA signature that ends exactly at the end of the data.
// VerifyRegistration additionally verifies the attestation signature over
// 0x00 | appParam | challengeParam | keyHandle | userPublicKey with the
// certificate's key, and returns the Registration to keep.
//
// Real attestation certificates are frequently rejected by crypto/x509 (for
// example, subjects holding x500UniqueIdentifier as a BIT STRING) or long
// expired. The attestation key is therefore extracted leniently: the
// certificate is walked with cryptobyte only as far as the
// SubjectPublicKeyInfo, which must be id-ecPublicKey on prime256v1. Whether
// the attestation is trusted is a separate, optional policy:
// VerifyAttestationCA performs x509 path validation against a pool of CA
// certificates (optionally ignoring expiry) and fails with
// ErrUntrustedAttestation, including when crypto/x509 cannot parse the
// certificate at all.
//
// Signatures are verified with ecdsa.VerifyASN1 and high-S values are
// accepted: the published specification example itself carries a high-S
// attestation signature, and U2F keys are not required to normalise S.
//
// # Authentication
//
// ParseAuthentication checks the framing of an authentication response:
// flags byte, 4-byte big-endian counter and a DER ECDSA signature ending
// exactly at the end of the data. VerifyAuthentication verifies the signature
// over appParam | flags | counter | challengeParam with the registered user
// public key, then requires the user-presence flag and a counter strictly
// greater than the last one seen (unless the caller allows a reset). A
// counter that did not increase may indicate a cloned key; the verified
// Authentication is returned together with ErrCounterNotIncreased so the
// caller can audit it.
//
// # Errors and concurrency
//
// All failures wrap one of ErrMalformed, ErrBadSignature, ErrNoUserPresence,
// ErrCounterNotIncreased or ErrUntrustedAttestation; test with errors.Is.
// Error messages mention lengths and offsets only, never key material. All
// functions are pure and safe for concurrent use; returned values never alias
// the input slices.
package u2f
