package sim

import (
	"fmt"
	"io"
	"os"

	"github.com/flynn/hid"
	"golang.org/x/sys/unix"
)

// OpenPTY opens a new handle on the device and presents it as a
// pseudo-terminal configured to pass whole HID reports, so that
// u2fhid.Open(info) drives it through flynn/hid's Linux code exactly as it
// drives a hidraw node: the host writes 65-byte output reports (report
// number 0 first) to info.Path and reads 64-byte input reports from it.
// Each call makes its own pseudo-terminal, as each open of a hidraw node
// gets its own reader: several hosts may use the device at once.
//
// The terminal carries whole reports: it is raw, and a read on the slave
// returns once 64 bytes have arrived (VMIN), while the device writes each
// input report with one write. Input reports sent before the host's first
// output report are not delivered; they cannot be the host's answers.
//
// Like hidraw, the terminal buffers what the host has not read yet, so a
// host that falls behind gets a burst of reports. flynn/hid's reader keeps
// 30 reports and drops the rest, so a response of more than 30 reports
// (payloads above 1768 bytes: long pings, never a U2F message) can be lost
// when the host process is starved, as with a real key. Beyond 63 reports
// behind (4 KiB, the terminal's line buffer) a report may also reach the
// host in two pieces, which hidraw never does.
//
// The pseudo-terminal is hung up when the device is unplugged. It is freed
// once the host has opened and closed info.Path, or when the device is
// closed.
func (h *U2FHID) OpenPTY() (*hid.DeviceInfo, error) {
	// Two goroutines carry the reports, one each way; a third closes the
	// master when the handle closes, which ends them.
	d, err := h.open(3)
	if err != nil {
		return nil, err
	}
	master, path, err := openReportPTY()
	if err != nil {
		d.Close()
		h.wg.Add(-3)
		return nil, fmt.Errorf("presenting u2f key %q as a pseudo-terminal: %w", h.key.Name(), err)
	}
	go func() {
		defer h.wg.Done()
		<-d.done
		master.Close()
	}()
	// Host to device: read 65-byte output reports until the host has closed
	// its side (EIO) or the master is closed.
	opened := make(chan struct{})
	go func() {
		defer h.wg.Done()
		defer d.Close()
		buf := make([]byte, 1+hidReportLen)
		for first := true; ; first = false {
			if _, err := io.ReadFull(master, buf); err != nil {
				return
			}
			if first {
				close(opened)
			}
			// A malformed report is dropped, as a USB device would.
			_ = d.Write(buf)
		}
	}()
	// Device to host, one write per report.
	go func() {
		defer h.wg.Done()
		for r := range d.ReadCh() {
			select {
			case <-opened:
			default:
				continue
			}
			if _, err := master.Write(r); err != nil {
				d.Close()
			}
		}
	}()
	return &hid.DeviceInfo{
		Path:               path,
		VendorID:           U2FHIDVendorID,
		ProductID:          U2FHIDProductID,
		Product:            h.key.Name(),
		UsagePage:          fidoUsagePage,
		Usage:              fidoUsageU2F,
		InputReportLength:  hidReportLen,
		OutputReportLength: hidReportLen,
	}, nil
}

// Devices lists the device for hw/u2f.HID's Devices field: one DeviceInfo
// for a fresh pseudo-terminal (see OpenPTY), or none once the device is
// unplugged, as a pulled key vanishes from the hidraw listing.
func (h *U2FHID) Devices() ([]*hid.DeviceInfo, error) {
	info, err := h.OpenPTY()
	switch {
	case err == nil:
		return []*hid.DeviceInfo{info}, nil
	case h.unplugged():
		return nil, nil
	default:
		return nil, err
	}
}

// unplugged reports whether the device has been unplugged.
func (h *U2FHID) unplugged() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkKey()
	return h.gone != nil
}

// openReportPTY opens a pseudo-terminal whose slave side carries HID
// reports: raw, no echo, no flow control, and reads that return once a
// whole 64-byte input report has arrived (VMIN 64). It returns the master
// and the path of the slave.
func openReportPTY() (master *os.File, path string, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, "", err
	}
	conn, err := master.SyscallConn()
	if err != nil {
		master.Close()
		return nil, "", err
	}
	var n uint32
	ctlErr := conn.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err != nil {
			err = fmt.Errorf("unlocking: %w", err)
			return
		}
		if n, err = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN); err != nil {
			err = fmt.Errorf("getting the terminal number: %w", err)
			return
		}
		// Termios requests on the master apply to the slave.
		var t *unix.Termios
		if t, err = unix.IoctlGetTermios(int(fd), unix.TCGETS); err != nil {
			err = fmt.Errorf("getting terminal attributes: %w", err)
			return
		}
		t.Iflag = 0
		t.Oflag = 0
		t.Lflag = 0
		t.Cflag = t.Cflag&^(unix.CSIZE|unix.PARENB|unix.CSTOPB) | unix.CS8 | unix.CREAD | unix.CLOCAL
		t.Cc[unix.VMIN] = hidReportLen
		t.Cc[unix.VTIME] = 0
		if err = unix.IoctlSetTermios(int(fd), unix.TCSETS, t); err != nil {
			err = fmt.Errorf("setting terminal attributes: %w", err)
		}
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		master.Close()
		return nil, "", err
	}
	return master, fmt.Sprintf("/dev/pts/%d", n), nil
}
