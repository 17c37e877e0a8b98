package sim

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mfad/mfad/hw/u2f"
)

// The framing tests run inside synctest bubbles: report pacing and
// transaction timeouts then take virtual time, and a missing answer fails
// the test at once instead of after a real timeout.

// testHost is a host application speaking U2FHID over one handle, written
// from the protocol specification independently of the device code.
type testHost struct {
	t   testing.TB
	d   *U2FHIDDevice
	cid uint32
}

// newTestHost opens a handle on h and, if init is set, allocates a channel
// with U2FHID_INIT.
func newTestHost(t testing.TB, h *U2FHID, init bool) *testHost {
	t.Helper()
	d, err := h.Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	host := &testHost{t: t, d: d}
	if init {
		// A fresh nonce, so that hosts tell their answers apart.
		nonce := make([]byte, 8)
		rand.Read(nonce)
		host.send(hidBroadcastCID, hidCmdInit, nonce)
		resp := host.expect(hidBroadcastCID, hidCmdInit)
		if len(resp) != 17 || !bytes.Equal(resp[:8], nonce) {
			t.Fatalf("INIT response %x", resp)
		}
		host.cid = binary.BigEndian.Uint32(resp[8:12])
	}
	return host
}

// writeReport writes one raw 64-byte report.
func (c *testHost) writeReport(r []byte) {
	c.t.Helper()
	if err := c.d.Write(append([]byte{0}, r...)); err != nil {
		c.t.Fatalf("Write: %v", err)
	}
}

// hidReports frames a request the way the specification describes: an
// initialisation packet, then continuation packets numbered from 0.
func hidReports(cid uint32, cmd byte, payload []byte) [][]byte {
	r := make([]byte, 64)
	binary.BigEndian.PutUint32(r, cid)
	r[4] = cmd
	binary.BigEndian.PutUint16(r[5:], uint16(len(payload)))
	payload = payload[copy(r[7:], payload):]
	out := [][]byte{r}
	for seq := 0; len(payload) > 0; seq++ {
		r := make([]byte, 64)
		binary.BigEndian.PutUint32(r, cid)
		r[4] = byte(seq)
		payload = payload[copy(r[5:], payload):]
		out = append(out, r)
	}
	return out
}

// send writes a whole request.
func (c *testHost) send(cid uint32, cmd byte, payload []byte) {
	c.t.Helper()
	for _, r := range hidReports(cid, cmd, payload) {
		c.writeReport(r)
	}
}

// next returns the next input report, failing if none comes within a
// minute (of virtual time in a bubble).
func (c *testHost) next() []byte {
	c.t.Helper()
	select {
	case r, ok := <-c.d.ReadCh():
		if !ok {
			c.t.Fatalf("read channel closed: %v", c.d.ReadError())
		}
		if len(r) != 64 {
			c.t.Fatalf("input report of %d bytes", len(r))
		}
		return r
	case <-time.After(time.Minute):
		c.t.Fatal("no input report")
		return nil
	}
}

// receive reads one response on cid, skipping other channels' reports, and
// returns its command, its payload and the number of reports it took.
func (c *testHost) receive(cid uint32) (cmd byte, payload []byte, n int) {
	c.t.Helper()
	r := c.next()
	for binary.BigEndian.Uint32(r) != cid {
		r = c.next()
	}
	if r[4]&0x80 == 0 {
		c.t.Fatalf("response on %08x starts with continuation %x", cid, r[4])
	}
	cmd, want := r[4], int(binary.BigEndian.Uint16(r[5:7]))
	payload = append(payload, r[7:7+min(want, 57)]...)
	n = 1
	for seq := byte(0); len(payload) < want; seq++ {
		r := c.next()
		if binary.BigEndian.Uint32(r) != cid {
			continue
		}
		if r[4] != seq {
			c.t.Fatalf("continuation %d, want %d", r[4], seq)
		}
		payload = append(payload, r[5:5+min(want-len(payload), 59)]...)
		n++
	}
	return cmd, payload, n
}

// expect reads a response on cid and requires command cmd.
func (c *testHost) expect(cid uint32, cmd byte) []byte {
	c.t.Helper()
	got, payload, _ := c.receive(cid)
	if got != cmd {
		c.t.Fatalf("response command %#x %x, want %#x", got, payload, cmd)
	}
	return payload
}

