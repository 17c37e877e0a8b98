package modem

import (
	"sync"
	"time"
)

// Clock is the time source of a Modem or Pool for its decisions (rate
// limits, backoff, health checks). Implementations must be safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// window is a sliding-window rate limit: at most limit events in any
// period. It is safe for concurrent use.
type window struct {
	limit  int
	period time.Duration

	mu     sync.Mutex
	events []time.Time // oldest first, all within the last period
}

func newWindow(limit int, period time.Duration) *window {
	return &window{limit: limit, period: period}
}

// prune drops events that left the window. Caller holds w.mu.
func (w *window) prune(now time.Time) {
	i := 0
	for i < len(w.events) && !w.events[i].After(now.Add(-w.period)) {
		i++
	}
	w.events = w.events[i:]
}

// wait returns how long until n more events fit, 0 if they fit now. n
// events always fit an empty window, so a message with more parts than the
// limit is delayed but never refused forever.
func (w *window) wait(now time.Time, n int) time.Duration {
	if w == nil || w.limit <= 0 {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prune(now)
	if len(w.events) == 0 || len(w.events)+n <= w.limit {
		return 0
	}
	// The window must shed enough events for n more, or all of them.
	k := len(w.events) + n - w.limit
	if k > len(w.events) {
		k = len(w.events)
	}
	return w.events[k-1].Add(w.period).Sub(now)
}

// add records one event at now.
func (w *window) add(now time.Time) {
	if w == nil || w.limit <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prune(now)
	w.events = append(w.events, now)
}

// backoff is an exponential delay: first, 2×first, ... up to max.
type backoff struct {
	first, max, next time.Duration
}

func newBackoff(first, max time.Duration) *backoff {
	return &backoff{first: first, max: max, next: first}
}

// step returns the current delay and doubles the next one.
func (b *backoff) step() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d
}

func (b *backoff) reset() { b.next = b.first }
