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
// u2fhid. Message skips the HID framing; U2FHID, below, adds it.
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
//
// U2FHID puts a U2FKey behind the USB HID interface of a real key, the FIDO
// U2F HID protocol (U2FHID; CTAPHID frames these commands the same way):
// 64-byte reports; requests and responses of up to 7609 bytes split into an
// initialisation packet and continuation packets numbered 0 to 127;
// channels allocated by U2FHID_INIT on the broadcast channel 0xFFFFFFFF and
// numbered from 1; U2FHID_MSG carrying the APDUs to the key; U2FHID_PING,
// U2FHID_WINK and U2FHID_LOCK; and U2FHID_ERROR with the protocol's codes:
// invalid command (0x01), parameter (0x02), length (0x03) or sequence
// (0x04), message timeout (0x05: a request whose reports stop arriving is
// aborted after U2FHIDOptions.Timeout), channel busy (0x06: while another
// channel's request is incomplete, another channel holds the lock, or the
// key has a busy fault), invalid channel (0x0B) and other (0x7F). INIT is
// answered even while another channel is busy, continuation packets that
// belong to no transaction are ignored, and a disconnect fault unplugs the
// device. Every reader gets every input report, as with hidraw, paced one
// per U2FHIDOptions.ReportInterval (1 ms, like a full-speed key).
//
// mfad drives real keys with flynn/u2f's u2fhid package, which cannot be
// given a custom flynn/hid Device: u2fhid.Open takes a *hid.DeviceInfo and
// opens its Path itself, with a plain open, read and write on Linux. So the
// simulated key meets u2fhid at that file. OpenPTY, and Devices for
// hw/u2f.HID, present a fresh pseudo-terminal per host, raw and set so that
// a read returns one whole report, and u2fhid, u2ftoken and the hw/u2f
// client run unchanged against it, flynn/hid's Linux reader included. Only
// the hidraw ioctls that list devices and read report descriptors are left
// out. Where the kernel offers /dev/uhid, AttachUHID plugs the device in as
// a real USB HID device (vendor 0x1209, product 0x0001, a pid.codes test
// ID) with the FIDO report descriptor, so that those run too. Open returns
// an in-memory handle, a flynn/hid Device, for tests at the report level.
//
// # GSM modem
//
// Modem is a simulated GSM modem that answers AT commands on a real
// pseudo-terminal, so that mfad's serial, AT and PDU code, and peers such as
// smstools3's smsd and Gammu SMSD, run against it unchanged. NewModem opens
// /dev/ptmx, puts both sides in raw mode (115200 8N1, no echo, no flow
// control) and serves until Close; clients open Path(), or the symbolic link
// ModemOptions.Link, like a serial port. The modem holds no descriptor of
// the slave, so while no client has it open the master reads EIO: the modem
// takes that as "no client", drops its output as a closed serial port does,
// discards what the last client left unread, and serves the next client.
// Settings outlive clients, as on a real modem. Serve ties the modem's life
// to a context, for a process that runs one until it is signalled.
//
// Answers follow ITU-T V.250 and 3GPP TS 27.007 and 27.005 as real modems
// give them: "\r\nOK\r\n", "\r\nERROR\r\n", "\r\n+CME ERROR: <n>\r\n"
// (plain ERROR under AT+CMEE=0, the number under 1, the text under 2) and
// "\r\n+CMS ERROR: <n>\r\n" (always numeric). Echo is on after power-up and
// ATZ and is byte by byte; ATV0 gives numeric result codes and ATQ1 none. A
// command line starts with AT in any case, can chain commands (ATE0V1,
// AT+CMGF=0;+CSCS="GSM"), ignores spaces outside quotes and is edited with
// backspace; ESC discards it, A/ repeats the last one, text before AT is
// ignored, and an unknown command answers ERROR. Besides the V.250 basics
// (Z, &F, E, V, Q, I, S registers and harmless ones such as &C, &D, &K)
// the modem knows +GCAP (+CGSM), the identification commands (+CGMI, +CGMM,
// +CGMR, +CGSN, +CIMI and their +G forms), +CMEE, +CFUN, +CPIN, +CREG,
// +CGREG, +CEREG, +CSQ, +COPS, +CGATT, +CPAS, +CCLK, +CBC, +CNUM, +CPBS,
// +CHUP, +CUSD and the SMS commands +CMGF, +CSCS (GSM, UCS2, IRA, 8859-1),
// +CSCA, +CSMP, +CNMI, +CSDH, +CSMS, +CMMS, +CPMS, +CMGL, +CMGR, +CMGD, +CNMA
// and +CMGS. Message storage is always empty. Strings in answers and
// parameters are in the +CSCS character set, as on real modems: under UCS2
// +CSCA? answers the number in hex.
//
// With ModemOptions.PIN set the SIM starts locked: +CPIN? answers SIM PIN,
// the modem is not registered, commands that need the SIM answer +CME
// ERROR: 11 (+CMS ERROR: 311 for the SMS commands of TS 27.005) and three
// wrong PINs (+CME ERROR: 16) leave it wanting the PUK
// (AT+CPIN="<puk>","<new pin>"); ten wrong PUKs block it for good.
//
// AT+CMGS sends. In PDU mode (+CMGF=0, the default) AT+CMGS=<length> gets
// the "> " prompt, then the SMSC address and SMS-SUBMIT TPDU in hex up to
// Ctrl-Z; the modem checks the length, decodes the PDU with
// github.com/warthog618/sms, and reassembles concatenated messages (8-bit
// and 16-bit references, parts in any order) into one SMS; a malformed PDU
// answers +CMS ERROR: 304. In text mode AT+CMGS="<number>"[,<type>] takes
// the text in the +CSCS character set, or in hex when the +CSMP data coding
// is UCS2 or 8-bit, each CR giving a new prompt. ESC cancels with OK.
// Success answers +CMGS: <mr>, the reference counting up modulo 256, and a
// message that asked for a status report, with ModemOptions.DeliveryReports
// set and +CNMI ds=1, is followed by a +CDS URC reporting it delivered.
// Inbox, WaitSMS and Sends report what was sent; SMS.LogValue redacts it.
//
// Faults can be injected at any time: FailSends (+CMS ERROR: <cms> for the
// next sends), SetRegistered (no network gives +CMS ERROR: 331; changes
// come as +CREG, +CGREG and +CEREG URCs to clients that asked),
// SetPINRequired, SetReplyDelay and ModemOptions.SendDelay (a slow modem or
// network), Wedge (the modem reads and drops everything), InjectURC and
// SetURCNoise (RING, +CMTI, +CREG, ^RSSI and +CIEV around every reply and
// in between), Vanish (the device disappears, clients read EOF or EIO and
// the link goes) and Reappear (a new /dev/pts number, the link re-pointed,
// a freshly powered modem). Reset clears the faults. A Modem is safe for
// concurrent use.
package sim
