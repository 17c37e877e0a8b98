package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrModemClosed is returned by WaitSMS and Reappear once the modem is
// closed.
var ErrModemClosed = errors.New("sim: modem closed")

// Defaults of ModemOptions.
const (
	DefaultModemOperator     = "mfad-sim"
	DefaultModemRSSI         = 20
	DefaultModemManufacturer = "mfad"
	DefaultModemModel        = "simulated GSM modem"
	DefaultModemRevision     = "mfad-sim 1.0"
	DefaultModemIMEI         = "356938035643809"
	DefaultModemIMSI         = "001010123456789"
	DefaultModemPUK          = "12345678"
)

// Timing of the serving goroutines.
const (
	// hangupPoll is how often a modem without a client checks for one.
	hangupPoll = 20 * time.Millisecond
	// noiseInterval is the period of URC noise between replies.
	noiseInterval = 250 * time.Millisecond
)

// ModemOptions configure NewModem. The zero value is a registered modem
// with an unlocked SIM and default identity.
type ModemOptions struct {
	// PIN is the SIM PIN. Empty means the SIM needs none; otherwise the SIM
	// starts locked (+CPIN: SIM PIN) and the modem is not registered until
	// AT+CPIN="<PIN>" unlocks it.
	PIN string
	// PUK unblocks the SIM after three wrong PINs. Empty means
	// DefaultModemPUK.
	PUK string
	// Operator is the network name +COPS? reports. Empty means
	// DefaultModemOperator.
	Operator string
	// RSSI is the +CSQ received signal strength, 0 to 31 or 99 (unknown).
	// Zero means DefaultModemRSSI; use SetRSSI for a signal of 0.
	RSSI int
	// Model, Manufacturer, Revision, IMEI and IMSI are what +CGMM, +CGMI,
	// +CGMR, +CGSN and +CIMI answer. Empty means the DefaultModem* value.
	Model, Manufacturer, Revision, IMEI, IMSI string
	// SendDelay is how long a +CMGS takes, from Ctrl-Z to its +CMGS: <mr>
	// and OK (or to a +CMS ERROR injected by FailSends). The message is
	// sent, and shows in Inbox, when Ctrl-Z arrives: a client that gives up
	// waiting for the answer may still have sent it, as on a real network.
	SendDelay time.Duration
	// Link, if set, is the path of a symbolic link kept pointing at the
	// current slave device, like the links under /dev/serial/by-id: it is
	// created by NewModem, removed by Vanish and Close and re-pointed by
	// Reappear. An existing symbolic link there is replaced; anything else
	// makes NewModem fail.
	Link string
	// DeliveryReports makes the modem report delivery of every message
	// that asked for a status report (TP-SRR in the PDU, or bit 0x20 of the
	// +CSMP first octet in text mode) while +CNMI ds is 1: a "+CDS" URC
	// with status 0 (delivered) follows the +CMGS answer.
	DeliveryReports bool
	// Log receives the modem's log; nil discards it. Phone numbers are
	// logged redacted and message texts, PINs and PDUs never.
	Log *slog.Logger
	// Now is the clock for message and status-report timestamps and
	// +CCLK; nil means time.Now.
	Now func() time.Time
}

