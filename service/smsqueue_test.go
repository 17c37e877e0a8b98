package service_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfad/mfad/config"
	"github.com/mfad/mfad/internal/testenv"
	"github.com/mfad/mfad/service"
	"github.com/mfad/mfad/store"
)

// The dispatcher's semantics (every accepted message sent exactly once,
// in order, whatever path it takes to a worker) are tested here with a
// sender that records what it is given and can hold sends; the api and
// cmd/mfad tests drive the same queue through the real modem driver and
// simulated modems.

// gatedSender is a service.SMSSender that records every send and, when
// gate is set, holds each one until it takes a token from gate.
type gatedSender struct {
	gate    chan struct{}
	started chan string // receives each send's number as it starts, if set
	jitter  bool        // sleep up to 2 ms per send

	mu   sync.Mutex
	sent map[string]int // number: sends
	ids  map[string]int // message id: sends
	seq  []string       // numbers in the order their sends started
}

func newGatedSender() *gatedSender {
	return &gatedSender{sent: map[string]int{}, ids: map[string]int{}}
}

func (g *gatedSender) SendSMS(ctx context.Context, id, to, text string) (service.SMSReport, error) {
	g.mu.Lock()
	g.seq = append(g.seq, to)
	g.mu.Unlock()
	if g.started != nil {
		g.started <- to
	}
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return service.SMSReport{Outcome: service.SMSFailed, Attempts: 1}, ctx.Err()
		}
	}
	if g.jitter {
		time.Sleep(time.Duration(rand.N(2000)) * time.Microsecond)
	}
	g.mu.Lock()
	g.sent[to]++
	g.ids[id]++
	g.mu.Unlock()
	return service.SMSReport{Outcome: service.SMSSent, Modem: "m0", Parts: 1, Attempts: 1}, nil
}

func (g *gatedSender) Ready() bool { return true }

func (g *gatedSender) count() (numbers, messages int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sent), len(g.ids)
}

// smsService is a service on an on-disk store (so that every commit waits
// for its fsync, as in the daemon) on the real clock, without hourly SMS
// limits, with the dispatcher running workers workers over snd.
func smsService(t *testing.T, snd service.SMSSender, workers int) *service.Service {
	t.Helper()
	return smsServiceClock(t, snd, workers, nil)
}

