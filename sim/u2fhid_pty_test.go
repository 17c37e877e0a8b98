package sim

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flynn/hid"
	"github.com/flynn/u2f/u2fhid"
	"github.com/flynn/u2f/u2ftoken"
	"github.com/mfad/mfad/hw/u2f"
)

// These tests drive the device over real pseudo-terminals with flynn/u2f's
// u2fhid host code, with real time; waits are bounded by deadlines.

// openU2FHIDHost opens info with u2fhid, closing it when the test ends.
func openU2FHIDHost(t testing.TB, info *hid.DeviceInfo) *u2fhid.Device {
	t.Helper()
	dev, err := u2fhid.Open(info)
	if err != nil {
		t.Fatalf("u2fhid.Open(%s): %v", info.Path, err)
	}
	t.Cleanup(dev.Close)
	return dev
}

// waitHID polls cond every 10 ms for up to 20 s.
func waitHID(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exerciseU2FHIDHost runs the whole protocol through a u2fhid host: device
// information, pings up to the maximum, wink, and the U2F commands through
// u2ftoken, verified by the relying-party code.
func exerciseU2FHIDHost(t *testing.T, h *U2FHID, dev *u2fhid.Device) {
	t.Helper()
	if dev.ProtocolVersion != 2 || dev.MajorDeviceVersion != 1 || !dev.CapabilityWink {
		t.Errorf("device %+v, want protocol 2, version 1.0.0, wink", dev)
	}
	// flynn/hid keeps 30 input reports and drops the rest when its reader
	// is slow, so the pings stay within 30 reports (1768 bytes) to be
	// reliable on a loaded machine; TestU2FHIDPingMax covers 7609 bytes.
	for _, n := range []int{0, 1, 57, 58, 116, 117, 1000, hidInitDataLen + 29*hidContDataLen} {
		data := make([]byte, n)
		rand.Read(data)
		got, err := dev.Ping(data)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Ping(%d bytes) = %d bytes, %v", n, len(got), err)
		}
	}
	winks := h.Key().Winks()
	if err := dev.Wink(); err != nil || h.Key().Winks() != winks+1 {
		t.Fatalf("Wink: %v, %d winks", err, h.Key().Winks())
	}

	tok := u2ftoken.NewToken(dev)
	if v, err := tok.Version(); err != nil || v != "U2F_V2" {
		t.Fatalf("Version = %q, %v", v, err)
	}
	app, chal := u2f.AppParam(testAppID), randomParam(t)
	raw, err := tok.Register(u2ftoken.RegisterRequest{Challenge: chal[:], Application: app[:]})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg, err := u2f.VerifyRegistration(raw, app, chal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	req := authRequest(testAppID, chal, reg.KeyHandle)
	if err := tok.CheckAuthenticate(req); err != nil {
		t.Fatalf("CheckAuthenticate: %v", err)
	}
	resp, err := tok.Authenticate(req)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, err := u2f.VerifyAuthentication(resp.RawResponse, reg.PublicKey, app, chal, 0, false); err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
}

func TestU2FHIDPTY(t *testing.T) {
	h := newTestHID(t, 20, U2FHIDOptions{})
	info, err := h.OpenPTY()
	if err != nil {
		t.Fatalf("OpenPTY: %v", err)
	}
	if !strings.HasPrefix(info.Path, "/dev/pts/") || info.UsagePage != 0xf1d0 || info.Usage != 1 ||
		info.InputReportLength != 64 || info.OutputReportLength != 64 ||
		info.VendorID != U2FHIDVendorID || info.ProductID != U2FHIDProductID || info.Product != h.Key().Name() {
		t.Errorf("device info %+v", info)
	}
	dev := openU2FHIDHost(t, info)
	exerciseU2FHIDHost(t, h, dev)

	// Closing the host frees the terminal and its handle.
	dev.Close()
	waitHID(t, "the handle to close", func() bool { return h.openHandles() == 0 })
}

// TestU2FHIDPTYHosts has several hosts use the device at once, each on its
// own terminal, as applications share a USB key: they get separate
// channels, see each other's reports and are told when the device is busy.
func TestU2FHIDPTYHosts(t *testing.T) {
	h := newTestHID(t, 21, U2FHIDOptions{})
	const hosts = 3
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		busy int
	)
	for i := range hosts {
		info, err := h.OpenPTY()
		if err != nil {
			t.Fatal(err)
		}
		dev := openU2FHIDHost(t, info)
		wg.Go(func() {
			for j := 0; j < 15; {
				// Every host sees every report; together they stay within
				// flynn/hid's 30 reports (see exerciseU2FHIDHost).
				data := fmt.Appendf(nil, "host %d ping %d %s", i, j, bytes.Repeat([]byte{'x'}, j*30))
				got, err := dev.Ping(data)
				switch {
				case err != nil && strings.Contains(err.Error(), "channel busy"):
					mu.Lock()
					busy++
					mu.Unlock()
					time.Sleep(time.Millisecond)
					continue
				case err != nil:
					t.Errorf("host %d: Ping: %v", i, err)
					return
				case !bytes.Equal(got, data):
					t.Errorf("host %d: ping echoed %d bytes, want %d", i, len(got), len(data))
					return
				}
				j++
			}
		})
	}
	wg.Wait()
	t.Logf("%d busy answers", busy)
}

