package sim

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sync"
	"time"

	"github.com/flynn/u2f/u2ftoken"
)

var _ u2ftoken.Device = (*U2FKey)(nil)

var (
	// ErrU2FBusy is wrapped by the error Message returns while U2FFaultBusy is
	// injected.
	ErrU2FBusy = errors.New("sim: u2f key busy")
	// ErrU2FDisconnected is wrapped by the error Message returns once
	// U2FFaultDisconnect has been injected.
	ErrU2FDisconnected = errors.New("sim: u2f key disconnected")
)

// U2F instruction bytes and authentication control bytes (P1).
const (
	insRegister     = 0x01
	insAuthenticate = 0x02
	insVersion      = 0x03

	authEnforce     = 0x03
	authCheckOnly   = 0x07
	authDontEnforce = 0x08
)

// Status words a U2FKey answers with.
const (
	swNoError                = 0x9000
	swWrongLength            = 0x6700
	swConditionsNotSatisfied = 0x6985
	swWrongData              = 0x6a80
	swIncorrectP1P2          = 0x6a86
	swInsNotSupported        = 0x6d00
	swClaNotSupported        = 0x6e00
	swUnknown                = 0x6f00
)

// Sizes of the U2F messages and of the key handle.
const (
	paramLen      = 32 // challenge and application parameters
	scalarLen     = 32 // P-256 private scalar
	nonceLen      = 12 // AES-GCM nonce
	keyHandleLen  = nonceLen + scalarLen + 16
	maxGarbageLen = 64
)

// DefaultU2FKeyName is the device name used when U2FKeyOptions.Name is empty.
const DefaultU2FKeyName = "mfad simulated U2F key"

// Validity of the self-signed attestation certificate. Fixed so that a key
// built from a fixed Rand produces the same certificate on every run.
var (
	attestationNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	attestationNotAfter  = time.Date(2054, 1, 1, 0, 0, 0, 0, time.UTC)
)

// U2FPresence says how a U2FKey answers requests that need user presence:
// the number of such requests it refuses with status 0x6985 before the user
// "touches" it. U2FPresenceAuto (0) grants presence at once, U2FPresenceNever
// refuses forever and U2FPresenceAfter(n) refuses the first n requests and
// grants every later one.
type U2FPresence int

const (
	// U2FPresenceAuto grants user presence to every request, as if the user
	// kept a finger on the key.
	U2FPresenceAuto U2FPresence = 0
	// U2FPresenceNever refuses user presence until Touch is called.
	U2FPresenceNever U2FPresence = -1
)

// U2FPresenceAfter refuses user presence to the first n requests that need it
// and grants it to every later one, simulating a user who touches the key
// after being prompted. n <= 0 is U2FPresenceAuto.
func U2FPresenceAfter(n int) U2FPresence {
	if n <= 0 {
		return U2FPresenceAuto
	}
	return U2FPresence(n)
}

// U2FFault is a transport fault injected with U2FKey.SetFault.
type U2FFault int

const (
	// U2FFaultNone lets the key answer normally.
	U2FFaultNone U2FFault = iota
	// U2FFaultBusy makes Message return an error wrapping ErrU2FBusy.
	U2FFaultBusy
	// U2FFaultGarbage makes Message return between 0 and 63 random bytes whose
	// last two bytes are never 0x9000, 0x6985 or 0x6A80, so they cannot be
	// mistaken for a success, a presence request or an unknown handle.
	U2FFaultGarbage
	// U2FFaultDisconnect makes this and every later Message call return an
	// error wrapping ErrU2FDisconnected; SetFault cannot undo it.
	U2FFaultDisconnect
	// U2FFaultWrongChallenge makes the key sign authentications over a
	// challenge other than the one it was sent (a well-formed but invalid
	// signature, as from a broken key or a tampered channel).
	U2FFaultWrongChallenge
	// U2FFaultReplay makes the key answer authentications with its previous
	// authentication response (a replayed signature on an old challenge).
	U2FFaultReplay
)

// String returns the fault's name.
func (f U2FFault) String() string {
	switch f {
	case U2FFaultNone:
		return "none"
	case U2FFaultBusy:
		return "busy"
	case U2FFaultGarbage:
		return "garbage"
	case U2FFaultDisconnect:
		return "disconnect"
	case U2FFaultWrongChallenge:
		return "wrong-challenge"
	case U2FFaultReplay:
		return "replay"
	}
	return fmt.Sprintf("U2FFault(%d)", int(f))
}