// smsServiceClock is smsService on the clock now (the real one when nil).
func smsServiceClock(t *testing.T, snd service.SMSSender, workers int, now func() time.Time) *service.Service {
	t.Helper()
	master := bytes.Repeat([]byte{5}, 32)
	db, err := store.Open(store.Options{Dir: t.TempDir(), MasterKey: master, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default(config.Env{})
	cfg.SMS.PerUserHourly, cfg.SMS.PerNumberHourly, cfg.SMS.GlobalHourly = 0, 0, 0
	svc, err := service.New(db, store.DeriveKey(master, "recovery"), service.SettingsFrom(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc.SMS = snd
	svc.Now = now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.RunSMS(ctx, workers) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return svc
}

func phoneNumber(i int) string { return fmt.Sprintf("+4479111%05d", i) }

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Concurrent requests race the dispatcher and each other for the workers:
// every message is sent, and sent once, whether a free worker took it
// straight from its request or it waited in the queue.
func TestSMSQueueConcurrentRequestsEachSentOnce(t *testing.T) {
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			snd := newGatedSender()
			snd.jitter = true
			svc := smsService(t, snd, workers)
			const n, clients = 80, 8
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= n {
							return
						}
						if _, err := svc.EnrollPhone(context.Background(), service.Internal, fmt.Sprintf("user%03d", i), phoneNumber(i), "mobile"); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitFor(t, "every message", func() bool { _, m := snd.count(); return m == n })
			// Give a duplicate time to show.
			time.Sleep(50 * time.Millisecond)
			snd.mu.Lock()
			defer snd.mu.Unlock()
			for i := range n {
				if got := snd.sent[phoneNumber(i)]; got != 1 {
					t.Errorf("%s: sent %d times, want once", phoneNumber(i), got)
				}
			}
			for id, c := range snd.ids {
				if c != 1 {
					t.Errorf("message %s sent %d times", id, c)
				}
			}
		})
	}
}

// Messages that wait for the busy worker are sent in the order they were
// accepted, and one accepted just as the worker frees up goes after them.
func TestSMSQueueNewMessageDoesNotOvertake(t *testing.T) {
	snd := newGatedSender()
	snd.gate = make(chan struct{})
	snd.started = make(chan string, 16)
	svc := smsService(t, snd, 1)
	ctx := context.Background()
	enroll := func(i int) {
		t.Helper()
		if _, err := svc.EnrollPhone(ctx, service.Internal, fmt.Sprintf("user%03d", i), phoneNumber(i), "mobile"); err != nil {
			t.Fatal(err)
		}
	}
	enroll(0)
	if got := <-snd.started; got != phoneNumber(0) {
		t.Fatalf("first send to %s, want %s", got, phoneNumber(0))
	}
	// The only worker is busy: these two wait in the queue.
	enroll(1)
	enroll(2)
	// The worker finishes; a new message arrives at once.
	snd.gate <- struct{}{}
	enroll(3)
	close(snd.gate)
	waitFor(t, "four messages", func() bool { _, m := snd.count(); return m == 4 })
	snd.mu.Lock()
	defer snd.mu.Unlock()
	want := []string{phoneNumber(0), phoneNumber(1), phoneNumber(2), phoneNumber(3)}
	if fmt.Sprint(snd.seq) != fmt.Sprint(want) {
		t.Fatalf("send order %v, want %v", snd.seq, want)
	}
}

// afterCommitCtx is a request context whose client goes away while the
// request waits for the disk: it is live until something waits on Done.
type afterCommitCtx struct {
	context.Context
	waited atomic.Bool
	done   chan struct{}
}

func newAfterCommitCtx() *afterCommitCtx {
	c := &afterCommitCtx{Context: context.Background(), done: make(chan struct{})}
	close(c.done)
	return c
}

func (c *afterCommitCtx) Done() <-chan struct{} {
	c.waited.Store(true)
	return c.done
}

func (c *afterCommitCtx) Err() error {
	if c.waited.Load() {
		return context.Canceled
	}
	return nil
}

// A request cancelled after its message was committed, while it waited for
// the fsync, answers an error, but the message it queued is still sent:
// it must not stay claimed by a worker that never started.
func TestSMSQueueRequestCancelledAfterCommitStillSent(t *testing.T) {
	snd := newGatedSender()
	svc := smsService(t, snd, 1)
	ctx := newAfterCommitCtx()
	_, err := svc.EnrollPhone(ctx, service.Internal, "pat", phoneNumber(7), "mobile")
	if err == nil {
		t.Fatal("the request succeeded although its context ended while it waited for the disk")
	}
	waitFor(t, "the message", func() bool { _, m := snd.count(); return m == 1 })
	// A later message still goes through the free worker.
	if _, err := svc.EnrollPhone(context.Background(), service.Internal, "sam", phoneNumber(8), "mobile"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second message", func() bool { _, m := snd.count(); return m == 2 })
	snd.mu.Lock()
	defer snd.mu.Unlock()
	if snd.sent[phoneNumber(7)] != 1 || snd.sent[phoneNumber(8)] != 1 {
		t.Fatalf("sends: %v", snd.sent)
	}
}

// A message that waits in the queue past its code's expiry is dropped
// unsent and audited, and the messages behind it still go out.
func TestSMSQueueExpiredMessageDropped(t *testing.T) {
	clk := testenv.NewClock(time.Now())
	snd := newGatedSender()
	snd.gate = make(chan struct{})
	snd.started = make(chan string, 16)
	svc := smsServiceClock(t, snd, 1, clk.Now)
	ctx := context.Background()
	enroll := func(i int) {
		t.Helper()
		if _, err := svc.EnrollPhone(ctx, service.Internal, fmt.Sprintf("user%03d", i), phoneNumber(i), "mobile"); err != nil {
			t.Fatal(err)
		}
	}
	enroll(0)
	<-snd.started
	enroll(1) // waits behind the busy worker
	clk.Add(svc.Settings().SMS.CodeTTL - time.Second)
	enroll(2) // waits too, and expires a second after the first
	clk.Add(2 * time.Second)
	close(snd.gate)
	waitFor(t, "the second message", func() bool { _, m := snd.count(); return m == 2 })
	time.Sleep(50 * time.Millisecond) // let a wrong send show
	snd.mu.Lock()
	if snd.sent[phoneNumber(1)] != 0 || snd.sent[phoneNumber(2)] != 1 {
		t.Errorf("sends: %v; want the expired message to %s dropped", snd.sent, phoneNumber(1))
	}
	snd.mu.Unlock()
	evs, err := svc.Audit(store.AuditQuery{Action: "sms.expired"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].User != "user001" || evs[0].Result != "fail" {
		t.Fatalf("sms.expired events: %+v", evs)
	}
	if strings.Contains(evs[0].Detail, phoneNumber(1)) {
		t.Errorf("the audit shows the full number: %q", evs[0].Detail)
	}
}