// withDefaults returns o with every empty field set to its default.
func (o ModemOptions) withDefaults() (ModemOptions, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.PUK, DefaultModemPUK)
	def(&o.Operator, DefaultModemOperator)
	def(&o.Manufacturer, DefaultModemManufacturer)
	def(&o.Model, DefaultModemModel)
	def(&o.Revision, DefaultModemRevision)
	def(&o.IMEI, DefaultModemIMEI)
	def(&o.IMSI, DefaultModemIMSI)
	if o.RSSI == 0 {
		o.RSSI = DefaultModemRSSI
	}
	if !validRSSI(o.RSSI) {
		return o, fmt.Errorf("invalid rssi %d: want 0 to 31 or 99", o.RSSI)
	}
	if o.SendDelay < 0 {
		return o, fmt.Errorf("invalid send delay %v", o.SendDelay)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func validRSSI(n int) bool { return n >= 0 && n <= 31 || n == 99 }

// SMS is a message the simulated modem sent.
type SMS struct {
	// To is the destination as addressed: "+" and digits for an
	// international number, the digits alone otherwise.
	To string
	// Text is the message; characters that could not be decoded are
	// U+FFFD.
	Text string
	// Parts is the number of concatenated parts (1 for a single message).
	Parts int
	// Encoding is the data coding of the first part: "gsm7", "ucs2" or
	// "8bit".
	Encoding string
	// Mode is "pdu" or "text", the +CMGF mode the message was sent in.
	Mode string
	// Ref is the message reference (+CMGS: <mr>) of the last part sent.
	Ref int
	// Time is when the last part was sent, by ModemOptions.Now.
	Time time.Time
}

// LogValue logs a message without its text and with the number redacted.
func (s SMS) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("to", redactNumber(s.To)),
		slog.Int("parts", s.Parts),
		slog.String("encoding", s.Encoding),
		slog.String("mode", s.Mode),
		slog.Int("ref", s.Ref),
		slog.Int("chars", utf8.RuneCountInString(s.Text)),
	)
}

// redactNumber keeps the last two digits of a phone number.
func redactNumber(n string) string {
	if len(n) <= 2 {
		return strings.Repeat("*", len(n))
	}
	return strings.Repeat("*", len(n)-2) + n[len(n)-2:]
}

// modemInput is bytes a client wrote to a port.
type modemInput struct {
	p    *modemPort
	data []byte
}

// Modem is a simulated GSM modem answering AT commands on a
// pseudo-terminal. Create it with NewModem; all methods are safe for
// concurrent use.
type Modem struct {
	opts ModemOptions
	log  *slog.Logger

	in   chan modemInput
	kick chan struct{} // URCs queued or noise switched
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
	plug sync.Mutex // serialises Vanish, Reappear and Close

	mu       sync.Mutex
	dev      *modemDevice
	port     *modemPort // nil while vanished and once closed
	lastPath string
	closed   bool
	inbox    []SMS
	taken    []bool        // inbox[i] was returned by WaitSMS
	arrived  chan struct{} // closed and replaced when a message arrives
	closeErr error
}

// NewModem creates a simulated modem on a new pseudo-terminal and starts
// answering on it. Clients open Path() like a serial port. Call Close to
// stop it.
func NewModem(opts ModemOptions) (*Modem, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating sim modem: %w", err)
	}
	m := &Modem{
		opts:    opts,
		log:     opts.Log.With("component", "sim-modem"),
		in:      make(chan modemInput),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		arrived: make(chan struct{}),
	}
	m.dev = newDevice(opts, m.log, m.deliver)
	p, err := openModemPort()
	if err != nil {
		return nil, fmt.Errorf("creating sim modem: %w", err)
	}
	if opts.Link != "" {
		if err := pointModemLink(opts.Link, p.path); err != nil {
			p.close()
			return nil, fmt.Errorf("creating sim modem: %w", err)
		}
	}
	m.port, m.lastPath = p, p.path
	m.wg.Add(2)
	go m.process()
	go m.read(p)
	m.log.Info("sim modem ready", "device", p.path, "link", opts.Link)
	return m, nil
}

// Path returns the device clients open: Link if set, else the current slave
// device (/dev/pts/N), or "" while the modem has vanished.
func (m *Modem) Path() string {
	if m.opts.Link != "" {
		return m.opts.Link
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.port == nil {
		return ""
	}
	return m.port.path
}

// Serve blocks until ctx is done or the modem is closed, then closes the
// modem and returns the error of Close.
func (m *Modem) Serve(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-m.done:
	}
	return m.Close()
}