// expectError reads a response on cid and requires U2FHID_ERROR code.
func (c *testHost) expectError(cid uint32, code byte) {
	c.t.Helper()
	if p := c.expect(cid, hidCmdError); len(p) != 1 || p[0] != code {
		c.t.Fatalf("error payload %x, want %02x", p, code)
	}
}

// expectNothing requires that no input report is pending once every
// goroutine of the bubble is blocked.
func (c *testHost) expectNothing() {
	c.t.Helper()
	synctest.Wait()
	select {
	case r := <-c.d.ReadCh():
		c.t.Fatalf("unexpected input report %x", r)
	default:
	}
}

// ping sends data on the host's channel and requires it back.
func (c *testHost) ping(data []byte) {
	c.t.Helper()
	c.send(c.cid, hidCmdPing, data)
	if got := c.expect(c.cid, hidCmdPing); !bytes.Equal(got, data) {
		c.t.Fatalf("ping echoed %d bytes, want %d", len(got), len(data))
	}
}

// newTestHID returns the HID interface of a fresh test key; it is closed
// when the test ends.
func newTestHID(t testing.TB, seed uint64, opts U2FHIDOptions) *U2FHID {
	t.Helper()
	h := NewU2FHID(newTestKey(t, seed, U2FPresenceAuto), opts)
	t.Cleanup(func() { h.Close() })
	return h
}

func TestU2FHIDInit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 1, U2FHIDOptions{})
		a := newTestHost(t, h, false)
		b := newTestHost(t, h, false)

		nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8}
		a.send(hidBroadcastCID, hidCmdInit, nonce)
		want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 1, 2, 1, 0, 0, 1}
		if got := a.expect(hidBroadcastCID, hidCmdInit); !bytes.Equal(got, want) {
			t.Fatalf("INIT response %x, want %x", got, want)
		}
		// Every reader sees every report, as with hidraw; the nonce tells
		// whose the answer is.
		if got := b.expect(hidBroadcastCID, hidCmdInit); !bytes.Equal(got, want) {
			t.Fatalf("second reader saw %x", got)
		}
		b.send(hidBroadcastCID, hidCmdInit, []byte("second!!"))
		if got := b.expect(hidBroadcastCID, hidCmdInit); !bytes.Equal(got[:8], []byte("second!!")) || binary.BigEndian.Uint32(got[8:]) != 2 {
			t.Fatalf("second allocation %x, want channel 2", got)
		}
		a.expect(hidBroadcastCID, hidCmdInit)

		// INIT on an allocated channel keeps it.
		a.send(1, hidCmdInit, nonce)
		if got := a.expect(1, hidCmdInit); binary.BigEndian.Uint32(got[8:]) != 1 {
			t.Fatalf("INIT on channel 1 answered %x", got)
		}
		b.expect(1, hidCmdInit)
		// ... but not on an unallocated one, and the nonce is 8 bytes.
		a.send(7, hidCmdInit, nonce)
		a.expectError(7, hidErrInvalidCID)
		b.expectError(7, hidErrInvalidCID)
		a.send(hidBroadcastCID, hidCmdInit, nonce[:7])
		a.expectError(hidBroadcastCID, hidErrInvalidLen)
		b.expectError(hidBroadcastCID, hidErrInvalidLen)
		a.expectNothing()
		b.expectNothing()
	})
}

