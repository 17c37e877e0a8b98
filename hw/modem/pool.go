package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/warthog618/sms"
)

// Message is one SMS for Pool.Send.
type Message struct {
	// To is the recipient, normalised with NormalizeE164.
	To string
	// Text is the message, in any script; long texts are split.
	Text string
	// ID identifies the message in the pool's log lines (for example the
	// audit record's id). Optional; never a secret.
	ID string
}

// PoolOptions tunes a Pool. The zero value selects the defaults.
type PoolOptions struct {
	// RetryBackoff is the pause before a message is retried once every
	// ready modem has failed it; it doubles up to MaxBackoff. A message is
	// first retried at once on another modem. Defaults 1s and 30s.
	RetryBackoff, MaxBackoff time.Duration
	// MaxAttempts bounds the attempts per message. Default 8.
	MaxAttempts int
	// DefaultTimeout bounds a Send whose context has no deadline.
	// Default 2m.
	DefaultTimeout time.Duration
	// Clock is the time source for waits; nil uses the system clock.
	Clock Clock
	// Log receives one line per attempt; nil discards.
	Log *slog.Logger
}

// Pool sends messages through several modems: each message goes to a ready
// modem with capacity left under its rate limit, the least busy and least
// recently used first, and a failed attempt is retried on another modem
// (then, once all have failed it, with backoff) until it is sent, its
// outcome is unknown, or its deadline passes. A Pool is safe for concurrent
// use; it owns its modems and closes them on Close.
type Pool struct {
	modems []*Modem
	opts   PoolOptions
	log    *slog.Logger
}

// NewPool returns a Pool over modems.
func NewPool(modems []*Modem, opts PoolOptions) *Pool {
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.MaxBackoff < opts.RetryBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.RetryBackoff)
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = 2 * time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{modems: slices.Clone(modems), opts: opts, log: log.With("component", "sms-pool")}
}

// Healthy reports whether at least one modem is ready.
func (p *Pool) Healthy() bool {
	for _, m := range p.modems {
		if m.isReady() {
			return true
		}
	}
	return false
}

// Statuses returns the status of every modem, in the order given to
// NewPool.
func (p *Pool) Statuses() []Status {
	out := make([]Status, len(p.modems))
	for i, m := range p.modems {
		out[i] = m.Status()
	}
	return out
}

// Close closes every modem.
func (p *Pool) Close() error {
	for _, m := range p.modems {
		m.Close()
	}
	return nil
}

func (m *Modem) isReady() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ready
}