// Close stops the modem: its pseudo-terminal disappears (clients' reads
// return EOF or EIO), Link is removed and WaitSMS returns ErrModemClosed.
// Later calls return the first call's result.
func (m *Modem) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.plug.Lock()
		defer m.plug.Unlock()
		m.mu.Lock()
		m.closed = true
		p := m.port
		m.port = nil
		m.mu.Unlock()
		if p != nil {
			p.close()
		}
		m.wg.Wait()
		if m.opts.Link != "" {
			m.closeErr = removeModemLink(m.opts.Link)
		}
		m.log.Info("sim modem closed")
	})
	return m.closeErr
}

// Inbox returns every message sent so far, in order.
func (m *Modem) Inbox() []SMS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]SMS(nil), m.inbox...)
}

// WaitSMS returns the first message to `to` (compared exactly with SMS.To)
// that no earlier WaitSMS returned, waiting for it if necessary. It fails
// when ctx is done or the modem is closed.
func (m *Modem) WaitSMS(ctx context.Context, to string) (SMS, error) {
	for {
		m.mu.Lock()
		for i, s := range m.inbox {
			if !m.taken[i] && s.To == to {
				m.taken[i] = true
				m.mu.Unlock()
				return s, nil
			}
		}
		arrived := m.arrived
		m.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return SMS{}, fmt.Errorf("waiting for sms: %w", ctx.Err())
		case <-m.done:
			return SMS{}, ErrModemClosed
		}
	}
}

// Sends returns how many +CMGS commands succeeded; every part of a
// concatenated message counts.
func (m *Modem) Sends() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dev.sends
}

// FailSends makes the next n sends answer "+CMS ERROR: <cms>" (after
// SendDelay) instead of sending; n < 0 fails every send until Reset, n = 0
// stops failing. A cms <= 0 means 500 (unknown error). Sends that are
// refused for other reasons (a malformed PDU, no network) do not count.
func (m *Modem) FailSends(n, cmsResult int) {
	if cmsResult <= 0 {
		cmsResult = cmsUnknown
	}
	m.mu.Lock()
	m.dev.failN, m.dev.failCMS = n, cmsResult
	m.mu.Unlock()
}

// SetRegistered sets the network registration state +CREG?, +CGREG? and
// +CEREG? report: 1 registered (home), 5 registered (roaming), 2 searching,
// 0 not registered, 3 denied, 4 unknown. Sends fail with +CMS ERROR: 331
// unless it is 1 or 5. A change is reported by +CREG/+CGREG/+CEREG URCs to
// clients that enabled them. Values outside 0 to 5 are ignored.
func (m *Modem) SetRegistered(stat int) {
	if stat < 0 || stat > 5 {
		return
	}
	m.mu.Lock()
	m.dev.stat = stat
	m.dev.statChanged()
	m.mu.Unlock()
	m.poke()
}

// SetRSSI sets the signal strength +CSQ reports: 0 to 31, or 99 (unknown).
// Other values are ignored.
func (m *Modem) SetRSSI(rssi int) {
	if !validRSSI(rssi) {
		return
	}
	m.mu.Lock()
	m.dev.rssi = rssi
	m.mu.Unlock()
}

// SetPINRequired replaces the SIM: with a non-empty pin it is locked until
// AT+CPIN="<pin>" (the modem deregisters until then), with "" it needs no
// PIN. The PIN also applies after Reappear.
func (m *Modem) SetPINRequired(pin string) {
	m.mu.Lock()
	m.dev.opts.PIN = pin
	m.dev.lockSIM(pin)
	m.dev.statChanged()
	m.mu.Unlock()
	m.poke()
}

// SetReplyDelay delays every reply to a command line, and every +CMGS
// prompt and answer, by d, as a slow modem does. The echo is not delayed.
func (m *Modem) SetReplyDelay(d time.Duration) {
	if d < 0 {
		d = 0
	}
	m.mu.Lock()
	m.dev.replyDelay = d
	m.mu.Unlock()
}