func TestU2FHIDErrors(t *testing.T) {
	tests := []struct {
		name    string
		reports func(cid uint32) [][]byte
		errCID  func(cid uint32) uint32 // channel of the error; nil means cid
		code    byte
	}{
		{
			name:    "channel 0",
			reports: func(uint32) [][]byte { return hidReports(0, hidCmdPing, []byte("x")) },
			errCID:  func(uint32) uint32 { return 0 },
			code:    hidErrInvalidCID,
		},
		{
			name:    "ping on broadcast",
			reports: func(uint32) [][]byte { return hidReports(hidBroadcastCID, hidCmdPing, []byte("x")) },
			errCID:  func(uint32) uint32 { return hidBroadcastCID },
			code:    hidErrInvalidCID,
		},
		{
			name:    "unallocated channel",
			reports: func(cid uint32) [][]byte { return hidReports(cid+1, hidCmdMsg, apdu(0, insVersion, 0, nil)) },
			errCID:  func(cid uint32) uint32 { return cid + 1 },
			code:    hidErrInvalidCID,
		},
		{
			name:    "unknown command",
			reports: func(cid uint32) [][]byte { return hidReports(cid, 0x80|0x05, nil) },
			code:    hidErrInvalidCmd,
		},
		{
			name:    "old sync command",
			reports: func(cid uint32) [][]byte { return hidReports(cid, 0x80|0x3c, []byte{1}) },
			code:    hidErrInvalidCmd,
		},
		{
			name:    "vendor command",
			reports: func(cid uint32) [][]byte { return hidReports(cid, 0xc1, nil) },
			code:    hidErrInvalidCmd,
		},
		{
			name:    "error is not a request",
			reports: func(cid uint32) [][]byte { return hidReports(cid, hidCmdError, []byte{1}) },
			code:    hidErrInvalidCmd,
		},
		{
			name:    "ping too long",
			reports: func(cid uint32) [][]byte { return hidReports(cid, hidCmdPing, make([]byte, 7610))[:1] },
			code:    hidErrInvalidLen,
		},
		{
			name: "message length field 0xffff",
			reports: func(cid uint32) [][]byte {
				r := hidReports(cid, hidCmdMsg, nil)
				r[0][5], r[0][6] = 0xff, 0xff
				return r
			},
			code: hidErrInvalidLen,
		},
		{
			name:    "wink with data",
			reports: func(cid uint32) [][]byte { return hidReports(cid, hidCmdWink, []byte{1}) },
			code:    hidErrInvalidLen,
		},
		{
			name:    "lock without seconds",
			reports: func(cid uint32) [][]byte { return hidReports(cid, hidCmdLock, nil) },
			code:    hidErrInvalidLen,
		},
		{
			name:    "lock over 10 s",
			reports: func(cid uint32) [][]byte { return hidReports(cid, hidCmdLock, []byte{11}) },
			code:    hidErrInvalidPar,
		},
		{
			name: "continuation out of sequence",
			reports: func(cid uint32) [][]byte {
				r := hidReports(cid, hidCmdPing, make([]byte, 200))
				return [][]byte{r[0], r[2]}
			},
			code: hidErrInvalidSeq,
		},
		{
			name: "continuation repeated",
			reports: func(cid uint32) [][]byte {
				r := hidReports(cid, hidCmdPing, make([]byte, 200))
				return [][]byte{r[0], r[1], r[1]}
			},
			code: hidErrInvalidSeq,
		},
		{
			name: "new request before the last is complete",
			reports: func(cid uint32) [][]byte {
				r := hidReports(cid, hidCmdPing, make([]byte, 200))
				return [][]byte{r[0], r[1], r[0]}
			},
			code: hidErrInvalidSeq,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHID(t, 2, U2FHIDOptions{})
				c := newTestHost(t, h, true)
				for _, r := range tc.reports(c.cid) {
					c.writeReport(r)
				}
				errCID := c.cid
				if tc.errCID != nil {
					errCID = tc.errCID(c.cid)
				}
				c.expectError(errCID, tc.code)
				c.expectNothing()
				// The error left the device usable.
				c.ping([]byte("still there"))
				c.expectNothing()
			})
		})
	}
}

// TestU2FHIDIgnored checks the reports the protocol says to ignore.
func TestU2FHIDIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 3, U2FHIDOptions{})
		c := newTestHost(t, h, true)
		other := newTestHost(t, h, true)
		c.expect(hidBroadcastCID, hidCmdInit) // other's allocation
		long := hidReports(c.cid, hidCmdPing, make([]byte, 200))
		// Continuations without a transaction, on any channel.
		c.writeReport(long[1])
		c.writeReport(hidReports(0, 0, nil)[0])
		c.writeReport(hidReports(hidBroadcastCID, 0, nil)[0])
		// A continuation on another channel than the transaction's.
		c.writeReport(long[0])
		other.writeReport(hidReports(other.cid, hidCmdPing, make([]byte, 200))[1])
		c.expectNothing()
		other.expectNothing()
		for _, r := range long[1:] {
			c.writeReport(r)
		}
		c.expect(c.cid, hidCmdPing)
		other.ping([]byte("ok"))
	})
}

