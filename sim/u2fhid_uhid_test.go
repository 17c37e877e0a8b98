package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mfad/mfad/internal/testenv"
)

// The kernel end of /dev/uhid is exercised by TestHIDSimulatedKeyUHID in
// hw/u2f where the kernel offers it. These tests keep the encoding honest
// everywhere else: the offsets are checked against the kernel's header, and
// the event loop is driven over a SOCK_SEQPACKET socket pair, which, like
// /dev/uhid, delivers exactly one event per read.

// TestUHIDABI compiles a C program against <linux/uhid.h> and compares its
// sizes and offsets with the constants of the Go code.
func TestUHIDABI(t *testing.T) {
	cc := testenv.RequireTool(t, "gcc", "apt-get install gcc linux-libc-dev")
	dir := t.TempDir()
	src := filepath.Join(dir, "uhid.c")
	prog := `#include <stdio.h>
#include <stddef.h>
#include <linux/uhid.h>
#define OFF(f) printf(#f " %zu\n", offsetof(struct uhid_event, f))
int main(void) {
	printf("size %zu\n", sizeof(struct uhid_event));
	printf("data_max %d\n", UHID_DATA_MAX);
	printf("types %d %d %d %d %d %d %d %d\n", UHID_DESTROY, UHID_OUTPUT, UHID_GET_REPORT,
		UHID_GET_REPORT_REPLY, UHID_CREATE2, UHID_INPUT2, UHID_SET_REPORT, UHID_SET_REPORT_REPLY);
	printf("output_report %d\n", UHID_OUTPUT_REPORT);
	OFF(u.create2.name); OFF(u.create2.phys); OFF(u.create2.uniq); OFF(u.create2.rd_size);
	OFF(u.create2.bus); OFF(u.create2.vendor); OFF(u.create2.product); OFF(u.create2.version);
	OFF(u.create2.country); OFF(u.create2.rd_data);
	OFF(u.input2.size); OFF(u.input2.data);
	OFF(u.output.data); OFF(u.output.size); OFF(u.output.rtype);
	OFF(u.get_report.id); OFF(u.get_report_reply.id); OFF(u.get_report_reply.err);
	OFF(u.set_report.id); OFF(u.set_report_reply.id); OFF(u.set_report_reply.err);
	return 0;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "uhid")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling against <linux/uhid.h> (apt-get install linux-libc-dev): %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`size %d
data_max %d
types %d %d %d %d %d %d %d %d
output_report %d
u.create2.name %d
u.create2.phys %d
u.create2.uniq %d
u.create2.rd_size %d
u.create2.bus %d
u.create2.vendor %d
u.create2.product %d
u.create2.version %d
u.create2.country %d
u.create2.rd_data %d
u.input2.size %d
u.input2.data %d
u.output.data %d
u.output.size %d
u.output.rtype %d
u.get_report.id %d
u.get_report_reply.id %d
u.get_report_reply.err %d
u.set_report.id %d
u.set_report_reply.id %d
u.set_report_reply.err %d
`, uhidEventSize, uhidDataMax,
		uhidDestroy, uhidOutput, uhidGetReport, uhidGetReportReply, uhidCreate2, uhidInput2, uhidSetReport, uhidSetReportReply,
		uhidOutputReport,
		uhidCreate2Name, uhidCreate2Phys, uhidCreate2Uniq, uhidCreate2RDSize, uhidCreate2Bus, uhidCreate2Vendor,
		uhidCreate2Product, uhidCreate2Version, uhidCreate2Country, uhidCreate2RDData,
		uhidInput2Size, uhidInput2Data, uhidOutputData, uhidOutputSize, uhidOutputRType,
		uhidReportID, uhidReportID, uhidReportReplyErr, uhidReportID, uhidReportID, uhidReportReplyErr)
	if string(out) != want {
		t.Errorf("the kernel's uhid ABI:\n%s\nthe Go constants:\n%s", out, want)
	}
}

// fakeUHID is the kernel's end of a uhid device: it reads what the device
// writes and writes the events the kernel would send.
type fakeUHID struct {
	t *testing.T
	f *os.File
}

func (k *fakeUHID) read() []byte {
	k.t.Helper()
	if err := k.f.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		k.t.Fatal(err)
	}
	ev := make([]byte, uhidEventSize)
	n, err := k.f.Read(ev)
	if err != nil {
		k.t.Fatalf("reading the device's event: %v", err)
	}
	return ev[:n]
}

func (k *fakeUHID) write(typ uint32, fill func(ev []byte)) {
	k.t.Helper()
	ev := make([]byte, uhidEventSize)
	binary.NativeEndian.PutUint32(ev, typ)
	fill(ev)
	if _, err := k.f.Write(ev); err != nil {
		k.t.Fatal(err)
	}
}

// output sends report as the payload of UHID_OUTPUT, as hidraw would.
func (k *fakeUHID) output(rtype byte, report []byte) {
	k.t.Helper()
	k.write(uhidOutput, func(ev []byte) {
		copy(ev[uhidOutputData:], report)
		binary.NativeEndian.PutUint16(ev[uhidOutputSize:], uint16(len(report)))
		ev[uhidOutputRType] = rtype
	})
}

// input reads the device's next UHID_INPUT2 and returns its report.
func (k *fakeUHID) input() []byte {
	k.t.Helper()
	ev := k.read()
	if typ := binary.NativeEndian.Uint32(ev); typ != uhidInput2 || len(ev) < uhidInput2Data {
		k.t.Fatalf("event type %d of %d bytes, want UHID_INPUT2", typ, len(ev))
	}
	size := int(binary.NativeEndian.Uint16(ev[uhidInput2Size:]))
	if size != 64 || len(ev) < uhidInput2Data+size {
		k.t.Fatalf("input report of %d bytes in an event of %d", size, len(ev))
	}
	return ev[uhidInput2Data : uhidInput2Data+size]
}

func TestUHIDEvents(t *testing.T) {
	// Non-blocking, so that os.NewFile hands the sockets to the poller and
	// deadlines and Close work as on /dev/uhid.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	dev := os.NewFile(uintptr(fds[0]), "uhid device end")
	kernel := &fakeUHID{t: t, f: os.NewFile(uintptr(fds[1]), "uhid kernel end")}
	defer kernel.f.Close()

	h := newTestHID(t, 30, U2FHIDOptions{})
	var uniq string
	created := make(chan []byte, 1)
	go func() { created <- kernel.read() }()
	u, err := h.attachUHID(context.Background(), dev, func(_ context.Context, got string) (string, error) {
		uniq = got
		return "/dev/hidraw-test", nil
	})
	if err != nil {
		t.Fatalf("attachUHID: %v", err)
	}
	if u.Path() != "/dev/hidraw-test" || !strings.HasPrefix(uniq, "mfad-sim-") {
		t.Errorf("path %q, uniq %q", u.Path(), uniq)
	}

	ev := <-created
	cstr := func(b []byte) string { return string(b[:bytes.IndexByte(b, 0)]) }
	rdSize := int(binary.NativeEndian.Uint16(ev[uhidCreate2RDSize:]))
	switch {
	case binary.NativeEndian.Uint32(ev) != uhidCreate2:
		t.Fatalf("first event type %d, want UHID_CREATE2", binary.NativeEndian.Uint32(ev))
	case cstr(ev[uhidCreate2Name:uhidCreate2Phys]) != h.Key().Name() || cstr(ev[uhidCreate2Uniq:uhidCreate2RDSize]) != uniq:
		t.Errorf("name %q, uniq %q", cstr(ev[uhidCreate2Name:uhidCreate2Phys]), cstr(ev[uhidCreate2Uniq:uhidCreate2RDSize]))
	case binary.NativeEndian.Uint16(ev[uhidCreate2Bus:]) != busUSB ||
		binary.NativeEndian.Uint32(ev[uhidCreate2Vendor:]) != 0x1209 || binary.NativeEndian.Uint32(ev[uhidCreate2Product:]) != 0x0001:
		t.Errorf("bus, vendor, product %x", ev[uhidCreate2Bus:uhidCreate2Version])
	case len(ev) != uhidCreate2RDData+rdSize || !bytes.Equal(ev[uhidCreate2RDData:], u2fReportDescriptor):
		t.Errorf("report descriptor of %d bytes: %x", rdSize, ev[uhidCreate2RDData:])
	}

	// Events that need no answer.
	kernel.write(2, func([]byte) {}) // UHID_START
	kernel.write(4, func([]byte) {}) // UHID_OPEN

	// hidraw passes an output report with its report number in front.
	initReport := append([]byte{0, 0xff, 0xff, 0xff, 0xff, hidCmdInit, 0, 8}, "uhidinit"...)
	kernel.output(uhidOutputReport, append(initReport, make([]byte, 65-len(initReport))...))
	r := kernel.input()
	if !bytes.Equal(r[:7], []byte{0xff, 0xff, 0xff, 0xff, hidCmdInit, 0, 17}) || string(r[7:15]) != "uhidinit" {
		t.Fatalf("INIT answered %x", r)
	}
	cid := r[15:19]
	// Without the report number it is taken as a whole report too.
	ping := append(append([]byte{}, cid...), hidCmdPing, 0, 4, 'p', 'i', 'n', 'g')
	kernel.output(uhidOutputReport, append(ping, make([]byte, 64-len(ping))...))
	if r := kernel.input(); !bytes.Equal(r[:len(ping)], ping) {
		t.Fatalf("PING answered %x", r)
	}

	// Feature reports are refused with EIO, with the request's id.
	kernel.write(uhidGetReport, func(ev []byte) { binary.NativeEndian.PutUint32(ev[uhidReportID:], 42) })
	kernel.write(uhidSetReport, func(ev []byte) { binary.NativeEndian.PutUint32(ev[uhidReportID:], 43) })
	for _, want := range []struct{ typ, id uint32 }{{uhidGetReportReply, 42}, {uhidSetReportReply, 43}} {
		ev := kernel.read()
		if binary.NativeEndian.Uint32(ev) != want.typ || binary.NativeEndian.Uint32(ev[uhidReportID:]) != want.id ||
			binary.NativeEndian.Uint16(ev[uhidReportReplyErr:]) != errEIO {
			t.Fatalf("reply %x, want type %d for id %d with EIO", ev[:12], want.typ, want.id)
		}
	}
	// A feature report through UHID_OUTPUT and a malformed report are
	// dropped; the next request is answered.
	kernel.output(0, append([]byte{0}, ping...))
	kernel.output(uhidOutputReport, append([]byte{1}, ping...))
	kernel.output(uhidOutputReport, append([]byte{0}, ping...))
	if r := kernel.input(); !bytes.Equal(r[:len(ping)], ping) {
		t.Fatalf("PING answered %x", r)
	}

	// Close destroys the device and closes the file.
	u.Close()
	if ev := kernel.read(); binary.NativeEndian.Uint32(ev) != uhidDestroy {
		t.Fatalf("event %x at Close, want UHID_DESTROY", ev[:4])
	}
	if n, err := kernel.f.Read(make([]byte, 16)); err == nil && n > 0 {
		t.Fatalf("event after UHID_DESTROY")
	}
	if n := h.openHandles(); n != 0 {
		t.Fatalf("%d handles open", n)
	}
}
