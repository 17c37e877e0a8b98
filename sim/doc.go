// Package sim provides simulated hardware for mfad: software devices that
// behave like the real ones at the lowest layer mfad can fake without the
// device attached, so that CI and newcomers can exercise every code path
// without buying hardware. They are real fakes, not mocks: they run the
// genuine protocol with genuine cryptography and can be told to misbehave.
//
// # U2F security key
//
// U2FKey is a software FIDO U2F authenticator. It speaks raw U2F request
// APDUs (FIDO U2F Raw Message Formats, extended-length encoding) through its
// Message method, which implements github.com/flynn/u2f/u2ftoken.Device, so
// u2ftoken.NewToken(key) drives it exactly as it drives a USB key behind
// u2fhid. Only the HID framing is skipped.
//
// Supported commands are U2F_REGISTER, U2F_AUTHENTICATE (P1 0x03
// enforce-user-presence-and-sign, 0x07 check-only, 0x08
// dont-enforce-user-presence-and-sign) and U2F_VERSION ("U2F_V2"). Every
// answer is response data followed by a two-byte status word: 0x9000
// success, 0x6985 conditions not satisfied (user presence missing, or a
// check-only request for one of our handles), 0x6A80 wrong data (a key handle
// that is not ours), 0x6A86 incorrect P1, 0x6700 wrong length, 0x6D00
// unknown instruction, 0x6E00 unknown class.
//
// Registration creates a fresh P-256 key pair. The key handle wraps the
// private key with AES-256-GCM under a per-device wrapping key, with the
// application parameter as additional data, so the key keeps no table and a
// handle is useless for another application or on another device. The
// attestation certificate is a self-signed P-256 certificate created once
// per device. Authentication signatures carry a single per-device counter
// that increases with every signature and never wraps: when it is
// exhausted the key answers 0x6985 forever.
//
// User presence is configurable (U2FPresenceAuto, U2FPresenceNever,
// U2FPresenceAfter) and Touch grants it for the next request that needs it;
// requests that need presence and do not get it answer 0x6985, as a real key
// does until it is touched. Faults can be injected with SetFault: busy and
// disconnected keys make Message return errors wrapping ErrU2FBusy and
// ErrU2FDisconnected (disconnection is permanent for that U2FKey, like a
// pulled USB key), and a garbage fault returns junk bytes.
//
// All randomness comes from U2FKeyOptions.Rand (crypto/rand when nil) and
// signatures are deterministic (RFC 6979), so a key built from a fixed
// reader produces identical bytes on every run. A U2FKey is safe for
// concurrent use; its state lives in memory only and is lost with it.
package sim