func TestU2FHIDMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 4, U2FHIDOptions{})
		c := newTestHost(t, h, true)

		c.send(c.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
		if got := c.expect(c.cid, hidCmdMsg); string(got) != "U2F_V2\x90\x00" {
			t.Fatalf("version %q", got)
		}

		// A registration response (about 520 bytes with the simulated
		// key's short attestation certificate, 1 KB and more with real
		// keys') spans many continuation packets.
		app, chal := u2f.AppParam(testAppID), randomParam(t)
		c.send(c.cid, hidCmdMsg, apdu(0, insRegister, 0, append(chal[:], app[:]...)))
		cmd, resp, n := c.receive(c.cid)
		if cmd != hidCmdMsg || statusWord(t, resp) != swNoError {
			t.Fatalf("register: command %#x, response %x", cmd, resp)
		}
		if len(resp) < 400 || n != 1+(len(resp)-57+58)/59 {
			t.Fatalf("register response of %d bytes in %d reports", len(resp), n)
		}
		reg, err := u2f.VerifyRegistration(resp[:len(resp)-2], app, chal)
		if err != nil {
			t.Fatalf("VerifyRegistration: %v", err)
		}

		// An authentication request (137 bytes) spans three packets.
		req := apdu(0, insAuthenticate, authEnforce, authData(testAppID, chal, reg.KeyHandle))
		if len(hidReports(c.cid, hidCmdMsg, req)) != 3 {
			t.Fatalf("authentication request of %d bytes", len(req))
		}
		c.send(c.cid, hidCmdMsg, req)
		resp = c.expect(c.cid, hidCmdMsg)
		if statusWord(t, resp) != swNoError {
			t.Fatalf("authenticate: %x", resp)
		}
		if _, err := u2f.VerifyAuthentication(resp[:len(resp)-2], reg.PublicKey, app, chal, 0, false); err != nil {
			t.Fatalf("VerifyAuthentication: %v", err)
		}

		// Malformed APDUs reach the key, which answers with a status word.
		c.send(c.cid, hidCmdMsg, nil)
		if got := c.expect(c.cid, hidCmdMsg); statusWord(t, got) != swWrongLength {
			t.Fatalf("empty message answered %x", got)
		}
	})
}

func TestU2FHIDPingMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 5, U2FHIDOptions{})
		c := newTestHost(t, h, true)
		data := make([]byte, hidMaxPayload)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if len(hidReports(c.cid, hidCmdPing, data)) != 129 {
			t.Fatal("a 7609-byte ping is not 129 reports")
		}
		start := time.Now()
		c.send(c.cid, hidCmdPing, data)
		cmd, got, n := c.receive(c.cid)
		if cmd != hidCmdPing || !bytes.Equal(got, data) || n != 129 {
			t.Fatalf("ping echoed %d bytes in %d reports, command %#x", len(got), n, cmd)
		}
		// The reports were paced like a full-speed USB key's.
		if d := time.Since(start); d < 128*DefaultU2FHIDReportInterval {
			t.Errorf("129 reports took %v of virtual time, want at least %v", d, 128*DefaultU2FHIDReportInterval)
		}
		c.ping(nil)
		c.ping([]byte{0})
		c.ping(make([]byte, 57))
		c.ping(make([]byte, 58))
	})
}

func TestU2FHIDBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 6, U2FHIDOptions{})
		a := newTestHost(t, h, true)
		b := newTestHost(t, h, true)
		a.expect(hidBroadcastCID, hidCmdInit) // b's allocation

		data := bytes.Repeat([]byte("busy"), 50)
		ra := hidReports(a.cid, hidCmdPing, data)
		a.writeReport(ra[0])
		// While a's request is incomplete, b's requests are refused...
		b.send(b.cid, hidCmdPing, []byte("b"))
		b.expectError(b.cid, hidErrChannelBusy)
		b.send(b.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
		b.expectError(b.cid, hidErrChannelBusy)
		// ... except INIT, which allocates a channel at once.
		c := newTestHost(t, h, true)
		// a's request goes on.
		for _, r := range ra[1:] {
			a.writeReport(r)
		}
		if got := a.expect(a.cid, hidCmdPing); !bytes.Equal(got, data) {
			t.Fatal("a's ping corrupted")
		}
		b.ping([]byte("now"))
		c.ping([]byte("me too"))

		// A busy key makes the channel busy, too.
		h.Key().SetFault(U2FFaultBusy)
		a.send(a.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
		a.expectError(a.cid, hidErrChannelBusy)
		h.Key().SetFault(U2FFaultNone)
		a.send(a.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
		a.expect(a.cid, hidCmdMsg)
	})
}