// U2FKeyOptions configure NewU2FKey.
type U2FKeyOptions struct {
	// Name is the device name, used as the attestation certificate's common
	// name and in error messages. Empty means DefaultU2FKeyName.
	Name string
	// Presence is the initial user-presence behaviour.
	Presence U2FPresence
	// Rand is the source of all key material, nonces and serial numbers.
	// Nil means crypto/rand.Reader.
	Rand io.Reader
}

// U2FKey is a simulated FIDO U2F security key. Create it with NewU2FKey; it
// is safe for concurrent use.
type U2FKey struct {
	name    string
	rand    io.Reader
	wrap    cipher.AEAD
	attKey  *ecdsa.PrivateKey
	attCert []byte

	mu           sync.Mutex
	counter      uint32
	presence     U2FPresence
	touched      bool
	fault        U2FFault
	disconnected bool
	calls        int
	winks        int
	lastAuth     []byte // the last authentication response, for U2FFaultReplay
}

// NewU2FKey creates a simulated U2F key with a fresh wrapping key, a fresh
// attestation key and a self-signed attestation certificate, all drawn from
// opts.Rand.
func NewU2FKey(opts U2FKeyOptions) (*U2FKey, error) {
	k := &U2FKey{name: opts.Name, rand: opts.Rand, presence: opts.Presence}
	if k.name == "" {
		k.name = DefaultU2FKeyName
	}
	if k.rand == nil {
		k.rand = rand.Reader
	}
	wrapKey := make([]byte, 32)
	if _, err := io.ReadFull(k.rand, wrapKey); err != nil {
		return nil, fmt.Errorf("creating wrapping key: %w", err)
	}
	block, err := aes.NewCipher(wrapKey)
	if err != nil {
		return nil, fmt.Errorf("creating wrapping key: %w", err)
	}
	if k.wrap, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("creating wrapping key: %w", err)
	}
	if k.attKey, err = k.newP256Key(); err != nil {
		return nil, fmt.Errorf("creating attestation key: %w", err)
	}
	if k.attCert, err = k.newAttestationCert(); err != nil {
		return nil, fmt.Errorf("creating attestation certificate: %w", err)
	}
	return k, nil
}

// newP256Key draws a P-256 private key from k.rand, rejecting the rare
// 32-byte strings that are not a valid scalar.
func (k *U2FKey) newP256Key() (*ecdsa.PrivateKey, error) {
	b := make([]byte, scalarLen)
	for range 64 {
		if _, err := io.ReadFull(k.rand, b); err != nil {
			return nil, err
		}
		if key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return key, nil
		}
	}
	return nil, errors.New("random source yields no valid p-256 scalar")
}

func (k *U2FKey) newAttestationCert() ([]byte, error) {
	serial := make([]byte, 16)
	if _, err := io.ReadFull(k.rand, serial); err != nil {
		return nil, err
	}
	serial[0] &= 0x7f
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serial),
		Subject:      pkix.Name{CommonName: k.name},
		NotBefore:    attestationNotBefore,
		NotAfter:     attestationNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	return x509.CreateCertificate(k.rand, tmpl, tmpl, &k.attKey.PublicKey, deterministicSigner{k.attKey})
}

// deterministicSigner signs with RFC 6979 nonces whatever reader it is given.
type deterministicSigner struct{ key *ecdsa.PrivateKey }

func (s deterministicSigner) Public() crypto.PublicKey { return &s.key.PublicKey }

func (s deterministicSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.key.Sign(nil, digest, opts)
}

// sign returns the DER ECDSA signature of SHA-256(msg), deterministic per
// RFC 6979.
func sign(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	digest := sha256.Sum256(msg)
	return key.Sign(nil, digest[:], crypto.SHA256)
}

// Name returns the device name.
func (k *U2FKey) Name() string { return k.name }

// AttestationCertificate returns a copy of the DER attestation certificate.
func (k *U2FKey) AttestationCertificate() []byte {
	return append([]byte(nil), k.attCert...)
}

// Counter returns the signature counter: the number of authentication
// signatures made so far.
func (k *U2FKey) Counter() uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.counter
}

// Calls returns the number of Message calls so far, including failed ones.
func (k *U2FKey) Calls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.calls
}