func TestU2FHIDPTYUnplug(t *testing.T) {
	t.Run("key disconnected", func(t *testing.T) {
		h := newTestHID(t, 22, U2FHIDOptions{})
		info, err := h.OpenPTY()
		if err != nil {
			t.Fatal(err)
		}
		dev := openU2FHIDHost(t, info)
		h.Key().SetFault(U2FFaultDisconnect)
		// The device vanishes mid-request: the host fails at once rather
		// than after its read timeout.
		start := time.Now()
		if _, err := u2ftoken.NewToken(dev).Version(); err == nil || strings.Contains(err.Error(), "timed out") {
			t.Fatalf("Version on a pulled key: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the pulled key took %v to fail", d)
		}
		if infos, err := h.Devices(); len(infos) != 0 || err != nil {
			t.Fatalf("Devices = %v, %v; want none", infos, err)
		}
		if _, err := h.OpenPTY(); !errors.Is(err, ErrU2FDisconnected) {
			t.Fatalf("OpenPTY on a pulled key: %v", err)
		}
	})
	t.Run("device closed", func(t *testing.T) {
		h := newTestHID(t, 23, U2FHIDOptions{})
		info, err := h.OpenPTY()
		if err != nil {
			t.Fatal(err)
		}
		dev := openU2FHIDHost(t, info)
		// A terminal no host ever opened is freed too.
		if _, err := h.OpenPTY(); err != nil {
			t.Fatal(err)
		}
		h.Close()
		if _, err := dev.Ping([]byte("gone")); err == nil {
			t.Fatal("Ping after Close succeeded")
		}
	})
}

func TestU2FHIDDevicesWithClient(t *testing.T) {
	h := newTestHID(t, 24, U2FHIDOptions{})
	c := &u2f.Client{Source: u2f.HID{Devices: h.Devices}}
	app, chal := u2f.AppParam(testAppID), randomParam(t)
	raw, path, err := c.Register(t.Context(), app, chal)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if !strings.HasPrefix(path, "/dev/pts/") {
		t.Errorf("key path %q", path)
	}
	reg, err := u2f.VerifyRegistration(raw, app, chal)
	if err != nil {
		t.Fatalf("VerifyRegistration: %v", err)
	}
	handle, raw, err := c.Authenticate(t.Context(), app, chal, [][]byte{reg.KeyHandle})
	if err != nil || !bytes.Equal(handle, reg.KeyHandle) {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, err := u2f.VerifyAuthentication(raw, reg.PublicKey, app, chal, 0, false); err != nil {
		t.Fatalf("VerifyAuthentication: %v", err)
	}
	// Every operation opened its own terminal and closed it.
	waitHID(t, "the handles to close", func() bool { return h.openHandles() == 0 })
}

// BenchmarkU2FHIDPTYAuthenticate measures an authentication through flynn's
// u2fhid over a pseudo-terminal with the default 1 ms report pacing.
//
//	go test -run '^$' -bench U2FHIDPTY -benchmem ./sim/
func BenchmarkU2FHIDPTYAuthenticate(b *testing.B) {
	h := NewU2FHID(newTestKey(b, 25, U2FPresenceAuto), U2FHIDOptions{})
	defer h.Close()
	info, err := h.OpenPTY()
	if err != nil {
		b.Fatal(err)
	}
	dev := openU2FHIDHost(b, info)
	tok := u2ftoken.NewToken(dev)
	reg := register(b, h.Key(), testAppID)
	req := authRequest(testAppID, randomParam(b), reg.KeyHandle)
	for b.Loop() {
		if _, err := tok.Authenticate(req); err != nil {
			b.Fatal(err)
		}
	}
}
