package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warthog618/modem/at"
	"github.com/warthog618/modem/gsm"
	"github.com/warthog618/sms/encoding/pdumode"
	"github.com/warthog618/sms/encoding/tpdu"
)

// State is the life-cycle state of a Modem.
type State string

// States, in the order a healthy modem passes them.
const (
	StateStarting     State = "starting"     // opening the port
	StateInitialising State = "initialising" // setting the modem up, unlocking the SIM
	StateRegistering  State = "registering"  // waiting for the network
	StateReady        State = "ready"        // sending
	StateDown         State = "down"         // failed; retried after a backoff
	StateClosed       State = "closed"       // Close was called
)

// Status is a snapshot of a modem for `mfad status`. It holds no secret and
// no phone number.
type Status struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	Mode   string `json:"mode"`
	State  State  `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// Error is the last failure, empty once the modem is ready again.
	Error string `json:"error,omitempty"`
	// SIM is the SIM state: "ready", "pin required", "pin rejected",
	// "puk required", "absent" or the modem's own word.
	SIM string `json:"sim,omitempty"`
	// Registration is "home", "roaming", "searching", "denied", "not
	// registered" or "unknown".
	Registration string `json:"registration,omitempty"`
	// SignalDBm is the received signal strength; 0 when unknown.
	SignalDBm    int    `json:"signal_dbm,omitempty"`
	Operator     string `json:"operator,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Model        string `json:"model,omitempty"`
	Revision     string `json:"revision,omitempty"`
	// StatusReports is whether delivery reports are requested (configured
	// and accepted by the modem).
	StatusReports bool `json:"status_reports"`
	// Opens counts the times the port was opened.
	Opens int `json:"opens"`
	// LastSend is the end of the last send attempt.
	LastSend time.Time `json:"last_send,omitzero"`
	// Message counts by outcome; Delivered and Undelivered count final
	// status reports.
	Sent        uint64 `json:"sent"`
	Failed      uint64 `json:"failed"`
	Unknown     uint64 `json:"unknown"`
	Delivered   uint64 `json:"delivered"`
	Undelivered uint64 `json:"undelivered"`
}

// Result reports what happened to one message.
type Result struct {
	Outcome Outcome
	// Modem is the modem of the last attempt; empty if none was tried.
	Modem string
	// Parts is the number of parts the message was split into.
	Parts int
	// Refs are the message references (TP-MR) of the parts the network
	// accepted, in order; -1 where the modem gave none. With Outcome Sent
	// there is one per part; with Failed there may be some (a partial send,
	// whose parts the phone cannot assemble).
	Refs []int
	// Attempts lists every attempt in order (Pool.Send only).
	Attempts []Attempt
}

// Attempt is one send of a message on one modem.
type Attempt struct {
	Modem   string
	Outcome Outcome
	Refs    []int
	Err     error
	Start   time.Time
	End     time.Time
}

// Modem drives one GSM modem: it keeps the port open and initialised,
// sends messages and reports status. All methods are safe for concurrent
// use; commands to the modem are serialised.
type Modem struct {
	cfg   Config
	log   *slog.Logger
	enc   *encoder
	rate  *window
	trace *tracer
	guard guard

	// lock is held for every exchange with the modem (1-slot semaphore).
	lock    chan struct{}
	events  chan urc
	cancel  context.CancelFunc
	closing chan struct{}
	done    chan struct{}
	once    sync.Once
	jobs    sync.WaitGroup // send goroutines

	// lateCMGS is set when a +CMGS result was given up on, so that a late
	// answer is logged.
	lateCMGS atomic.Bool
	// strayPrompt is set when a "> " prompt arrived outside a +CMGS: the
	// modem waits for a message body and would swallow the next command,
	// so that command first resynchronises (starting with ESC).
	strayPrompt atomic.Bool

	inflight atomic.Int32 // Pool: sends in progress
	lastPick atomic.Int64 // Pool: unix nanoseconds of the last pick

	mu          sync.Mutex
	st          Status
	cur         *conn // the connection being initialised or in use
	ready       bool
	reportsOn   bool
	pinAttempts map[[32]byte]int // unconfirmed attempts per PIN digest
	pinRejected map[[32]byte]bool
}

