package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flynn/hid"
)

var _ hid.Device = (*U2FHIDDevice)(nil)

// Sizes and limits of the U2FHID framing (FIDO U2F HID Protocol v1.1, the
// same as CTAPHID for these commands).
const (
	hidReportLen      = 64
	hidInitDataLen    = hidReportLen - 7 // CID, CMD, BCNTH, BCNTL
	hidContDataLen    = hidReportLen - 5 // CID, SEQ
	hidMaxSeq         = 0x7f
	hidMaxPayload     = hidInitDataLen + (hidMaxSeq+1)*hidContDataLen // 7609
	hidBroadcastCID   = 0xffffffff
	hidInitNonceLen   = 8
	hidMaxLockSeconds = 10
	// hidQueueLen bounds the input reports waiting for one reader: twice
	// the longest response (129 reports), like hidraw's per-reader ring.
	hidQueueLen = 2 * (1 + hidMaxSeq + 1)
)

// U2FHID commands (the first byte after the CID of an initialisation
// packet, with the top bit set).
const (
	hidCmdPing  = 0x81
	hidCmdMsg   = 0x83
	hidCmdLock  = 0x84
	hidCmdInit  = 0x86
	hidCmdWink  = 0x88
	hidCmdError = 0xbf
)

// U2FHID error codes, the one-byte payload of a U2FHID_ERROR response.
const (
	hidErrInvalidCmd  = 0x01
	hidErrInvalidPar  = 0x02
	hidErrInvalidLen  = 0x03
	hidErrInvalidSeq  = 0x04
	hidErrMsgTimeout  = 0x05
	hidErrChannelBusy = 0x06
	hidErrInvalidCID  = 0x0b
	hidErrOther       = 0x7f
	// ERR_LOCK_REQUIRED (0x0a) is never sent: no command requires a lock.
)

// What U2FHID_INIT reports about the device.
const (
	hidProtocolVersion = 2
	hidVersionMajor    = 1
	hidVersionMinor    = 0
	hidVersionBuild    = 0
	hidCapWink         = 0x01
)

// USB identity of the simulated device: pid.codes' vendor ID with one of
// the product IDs it reserves for testing, so it never claims to be a real
// product.
const (
	U2FHIDVendorID  = 0x1209
	U2FHIDProductID = 0x0001
)

// FIDO usage page and U2F usage, as in the report descriptor of every U2F
// key; u2fhid.Devices selects devices by them.
const (
	fidoUsagePage = 0xf1d0
	fidoUsageU2F  = 0x01
)

// Defaults for the zero U2FHIDOptions fields.
const (
	DefaultU2FHIDTimeout        = 3 * time.Second
	DefaultU2FHIDReportInterval = time.Millisecond
)

// U2FHIDOptions configure NewU2FHID.
type U2FHIDOptions struct {
	// Timeout bounds a transaction: a request split over several reports
	// whose last report has not arrived this long after its first is
	// aborted with ERR_MSG_TIMEOUT, freeing the device for other channels.
	// Zero means DefaultU2FHIDTimeout.
	Timeout time.Duration
	// ReportInterval is the least time between two input reports delivered
	// to one reader, like the polling interval of a USB interrupt endpoint
	// (1 ms for a full-speed key), so that hosts see a real key's pace.
	// Zero means DefaultU2FHIDReportInterval; negative means no pause.
	ReportInterval time.Duration
}

// U2FHID is the USB HID interface of a simulated U2F key: the device side
// of the FIDO U2F HID protocol in front of a U2FKey. Hosts reach it through
// handles (Open, an in-memory flynn/hid Device), pseudo-terminals (OpenPTY,
// Devices) that flynn/u2f's u2fhid package opens like hidraw nodes, or the
// kernel's uhid driver (AttachUHID). All of them share the device's
// channels and its single transaction, as the applications sharing one USB
// key do, and every reader sees every input report, as with hidraw.
//
// Create it with NewU2FHID and Close it to unplug it. It is safe for
// concurrent use.
type U2FHID struct {
	key      *U2FKey
	timeout  time.Duration
	interval time.Duration

	mu        sync.Mutex
	lastCID   uint32 // channels 1..lastCID are allocated
	tx        *hidTransaction
	lockCID   uint32 // channel holding the lock, 0 for none
	lockUntil time.Time
	handles   map[*U2FHIDDevice]struct{}
	gone      error // why the device is unplugged; nil while plugged

	wg sync.WaitGroup // handle pumps and transport goroutines
}

// hidTransaction is a request whose continuation packets are still
// awaited.
type hidTransaction struct {
	cid   uint32
	cmd   byte
	want  int
	data  []byte
	seq   byte // next expected sequence number
	timer *time.Timer
}