func TestU2FHIDTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, 100 * time.Millisecond} {
		want := timeout
		if want == 0 {
			want = DefaultU2FHIDTimeout
		}
		t.Run(want.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHID(t, 7, U2FHIDOptions{Timeout: timeout})
				a := newTestHost(t, h, true)
				b := newTestHost(t, h, true)
				a.expect(hidBroadcastCID, hidCmdInit)

				ra := hidReports(a.cid, hidCmdPing, make([]byte, 500))
				start := time.Now()
				a.writeReport(ra[0])
				a.writeReport(ra[1])
				time.Sleep(want - time.Nanosecond)
				b.send(b.cid, hidCmdPing, nil)
				b.expectError(b.cid, hidErrChannelBusy)
				a.expectError(a.cid, hidErrMsgTimeout)
				// Virtual time: the abort comes at the timeout, give or take
				// the report pacing.
				if d := time.Since(start); d < want || d > want+10*time.Millisecond {
					t.Errorf("timed out after %v, want %v", d, want)
				}
				// The rest of the message is ignored; both channels work.
				for _, r := range ra[2:] {
					a.writeReport(r)
				}
				a.expectNothing()
				b.ping([]byte("free"))
				a.ping([]byte("again"))
			})
		})
	}
}

func TestU2FHIDLock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 8, U2FHIDOptions{})
		a := newTestHost(t, h, true)
		b := newTestHost(t, h, true)
		a.expect(hidBroadcastCID, hidCmdInit)

		a.send(a.cid, hidCmdLock, []byte{3})
		a.expect(a.cid, hidCmdLock)
		a.ping([]byte("mine"))
		b.send(b.cid, hidCmdPing, []byte("x"))
		b.expectError(b.cid, hidErrChannelBusy)
		time.Sleep(3 * time.Second)
		b.ping([]byte("expired"))

		a.send(a.cid, hidCmdLock, []byte{10})
		a.expect(a.cid, hidCmdLock)
		b.send(b.cid, hidCmdLock, []byte{0}) // not b's lock to release
		b.expectError(b.cid, hidErrChannelBusy)
		a.send(a.cid, hidCmdLock, []byte{0})
		a.expect(a.cid, hidCmdLock)
		b.ping([]byte("released"))
	})
}

func TestU2FHIDWink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 9, U2FHIDOptions{})
		c := newTestHost(t, h, true)
		c.send(c.cid, hidCmdWink, nil)
		if got := c.expect(c.cid, hidCmdWink); len(got) != 0 {
			t.Fatalf("WINK answered %x", got)
		}
		if n := h.Key().Winks(); n != 1 {
			t.Fatalf("key winked %d times", n)
		}
	})
}

func TestU2FHIDDisconnect(t *testing.T) {
	for _, when := range []string{"message", "wink", "open", "close"} {
		t.Run(when, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHID(t, 10, U2FHIDOptions{})
				c := newTestHost(t, h, true)
				switch when {
				case "message":
					h.Key().SetFault(U2FFaultDisconnect)
					c.send(c.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
				case "wink":
					h.Key().SetFault(U2FFaultDisconnect)
					c.send(c.cid, hidCmdWink, nil)
				case "open":
					h.Key().SetFault(U2FFaultDisconnect)
					if _, err := h.Open(); !errors.Is(err, ErrU2FDisconnected) {
						t.Fatalf("Open of a pulled key: %v", err)
					}
				case "close":
					h.Close()
				}
				// The reader sees the device go away, with no answer.
				if r, ok := <-c.d.ReadCh(); ok {
					t.Fatalf("pulled key answered %x", r)
				}
				if err := c.d.ReadError(); !errors.Is(err, ErrU2FDisconnected) {
					t.Fatalf("ReadError = %v, want ErrU2FDisconnected", err)
				}
				if err := c.d.Write(make([]byte, 65)); !errors.Is(err, ErrU2FDisconnected) {
					t.Fatalf("Write to a pulled key: %v", err)
				}
				if _, err := h.Open(); !errors.Is(err, ErrU2FDisconnected) {
					t.Fatalf("Open of a pulled key: %v", err)
				}
				if infos, err := h.Devices(); len(infos) != 0 || err != nil {
					t.Fatalf("Devices of a pulled key = %v, %v; want none", infos, err)
				}
				if n := h.openHandles(); n != 0 {
					t.Fatalf("%d handles still open", n)
				}
			})
		})
	}
}