// Open validates cfg and starts a goroutine that opens the device,
// initialises the modem and keeps it so (re-opening it with backoff after
// failures) until ctx is done or Close is called. It fails only on an
// invalid Config; a missing device is reported through Status and retried.
// log receives the modem's events (nil discards them).
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Modem, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Modem{
		cfg:         cfg,
		log:         log.With("component", "modem", "modem", cfg.Name),
		enc:         newEncoder(cfg.Rand, cfg.MaxParts),
		rate:        newWindow(cfg.RatePerMinute, time.Minute),
		trace:       &tracer{w: cfg.Trace},
		lock:        make(chan struct{}, 1),
		events:      make(chan urc, 64),
		closing:     make(chan struct{}),
		done:        make(chan struct{}),
		pinAttempts: map[[32]byte]int{},
		pinRejected: map[[32]byte]bool{},
	}
	m.st = Status{Name: cfg.Name, Device: cfg.Device, Mode: cfg.Mode, State: StateStarting, Since: cfg.Clock.Now()}
	ctx, m.cancel = context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.supervise(ctx) }()
	go func() { defer wg.Done(); m.eventLoop(ctx) }()
	go func() { wg.Wait(); close(m.done) }()
	return m, nil
}

// Name returns the configured name.
func (m *Modem) Name() string { return m.cfg.Name }

// Status returns a snapshot of the modem's state.
func (m *Modem) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st
}

// Close stops the modem: a send in progress ends (with Unknown if its body
// was written), the port is closed and Close waits for the modem's
// goroutines; nothing is logged or traced after it returns. It always
// returns nil.
func (m *Modem) Close() error {
	m.once.Do(func() {
		// Under mu, so that Send either sees closing or has registered
		// its job before jobs.Wait.
		m.mu.Lock()
		close(m.closing)
		c := m.cur
		m.mu.Unlock()
		m.cancel()
		if c != nil {
			c.kill(ErrClosed)
		}
	})
	<-m.done
	m.jobs.Wait()
	m.trace.stop()
	return nil
}

func (m *Modem) closed() bool {
	select {
	case <-m.closing:
		return true
	default:
		return false
	}
}

// conn is one AT layer on top of a view of a link.
type conn struct {
	link *link
	view *view
	at   *at.AT
	gsm  *gsm.GSM

	// resync is set after a command timed out: the modem may still answer
	// it, so the next command first resynchronises. Guarded by Modem.lock.
	resync bool

	once   sync.Once
	err    error
	broken chan struct{}
}

func (m *Modem) newConn(l *link) *conn {
	s := l.attach()
	a := at.New(s, at.WithTimeout(m.cfg.CommandTimeout))
	var opts []gsm.Option
	if m.cfg.Mode == "text" {
		opts = append(opts, gsm.WithTextMode)
	} else {
		if m.cfg.SMSC != "" {
			smsc, _ := NormalizeE164(m.cfg.SMSC)
			opts = append(opts, gsm.WithSCA(pdumode.SMSCAddress{Address: tpdu.NewAddress(tpdu.FromNumber(smsc))}))
		}
		opts = append(opts, gsm.WithPDUMode)
	}
	return &conn{link: l, view: s, at: a, gsm: gsm.New(a, opts...), broken: make(chan struct{})}
}

// kill ends the connection with err: the AT layer closes, every pending
// command returns at once, and the supervisor re-initialises the modem.
func (c *conn) kill(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.broken)
		c.view.end()
	})
}