// NewU2FHID returns the HID interface of key, plugged in.
func NewU2FHID(key *U2FKey, opts U2FHIDOptions) *U2FHID {
	h := &U2FHID{
		key:      key,
		timeout:  opts.Timeout,
		interval: opts.ReportInterval,
		handles:  make(map[*U2FHIDDevice]struct{}),
	}
	if h.timeout <= 0 {
		h.timeout = DefaultU2FHIDTimeout
	}
	switch {
	case h.interval == 0:
		h.interval = DefaultU2FHIDReportInterval
	case h.interval < 0:
		h.interval = 0
	}
	return h
}

// Key returns the simulated key behind the interface.
func (h *U2FHID) Key() *U2FKey { return h.key }

// Close unplugs the device: every handle's read channel is closed with
// ReadError reporting ErrU2FDisconnected, pseudo-terminals are hung up, the
// uhid device is destroyed and later opens fail. It waits for the device's
// goroutines to end and always returns nil.
func (h *U2FHID) Close() error {
	h.mu.Lock()
	h.unplug(fmt.Errorf("u2f key %q: unplugged: %w", h.key.Name(), ErrU2FDisconnected))
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// unplug detaches every handle with err as their read error; h.mu is held.
// The first cause is kept.
func (h *U2FHID) unplug(err error) {
	if h.gone != nil {
		return
	}
	h.gone = err
	h.abortTx()
	for d := range h.handles {
		d.detach(err)
	}
}

// checkKey unplugs the device once its key has been disconnected by a
// fault; h.mu is held.
func (h *U2FHID) checkKey() {
	if h.gone == nil && h.key.isDisconnected() {
		h.unplug(fmt.Errorf("u2f key %q: %w", h.key.Name(), ErrU2FDisconnected))
	}
}

// isDisconnected reports whether U2FFaultDisconnect has been injected.
func (k *U2FKey) isDisconnected() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.disconnected
}

// Open returns a new handle on the device, as opening its hidraw node
// would: a flynn/hid Device whose Write sends an output report and whose
// ReadCh yields every input report the device sends from now on. It fails
// with an error wrapping ErrU2FDisconnected once the device is unplugged.
func (h *U2FHID) Open() (*U2FHIDDevice, error) {
	return h.open(0)
}

// open opens a handle and, atomically with it, adds transport goroutines
// to h.wg besides the handle's pump; each must call h.wg.Done when it ends.
func (h *U2FHID) open(transport int) (*U2FHIDDevice, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checkKey()
	if h.gone != nil {
		return nil, h.gone
	}
	d := &U2FHIDDevice{
		h:    h,
		ch:   make(chan []byte),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	h.handles[d] = struct{}{}
	h.wg.Add(1 + transport)
	go d.pump()
	return d, nil
}

// openHandles returns the number of open handles.
func (h *U2FHID) openHandles() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.handles)
}

// receive processes one 64-byte output report.
func (h *U2FHID) receive(r *[hidReportLen]byte) {
	h.checkKey()
	if h.gone != nil {
		return
	}
	cid := binary.BigEndian.Uint32(r[0:4])
	if r[4]&0x80 == 0 {
		h.continuation(cid, r[4], r[5:])
		return
	}
	cmd, n := r[4], int(binary.BigEndian.Uint16(r[5:7]))
	switch {
	case cid == 0:
		h.sendError(cid, hidErrInvalidCID)
		return
	case cmd == hidCmdInit:
		h.init(cid, n, r[7:])
		return
	case cid == hidBroadcastCID || cid > h.lastCID:
		h.sendError(cid, hidErrInvalidCID)
		return
	case h.tx != nil && h.tx.cid == cid:
		// A new request before the last one was complete.
		h.abortTx()
		h.sendError(cid, hidErrInvalidSeq)
		return
	case h.tx != nil || h.lockedAgainst(cid):
		h.sendError(cid, hidErrChannelBusy)
		return
	}
	if code := checkLength(cmd, n); code != 0 {
		h.sendError(cid, code)
		return
	}
	tx := &hidTransaction{cid: cid, cmd: cmd, want: n, data: make([]byte, 0, n)}
	tx.data = append(tx.data, r[7:7+min(n, hidInitDataLen)]...)
	if len(tx.data) == n {
		h.execute(cid, cmd, tx.data)
		return
	}
	h.tx = tx
	tx.timer = time.AfterFunc(h.timeout, func() { h.expire(tx) })
}

// checkLength returns the error code for a request of command cmd with an
// n-byte payload, or 0 when the device will take it.
func checkLength(cmd byte, n int) byte {
	switch cmd {
	case hidCmdPing, hidCmdMsg:
		if n > hidMaxPayload {
			return hidErrInvalidLen
		}
	case hidCmdWink:
		if n != 0 {
			return hidErrInvalidLen
		}
	case hidCmdLock:
		if n != 1 {
			return hidErrInvalidLen
		}
	default:
		return hidErrInvalidCmd
	}
	return 0
}

