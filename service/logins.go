package service

import (
	"fmt"
	"sync"
	"time"
)

// maxLogins bounds the logins in progress held at once. Beyond it the
// oldest is forgotten (its user starts again, as after an expiry); a record
// takes a few hundred bytes, so the bound also caps the memory a flood of
// login starts can take.
const maxLogins = 100_000

// loginTable holds the logins in progress, from StartLogin until they
// succeed or expire (login_ttl). It lives in memory, not in the store: a
// login in progress is worth nothing after a crash (its PAM conversation is
// gone too), so writing it to disk on every login start was pure cost. A
// daemon restart ends the logins in progress; their users start again, as
// after an expiry. Everything a login decides (failures, used codes, the
// audit) is in the store as before.
type loginTable struct {
	mu   sync.Mutex
	byID map[string]*loginEntry
	// order holds ids oldest first, from head on, for expiry and the cap;
	// an id whose login ended is skipped when it reaches the head.
	order []string
	head  int
}

type loginEntry struct {
	rec loginRecord
	// busy is set while a verification of the login runs.
	busy bool
}

// add records a login that waits for its second factor.
func (t *loginTable) add(rec loginRecord, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[string]*loginEntry{}
	}
	t.sweep(now, maxLogins-1)
	t.byID[rec.ID] = &loginEntry{rec: rec}
	t.order = append(t.order, rec.ID)
}

// sweep drops, oldest first, the logins that expired or ended, and more
// until at most keep remain. Logins are added in time order and share one
// lifetime (a new login_ttl applies to new logins only, so order and expiry
// can briefly disagree; a login then lives a little longer or shorter in
// the table, never past its own expiry, which get checks).
func (t *loginTable) sweep(now time.Time, keep int) {
	for n := len(t.order) - t.head; n > 0; n-- {
		id := t.order[t.head]
		e, ok := t.byID[id]
		if ok && len(t.byID) <= keep && now.Before(e.rec.Expires) {
			break
		}
		t.order[t.head] = ""
		t.head++
		switch {
		case !ok: // ended
		case e.busy:
			// A verification runs: it ends the login or leaves it; look
			// again later.
			t.order = append(t.order, id)
		default:
			delete(t.byID, id)
		}
	}
	if t.head > 1024 && t.head > len(t.order)/2 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

// get returns the login id if it is in progress at now.
func (t *loginTable) get(id string, now time.Time) (loginRecord, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || !now.Before(e.rec.Expires) {
		return loginRecord{}, false
	}
	return e.rec, true
}

// claim takes login id for one verification: the login must be in
// progress and no other verification of it may be running. end releases
// it; with success, the login is over and no later request can use it.
func (t *loginTable) claim(id string, now time.Time) (rec loginRecord, end func(success bool), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok || !now.Before(e.rec.Expires) {
		return loginRecord{}, nil, ErrLoginExpired
	}
	if e.busy {
		return loginRecord{}, nil, fmt.Errorf("%w: another verification of this login is in progress", ErrConflict)
	}
	e.busy = true
	return e.rec, func(success bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		e.busy = false
		if success {
			delete(t.byID, id)
		}
	}, nil
}

// len returns the number of logins held (for tests).
func (t *loginTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}
