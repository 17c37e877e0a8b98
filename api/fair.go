package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mfad/mfad/api/wire"
)

// Fairness keeps one local user from monopolising the daemon. Callers with
// only the self role (ordinary users managing their own enrolment) each get
// a token bucket and a small number of requests in progress; a caller that
// floods the socket waits for its own turn (up to the request's write
// deadline) while everyone else, and every login flow, is served as usual.
// Login and admin callers (root, the PAM stack, operators) are trusted and
// not limited here; per-user and per-source throttling of codes happens in
// the service.
const (
	selfRate     = 20 // requests per second, sustained
	selfBurst    = 40
	selfInFlight = 4
	// fairIdle is how long an unused per-uid slot is kept.
	fairIdle = 5 * time.Minute
)

type fairness struct {
	mu    sync.Mutex
	slots map[int]*fairSlot
	last  time.Time
}

type fairSlot struct {
	limiter  *rate.Limiter
	inFlight chan struct{}
	used     time.Time
}

// acquire waits until a self caller uid may run one more request and
// returns the function that ends it; it fails only when ctx ends first.
func (f *fairness) acquire(ctx context.Context, uid int) (func(), error) {
	slot := f.slot(uid)
	if err := slot.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	select {
	case slot.inFlight <- struct{}{}:
		return func() { <-slot.inFlight }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fairness) slot(uid int) *fairSlot {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.slots == nil {
		f.slots = map[int]*fairSlot{}
	}
	if now.Sub(f.last) > fairIdle {
		// Forget callers idle for a while (with nothing in flight).
		for u, s := range f.slots {
			if now.Sub(s.used) > fairIdle && len(s.inFlight) == 0 {
				delete(f.slots, u)
			}
		}
		f.last = now
	}
	s := f.slots[uid]
	if s == nil {
		s = &fairSlot{limiter: rate.NewLimiter(selfRate, selfBurst), inFlight: make(chan struct{}, selfInFlight)}
		f.slots[uid] = s
	}
	s.used = now
	return s
}

// throttled is answered when a flooding caller's request could not get a
// turn before its deadline.
var throttled = &apiError{status: http.StatusTooManyRequests, code: wire.CodeRateLimited,
	msg: "too many requests from this user; slow down"}