// lockedAgainst reports whether another channel than cid holds the lock.
func (h *U2FHID) lockedAgainst(cid uint32) bool {
	return h.lockCID != 0 && h.lockCID != cid && time.Now().Before(h.lockUntil)
}

// continuation processes a continuation packet. One for a channel with no
// transaction in progress is ignored, as the protocol asks.
func (h *U2FHID) continuation(cid uint32, seq byte, data []byte) {
	tx := h.tx
	if tx == nil || tx.cid != cid {
		return
	}
	if seq != tx.seq {
		h.abortTx()
		h.sendError(cid, hidErrInvalidSeq)
		return
	}
	tx.seq++
	tx.data = append(tx.data, data[:min(len(data), tx.want-len(tx.data))]...)
	if len(tx.data) == tx.want {
		h.abortTx()
		h.execute(cid, tx.cmd, tx.data)
	}
}

// abortTx drops the transaction in progress, if any.
func (h *U2FHID) abortTx() {
	if h.tx != nil {
		h.tx.timer.Stop()
		h.tx = nil
	}
}

// expire aborts tx with ERR_MSG_TIMEOUT if it is still in progress.
func (h *U2FHID) expire(tx *hidTransaction) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tx != tx {
		return
	}
	h.tx = nil
	h.sendError(tx.cid, hidErrMsgTimeout)
}

// init answers U2FHID_INIT. On the broadcast channel it allocates a new
// channel; on an allocated channel it aborts that channel's transaction and
// confirms the channel. INIT is answered even while another channel is
// busy: it is a single packet and does not disturb the other transaction.
func (h *U2FHID) init(cid uint32, n int, data []byte) {
	if n != hidInitNonceLen {
		h.sendError(cid, hidErrInvalidLen)
		return
	}
	newCID := cid
	switch {
	case cid == hidBroadcastCID:
		// Channels are numbered in order. After 2^32-2 allocations the
		// last number is handed out again; hosts then share it.
		if h.lastCID < hidBroadcastCID-1 {
			h.lastCID++
		}
		newCID = h.lastCID
	case cid > h.lastCID:
		h.sendError(cid, hidErrInvalidCID)
		return
	case h.tx != nil && h.tx.cid == cid:
		h.abortTx()
	}
	resp := make([]byte, 0, hidInitNonceLen+9)
	resp = append(resp, data[:hidInitNonceLen]...)
	resp = binary.BigEndian.AppendUint32(resp, newCID)
	resp = append(resp, hidProtocolVersion, hidVersionMajor, hidVersionMinor, hidVersionBuild, hidCapWink)
	h.send(cid, hidCmdInit, resp)
}

// execute runs a complete request; its length has been checked.
func (h *U2FHID) execute(cid uint32, cmd byte, data []byte) {
	switch cmd {
	case hidCmdPing:
		h.send(cid, hidCmdPing, data)
	case hidCmdMsg:
		resp, err := h.key.Message(data)
		if err != nil {
			h.keyFailed(cid, err)
			return
		}
		h.send(cid, hidCmdMsg, resp)
	case hidCmdWink:
		if err := h.key.Wink(); err != nil {
			h.keyFailed(cid, err)
			return
		}
		h.send(cid, hidCmdWink, nil)
	case hidCmdLock:
		switch secs := data[0]; {
		case secs > hidMaxLockSeconds:
			h.sendError(cid, hidErrInvalidPar)
			return
		case secs == 0:
			if h.lockCID == cid {
				h.lockCID = 0
			}
		default:
			h.lockCID, h.lockUntil = cid, time.Now().Add(time.Duration(secs)*time.Second)
		}
		h.send(cid, hidCmdLock, nil)
	}
}

// keyFailed answers a request the key failed: a busy key makes the
// channel busy, a disconnected key unplugs the device without an answer.
func (h *U2FHID) keyFailed(cid uint32, err error) {
	switch {
	case errors.Is(err, ErrU2FDisconnected):
		h.unplug(err)
	case errors.Is(err, ErrU2FBusy):
		h.sendError(cid, hidErrChannelBusy)
	default:
		h.sendError(cid, hidErrOther)
	}
}

// sendError sends U2FHID_ERROR with code on cid.
func (h *U2FHID) sendError(cid uint32, code byte) {
	h.send(cid, hidCmdError, []byte{code})
}