func TestU2FHIDDeviceHandle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 11, U2FHIDOptions{})
		c := newTestHost(t, h, true)
		for _, bad := range [][]byte{nil, {1, 0xff, 0xff, 0xff, 0xff, hidCmdInit}, make([]byte, 66)} {
			if err := c.d.Write(bad); err == nil {
				t.Errorf("Write(%d bytes starting %x) succeeded", len(bad), bad[:min(len(bad), 1)])
			}
		}
		// A short report is zero-padded.
		nonce := []byte("shortrep")
		short := append([]byte{0, 0xff, 0xff, 0xff, 0xff, hidCmdInit, 0, 8}, nonce...)
		if err := c.d.Write(short); err != nil {
			t.Fatal(err)
		}
		if got := c.expect(hidBroadcastCID, hidCmdInit); !bytes.Equal(got[:8], nonce) {
			t.Fatalf("short INIT answered %x", got)
		}

		// A reader that never reads loses reports beyond the queue but
		// does not hold up the others.
		idle := newTestHost(t, h, false)
		for range 3 {
			c.ping(make([]byte, hidMaxPayload))
		}
		synctest.Wait()
		h.mu.Lock()
		queued, dropped := len(idle.d.queue), idle.d.dropped
		h.mu.Unlock()
		// One report waits in the pump, hidQueueLen in the queue.
		if queued != hidQueueLen || dropped != 3*129-hidQueueLen-1 {
			t.Errorf("idle reader: %d reports queued, %d dropped", queued, dropped)
		}

		c.d.Close()
		c.d.Close()
		if _, ok := <-c.d.ReadCh(); ok {
			t.Fatal("read channel open after Close")
		}
		if err := c.d.ReadError(); err != nil {
			t.Fatalf("ReadError after Close = %v", err)
		}
		if err := c.d.Write(make([]byte, 65)); err == nil {
			t.Fatal("Write after Close succeeded")
		}
		idle.d.Close()
		if n := h.openHandles(); n != 0 {
			t.Fatalf("%d handles open", n)
		}
	})
}