// Wink makes the key blink (U2FHID_WINK), so the user knows which key to
// touch; the simulated key only counts it. A disconnected key fails.
func (k *U2FKey) Wink() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fault == U2FFaultDisconnect {
		return fmt.Errorf("u2f key %q: %w", k.name, ErrU2FDisconnected)
	}
	k.winks++
	return nil
}

// Winks returns how often the key was asked to blink.
func (k *U2FKey) Winks() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.winks
}

// Touch grants user presence to the next request that needs it, whatever
// the presence mode.
func (k *U2FKey) Touch() {
	k.mu.Lock()
	k.touched = true
	k.mu.Unlock()
}

// SetPresence replaces the user-presence behaviour; a pending Touch is kept.
func (k *U2FKey) SetPresence(p U2FPresence) {
	k.mu.Lock()
	k.presence = p
	k.mu.Unlock()
}

// SetFault injects f into every later Message call until the next SetFault.
// U2FFaultDisconnect is permanent.
func (k *U2FKey) SetFault(f U2FFault) {
	k.mu.Lock()
	k.fault = f
	if f == U2FFaultDisconnect {
		k.disconnected = true
	}
	k.mu.Unlock()
}

// Message processes one raw U2F request APDU (CLA INS P1 P2, then for a
// request with data 0x00 Lc1 Lc2 data, optionally followed by a 2-byte Le)
// and returns the response data followed by the status word. It returns an
// error only under an injected U2FFaultBusy or U2FFaultDisconnect. The returned
// slice never aliases apdu.
func (k *U2FKey) Message(apdu []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	if k.disconnected {
		return nil, fmt.Errorf("u2f key %q: %w", k.name, ErrU2FDisconnected)
	}
	switch k.fault {
	case U2FFaultBusy:
		return nil, fmt.Errorf("u2f key %q: %w", k.name, ErrU2FBusy)
	case U2FFaultGarbage:
		return k.garbage(), nil
	}
	return k.process(apdu), nil
}

// garbage returns random junk that never ends in a meaningful status word.
func (k *U2FKey) garbage() []byte {
	var n [1]byte
	if _, err := io.ReadFull(k.rand, n[:]); err != nil {
		return nil
	}
	junk := make([]byte, int(n[0])%maxGarbageLen)
	if _, err := io.ReadFull(k.rand, junk); err != nil {
		return nil
	}
	if len(junk) >= 2 {
		switch binary.BigEndian.Uint16(junk[len(junk)-2:]) {
		case swNoError, swConditionsNotSatisfied, swWrongData:
			junk[len(junk)-1] ^= 0xff
		}
	}
	return junk
}

// status returns data followed by the status word sw.
func status(data []byte, sw uint16) []byte {
	return binary.BigEndian.AppendUint16(data, sw)
}

// process answers one APDU; k.mu is held.
func (k *U2FKey) process(apdu []byte) []byte {
	if len(apdu) < 4 {
		return status(nil, swWrongLength)
	}
	if apdu[0] != 0x00 {
		return status(nil, swClaNotSupported)
	}
	data, ok := requestData(apdu[4:])
	if !ok {
		return status(nil, swWrongLength)
	}
	switch ins, p1 := apdu[1], apdu[2]; ins {
	case insRegister:
		return k.register(data)
	case insAuthenticate:
		return k.authenticate(p1, data)
	case insVersion:
		if len(data) != 0 {
			return status(nil, swWrongLength)
		}
		return status([]byte("U2F_V2"), swNoError)
	default:
		return status(nil, swInsNotSupported)
	}
}

// requestData extracts the data of an extended-length APDU body (everything
// after the 4 header bytes): empty, or 0x00 Lc1 Lc2 followed by exactly Lc
// bytes of data and an optional 2-byte Le.
func requestData(body []byte) ([]byte, bool) {
	if len(body) == 0 {
		return nil, true
	}
	if len(body) < 3 || body[0] != 0x00 {
		return nil, false
	}
	lc := int(body[1])<<8 | int(body[2])
	rest := body[3:]
	if len(rest) != lc && len(rest) != lc+2 {
		return nil, false
	}
	return rest[:lc], true
}

