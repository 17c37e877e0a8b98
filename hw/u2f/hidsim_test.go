package u2f_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flynn/hid"
	"github.com/flynn/u2f/u2fhid"
	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/hw/u2f"
	"github.com/mfad/mfad/sim"
)

// These tests run the simulated key behind its U2FHID framing, so HID.Keys,
// flynn's u2fhid and u2ftoken and the retry wrapper all run as with a USB
// key: over pseudo-terminals, and through the kernel's uhid driver where
// /dev/uhid can be opened.

// newSimHID returns the HID interface of a fresh simulated key, closed when
// the test ends.
func newSimHID(t *testing.T, p sim.U2FPresence, opts sim.U2FHIDOptions) *sim.U2FHID {
	t.Helper()
	h := sim.NewU2FHID(newKey(t, "hid key", p), opts)
	t.Cleanup(func() { h.Close() })
	return h
}

// registerAndAuthenticate registers through c, authenticates with the new
// handle and verifies both answers; it returns the key path of the
// registration.
func registerAndAuthenticate(t *testing.T, c *u2f.Client) string {
	t.Helper()
	raw, path, err := c.Register(context.Background(), testApp, testChal)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg, err := u2f.VerifyRegistration(raw, testApp, testChal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	chal := u2f.ChallengeParam([]byte("login"))
	handles := [][]byte{[]byte("not a handle of this key, long enough"), reg.KeyHandle}
	handle, raw, err := c.Authenticate(context.Background(), testApp, chal, handles)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if !bytes.Equal(handle, reg.KeyHandle) {
		t.Fatal("Authenticate used another handle")
	}
	if _, err := u2f.VerifyAuthentication(raw, reg.PublicKey, testApp, chal, 0, false); err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	return path
}

func TestHIDSimulatedKey(t *testing.T) {
	h := newSimHID(t, sim.U2FPresenceAfter(2), sim.U2FHIDOptions{})
	keys, err := u2f.HID{Devices: h.Devices}.Keys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v; want one key", keys, err)
	}
	if k := keys[0]; !strings.HasPrefix(k.Path, "/dev/pts/") || k.Name != "hid key (1209:0001)" {
		t.Errorf("key %q named %q", k.Path, k.Name)
	}
	keys[0].Close()

	clk := newFakeClock()
	c := newClient(u2f.HID{Devices: h.Devices}, clk)
	path := registerAndAuthenticate(t, c)
	if !strings.HasPrefix(path, "/dev/pts/") {
		t.Errorf("registered on %q", path)
	}
	// Registration waited for two touches; the key was asked to blink.
	if clk.Sleeps() != 2 || h.Key().Winks() != 1 {
		t.Errorf("%d polls, %d winks; want 2 and 1", clk.Sleeps(), h.Key().Winks())
	}
}

// rawHost is a host application that talks U2FHID to a terminal directly.
type rawHost struct {
	t   *testing.T
	f   *os.File
	cid uint32
}

func openRawHost(t *testing.T, path string) *rawHost {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c := &rawHost{t: t, f: f, cid: 0xffffffff}
	c.write(0x86, 8, []byte("rawhost!"))
	r := c.read()
	c.cid = binary.BigEndian.Uint32(r[15:19])
	return c
}

// write writes one report: an initialisation packet if cmd has its top bit
// set, with length n, else a continuation with sequence number cmd.
func (c *rawHost) write(cmd byte, n int, data []byte) {
	c.t.Helper()
	r := make([]byte, 65)
	binary.BigEndian.PutUint32(r[1:], c.cid)
	r[5] = cmd
	if cmd&0x80 != 0 {
		binary.BigEndian.PutUint16(r[6:], uint16(n))
		copy(r[8:], data)
	} else {
		copy(r[6:], data)
	}
	if _, err := c.f.Write(r); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawHost) read() []byte {
	c.t.Helper()
	r := make([]byte, 64)
	if err := c.f.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := io.ReadFull(c.f, r); err != nil {
		c.t.Fatal(err)
	}
	return r
}

