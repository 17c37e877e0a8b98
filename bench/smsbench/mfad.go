package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/api"
	"github.com/mfad/mfad/api/wire"
	"github.com/mfad/mfad/client"
	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// benchSMSLimit replaces the hourly SMS limits (sms.per_user_hourly,
// per_number_hourly and global_hourly, defaults 5, 5 and 500) so that they
// cannot refuse any of the benchmark's sends.
const benchSMSLimit = 1_000_000

// mfadStack is the daemon's object graph, wired as internal/daemon wires it:
// an encrypted on-disk Badger store (every answer waits for its fsync), the
// service with its durable SMS queue and dispatcher, the HTTP API on a Unix
// socket, and the hw/modem driver pool over the simulated modems. The pool
// is built here rather than through internal/smsgw so that the driver's
// trace can be tapped for the time of the first AT+CMGS byte; poolSender
// adapts it to service.SMSSender exactly as smsgw does.
type mfadStack struct {
	users  int
	db     *store.DB
	svc    *service.Service
	srv    *api.Server
	cl     *client.Client
	sender *poolSender
	log    *slog.Logger
	logf   *os.File

	// Set while started on a set of modems.
	cancel  context.CancelFunc
	done    chan struct{}
	traces  []*cmgsTrace
	reports sync.WaitGroup // delivery reports being recorded
}

// newMfad creates the store in dir, starts the API on dir/mfad.sock and
// returns the stack without modems.
func newMfad(dir string, users int) (*mfadStack, error) {
	cfg := config.Default(config.EnvFromOS())
	cfg.SMS.PerUserHourly, cfg.SMS.PerNumberHourly, cfg.SMS.GlobalHourly = benchSMSLimit, benchSMSLimit, benchSMSLimit
	logf, err := os.Create(filepath.Join(dir, "mfad.log"))
	if err != nil {
		return nil, err
	}
	// The daemon logs at info level by default, to the journal.
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	master := make([]byte, store.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		return nil, err
	}
	db, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), MasterKey: master, Logger: log})
	if err != nil {
		logf.Close()
		return nil, err
	}
	svc, err := service.New(db, store.DeriveKey(master, "mfad recovery-code hmac v1"), service.SettingsFrom(cfg), log)
	if err != nil {
		db.Close()
		logf.Close()
		return nil, err
	}
	sender := &poolSender{}
	svc.SMS = sender
	svc.Notifier = svc
	authz, _ := api.NewAuthorizer(os.Getuid(), nil, nil)
	srv := api.New(api.Options{Service: svc, Store: db, Authorizer: authz, Log: log,
		Limits: api.Limits{MaxRequestBytes: cfg.Server.MaxRequestBytes, ReadTimeout: cfg.Server.ReadTimeout, WriteTimeout: cfg.Server.WriteTimeout}})
	socket := filepath.Join(dir, "mfad.sock")
	if len(socket) > 100 {
		db.Close()
		logf.Close()
		return nil, fmt.Errorf("socket path %s is too long for a Unix socket; use a shorter -dir", socket)
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		db.Close()
		logf.Close()
		return nil, err
	}
	go srv.Serve(ln)
	return &mfadStack{users: users, db: db, svc: svc, srv: srv, cl: client.New(socket), sender: sender, log: log, logf: logf}, nil
}

// Close stops the API and closes the store.
func (s *mfadStack) Close() error {
	if s.cancel != nil {
		_, _ = s.Stop()
	}
	s.cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	err = errors.Join(err, s.db.Close())
	return errors.Join(err, s.logf.Close())
}

func (s *mfadStack) Name() string { return "mfad" }

// PollPeriod is zero: queueing a message wakes the dispatcher.
func (s *mfadStack) PollPeriod() time.Duration { return 0 }

