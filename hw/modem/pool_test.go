package modem_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfad/mfad/hw/modem"
	"github.com/mfad/mfad/sim"
)

// fakeClock is a modem.Clock that moves only when the test advances it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// Waiting returns how many timers are due within d (the modems' hourly
// health checks wait on the same clock).
func (c *fakeClock) Waiting(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.waiters {
		if !w.at.After(c.now.Add(d)) {
			n++
		}
	}
	return n
}

func msg(i int) modem.Message {
	return modem.Message{To: recipient, Text: fmt.Sprintf("code %06d", i), ID: fmt.Sprint(i)}
}

func newPool(t *testing.T, opts modem.PoolOptions, modems ...*modem.Modem) *modem.Pool {
	t.Helper()
	for _, m := range modems {
		waitState(t, m, modem.StateReady)
	}
	if opts.Log == nil {
		opts.Log, _ = newLog(t)
	}
	p := modem.NewPool(modems, opts)
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolDeliversAlthoughOneModemFailsEverySend(t *testing.T) {
	t.Parallel()
	bad, good := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	bad.FailSends(-1, 38)
	p := newPool(t, modem.PoolOptions{},
		open(t, testConfig("bad", bad.Path())), open(t, testConfig("good", good.Path())))
	for i := range 4 {
		r, err := p.Send(ctxTimeout(t, waitLong), msg(i))
		if err != nil || r.Outcome != modem.Sent || r.Modem != "good" {
			t.Fatalf("message %d: %+v, %v", i, r, err)
		}
		for _, a := range r.Attempts[:len(r.Attempts)-1] {
			if a.Modem != "bad" || a.Outcome != modem.Failed || !errors.Is(a.Err, modem.ErrRejected) {
				t.Errorf("message %d: attempt %+v", i, a)
			}
		}
	}
	if n := len(good.Inbox()); n != 4 {
		t.Errorf("good modem sent %d, want 4", n)
	}
	if n := len(bad.Inbox()); n != 0 {
		t.Errorf("bad modem sent %d, want 0", n)
	}
	if !p.Healthy() {
		t.Error("pool not healthy")
	}
}

func TestPoolSpreadsLoad(t *testing.T) {
	t.Parallel()
	a, b := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	p := newPool(t, modem.PoolOptions{}, open(t, testConfig("a", a.Path())), open(t, testConfig("b", b.Path())))
	for i := range 10 {
		if _, err := p.Send(ctxTimeout(t, waitLong), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb := len(a.Inbox()), len(b.Inbox()); na != 5 || nb != 5 {
		t.Errorf("sequential sends: a sent %d, b sent %d; want 5 each", na, nb)
	}
	// Concurrent sends use both modems as well.
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := p.Send(ctxTimeout(t, waitLong), msg(100+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if na, nb := len(a.Inbox()), len(b.Inbox()); na+nb != 20 || na < 6 || nb < 6 {
		t.Errorf("after concurrent sends: a sent %d, b sent %d", na, nb)
	}
	st := p.Statuses()
	if len(st) != 2 || st[0].Name != "a" || st[1].Name != "b" || st[0].Sent+st[1].Sent != 20 {
		t.Errorf("statuses %+v", st)
	}
}

func TestPoolRateLimits(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	a, b := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	ca, cb := testConfig("a", a.Path()), testConfig("b", b.Path())
	ca.RatePerMinute, cb.RatePerMinute = 2, 1
	ca.Clock, cb.Clock = clk, clk
	p := newPool(t, modem.PoolOptions{Clock: clk}, open(t, ca), open(t, cb))
	for i := range 3 {
		if _, err := p.Send(ctxTimeout(t, waitLong), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if na, nb := len(a.Inbox()), len(b.Inbox()); na != 2 || nb != 1 {
		t.Fatalf("a sent %d, b sent %d; want 2 and 1", na, nb)
	}
	// Both are at their limit: the next message waits for the clock.
	type result struct {
		r   modem.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The deadline must outlast the one-minute wait, which the pool
		// would otherwise refuse to start.
		r, err := p.Send(ctxTimeout(t, 5*time.Minute), msg(3))
		done <- result{r, err}
	}()
	waitFor(t, "pool waiting for a rate slot", func() bool { return clk.Waiting(time.Minute) > 0 })
	if n := len(a.Inbox()) + len(b.Inbox()); n != 3 {
		t.Fatalf("%d sent while rate limited", n)
	}
	clk.Advance(time.Minute)
	res := <-done
	if res.err != nil || res.r.Outcome != modem.Sent {
		t.Fatalf("Send after the window = %+v, %v", res.r, res.err)
	}
	// A single modem refuses at once when its limit is reached.
	m := open(t, modem.Config{Name: "c", Device: newSim(t, sim.ModemOptions{}).Path(), RatePerMinute: 1, Clock: clk,
		CommandTimeout: 3 * time.Second, RegisterTimeout: 30 * time.Second, HealthInterval: time.Hour})
	waitState(t, m, modem.StateReady)
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "one"); err != nil {
		t.Fatal(err)
	}
	if r, err := m.Send(ctxTimeout(t, waitLong), recipient, "two"); r.Outcome != modem.Failed || !errors.Is(err, modem.ErrRateLimited) {
		t.Fatalf("second Send = %+v, %v; want ErrRateLimited", r, err)
	}
	clk.Advance(61 * time.Second)
	if _, err := m.Send(ctxTimeout(t, waitLong), recipient, "three"); err != nil {
		t.Fatal(err)
	}
}

func TestPoolBypassesWedgedModem(t *testing.T) {
	t.Parallel()
	wedged, good := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	mw := open(t, testConfig("wedged", wedged.Path()))
	p := newPool(t, modem.PoolOptions{}, mw, open(t, testConfig("good", good.Path())))
	wedged.Wedge(true)
	for i := range 4 {
		r, err := p.Send(ctxTimeout(t, waitLong), msg(i))
		if err != nil || r.Modem != "good" {
			t.Fatalf("message %d: %+v, %v", i, r, err)
		}
	}
	if st := mw.Status(); st.State == modem.StateReady {
		t.Errorf("wedged modem is %s", st.State)
	}
	if n := len(good.Inbox()); n != 4 {
		t.Errorf("good modem sent %d, want 4", n)
	}
	statuses := p.Statuses()
	if statuses[0].State == modem.StateReady || statuses[1].State != modem.StateReady {
		t.Errorf("statuses %+v", statuses)
	}
}

func TestPoolReturnsUnknownWithoutRetry(t *testing.T) {
	t.Parallel()
	slow, other := newSim(t, sim.ModemOptions{SendDelay: 10 * time.Second}), newSim(t, sim.ModemOptions{})
	cfg := testConfig("slow", slow.Path())
	cfg.SendTimeout = time.Second
	p := newPool(t, modem.PoolOptions{}, open(t, cfg), open(t, testConfig("other", other.Path())))
	r, err := p.Send(ctxTimeout(t, waitLong), msg(1))
	if r.Outcome != modem.Unknown || !errors.Is(err, modem.ErrUnknownOutcome) || r.Modem != "slow" || len(r.Attempts) != 1 {
		t.Fatalf("Send = %+v, %v; want one Unknown attempt on slow", r, err)
	}
	if n := len(other.Inbox()); n != 0 {
		t.Errorf("message retried on the other modem: %d sent", n)
	}
}

func TestPoolWithoutModems(t *testing.T) {
	t.Parallel()
	m := open(t, testConfig("gone", "/dev/serial/by-id/usb-mfad-missing-if00-port0"))
	p := modem.NewPool([]*modem.Modem{m}, modem.PoolOptions{})
	defer p.Close()
	if p.Healthy() {
		t.Error("healthy without a modem")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r, err := p.Send(ctx, msg(1))
	if r.Outcome != modem.Failed || !errors.Is(err, modem.ErrNoModem) || len(r.Attempts) != 0 {
		t.Fatalf("Send = %+v, %v; want ErrNoModem", r, err)
	}
	if _, err := p.Send(context.Background(), modem.Message{To: "0170 1234567", Text: "x"}); !errors.Is(err, modem.ErrInvalidNumber) {
		t.Errorf("national number: %v, want ErrInvalidNumber at once", err)
	}
}

func TestPoolRejectsBadMessagesWithoutRetry(t *testing.T) {
	t.Parallel()
	s := newSim(t, sim.ModemOptions{})
	p := newPool(t, modem.PoolOptions{}, open(t, testConfig("a", s.Path())))
	for _, tc := range []struct {
		msg      modem.Message
		want     error
		attempts int
	}{
		{modem.Message{To: "12345", Text: "x"}, modem.ErrInvalidNumber, 0},
		{modem.Message{To: recipient, Text: ""}, modem.ErrInvalidMessage, 0},
		{modem.Message{To: recipient, Text: "\xff"}, modem.ErrInvalidMessage, 0},
		{modem.Message{To: recipient, Text: strings.Repeat("x", 2000)}, modem.ErrMessageTooLong, 1},
	} {
		r, err := p.Send(ctxTimeout(t, waitLong), tc.msg)
		if !errors.Is(err, tc.want) || r.Outcome != modem.Failed || len(r.Attempts) != tc.attempts {
			t.Errorf("Send(%.20q) = %+v, %v; want %v after %d attempts", tc.msg.Text, r, err, tc.want, tc.attempts)
		}
	}
	if n := len(s.Inbox()); n != 0 {
		t.Errorf("%d sent", n)
	}
}

func TestPoolGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	a, b := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	a.FailSends(-1, 21)
	b.FailSends(-1, 42)
	p := newPool(t, modem.PoolOptions{RetryBackoff: 20 * time.Millisecond, MaxAttempts: 5},
		open(t, testConfig("a", a.Path())), open(t, testConfig("b", b.Path())))
	r, err := p.Send(ctxTimeout(t, waitLong), msg(1))
	if r.Outcome != modem.Failed || !errors.Is(err, modem.ErrRejected) || len(r.Attempts) != 5 {
		t.Fatalf("Send = %+v, %v; want 5 failed attempts", r, err)
	}
	// Alternating: every round tries each modem once.
	for i, at := range r.Attempts {
		if want := []string{"a", "b"}[i%2]; at.Modem != want {
			t.Errorf("attempt %d on %s, want %s", i, at.Modem, want)
		}
	}
	// With a deadline shorter than the backoff it stops early.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := newSim(t, sim.ModemOptions{})
	c.FailSends(-1, 21)
	p = newPool(t, modem.PoolOptions{RetryBackoff: 10 * time.Second}, open(t, testConfig("c", c.Path())))
	if r, err := p.Send(ctx, msg(2)); r.Outcome != modem.Failed || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, modem.ErrRejected) {
		t.Fatalf("Send = %+v, %v; want a deadline error naming the rejection", r, err)
	}
}

func TestPoolSkipsModemsThatCannotEncode(t *testing.T) {
	t.Parallel()
	textSim, pduSim := newSim(t, sim.ModemOptions{}), newSim(t, sim.ModemOptions{})
	tc := testConfig("text", textSim.Path())
	tc.Mode = "text"
	mt := open(t, tc)
	p := newPool(t, modem.PoolOptions{}, mt, open(t, testConfig("pdu", pduSim.Path())))
	r, err := p.Send(ctxTimeout(t, waitLong), modem.Message{To: recipient, Text: "Код 123456"})
	if err != nil || r.Modem != "pdu" {
		t.Fatalf("Send = %+v, %v", r, err)
	}
	// A pool of text-mode modems gives up at once.
	p = modem.NewPool([]*modem.Modem{mt}, modem.PoolOptions{})
	r, err = p.Send(ctxTimeout(t, waitLong), modem.Message{To: recipient, Text: "Код 123456"})
	if !errors.Is(err, modem.ErrNotEncodable) || len(r.Attempts) != 1 {
		t.Fatalf("Send = %+v, %v; want ErrNotEncodable after one attempt", r, err)
	}
	if n := len(textSim.Inbox()); n != 0 {
		t.Errorf("text-mode modem sent %d", n)
	}
}
