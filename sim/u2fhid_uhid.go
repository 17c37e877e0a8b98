package sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The kernel's uhid ABI (include/uapi/linux/uhid.h). Events are a 4-byte
// type followed by a packed union; fields are in host byte order.
const (
	uhidDestroy        = 1
	uhidOutput         = 6
	uhidGetReport      = 9
	uhidGetReportReply = 10
	uhidCreate2        = 11
	uhidInput2         = 12
	uhidSetReport      = 13
	uhidSetReportReply = 14

	uhidOutputReport = 1 // uhid_output_req.rtype of an output report

	uhidDataMax   = 4096
	uhidEventSize = 4380 // sizeof(struct uhid_event) on Linux 6.x

	busUSB = 0x03
	errEIO = 5 // answer to feature-report requests: the device has none
)

// Offsets within a uhid_event.
const (
	// struct uhid_create2_req
	uhidCreate2Name    = 4
	uhidCreate2Phys    = 4 + 128
	uhidCreate2Uniq    = 4 + 128 + 64
	uhidCreate2RDSize  = 4 + 128 + 64 + 64
	uhidCreate2Bus     = uhidCreate2RDSize + 2
	uhidCreate2Vendor  = uhidCreate2Bus + 2
	uhidCreate2Product = uhidCreate2Vendor + 4
	uhidCreate2Version = uhidCreate2Product + 4
	uhidCreate2Country = uhidCreate2Version + 4
	uhidCreate2RDData  = uhidCreate2Country + 4
	// struct uhid_input2_req
	uhidInput2Size = 4
	uhidInput2Data = 6
	// struct uhid_output_req
	uhidOutputData  = 4
	uhidOutputSize  = 4 + uhidDataMax
	uhidOutputRType = uhidOutputSize + 2
	// struct uhid_get_report_req, uhid_set_report_req and their replies
	uhidReportID       = 4
	uhidReportReplyErr = 8
)

// u2fReportDescriptor is the HID report descriptor of a FIDO U2F key: one
// application collection on the FIDO usage page with a 64-byte input and a
// 64-byte output report, without report IDs.
var u2fReportDescriptor = []byte{
	0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance, 0xF1D0)
	0x09, 0x01, // Usage (U2F Authenticator Device)
	0xa1, 0x01, // Collection (Application)
	0x09, 0x20, //   Usage (Input Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xff, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, 0x40, //   Report Count (64)
	0x81, 0x02, //   Input (Data, Variable, Absolute)
	0x09, 0x21, //   Usage (Output Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xff, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, 0x40, //   Report Count (64)
	0x91, 0x02, //   Output (Data, Variable, Absolute)
	0xc0, // End Collection
}

// UHIDPath is where the kernel's uhid driver is opened.
const UHIDPath = "/dev/uhid"

// UHID is a U2FHID device attached to the kernel through /dev/uhid, where
// it appears as a real USB HID device with its own hidraw node. Create it
// with U2FHID.AttachUHID.
type UHID struct {
	path string
	d    *U2FHIDDevice
	wg   sync.WaitGroup
}

// AttachUHID plugs the device into the kernel through /dev/uhid as a USB
// HID device (vendor 0x1209, product 0x0001) with the FIDO U2F report
// descriptor, and waits until its hidraw node exists or ctx ends. Every
// program may then find and open it like a real security key, for example
// with hid.Devices and u2fhid.Open, subject to the node's permissions. It
// needs write access to /dev/uhid (usually root) and a kernel built with
// CONFIG_UHID; errors opening /dev/uhid wrap the os.OpenFile error, so
// errors.Is(err, fs.ErrNotExist) and fs.ErrPermission tell those cases
// apart.
func (h *U2FHID) AttachUHID(ctx context.Context) (*UHID, error) {
	f, err := os.OpenFile(UHIDPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("attaching u2f key %q: %w", h.key.Name(), err)
	}
	return h.attachUHID(ctx, f, findHidraw)
}

// attachUHID attaches the device through f, an open /dev/uhid, and finds
// its hidraw node with find. It takes f over.
func (h *U2FHID) attachUHID(ctx context.Context, f *os.File, find func(ctx context.Context, uniq string) (string, error)) (*UHID, error) {
	// Two goroutines carry the events, one each way; a third destroys the
	// device when the handle closes, which ends them.
	d, err := h.open(3)
	if err != nil {
		f.Close()
		return nil, err
	}
	fail := func(err error) (*UHID, error) {
		f.Close()
		d.Close()
		h.wg.Add(-3)
		return nil, fmt.Errorf("attaching u2f key %q: %w", h.key.Name(), err)
	}
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return fail(err)
	}
	uniq := "mfad-sim-" + hex.EncodeToString(nonce[:])
	if err := writeUHIDCreate2(f, h.key.Name(), uniq); err != nil {
		return fail(fmt.Errorf("creating uhid device: %w", err))
	}
	u := &UHID{d: d}
	u.wg.Add(3)
	done := func() { u.wg.Done(); h.wg.Done() }
	go func() {
		defer done()
		<-d.done
		// Closing the file destroys the device too; the explicit event
		// makes the removal immediate.
		destroy := make([]byte, 4)
		binary.NativeEndian.PutUint32(destroy, uhidDestroy)
		_, _ = f.Write(destroy)
		f.Close()
	}()
	go func() {
		defer done()
		defer d.Close()
		readUHIDEvents(f, d)
	}()
	go func() {
		defer done()
		ev := make([]byte, uhidInput2Data+hidReportLen)
		binary.NativeEndian.PutUint32(ev, uhidInput2)
		binary.NativeEndian.PutUint16(ev[uhidInput2Size:], hidReportLen)
		for r := range d.ReadCh() {
			copy(ev[uhidInput2Data:], r)
			if _, err := f.Write(ev); err != nil {
				d.Close()
			}
		}
	}()
	path, err := find(ctx, uniq)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("attaching u2f key %q: %w", h.key.Name(), err)
	}
	u.path = path
	return u, nil
}