// TestHIDSimulatedKeyBusy has another application hold the key in the
// middle of a transaction: the client is told the channel is busy and
// retries until the key is free.
func TestHIDSimulatedKeyBusy(t *testing.T) {
	h := newSimHID(t, sim.U2FPresenceAuto, sim.U2FHIDOptions{Timeout: time.Minute})
	reg, _ := register(t, u2f.HID{Devices: h.Devices})

	infos, err := h.Devices()
	if err != nil {
		t.Fatal(err)
	}
	other := openRawHost(t, infos[0].Path)
	// The first 57 of 100 bytes of a ping.
	other.write(0x81, 100, nil)
	// The other application finishes once it sees a client told "busy":
	// every reader sees every report.
	sawBusy := make(chan bool, 1)
	go func() {
		for {
			r := make([]byte, 64)
			if _, err := io.ReadFull(other.f, r); err != nil {
				sawBusy <- false
				return
			}
			if binary.BigEndian.Uint32(r) != other.cid && r[4] == 0xbf && r[7] == 0x06 {
				break
			}
		}
		r := make([]byte, 65)
		binary.BigEndian.PutUint32(r[1:], other.cid)
		if _, err := other.f.Write(r); err != nil {
			sawBusy <- false
			return
		}
		sawBusy <- true
	}()

	c := newClient(u2f.HID{Devices: h.Devices}, newFakeClock())
	chal := u2f.ChallengeParam([]byte("busy"))
	if _, _, err := c.Authenticate(context.Background(), testApp, chal, [][]byte{reg.KeyHandle}); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if !<-sawBusy {
		t.Fatal("the client was never told the key is busy")
	}
}

// TestHIDSimulatedKeyPulled pulls the key while it is open.
func TestHIDSimulatedKeyPulled(t *testing.T) {
	h := newSimHID(t, sim.U2FPresenceAuto, sim.U2FHIDOptions{})
	src := u2f.HID{Devices: h.Devices}
	reg, _ := register(t, src)
	keys, err := src.Keys()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	defer keys[0].Close()
	h.Key().SetFault(sim.U2FFaultDisconnect)
	start := time.Now()
	if _, err := keys[0].Dev.Message([]byte{0, 3, 0, 0}); err == nil {
		t.Fatal("a pulled key answered")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the pulled key took %v to fail", d)
	}
	c := newClient(src, newFakeClock())
	if _, _, err := c.Authenticate(context.Background(), testApp, testChal, [][]byte{reg.KeyHandle}); !errors.Is(err, u2f.ErrNoKey) {
		t.Fatalf("Authenticate with the key pulled: %v, want ErrNoKey", err)
	}
}

// TestHIDSimulatedKeyUHID plugs the simulated key into the kernel through
// /dev/uhid, so that the whole real path runs: hidraw listing and report
// descriptor parsing in flynn/hid, the kernel's hidraw driver, u2fhid,
// u2ftoken and the client.
func TestHIDSimulatedKeyUHID(t *testing.T) {
	f, err := os.OpenFile(sim.UHIDPath, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("cannot open %s (%v): needs a kernel with CONFIG_UHID (modprobe uhid) and write access to it, usually root", sim.UHIDPath, err)
	}
	f.Close()

	h := newSimHID(t, sim.U2FPresenceAuto, sim.U2FHIDOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := h.AttachUHID(ctx)
	if err != nil {
		t.Fatalf("AttachUHID: %v", err)
	}
	defer u.Close()
	t.Logf("simulated key at %s", u.Path())

	// The kernel's view of the descriptor, parsed by flynn/hid.
	info, err := hid.ByPath(u.Path())
	if err != nil {
		t.Fatalf("hid.ByPath: %v", err)
	}
	if info.UsagePage != 0xf1d0 || info.Usage != 1 || info.InputReportLength != 64 || info.OutputReportLength != 64 ||
		info.VendorID != sim.U2FHIDVendorID || info.ProductID != sim.U2FHIDProductID || info.Product != h.Key().Name() {
		t.Errorf("hidraw device info %+v", info)
	}
	// The default listing finds it among whatever else is plugged in.
	keys, err := u2f.HID{}.Keys()
	for _, k := range keys {
		k.Close()
	}
	if !slices.ContainsFunc(keys, func(k u2f.Key) bool { return k.Path == u.Path() }) {
		t.Fatalf("HID{}.Keys() = %v, %v; want %s among them", keys, err, u.Path())
	}

	// Two applications at once: the kernel gives each reader every report.
	// The pings stay within the 30 reports flynn/hid's reader keeps.
	for range 2 {
		dev, err := u2fhid.Open(info)
		if err != nil {
			t.Fatalf("u2fhid.Open: %v", err)
		}
		defer dev.Close()
		data := bytes.Repeat([]byte("uhid"), 1768/4)
		if got, err := dev.Ping(data); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Ping of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
	}

	// Only this key, so that a real key plugged in is left alone.
	src := u2f.HID{Devices: func() ([]*hid.DeviceInfo, error) {
		all, err := u2fhid.Devices()
		return slices.DeleteFunc(all, func(i *hid.DeviceInfo) bool { return i.Path != u.Path() }), err
	}}
	if path := registerAndAuthenticate(t, newClient(src, newFakeClock())); path != u.Path() {
		t.Errorf("registered on %s, want %s", path, u.Path())
	}

	// Detaching removes the hidraw node.
	u.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(u.Path()); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after Close", u.Path())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