// Send delivers msg to one of the modems. It returns when the message was
// sent (nil error), when an attempt's outcome is unknown (error wrapping
// ErrUnknownOutcome: the message is never retried then, the caller decides
// and audits), when the message itself is unsendable (ErrInvalidNumber,
// ErrInvalidMessage, ErrMessageTooLong), after MaxAttempts, or when ctx
// is done or its deadline (DefaultTimeout if none) passes. Without any
// attempt the error wraps ErrNoModem (no modem ready) or ErrRateLimited.
// Result.Attempts lists every attempt, for the audit.
func (p *Pool) Send(ctx context.Context, msg Message) (Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.DefaultTimeout)
		defer cancel()
	}
	log := p.log.With("msg", msg.ID)
	res := Result{Outcome: Failed}
	// Refuse what no modem would send before waiting for one.
	if _, err := NormalizeE164(msg.To); err != nil {
		return res, err
	}
	if err := checkText(msg.Text); err != nil {
		return res, err
	}
	failures := map[*Modem]int{}
	// Modems that cannot carry this text (text mode) are not asked again.
	excluded := map[*Modem]bool{}
	bo := newBackoff(p.opts.RetryBackoff, p.opts.MaxBackoff)
	var lastErr error
	for len(res.Attempts) < p.opts.MaxAttempts {
		if len(excluded) == len(p.modems) {
			return res, lastErr
		}
		m, wait, why := p.pick(failures, excluded, msg.Text)
		if m == nil {
			if lastErr == nil || !errors.Is(lastErr, why) {
				lastErr = why
			}
			if err := p.sleep(ctx, wait, why == ErrRateLimited); err != nil {
				return res, fmt.Errorf("sms not sent: %w (%w)", err, lastErr)
			}
			continue
		}
		// A round is over when every ready modem failed this message as
		// often as the chosen one: pause before starting the next.
		if n := failures[m]; n > 0 {
			d := bo.step()
			log.Info("all modems failed the message; backing off", "retry_in", d)
			if err := p.sleep(ctx, d, true); err != nil {
				return res, fmt.Errorf("sms not sent: %w (%w)", err, lastErr)
			}
			if m, _, _ = p.pick(failures, excluded, msg.Text); m == nil {
				continue
			}
		}
		a := Attempt{Modem: m.Name(), Start: p.opts.Clock.Now()}
		m.inflight.Add(1)
		m.lastPick.Store(time.Now().UnixNano())
		r, err := m.Send(ctx, msg.To, msg.Text)
		m.inflight.Add(-1)
		a.End, a.Outcome, a.Refs, a.Err = p.opts.Clock.Now(), r.Outcome, r.Refs, err
		res.Attempts = append(res.Attempts, a)
		res.Outcome, res.Modem, res.Parts, res.Refs = r.Outcome, r.Modem, r.Parts, r.Refs
		log.Info("sms attempt", "modem", a.Modem, "outcome", a.Outcome, "refs", a.Refs, "err", err)
		switch {
		case r.Outcome == Sent:
			return res, nil
		case r.Outcome == Unknown:
			return res, err
		case permanent(err):
			return res, err
		case errors.Is(err, ErrNotEncodable):
			excluded[m] = true
		case errors.Is(err, ErrRateLimited), errors.Is(err, ErrNotReady):
			// Lost a race with another sender or a failure; nothing was
			// tried, so it does not count against the modem.
			res.Attempts = res.Attempts[:len(res.Attempts)-1]
		default:
			failures[m]++
		}
		lastErr = err
		if ctx.Err() != nil {
			return res, fmt.Errorf("sms not sent: %w (%w)", ctx.Err(), lastErr)
		}
	}
	return res, fmt.Errorf("sms not sent after %d attempts: %w", len(res.Attempts), lastErr)
}

// pick chooses the modem for the next attempt: among ready modems with
// rate capacity, the one that failed this message least often, then the
// least busy, then the least recently used. Without a candidate it
// returns how long to wait and why (ErrNoModem or ErrRateLimited).
func (p *Pool) pick(failures map[*Modem]int, excluded map[*Modem]bool, text string) (*Modem, time.Duration, error) {
	now := p.opts.Clock.Now()
	var (
		best     *Modem
		soonest  time.Duration = -1
		anyReady bool
	)
	for _, m := range p.modems {
		if excluded[m] || !m.isReady() {
			continue
		}
		anyReady = true
		if d := m.rate.wait(now, m.partsFor(text)); d > 0 {
			if soonest < 0 || d < soonest {
				soonest = d
			}
			continue
		}
		if best == nil || less(m, best, failures) {
			best = m
		}
	}
	switch {
	case best != nil:
		return best, 0, nil
	case anyReady:
		return nil, soonest, ErrRateLimited
	default:
		// Poll for a modem coming back (in real time: readiness follows
		// the hardware).
		return nil, 200 * time.Millisecond, ErrNoModem
	}
}

func less(a, b *Modem, failures map[*Modem]int) bool {
	if fa, fb := failures[a], failures[b]; fa != fb {
		return fa < fb
	}
	if ia, ib := a.inflight.Load(), b.inflight.Load(); ia != ib {
		return ia < ib
	}
	return a.lastPick.Load() < b.lastPick.Load()
}

// sleep waits d on the pool's clock (onClock) or in real time, and fails
// at once if the wait would outlast ctx.
func (p *Pool) sleep(ctx context.Context, d time.Duration, onClock bool) error {
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		// Waiting would outlast the message; give up now.
		select {
		case <-ctx.Done():
			return ctx.Err()
		default:
			return context.DeadlineExceeded
		}
	}
	after := p.opts.Clock.After
	if !onClock {
		after = time.After
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-after(d):
		return nil
	}
}

// partsFor returns how many parts text takes on m.
func (m *Modem) partsFor(text string) int {
	if m.cfg.Mode == "text" {
		return 1
	}
	tps, err := sms.NewEncoder(sms.AsSubmit).Encode([]byte(text))
	if err != nil || len(tps) == 0 {
		return 1
	}
	return len(tps)
}