// send frames payload as the response cmd on channel cid and queues the
// reports for every reader.
func (h *U2FHID) send(cid uint32, cmd byte, payload []byte) {
	if len(payload) > hidMaxPayload {
		cmd, payload = hidCmdError, []byte{hidErrOther}
	}
	reports := make([][]byte, 0, 1+(len(payload)+hidContDataLen-1)/hidContDataLen)
	r := make([]byte, hidReportLen)
	binary.BigEndian.PutUint32(r, cid)
	r[4] = cmd
	binary.BigEndian.PutUint16(r[5:], uint16(len(payload)))
	payload = payload[copy(r[7:], payload):]
	reports = append(reports, r)
	for seq := byte(0); len(payload) > 0; seq++ {
		r := make([]byte, hidReportLen)
		binary.BigEndian.PutUint32(r, cid)
		r[4] = seq
		payload = payload[copy(r[5:], payload):]
		reports = append(reports, r)
	}
	for d := range h.handles {
		d.enqueue(reports)
	}
}

// U2FHIDDevice is one open handle on a U2FHID, the equivalent of an open
// hidraw node: a github.com/flynn/hid Device. Create it with U2FHID.Open.
// Write and Close are safe for concurrent use.
type U2FHIDDevice struct {
	h    *U2FHID
	ch   chan []byte
	wake chan struct{} // signalled when queue grows
	done chan struct{} // closed when the handle is closed or unplugged

	// Guarded by h.mu.
	queue   [][]byte
	dropped int
	readErr error
	closed  bool
}

// Write sends one output report: the report number, which must be 0 as the
// device has no numbered reports, followed by up to 64 bytes, zero-padded.
// The device processes the report before Write returns; the answer arrives
// on ReadCh. It fails once the handle is closed or the device unplugged.
func (d *U2FHIDDevice) Write(report []byte) error {
	if len(report) == 0 || len(report) > 1+hidReportLen {
		return fmt.Errorf("writing hid report: %d bytes, want 1 to %d", len(report), 1+hidReportLen)
	}
	if report[0] != 0 {
		return fmt.Errorf("writing hid report: report number %d, the device has only report 0", report[0])
	}
	var r [hidReportLen]byte
	copy(r[:], report[1:])
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if d.closed {
		if d.readErr != nil {
			return fmt.Errorf("writing hid report: %w", d.readErr)
		}
		return errors.New("writing hid report: handle closed")
	}
	d.h.receive(&r)
	return nil
}

// ReadCh returns the channel of input reports, 64 bytes each without a
// report number. It is closed when the handle is closed or the device
// unplugged; reports not yet read then are dropped. A reader that falls
// more than 258 reports behind loses the newest ones, as with hidraw.
func (d *U2FHIDDevice) ReadCh() <-chan []byte { return d.ch }

// ReadError returns why ReadCh was closed: an error wrapping
// ErrU2FDisconnected when the device was unplugged, nil after Close.
func (d *U2FHIDDevice) ReadError() error {
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	return d.readErr
}

// Close closes the handle; ReadCh is closed soon after.
func (d *U2FHIDDevice) Close() {
	d.h.mu.Lock()
	d.detach(nil)
	d.h.mu.Unlock()
}

// detach closes the handle with read error err; h.mu is held.
func (d *U2FHIDDevice) detach(err error) {
	if d.closed {
		return
	}
	d.closed = true
	d.readErr = err
	d.queue = nil
	delete(d.h.handles, d)
	close(d.done)
}

// enqueue queues reports for the reader; h.mu is held. Reports beyond
// hidQueueLen are dropped.
func (d *U2FHIDDevice) enqueue(reports [][]byte) {
	for _, r := range reports {
		if len(d.queue) >= hidQueueLen {
			d.dropped++
			continue
		}
		d.queue = append(d.queue, append([]byte(nil), r...))
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// next returns the next queued report, waiting for one, or false once the
// handle is closed.
func (d *U2FHIDDevice) next() ([]byte, bool) {
	for {
		d.h.mu.Lock()
		if d.closed {
			d.h.mu.Unlock()
			return nil, false
		}
		if len(d.queue) > 0 {
			r := d.queue[0]
			d.queue[0] = nil
			d.queue = d.queue[1:]
			d.h.mu.Unlock()
			return r, true
		}
		d.h.mu.Unlock()
		select {
		case <-d.wake:
		case <-d.done:
		}
	}
}

// pump delivers queued reports to ReadCh, pausing the report interval after
// each, and closes ReadCh when the handle closes.
func (d *U2FHIDDevice) pump() {
	defer d.h.wg.Done()
	defer close(d.ch)
	var pause *time.Timer
	defer func() {
		if pause != nil {
			pause.Stop()
		}
	}()
	for {
		r, ok := d.next()
		if !ok {
			return
		}
		select {
		case d.ch <- r:
		case <-d.done:
			return
		}
		if d.h.interval <= 0 {
			continue
		}
		if pause == nil {
			pause = time.NewTimer(d.h.interval)
		} else {
			pause.Reset(d.h.interval)
		}
		select {
		case <-pause.C:
		case <-d.done:
			return
		}
	}
}