// cause returns why the connection ended.
func (c *conn) cause() error {
	select {
	case <-c.broken:
		return c.err
	default:
	}
	if err := c.link.failed(); err != nil {
		return err
	}
	return errLinkClosed
}

// alive returns nil while the connection works, else why it ended.
func (c *conn) alive() error {
	select {
	case <-c.broken:
		return c.err
	case <-c.link.dead:
		return c.link.failed()
	case <-c.at.Closed():
		return errATClosed
	default:
		return nil
	}
}

// errATClosed means the AT layer stopped reading (for example after a
// line longer than its 64 KiB buffer) although the port is fine.
var errATClosed = errors.New("at layer closed")

// acquire takes the command lock.
func (m *Modem) acquire(ctx context.Context) error {
	select {
	case m.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closing:
		return ErrClosed
	}
}

func (m *Modem) release() { <-m.lock }

// command runs one AT command (without the "AT") and returns the lines
// that answer it, with URCs and echoes filtered out. Caller holds the lock.
func (m *Modem) command(c *conn, cmd string, timeout time.Duration) ([]string, error) {
	if m.strayPrompt.Swap(false) {
		c.resync = true
	}
	if c.resync {
		if err := m.resynchronise(c); err != nil {
			return nil, err
		}
	}
	info, err := c.at.Command(cmd, at.WithTimeout(timeout))
	if err != nil {
		return nil, m.atError(c, "AT"+cmd, err)
	}
	return answerLines(cmd, info), nil
}

// atError translates an error of the at package. The command is named
// with its arguments redacted where they may be secret.
func (m *Modem) atError(c *conn, cmd string, err error) error {
	name := redactLine(cmd)
	var (
		cms at.CMSError
		cme at.CMEError
	)
	switch {
	case errors.Is(err, at.ErrDeadlineExceeded):
		c.resync = true
		return fmt.Errorf("%s: %w", name, ErrTimeout)
	case errors.Is(err, at.ErrClosed):
		return fmt.Errorf("%s: connection lost: %v", name, c.cause())
	case errors.As(err, &cms):
		return fmt.Errorf("%s: %w", name, newCMSError(string(cms)))
	case errors.As(err, &cme):
		return fmt.Errorf("%s: %w", name, newCMEError(string(cme)))
	case errors.Is(err, at.ErrError):
		return fmt.Errorf("%s: %w", name, &cmeError{code: -1})
	default:
		return fmt.Errorf("%s: %v", name, err)
	}
}

// resynchronise brings the command stream back in step after a timeout: a
// late answer to the timed-out command must not be taken as the answer to
// the next one. It aborts any pending message entry, waits until the modem
// has been quiet for a moment, and requires a probe (+CSQ) to be answered
// with its own information line. If three probes fail, the connection is
// killed and the modem re-initialised.
func (m *Modem) resynchronise(c *conn) error {
	for range 3 {
		c.at.Escape()
		c.link.quiet(500*time.Millisecond, m.cfg.CommandTimeout)
		info, err := c.at.Command("+CSQ", at.WithTimeout(m.cfg.CommandTimeout))
		if errors.Is(err, at.ErrClosed) {
			return fmt.Errorf("resynchronising: connection lost: %v", c.cause())
		}
		if err == nil {
			if _, perr := parseCSQ(answerLines("+CSQ", info)); perr == nil {
				c.resync = false
				m.log.Debug("modem resynchronised")
				return nil
			}
		}
	}
	err := fmt.Errorf("resynchronising after a timeout: %w", ErrTimeout)
	m.breakConn(c, err)
	return err
}

// breakConn marks the modem down at once (so a Pool bypasses it) and kills
// the connection so that the supervisor re-initialises it.
func (m *Modem) breakConn(c *conn, err error) {
	m.mu.Lock()
	if m.cur == c && m.ready {
		m.ready = false
		m.setStateLocked(StateDown, err)
	}
	m.mu.Unlock()
	c.kill(err)
}