// Wedge makes the modem stop answering entirely (on) or answer again
// (off). A wedged modem reads and drops all input, echoes nothing, writes
// no URCs and drops replies still pending; a partial command line or
// message is lost. Reappear and Reset clear it.
func (m *Modem) Wedge(on bool) {
	m.mu.Lock()
	m.dev.wedged = on
	if on {
		m.dev.wedges++
		m.dev.line, m.dev.overflow, m.dev.prompt = nil, false, nil
	}
	m.mu.Unlock()
	m.poke()
}

// InjectURC queues an unsolicited result code such as "RING" or
// `+CMTI: "SM",3`. It is written between replies: at once when the modem is
// idle, else right after the reply in progress (or after the message
// being entered at a +CMGS prompt).
func (m *Modem) InjectURC(line string) {
	m.mu.Lock()
	m.dev.queueURC(line)
	m.mu.Unlock()
	m.poke()
}

// SetURCNoise switches URC noise: while on, one URC (RING, +CMTI, +CREG,
// the vendor ^RSSI and +CIEV in turn) comes with every reply, alternately
// just before and just after it, and one more every 250ms while idle.
func (m *Modem) SetURCNoise(on bool) {
	m.mu.Lock()
	m.dev.noise = on
	m.mu.Unlock()
	m.poke()
}

// Reset clears the faults: sends no longer fail, the modem is registered
// (home) again, and reply delay, wedge and URC noise are off. The SIM, the
// settings made by AT commands and the sent messages are kept.
func (m *Modem) Reset() {
	m.mu.Lock()
	d := m.dev
	d.failN, d.failCMS = 0, 0
	d.replyDelay = 0
	d.wedged = false
	d.noise = false
	d.stat = 1
	d.statChanged()
	m.mu.Unlock()
	m.poke()
}

// Vanish makes the device disappear, like a modem unplugged: the
// pseudo-terminal is closed (clients' reads return EOF or EIO, writes
// fail), Link is removed and replies in progress are lost. Sent messages
// are kept. Reappear brings it back.
func (m *Modem) Vanish() {
	m.plug.Lock()
	defer m.plug.Unlock()
	m.vanish()
}

// vanish is Vanish; m.plug is held.
func (m *Modem) vanish() {
	m.mu.Lock()
	p := m.port
	m.port = nil
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.close()
	if m.opts.Link != "" {
		if err := removeModemLink(m.opts.Link); err != nil {
			m.log.Warn("removing link", "err", err)
		}
	}
	m.log.Info("sim modem vanished", "device", p.path)
}

// Reappear plugs the modem in again on a new pseudo-terminal (a
// /dev/pts number different from the last one) and re-points Link: the
// modem restarts with default settings (echo on), the SIM locked again if it
// has a PIN, and no wedge; other faults, the message reference and sent
// messages are kept. If the modem is present it is first made to vanish.
func (m *Modem) Reappear() error {
	m.plug.Lock()
	defer m.plug.Unlock()
	m.mu.Lock()
	closed, lastPath := m.closed, m.lastPath
	m.mu.Unlock()
	if closed {
		return ErrModemClosed
	}
	m.vanish()
	p, err := openNewModemPort(lastPath)
	if err != nil {
		return fmt.Errorf("reappearing: %w", err)
	}
	if m.opts.Link != "" {
		if err := pointModemLink(m.opts.Link, p.path); err != nil {
			p.close()
			return fmt.Errorf("reappearing: %w", err)
		}
	}
	m.mu.Lock()
	m.port, m.lastPath = p, p.path
	m.dev.powerOn()
	m.dev.wedged = false
	m.wg.Add(1)
	go m.read(p)
	m.mu.Unlock()
	m.log.Info("sim modem reappeared", "device", p.path)
	return nil
}