// Path returns the device's hidraw node, such as /dev/hidraw3.
func (u *UHID) Path() string { return u.path }

// Close detaches the device from the kernel, which then removes its hidraw
// node, and waits for the device's goroutines to end. It always returns
// nil.
func (u *UHID) Close() error {
	u.d.Close()
	u.wg.Wait()
	return nil
}

// writeUHIDCreate2 creates the uhid device.
func writeUHIDCreate2(f *os.File, name, uniq string) error {
	ev := make([]byte, uhidCreate2RDData+len(u2fReportDescriptor))
	binary.NativeEndian.PutUint32(ev, uhidCreate2)
	copy(ev[uhidCreate2Name:uhidCreate2Phys-1], name)
	copy(ev[uhidCreate2Phys:uhidCreate2Uniq-1], "mfad-sim")
	copy(ev[uhidCreate2Uniq:uhidCreate2RDSize-1], uniq)
	binary.NativeEndian.PutUint16(ev[uhidCreate2RDSize:], uint16(len(u2fReportDescriptor)))
	binary.NativeEndian.PutUint16(ev[uhidCreate2Bus:], busUSB)
	binary.NativeEndian.PutUint32(ev[uhidCreate2Vendor:], U2FHIDVendorID)
	binary.NativeEndian.PutUint32(ev[uhidCreate2Product:], U2FHIDProductID)
	binary.NativeEndian.PutUint32(ev[uhidCreate2Version:], hidVersionMajor<<8|hidVersionMinor)
	binary.NativeEndian.PutUint32(ev[uhidCreate2Country:], 0)
	copy(ev[uhidCreate2RDData:], u2fReportDescriptor)
	_, err := f.Write(ev)
	return err
}

// readUHIDEvents reads the kernel's events until f fails or is closed:
// output reports go to d, feature-report requests are refused.
func readUHIDEvents(f *os.File, d *U2FHIDDevice) {
	ev := make([]byte, uhidEventSize)
	for {
		n, err := f.Read(ev)
		if err != nil {
			return
		}
		if n < 4 {
			continue
		}
		switch binary.NativeEndian.Uint32(ev) {
		case uhidOutput:
			if n < uhidOutputRType+1 || ev[uhidOutputRType] != uhidOutputReport {
				continue
			}
			size := int(binary.NativeEndian.Uint16(ev[uhidOutputSize:]))
			if size > uhidDataMax {
				continue
			}
			report := ev[uhidOutputData : uhidOutputData+size]
			if size == hidReportLen {
				// Without the report number hidraw passes in front.
				report = append([]byte{0}, report...)
			}
			// A malformed report is dropped, as a USB device would; a
			// closed handle ends the loop when f is closed.
			_ = d.Write(report)
		case uhidGetReport, uhidSetReport:
			if n < uhidReportID+4 {
				continue
			}
			reply := make([]byte, uhidReportReplyErr+2+2)
			typ := uint32(uhidGetReportReply)
			if binary.NativeEndian.Uint32(ev) == uhidSetReport {
				typ = uhidSetReportReply
				reply = reply[:uhidReportReplyErr+2]
			}
			binary.NativeEndian.PutUint32(reply, typ)
			copy(reply[uhidReportID:], ev[uhidReportID:uhidReportID+4])
			binary.NativeEndian.PutUint16(reply[uhidReportReplyErr:], errEIO)
			if _, err := f.Write(reply); err != nil {
				return
			}
		}
		// UHID_START, UHID_STOP, UHID_OPEN and UHID_CLOSE need no answer.
	}
}

// findHidraw waits until a hidraw node belongs to the HID device with
// unique id uniq and returns its /dev path.
func findHidraw(ctx context.Context, uniq string) (string, error) {
	const class = "/sys/class/hidraw"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		entries, _ := os.ReadDir(class)
		for _, e := range entries {
			if hidUniq(filepath.Join(class, e.Name(), "device", "uevent")) != uniq {
				continue
			}
			dev := filepath.Join("/dev", e.Name())
			if _, err := os.Stat(dev); err == nil {
				return dev, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the hidraw node: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// hidUniq returns HID_UNIQ from a HID device's uevent file, or "".
func hidUniq(uevent string) string {
	b, err := os.ReadFile(uevent)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "HID_UNIQ="); ok {
			return v
		}
	}
	return ""
}