func (m *Modem) setState(s State, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setStateLocked(s, err)
}

func (m *Modem) setStateLocked(s State, err error) {
	if m.st.State == StateClosed {
		return
	}
	if m.st.State != s {
		m.st.Since = m.cfg.Clock.Now()
	}
	m.st.State = s
	if err != nil {
		m.st.Error = err.Error()
	} else if s == StateReady {
		m.st.Error = ""
	}
}

func (m *Modem) update(f func(st *Status)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.st)
}

// supervise opens, initialises and watches the modem until ctx is done.
func (m *Modem) supervise(ctx context.Context) {
	bo := newBackoff(m.cfg.ReopenBackoff, m.cfg.ReopenBackoffMax)
	var l *link
	defer func() {
		if l != nil {
			l.close()
		}
		m.setState(StateClosed, nil)
	}()
	for ctx.Err() == nil {
		if l != nil {
			if err := l.failed(); err != nil {
				m.log.Warn("modem port lost", "device", m.cfg.Device, "err", err)
				l = nil
			} else if l.stale() {
				m.log.Warn("modem device path now names another device; reopening", "device", m.cfg.Device)
				l.close()
				l = nil
			}
		}
		if l == nil {
			m.setState(StateStarting, nil)
			nl, err := dial(m.cfg.Device, m.cfg.Baud, &m.guard, m.trace, m.onURC)
			if err != nil {
				m.down(ctx, fmt.Errorf("%w: %v", errNoDevice, err), bo)
				continue
			}
			l = nl
			m.update(func(st *Status) { st.Opens++ })
			m.log.Info("modem port opened", "device", m.cfg.Device)
		}
		c := m.newConn(l)
		// Under mu: either Close sees this connection and kills it, or
		// this sees that Close was called.
		m.mu.Lock()
		m.cur = c
		closed := m.closed()
		m.mu.Unlock()
		if closed {
			c.kill(ErrClosed)
			return
		}
		err := m.acquire(ctx)
		if err == nil {
			err = m.initialise(ctx, c)
			m.release()
		}
		if err != nil {
			c.kill(err)
			if ctx.Err() != nil {
				return
			}
			m.down(ctx, err, bo)
			continue
		}
		bo.reset()
		err = m.watch(ctx, c)
		m.mu.Lock()
		m.ready = false
		m.mu.Unlock()
		c.kill(err)
		if ctx.Err() != nil {
			return
		}
		m.setState(StateDown, err)
		m.log.Warn("modem down", "err", err)
	}
}

// errNoDevice marks a device that could not be opened.
var errNoDevice = errors.New("device unavailable")

// down reports err and waits for the next backoff step. A failure that
// repeats the previous one is logged at debug level only, so a modem left
// unplugged does not flood the journal.
func (m *Modem) down(ctx context.Context, err error, bo *backoff) {
	d := bo.step()
	m.mu.Lock()
	repeated := m.st.Error == err.Error()
	m.setStateLocked(StateDown, err)
	m.mu.Unlock()
	level := slog.LevelWarn
	if repeated {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, "modem down", "err", err, "retry_in", d)
	select {
	case <-ctx.Done():
	case <-m.cfg.Clock.After(d):
	}
}