// Start opens the driver on every modem as the daemon does for a modem
// block with default settings except rate_limit = 0 (default 20 parts a
// minute per modem, which would cap a 0.5 s modem at a third of its speed),
// waits until all are ready and starts the dispatcher with one worker more
// than modems, as the daemon does.
func (s *mfadStack) Start(ctx context.Context, mods []*simModem) error {
	if s.cancel != nil {
		return errors.New("mfad already started")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var ms []*modem.Modem
	s.traces = nil
	for i, m := range mods {
		tr := &cmgsTrace{}
		s.traces = append(s.traces, tr)
		mc := modem.Config{
			Name: fmt.Sprint("m", i), Device: m.Path(), Mode: "pdu", StatusReports: true, RatePerMinute: 0,
			OnDelivery: func(r modem.DeliveryReport) { s.recordDelivery(runCtx, r) },
			Trace:      tr,
		}
		md, err := modem.Open(runCtx, mc, s.log)
		if err != nil {
			for _, o := range ms {
				o.Close()
			}
			cancel()
			return err
		}
		ms = append(ms, md)
	}
	pool := modem.NewPool(ms, modem.PoolOptions{Log: s.log})
	deadline := time.Now().Add(60 * time.Second)
	for !allReady(pool) {
		if time.Now().After(deadline) {
			pool.Close()
			cancel()
			return fmt.Errorf("modems not ready: %+v", pool.Statuses())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.sender.pool.Store(pool)
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.svc.RunSMS(runCtx, len(mods)+1); err != nil {
			s.log.Error("sms dispatcher stopped", "err", err)
		}
	}()
	return nil
}

// recordDelivery records a final delivery report as the daemon does: a
// report may overtake the record of its send, so it is tried again every
// 250 ms, up to 20 times, before it is recorded as an orphan.
func (s *mfadStack) recordDelivery(ctx context.Context, r modem.DeliveryReport) {
	if !r.Final {
		return
	}
	s.reports.Add(1)
	go func() {
		defer s.reports.Done()
		status := fmt.Sprintf("status 0x%02x", r.Status)
		for try := 1; ; try++ {
			last := try == 20
			found, err := s.svc.RecordDelivery(ctx, r.Modem, r.Ref, r.Delivered, status, last)
			if err != nil {
				s.log.Warn("recording a delivery report failed", "err", err)
			}
			if found || last || err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
}

func allReady(p *modem.Pool) bool {
	for _, st := range p.Statuses() {
		if st.State != modem.StateReady {
			return false
		}
	}
	return true
}

// Stop stops the dispatcher and closes the modems. mfad runs in this
// process, so it reports no separate CPU time.
func (s *mfadStack) Stop() (time.Duration, error) {
	if s.cancel == nil {
		return 0, nil
	}
	s.cancel()
	<-s.done
	if p := s.sender.pool.Swap(nil); p != nil {
		p.Close()
	}
	s.reports.Wait()
	s.cancel, s.done = nil, nil
	return 0, nil
}

// Submit is one user's login asking for a code by SMS: POST /v1/login,
// then POST /v1/login/{id}/sms, timed from the start of the second.
func (s *mfadStack) Submit(ctx context.Context, i int) (time.Time, error) {
	t0, _, err := s.submit(ctx, i)
	return t0, err
}

// submit is Submit, also returning when the answer to the SMS request
// arrived.
func (s *mfadStack) submit(ctx context.Context, i int) (start, answered time.Time, err error) {
	l, err := s.cl.Login(ctx, wire.LoginRequest{User: userName(i % s.users), Service: "sshd", RHost: "192.0.2.10"})
	if err != nil {
		return start, answered, fmt.Errorf("starting login: %w", err)
	}
	if l.Decision != "challenge" || l.Default != "sms" {
		return start, answered, fmt.Errorf("login for %s: decision %q default %q, want an SMS challenge", userName(i%s.users), l.Decision, l.Default)
	}
	start = time.Now()
	if _, err := s.cl.LoginSMS(ctx, l.LoginID, ""); err != nil {
		return start, answered, fmt.Errorf("asking for an sms code: %w", err)
	}
	return start, time.Now(), nil
}

var codeRE = regexp.MustCompile(`\b\d{6,8}\b`)

// enrol gives every user a confirmed phone, through the API and the
// modems (which should take no time per send), with 8 users at a time.
func (s *mfadStack) enrol(ctx context.Context, mods []*simModem) error {
	if err := s.Start(ctx, mods); err != nil {
		return err
	}
	defer s.Stop()
	var next atomic.Int64
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= s.users {
					return
				}
				if err := s.enrolOne(ctx, i, mods); err != nil {
					errs <- fmt.Errorf("enrolling %s: %w", userName(i), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (s *mfadStack) enrolOne(ctx context.Context, i int, mods []*simModem) error {
	r, err := s.cl.EnrollPhone(ctx, userName(i), number(i), "mobile")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got := make(chan string, len(mods))
	for _, m := range mods {
		go func() {
			if sms, err := m.WaitSMS(ctx, number(i)); err == nil {
				got <- sms.Text
			}
		}()
	}
	var text string
	select {
	case text = <-got:
	case <-ctx.Done():
		return errors.New("no confirmation message arrived")
	}
	code := codeRE.FindString(text)
	if code == "" {
		return errors.New("no code in the confirmation message")
	}
	_, err = s.cl.ConfirmPhone(ctx, userName(i), r.FactorID, code)
	return err
}

// poolSender is service.SMSSender over a hw/modem Pool that can be
// replaced between runs; SendSMS maps results as internal/smsgw does.
type poolSender struct {
	pool atomic.Pointer[modem.Pool]
}

var _ service.SMSSender = (*poolSender)(nil)

var errNoPool = errors.New("no modems")

func (p *poolSender) SendSMS(ctx context.Context, id, to, text string) (service.SMSReport, error) {
	pool := p.pool.Load()
	if pool == nil {
		return service.SMSReport{Outcome: service.SMSFailed}, errNoPool
	}
	res, err := pool.Send(ctx, modem.Message{To: to, Text: text, ID: id})
	rep := service.SMSReport{Modem: res.Modem, Parts: res.Parts, Refs: res.Refs, Attempts: len(res.Attempts)}
	switch res.Outcome {
	case modem.Sent:
		rep.Outcome = service.SMSSent
	case modem.Failed:
		rep.Outcome = service.SMSFailed
		rep.Permanent = errors.Is(err, modem.ErrInvalidNumber) || errors.Is(err, modem.ErrInvalidMessage) || errors.Is(err, modem.ErrMessageTooLong)
	default:
		rep.Outcome = service.SMSUnknown
	}
	return rep, err
}

func (p *poolSender) Ready() bool {
	pool := p.pool.Load()
	return pool != nil && pool.Healthy()
}

// cmgsTrace receives a modem's driver trace (hw/modem Config.Trace, one
// line per Write) and notes when each AT+CMGS command was written, just
// before its first byte went to the port.
type cmgsTrace struct {
	mu    sync.Mutex
	times []time.Time
}

var cmgsPrefix = []byte("w: AT+CMGS")

func (t *cmgsTrace) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, cmgsPrefix) {
		now := time.Now()
		t.mu.Lock()
		t.times = append(t.times, now)
		t.mu.Unlock()
	}
	return len(p), nil
}

// at returns the time of the k-th AT+CMGS (from 0), if there was one.
func (t *cmgsTrace) at(k int) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k < len(t.times) {
		return t.times[k], true
	}
	return time.Time{}, false
}

var _ io.Writer = (*cmgsTrace)(nil)