func TestU2FHIDConcurrentHosts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHID(t, 12, U2FHIDOptions{})
		errs := make(chan error, 4)
		for i := range 4 {
			go func() {
				errs <- func() (err error) {
					// A failing host reports instead of calling t.Fatal
					// off the test goroutine.
					ft := &failRecorder{TB: t}
					defer func() {
						if r := recover(); r != nil {
							if r != errFailNow {
								panic(r)
							}
							err = ft.err
						}
					}()
					c := newTestHost(ft, h, true)
					for j := 0; j < 20; {
						data := fmt.Appendf(nil, "host %d ping %d %s", i, j, bytes.Repeat([]byte{byte(j)}, 100))
						c.send(c.cid, hidCmdPing, data)
						cmd, got, _ := c.receive(c.cid)
						switch {
						case cmd == hidCmdError && len(got) == 1 && got[0] == hidErrChannelBusy:
							continue // another host's transaction; try again
						case cmd != hidCmdPing || !bytes.Equal(got, data):
							return fmt.Errorf("host %d: command %#x, %d bytes", i, cmd, len(got))
						}
						j++
					}
					return nil
				}()
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

// errFailNow is what failRecorder panics with to stop a host goroutine.
var errFailNow = errors.New("host failed")

// failRecorder turns Fatalf into an error, for hosts on other goroutines.
type failRecorder struct {
	testing.TB
	err error
}

func (r *failRecorder) Helper() {}

func (r *failRecorder) Fatalf(format string, args ...any) {
	r.err = fmt.Errorf(format, args...)
	panic(errFailNow)
}

func (r *failRecorder) Fatal(args ...any) {
	r.err = errors.New(fmt.Sprint(args...))
	panic(errFailNow)
}

// FuzzU2FHIDFraming feeds arbitrary reports to the device: it must not
// panic, must answer only with well-formed reports, and must serve a new
// host once the timeout has passed.
func FuzzU2FHIDFraming(f *testing.F) {
	key := newTestKey(f, 13, U2FPresenceAuto)
	cat := func(rs ...[][]byte) []byte {
		var b []byte
		for _, r := range rs {
			for _, p := range r {
				b = append(b, p...)
			}
		}
		return b
	}
	ping := hidReports(1, hidCmdPing, make([]byte, 300))
	f.Add(cat(hidReports(hidBroadcastCID, hidCmdInit, []byte("12345678"))))
	f.Add(cat(hidReports(hidBroadcastCID, hidCmdInit, []byte("12345678")), ping))
	f.Add(cat(hidReports(hidBroadcastCID, hidCmdInit, []byte("12345678")), ping[:3]))
	f.Add(cat(hidReports(hidBroadcastCID, hidCmdInit, []byte("12345678")), hidReports(1, hidCmdMsg, apdu(0, insRegister, 0, make([]byte, 64)))))
	f.Add(cat(hidReports(hidBroadcastCID, hidCmdInit, []byte("12345678")), hidReports(1, hidCmdLock, []byte{10}), hidReports(1, hidCmdWink, nil)))
	f.Add(cat(hidReports(0, hidCmdPing, nil), hidReports(5, 0x7f, nil)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, hidCmdInit, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{})
	known := map[byte]bool{hidCmdPing: true, hidCmdMsg: true, hidCmdLock: true, hidCmdInit: true, hidCmdWink: true, hidCmdError: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) {
			h := NewU2FHID(key, U2FHIDOptions{})
			defer h.Close()
			d, err := h.Open()
			if err != nil {
				t.Fatal(err)
			}
			// Check every answer while the input is written.
			checked := make(chan error, 1)
			go func() {
				var bad error
				for r := range d.ReadCh() {
					switch {
					case bad != nil:
					case len(r) != 64:
						bad = fmt.Errorf("input report of %d bytes", len(r))
					case r[4]&0x80 == 0:
						// A continuation.
					case !known[r[4]]:
						bad = fmt.Errorf("response command %#x", r[4])
					case binary.BigEndian.Uint16(r[5:7]) > hidMaxPayload:
						bad = fmt.Errorf("response length %d", binary.BigEndian.Uint16(r[5:7]))
					case r[4] == hidCmdError && binary.BigEndian.Uint16(r[5:7]) != 1:
						bad = fmt.Errorf("error response %x", r[:8])
					}
				}
				checked <- bad
			}()
			for len(in) > 0 {
				n := min(len(in), 64)
				if err := d.Write(append([]byte{0}, in[:n]...)); err != nil {
					t.Fatal(err)
				}
				in = in[n:]
			}
			// Leave any lock and transaction behind, then a new host
			// must get through.
			time.Sleep(max(DefaultU2FHIDTimeout, hidMaxLockSeconds*time.Second))
			c := newTestHost(t, h, true)
			c.ping([]byte("usable"))
			c.send(c.cid, hidCmdMsg, apdu(0, insVersion, 0, nil))
			if got := c.expect(c.cid, hidCmdMsg); string(got) != "U2F_V2\x90\x00" {
				t.Fatalf("version %q", got)
			}
			d.Close()
			if err := <-checked; err != nil {
				t.Fatal(err)
			}
		})
	})
}

// BenchmarkU2FHIDPing measures the framing alone: a 7609-byte ping (129
// reports each way) through an in-memory handle without report pacing.
//
//	go test -run '^$' -bench U2FHID -benchmem ./sim/
func BenchmarkU2FHIDPing(b *testing.B) {
	h := NewU2FHID(newTestKey(b, 14, U2FPresenceAuto), U2FHIDOptions{ReportInterval: -1})
	defer h.Close()
	c := newTestHost(b, h, true)
	data := make([]byte, hidMaxPayload)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.ping(data)
	}
}

// BenchmarkU2FHIDAuthenticate measures an authentication through the
// framing and the key, in memory, without report pacing.
func BenchmarkU2FHIDAuthenticate(b *testing.B) {
	h := NewU2FHID(newTestKey(b, 15, U2FPresenceAuto), U2FHIDOptions{ReportInterval: -1})
	defer h.Close()
	c := newTestHost(b, h, true)
	app, chal := u2f.AppParam(testAppID), randomParam(b)
	c.send(c.cid, hidCmdMsg, apdu(0, insRegister, 0, append(chal[:], app[:]...)))
	resp := c.expect(c.cid, hidCmdMsg)
	reg, err := u2f.VerifyRegistration(resp[:len(resp)-2], app, chal)
	if err != nil {
		b.Fatal(err)
	}
	req := apdu(0, insAuthenticate, authEnforce, authData(testAppID, chal, reg.KeyHandle))
	for b.Loop() {
		c.send(c.cid, hidCmdMsg, req)
		if resp := c.expect(c.cid, hidCmdMsg); statusWord(b, resp) != swNoError {
			b.Fatalf("authenticate: %x", resp)
		}
	}
}