// watch runs health checks on a ready connection until it breaks.
func (m *Modem) watch(ctx context.Context, c *conn) error {
	for {
		interval := m.cfg.HealthInterval
		if m.Status().State == StateRegistering {
			interval = min(interval, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return ErrClosed
		case <-c.broken:
			return c.err
		case <-c.link.dead:
			return c.link.failed()
		case <-c.at.Closed():
			return errATClosed
		case <-m.cfg.Clock.After(interval):
			if err := m.acquire(ctx); err != nil {
				return ErrClosed
			}
			err := m.healthCheck(c)
			m.release()
			if err != nil {
				return err
			}
		}
	}
}

// healthCheck refreshes signal and registration. It fails if the modem
// stopped answering; losing the network only takes the modem out of the
// ready state until it registers again.
func (m *Modem) healthCheck(c *conn) error {
	to := m.cfg.CommandTimeout
	lines, err := m.command(c, "+CSQ", to)
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			// One more try after resynchronising; a wedged modem fails it.
			if lines, err = m.command(c, "+CSQ", to); err != nil {
				return fmt.Errorf("health check: %w", err)
			}
		} else {
			return fmt.Errorf("health check: %w", err)
		}
	}
	dbm, _ := parseCSQ(lines)
	stat := m.registration(c)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.SignalDBm = dbm
	m.st.Registration = regString(stat)
	switch {
	case regRegistered(stat) && !m.ready:
		m.ready = true
		m.setStateLocked(StateReady, nil)
		m.log.Info("modem registered again", "registration", m.st.Registration)
	case !regRegistered(stat) && m.ready:
		m.ready = false
		m.setStateLocked(StateRegistering, fmt.Errorf("network registration lost (%s)", regString(stat)))
		m.log.Warn("modem lost network registration", "registration", m.st.Registration)
	}
	return nil
}

// initialise sets the modem up on a fresh connection. Caller holds the
// lock.
func (m *Modem) initialise(ctx context.Context, c *conn) error {
	m.setState(StateInitialising, nil)
	to := m.cfg.CommandTimeout
	// Abort a half-typed command or message entry left by a previous
	// process, then let the modem settle.
	c.at.Escape('\r', '\n')
	c.link.quiet(200*time.Millisecond, 2*time.Second)
	for _, cmd := range m.cfg.InitCommands {
		if _, err := m.command(c, cmd, to); err != nil {
			return fmt.Errorf("initialising: %w", err)
		}
	}
	ident := func(cmd string) string {
		lines, err := m.command(c, cmd, to)
		if err != nil || len(lines) == 0 {
			return ""
		}
		return clip(value(lines[0], cmd), 60)
	}
	manuf, model, rev := ident("+CGMI"), ident("+CGMM"), ident("+CGMR")
	m.update(func(st *Status) { st.Manufacturer, st.Model, st.Revision = manuf, model, rev })

	if err := m.unlockSIM(ctx, c); err != nil {
		return err
	}
	mode := "+CMGF=0"
	if m.cfg.Mode == "text" {
		mode = "+CMGF=1"
	}
	if _, err := m.command(c, mode, to); err != nil {
		return fmt.Errorf("selecting %s mode: %w", m.cfg.Mode, err)
	}
	if m.cfg.Mode == "text" && m.cfg.SMSC != "" {
		smsc, _ := NormalizeE164(m.cfg.SMSC)
		if _, err := m.command(c, fmt.Sprintf("+CSCA=%q,145", smsc), to); err != nil {
			return fmt.Errorf("setting the service centre: %w", err)
		}
	}
	reports := m.cfg.StatusReports
	if reports {
		if _, err := m.command(c, m.cfg.NotifyCommand, to); err != nil {
			m.log.Warn("modem refused the status report setting; delivery reports off", "command", m.cfg.NotifyCommand, "err", err)
			reports = false
		}
	}
	if m.cfg.Mode == "text" {
		// First octet 17 is SMS-SUBMIT with a relative validity period;
		// 49 adds the status report request. Validity 167 is one day.
		csmp := "+CSMP=17,167,0,0"
		if reports {
			csmp = "+CSMP=49,167,0,0"
		}
		if _, err := m.command(c, csmp, to); err != nil {
			m.log.Warn("modem refused +CSMP; using its text mode parameters", "err", err)
			reports = false
		}
	}
	m.mu.Lock()
	m.reportsOn = reports
	m.st.StatusReports = reports
	m.mu.Unlock()

	if err := m.awaitRegistration(ctx, c); err != nil {
		return err
	}
	dbm, _ := func() (int, error) {
		lines, err := m.command(c, "+CSQ", to)
		if err != nil {
			return 0, err
		}
		return parseCSQ(lines)
	}()
	// Long alphanumeric operator names; not every modem accepts it.
	_, _ = m.command(c, "+COPS=3,0", to)
	var operator string
	if lines, err := m.command(c, "+COPS?", to); err == nil {
		operator = parseCOPS(lines)
	}
	m.mu.Lock()
	m.st.SignalDBm, m.st.Operator = dbm, operator
	m.ready = true
	m.setStateLocked(StateReady, nil)
	st := m.st
	m.mu.Unlock()
	m.log.Info("modem ready", "manufacturer", st.Manufacturer, "model", st.Model, "revision", st.Revision,
		"operator", st.Operator, "signal_dbm", st.SignalDBm, "registration", st.Registration,
		"mode", m.cfg.Mode, "status_reports", st.StatusReports)
	return nil
}