// presenceGiven reports whether a request needing user presence gets it,
// consuming a pending Touch or one refusal of the presence mode.
func (k *U2FKey) presenceGiven() bool {
	switch {
	case k.touched:
		k.touched = false
		return true
	case k.presence == U2FPresenceAuto:
		return true
	case k.presence > 0:
		k.presence--
	}
	return false
}

// register answers U2F_REGISTER: data is challengeParam | appParam.
func (k *U2FKey) register(data []byte) []byte {
	if len(data) != 2*paramLen {
		return status(nil, swWrongLength)
	}
	if !k.presenceGiven() {
		return status(nil, swConditionsNotSatisfied)
	}
	chal, app := data[:paramLen], data[paramLen:]
	key, err := k.newP256Key()
	if err != nil {
		return status(nil, swUnknown)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		return status(nil, swUnknown)
	}
	priv, err := key.Bytes()
	if err != nil {
		return status(nil, swUnknown)
	}
	handle := make([]byte, nonceLen, keyHandleLen)
	if _, err := io.ReadFull(k.rand, handle); err != nil {
		return status(nil, swUnknown)
	}
	handle = k.wrap.Seal(handle, handle[:nonceLen], priv, app)

	signed := make([]byte, 0, 1+2*paramLen+len(handle)+len(pub))
	signed = append(signed, 0x00)
	signed = append(signed, app...)
	signed = append(signed, chal...)
	signed = append(signed, handle...)
	signed = append(signed, pub...)
	sig, err := sign(k.attKey, signed)
	if err != nil {
		return status(nil, swUnknown)
	}

	resp := make([]byte, 0, 1+len(pub)+1+len(handle)+len(k.attCert)+len(sig)+2)
	resp = append(resp, 0x05)
	resp = append(resp, pub...)
	resp = append(resp, byte(len(handle)))
	resp = append(resp, handle...)
	resp = append(resp, k.attCert...)
	resp = append(resp, sig...)
	return status(resp, swNoError)
}

// unwrap returns the private key a handle wraps for app, or false when the
// handle was not made by this device for app.
func (k *U2FKey) unwrap(handle, app []byte) (*ecdsa.PrivateKey, bool) {
	if len(handle) != keyHandleLen {
		return nil, false
	}
	priv, err := k.wrap.Open(nil, handle[:nonceLen], handle[nonceLen:], app)
	if err != nil {
		return nil, false
	}
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), priv)
	if err != nil {
		return nil, false
	}
	return key, true
}

// authenticate answers U2F_AUTHENTICATE: data is challengeParam | appParam |
// L | keyHandle of length L.
func (k *U2FKey) authenticate(p1 byte, data []byte) []byte {
	if p1 != authEnforce && p1 != authCheckOnly && p1 != authDontEnforce {
		return status(nil, swIncorrectP1P2)
	}
	if len(data) < 2*paramLen+1 || len(data) != 2*paramLen+1+int(data[2*paramLen]) {
		return status(nil, swWrongLength)
	}
	chal, app, handle := data[:paramLen], data[paramLen:2*paramLen], data[2*paramLen+1:]
	key, ok := k.unwrap(handle, app)
	if !ok {
		return status(nil, swWrongData)
	}
	var flags byte
	switch p1 {
	case authCheckOnly:
		return status(nil, swConditionsNotSatisfied)
	case authEnforce:
		if !k.presenceGiven() {
			return status(nil, swConditionsNotSatisfied)
		}
		flags = 0x01
	}
	if k.fault == U2FFaultReplay && k.lastAuth != nil {
		return status(bytes.Clone(k.lastAuth), swNoError)
	}
	if k.counter == math.MaxUint32 {
		return status(nil, swConditionsNotSatisfied)
	}
	k.counter++
	if k.fault == U2FFaultWrongChallenge {
		chal = bytes.Clone(chal)
		chal[0] ^= 0x01
	}

	resp := make([]byte, 0, 2*paramLen+5+80)
	resp = append(resp, app...)
	resp = append(resp, flags)
	resp = binary.BigEndian.AppendUint32(resp, k.counter)
	resp = append(resp, chal...)
	sig, err := sign(key, resp)
	if err != nil {
		return status(nil, swUnknown)
	}
	// The response is the signed bytes minus appParam and challengeParam.
	resp = append(resp[paramLen:paramLen+5], sig...)
	if p1 == authEnforce {
		k.lastAuth = bytes.Clone(resp)
	}
	return status(resp, swNoError)
}