// openNewModemPort opens a port whose path differs from avoid: the kernel
// reuses the number of a pseudo-terminal freed just before, so numbers
// handed out again are held until a new one comes.
func openNewModemPort(avoid string) (*modemPort, error) {
	var held []*modemPort
	defer func() {
		for _, p := range held {
			p.close()
		}
	}()
	for range 8 {
		p, err := openModemPort()
		if err != nil {
			return nil, err
		}
		if p.path != avoid {
			return p, nil
		}
		held = append(held, p)
	}
	return nil, errors.New("no new pseudo-terminal number")
}

// deliver records a sent message; m.mu is held (it is called from the
// device).
func (m *Modem) deliver(s SMS) {
	m.inbox = append(m.inbox, s)
	m.taken = append(m.taken, false)
	close(m.arrived)
	m.arrived = make(chan struct{})
	m.log.Info("sms sent", "sms", s)
}

// poke wakes the processing goroutine to write queued URCs.
func (m *Modem) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// read copies what clients write to port p to the processing goroutine
// until p is closed. While no client holds the slave open it polls.
func (m *Modem) read(p *modemPort) {
	defer m.wg.Done()
	buf := make([]byte, 4096)
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		n, err := p.master.Read(buf)
		if n > 0 {
			select {
			case m.in <- modemInput{p: p, data: bytes.Clone(buf[:n])}:
			case <-p.closed:
				return
			}
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if isNoClient(err) {
			p.hungUp()
		} else {
			m.log.Warn("reading pseudo-terminal", "device", p.path, "err", err)
		}
		wait.Reset(hangupPoll)
		select {
		case <-wait.C:
		case <-p.closed:
			return
		}
	}
}

// process runs the device: it feeds it client input, writes its output,
// and writes URCs and noise between replies.
func (m *Modem) process() {
	defer m.wg.Done()
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		m.mu.Lock()
		noise := m.dev.noise
		m.mu.Unlock()
		var tick <-chan time.Time
		switch {
		case noise && ticker == nil:
			ticker = time.NewTicker(noiseInterval)
			tick = ticker.C
		case noise:
			tick = ticker.C
		case ticker != nil:
			ticker.Stop()
			ticker = nil
		}

		var (
			p      *modemPort
			out    []outChunk
			wedges int
		)
		select {
		case <-m.done:
			return
		case in := <-m.in:
			m.mu.Lock()
			if in.p == m.port {
				p, out = in.p, m.dev.feed(in.data)
			}
			wedges = m.dev.wedges
			m.mu.Unlock()
		case <-m.kick:
			m.mu.Lock()
			m.dev.flushURCs()
			p, out, wedges = m.port, m.dev.takeOutput(), m.dev.wedges
			m.mu.Unlock()
		case <-tick:
			m.mu.Lock()
			m.dev.noiseTick()
			p, out, wedges = m.port, m.dev.takeOutput(), m.dev.wedges
			m.mu.Unlock()
		}
		m.send(p, out, wedges)
	}
}

// send writes output chunks to p after their delays. It stops when p is
// closed or the modem was wedged meanwhile, wedges being the number of
// Wedge(true) calls when the output was made.
func (m *Modem) send(p *modemPort, out []outChunk, wedges int) {
	if p == nil {
		return
	}
	for _, c := range out {
		if c.delay > 0 {
			t := time.NewTimer(c.delay)
			select {
			case <-t.C:
			case <-p.closed:
				t.Stop()
				return
			case <-m.done:
				t.Stop()
				return
			}
		}
		m.mu.Lock()
		drop := m.dev.wedged || m.dev.wedges != wedges || m.port != p
		m.mu.Unlock()
		if drop {
			return
		}
		if err := p.write(c.data); err != nil && !errors.Is(err, os.ErrClosed) {
			m.log.Debug("writing to pseudo-terminal", "device", p.path, "err", err)
		}
	}
}