// SIM errors. A SIM that is locked or whose PIN was refused is never sent
// a PIN again by this process until the PIN file changes.
var (
	errPINRejected = errors.New("sim rejected the pin; not retried until pin_file changes")
	errPINUnsure   = errors.New("sim pin not confirmed twice; not retried until pin_file changes")
	errNeedPIN     = errors.New("sim needs a pin and no pin_file is configured")
	errSIMPUK      = errors.New("sim is blocked and needs its puk; unblock it in a phone")
	errNoSIM       = errors.New("no sim inserted")
)

// unlockSIM checks the SIM and enters the PIN if it asks for one.
func (m *Modem) unlockSIM(ctx context.Context, c *conn) error {
	to := m.cfg.CommandTimeout
	setSIM := func(s string) { m.update(func(st *Status) { st.SIM = s }) }
	entered := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		if err := c.alive(); err != nil {
			return fmt.Errorf("checking the sim: %w", err)
		}
		lines, err := m.command(c, "+CPIN?", to)
		if err != nil {
			switch cmeCode(err) {
			case cmeSIMNotInserted:
				setSIM("absent")
				return errNoSIM
			case cmeSIMBusy:
				if attempt < 20 {
					continue
				}
			case cmeSIMPUK:
				setSIM("puk required")
				return errSIMPUK
			}
			return fmt.Errorf("checking the sim: %w", err)
		}
		state, err := parseCPIN(lines)
		if err != nil {
			return fmt.Errorf("checking the sim: %w", err)
		}
		switch state {
		case "READY":
			setSIM("ready")
			return nil
		case "SIM PIN":
			if entered {
				// The SIM accepted the PIN but is still starting.
				if attempt < 20 {
					continue
				}
				return errors.New("sim still asks for its pin after accepting it")
			}
			setSIM("pin required")
			if err := m.enterPIN(c); err != nil {
				return err
			}
			entered = true
		case "SIM PUK", "SIM PUK2":
			setSIM("puk required")
			return errSIMPUK
		default:
			setSIM(clip(state, 20))
			return fmt.Errorf("sim asks for %q, which is not supported", clip(state, 20))
		}
	}
}

// enterPIN sends the PIN from the PIN file. Each distinct PIN is sent at
// most twice without a clear answer and never again once refused, so that
// the daemon alone can never use up the SIM's three attempts.
func (m *Modem) enterPIN(c *conn) error {
	if m.cfg.PINFile == "" {
		return errNeedPIN
	}
	pin, digest, err := readPIN(m.cfg.PINFile)
	if err != nil {
		return err
	}
	m.mu.Lock()
	rejected, tries := m.pinRejected[digest], m.pinAttempts[digest]
	m.mu.Unlock()
	switch {
	case rejected:
		m.update(func(st *Status) { st.SIM = "pin rejected" })
		return errPINRejected
	case tries >= 2:
		return errPINUnsure
	}
	m.mu.Lock()
	m.pinAttempts[digest]++
	m.mu.Unlock()
	_, err = m.command(c, fmt.Sprintf("+CPIN=%q", pin), m.cfg.CommandTimeout)
	switch {
	case err == nil:
		m.mu.Lock()
		delete(m.pinAttempts, digest)
		m.mu.Unlock()
		m.log.Info("sim pin accepted")
		return nil
	case cmeCode(err) == cmeWrongPassword:
		m.mu.Lock()
		m.pinRejected[digest] = true
		m.mu.Unlock()
		m.update(func(st *Status) { st.SIM = "pin rejected" })
		m.log.Error("sim rejected the pin from pin_file; fix the file, it is not tried again", "pin_file", m.cfg.PINFile)
		return errPINRejected
	default:
		return fmt.Errorf("entering the sim pin: %w", err)
	}
}

// awaitRegistration polls until the modem is registered (home or roaming)
// or RegisterTimeout passes.
func (m *Modem) awaitRegistration(ctx context.Context, c *conn) error {
	deadline := time.Now().Add(m.cfg.RegisterTimeout)
	for first := true; ; first = false {
		stat := m.registration(c)
		m.update(func(st *Status) { st.Registration = regString(stat) })
		if regRegistered(stat) {
			return nil
		}
		if first {
			m.setState(StateRegistering, nil)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no network registration within %v (%s)", m.cfg.RegisterTimeout, regString(stat))
		}
		if err := c.alive(); err != nil {
			// A poll timed out and resynchronising failed, or the port died.
			return fmt.Errorf("waiting for the network: %w", err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// registration returns the best registration state of +CREG (circuit
// switched) and +CEREG (LTE): a modem on an LTE-only network may report
// "not registered" in one and "home" in the other.
func (m *Modem) registration(c *conn) int {
	best := regUnknown
	for _, prefix := range []string{"+CREG", "+CEREG"} {
		lines, err := m.command(c, prefix+"?", m.cfg.CommandTimeout)
		if err != nil {
			continue
		}
		stat, err := parseRegQuery(lines, prefix)
		if err != nil {
			continue
		}
		if regRegistered(stat) {
			return stat
		}
		if best == regUnknown {
			best = stat
		}
	}
	return best
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// onURC is called on the pump goroutine for every URC line; it hands the
// URC to the event loop without blocking.
func (m *Modem) onURC(line string, u *urc) {
	if m.closed() {
		return
	}
	switch u.kind {
	case "prompt":
		if !m.guard.busy() {
			m.strayPrompt.Store(true)
			m.log.Debug("prompt outside a send; escaping before the next command")
		}
		return
	case "+CMGS":
		if m.lateCMGS.CompareAndSwap(true, false) {
			m.log.Warn("late +CMGS answer: a message reported as unknown was probably sent", "answer", clip(line, 40))
		}
		return
	case "+CDS", "+CDS-text":
	default:
		return
	}
	select {
	case m.events <- *u:
	default:
		m.log.Warn("status report dropped: event queue full")
	}
}

// eventLoop decodes status reports and hands them to OnDelivery.
func (m *Modem) eventLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-m.events:
			var (
				r   DeliveryReport
				err error
			)
			if u.kind == "+CDS" {
				r, err = decodeCDSPDU(u.lines[0], u.lines[1])
			} else {
				r, err = decodeCDSText(u.lines[0])
			}
			if err != nil {
				m.log.Warn("undecodable status report", "err", err)
				continue
			}
			r.Modem = m.cfg.Name
			r.Received = m.cfg.Clock.Now()
			m.update(func(st *Status) {
				switch {
				case r.Delivered:
					st.Delivered++
				case r.Final:
					st.Undelivered++
				}
			})
			m.log.Info("status report", "ref", r.Ref, "status", r.Status, "delivered", r.Delivered, "final", r.Final)
			if m.cfg.OnDelivery != nil {
				m.cfg.OnDelivery(r)
			}
		}
	}
}
