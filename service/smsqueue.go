package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mfad/mfad/store"
)

// SMSSender sends text messages through the modems (the daemon adapts a
// hw/modem Pool). Implementations must be safe for concurrent use.
type SMSSender interface {
	// SendSMS delivers text to the E.164 number to before ctx ends. The
	// report's Outcome says what happened: SMSSent (the network took it),
	// SMSFailed (certainly not sent; err says why) or SMSUnknown (the
	// message may have gone out). id names the message in the sender's
	// logs; it is not secret. text must never be logged.
	SendSMS(ctx context.Context, id, to, text string) (SMSReport, error)
	// Ready reports whether a modem can send now.
	Ready() bool
}

// SMSOutcome is what happened to a message.
type SMSOutcome string

// Outcomes.
const (
	SMSSent    SMSOutcome = "sent"
	SMSFailed  SMSOutcome = "failed"
	SMSUnknown SMSOutcome = "unknown"
)

// SMSReport is the sender's account of one message.
type SMSReport struct {
	Outcome SMSOutcome
	// Modem sent (or last tried) it.
	Modem string
	Parts int
	// Refs are the network's message references of the parts, for
	// matching delivery reports.
	Refs []int
	// Attempts is the number of sends tried (on any modem).
	Attempts int
	// Permanent is set when no retry can help (an invalid number).
	Permanent bool
}

// queuedSMS is stored under smsq/<id> from the moment a message is accepted
// until it was sent, failed for good or expired. It holds the text (and so
// the code) only for that time, inside the encrypted store; codes are
// checked against their keyed hash, never against this record.
type queuedSMS struct {
	ID          string    `json:"id"`
	User        string    `json:"user"`
	Purpose     string    `json:"purpose"` // login | confirm | notice
	To          string    `json:"to"`
	Text        string    `json:"text"`
	Created     time.Time `json:"created"`
	Deadline    time.Time `json:"deadline"`
	NextAttempt time.Time `json:"next_attempt"`
	Attempts    int       `json:"attempts"`
	// Sending is set while a send is in progress; found set at start-up, it
	// means the daemon stopped in the middle of a send.
	Sending   bool   `json:"sending,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// smsRefRecord (smsref/<modem>/<ref>) maps a part's message reference to
// the message, for delivery reports.
type smsRefRecord struct {
	ID   string `json:"id"`
	User string `json:"user"`
	To   string `json:"to"` // masked
}

func smsQueueKey(id string) []byte { return store.Key("smsq", id) }

var smsQueuePrefix = store.Key("smsq", "")

// smsCounterKey is the per-hour counter of sends for scope ("u" user, "n"
// number, "g" global) and subject.
func smsCounterKey(scope, subject string, hour time.Time) []byte {
	return store.Key("smsrate", scope, subject, hour.UTC().Format("2006010215"))
}

// smsAllowed counts one message to user and number against the hourly
// limits in txn, or answers ErrSMSLimited (and fills in the audit event).
func (s *Service) smsAllowed(txn *store.Txn, st Settings, user, number string, ev *store.Event) error {
	hour := txn.Now().Truncate(time.Hour)
	limits := []struct {
		scope, subject string
		max            int
	}{{"u", user, st.SMS.PerUserHourly}, {"n", number, st.SMS.PerNumberHourly}, {"g", "", st.SMS.GlobalHourly}}
	counts := make([]int, len(limits))
	for i, l := range limits {
		if l.scope == "u" && user == "" {
			continue
		}
		if _, err := txn.Get(smsCounterKey(l.scope, l.subject, hour), &counts[i]); err != nil {
			return err
		}
		if l.max > 0 && counts[i] >= l.max {
			what := map[string]string{"u": "per user", "n": "per number", "g": "global"}[l.scope]
			ev.Result, ev.Detail = "refused", strings.TrimSpace(ev.Detail+" "+what+" hourly limit reached")
			return fmt.Errorf("%w: too many text messages (%s limit of %d per hour); try again later or use another method", ErrSMSLimited, what, l.max)
		}
	}
	for i, l := range limits {
		if l.scope == "u" && user == "" {
			continue
		}
		if err := txn.PutTTL(smsCounterKey(l.scope, l.subject, hour), counts[i]+1, 2*time.Hour); err != nil {
			return err
		}
	}
	return nil
}

// enqueueSMS accepts a message into the durable queue in txn. With a
// handoff (see reserveSMSWorker) not yet used in txn, the message is
// recorded as claimed by the reserved worker, its first attempt begun.
func (s *Service) enqueueSMS(txn *store.Txn, h *smsHandoff, user, purpose, to, text string, deadline time.Time) error {
	now := txn.Now()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	id := fmt.Sprintf("%016x%s", now.UnixNano(), hex.EncodeToString(b[:]))
	q := queuedSMS{ID: id, User: user, Purpose: purpose, To: to, Text: text, Created: now, Deadline: deadline, NextAttempt: now}
	if h != nil && h.run != nil && h.q == nil {
		q.Sending, q.Attempts = true, 1
		h.q = &q
	}
	if h != nil {
		h.queued++
	}
	return txn.PutTTL(smsQueueKey(id), q, max(deadline.Sub(now), time.Second)+time.Hour)
}

// smsState is the dispatcher's in-memory state.
type smsState struct {
	once sync.Once
	wake chan struct{}

	mu  sync.Mutex
	run *smsRun // set while RunSMS runs
	// backlog is set while a queued message may be due with no worker
	// on it: new messages then queue behind it instead of being handed
	// to a free worker directly.
	backlog atomic.Bool
}

// smsRun is one RunSMS: its context and its workers. A worker holds one of
// slots while it sends.
type smsRun struct {
	ctx   context.Context
	slots chan struct{}
	wg    sync.WaitGroup
}

func (s *Service) smsWakeChan() chan struct{} {
	s.sms.once.Do(func() { s.sms.wake = make(chan struct{}, 1) })
	return s.sms.wake
}

// wakeSMS tells the dispatcher to look at the queue.
func (s *Service) wakeSMS() {
	select {
	case s.smsWakeChan() <- struct{}{}:
	default:
	}
}

// smsHandoff is a worker reserved by a request that is about to queue
// messages. The queueing transaction records the first message as claimed
// (enqueueSMS), and once that transaction is durable the message goes
// straight to the worker (startSMS). This spares the message the
// dispatcher's own claim, a second transaction with its fsync, on the way
// from the request to the modem. Durability is unchanged: the message is
// claimed on disk before its send starts, as a claim by the dispatcher
// would leave it.
//
// A transaction function that queues messages calls reset first (it may
// run more than once) and passes the handoff to enqueueSMS.
type smsHandoff struct {
	run    *smsRun    // nil: no worker was free
	q      *queuedSMS // the claimed message
	queued int        // messages queued in the transaction
}

// reserveSMSWorker reserves a worker for the first message the caller is
// about to queue, when the dispatcher runs, a worker is free and no older
// message waits for one (a new message must not overtake them). The caller
// must pass the result to startSMS.
func (s *Service) reserveSMSWorker() *smsHandoff {
	h := &smsHandoff{}
	if s.sms.backlog.Load() {
		return h
	}
	s.sms.mu.Lock()
	defer s.sms.mu.Unlock()
	r := s.sms.run
	if r == nil {
		return h
	}
	select {
	case r.slots <- struct{}{}:
		// Counted under mu, while the run is current: RunSMS waits for
		// its workers only after it cleared s.sms.run under mu.
		r.wg.Add(1)
		h.run = r
	default:
	}
	return h
}

// reset forgets what an earlier run of a transaction function queued.
func (h *smsHandoff) reset() { h.q, h.queued = nil, 0 }

// startSMS follows the transaction that queued h's messages, which ended
// with err. The reserved worker sends the claimed message now, and the
// dispatcher is told about any other; an unused worker is given back.
//
// An error does not prove that nothing was queued: the commit may have
// gone through and only the wait for the disk failed or been cancelled
// (the client went away). A claimed message that is in the store is
// still sent, once it is durable, or it would stay claimed by nobody.
func (s *Service) startSMS(h *smsHandoff, err error) {
	handed := 0
	if h.run != nil {
		r, q := h.run, h.q
		h.run = nil
		if q != nil && err != nil && len(s.claimedInStore([]queuedSMS{*q})) == 0 {
			q = nil
		}
		if q == nil {
			<-r.slots
			r.wg.Done()
		} else {
			handed = 1
			msg, synced := *q, err == nil
			go func() {
				if !synced {
					if err := s.db.WaitDurable(r.ctx); err != nil {
						// Claimed on disk, perhaps not durably: the next
						// start sends it again, audited as such.
						s.log.Error("sms not sent: the store could not make it durable", "msg", msg.ID, "err", err)
						s.smsWorkerDone(r, false)
						return
					}
				}
				s.smsWorkerDone(r, s.deliverSMS(r.ctx, msg))
			}()
		}
	}
	if h.queued > handed {
		s.sms.backlog.Store(true)
		s.wakeSMS()
	}
}

// claimedInStore returns the messages of qs that the store holds as
// claimed for exactly that attempt: after a transaction that claimed them
// returned an error, these are the ones whose claim was committed anyway
// (only the wait for the disk failed) and which must still be sent.
func (s *Service) claimedInStore(qs []queuedSMS) []queuedSMS {
	var kept []queuedSMS
	_ = s.db.View(func(txn *store.Txn) error {
		for _, q := range qs {
			var cur queuedSMS
			if found, err := txn.Get(smsQueueKey(q.ID), &cur); err == nil && found && cur.Sending && cur.Attempts == q.Attempts {
				kept = append(kept, q)
			}
		}
		return nil
	})
	return kept
}

// smsWorkerDone gives a worker's slot back. The dispatcher is woken when
// messages wait for a worker, or to time the retry of the worker's message.
func (s *Service) smsWorkerDone(r *smsRun, retry bool) {
	<-r.slots
	r.wg.Done()
	if retry || s.sms.backlog.Load() {
		s.wakeSMS()
	}
}

// smsRetryBackoff is the pause before a failed message is tried again.
func smsRetryBackoff(attempts int) time.Duration {
	d := time.Second
	for i := 1; i < attempts && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// RunSMS dispatches the durable SMS queue through s.SMS until ctx ends:
// every queued message is sent once (the sender retries other modems on a
// failure), retried with backoff after a failure until its deadline (the
// code's expiry), and audited with its outcome. Messages queued before a
// restart are sent after it unless expired; a message the daemon was in the
// middle of sending when it stopped is sent again, audited as a possible
// duplicate. workers bounds the sends in progress (one per modem is right).
// A message accepted while a worker is free and no other waits goes to that
// worker straight from its request (see smsHandoff); the others wait in the
// queue, oldest first, for the dispatcher to hand them out.
func (s *Service) RunSMS(ctx context.Context, workers int) error {
	if s.SMS == nil {
		return ErrSMSUnavailable
	}
	workers = max(workers, 1)
	if err := s.recoverSMSQueue(ctx); err != nil {
		return err
	}
	r := &smsRun{ctx: ctx, slots: make(chan struct{}, workers)}
	s.sms.mu.Lock()
	if s.sms.run != nil {
		s.sms.mu.Unlock()
		return errors.New("the sms dispatcher is already running")
	}
	s.sms.run = r
	s.sms.mu.Unlock()
	defer func() {
		s.sms.mu.Lock()
		s.sms.run = nil
		s.sms.mu.Unlock()
		r.wg.Wait()
	}()
	// Whatever the queue holds from before the start is due.
	s.sms.backlog.Store(true)
	wake := s.smsWakeChan()
	for {
		// Take the free workers for the scan; what it does not need goes
		// back afterwards.
		free := 0
	take:
		for free < workers {
			select {
			case r.slots <- struct{}{}:
				free++
			default:
				break take
			}
		}
		next := time.Minute
		if free == 0 {
			// Every worker is busy: a finishing one wakes the loop (it
			// sees the backlog), so do not rescan the queue meanwhile.
			s.sms.backlog.Store(true)
			if len(r.slots) < workers {
				// One finished before the store, without seeing it.
				continue
			}
		} else {
			due, n, err := s.claimDueSMS(ctx, free)
			next = n
			if err != nil {
				if ctx.Err() != nil {
					for range free {
						<-r.slots
					}
					return nil
				}
				s.log.Error("reading the sms queue failed", "err", err)
				next = time.Second
			}
			for _, m := range due {
				r.wg.Add(1)
				go func() { s.smsWorkerDone(r, s.deliverSMS(ctx, m)) }()
			}
			for range free - len(due) {
				<-r.slots
			}
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-wake:
		case <-timer.C:
			// A retry may have come due.
			s.sms.backlog.Store(true)
		}
		timer.Stop()
	}
}

// recoverSMSQueue handles messages the daemon was sending when it stopped.
func (s *Service) recoverSMSQueue(ctx context.Context) error {
	var events []store.Event
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		events = events[:0]
		var stuck []queuedSMS
		err := txn.Scan(smsQueuePrefix, false, func(_ []byte, val func(any) error) (bool, error) {
			var q queuedSMS
			if err := val(&q); err != nil {
				return false, err
			}
			if q.Sending {
				stuck = append(stuck, q)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, q := range stuck {
			q.Sending = false
			if err := txn.PutTTL(smsQueueKey(q.ID), q, max(q.Deadline.Sub(txn.Now()), time.Second)+time.Hour); err != nil {
				return err
			}
			ev := auditEvent(Internal, q.User, "sms.resend")
			ev.Method, ev.Result = "sms", "queued"
			ev.Detail = fmt.Sprintf("message %s to %s: the daemon stopped during its send; sending again (it may arrive twice)", q.ID, MaskPhone(q.To))
			if err := txn.Audit(ev, s.Settings().AuditRetention); err != nil {
				return err
			}
			events = append(events, ev)
		}
		return nil
	})
	for _, ev := range events {
		s.logEvent(ev)
	}
	return err
}

// claimDueSMS marks up to n due messages as being sent and returns them,
// with the wait until the next one is due. Expired messages are dropped,
// audited. Messages are taken oldest first, and the scan decodes no message
// past the first due one it must leave for a later pass, so that a deep
// queue costs a pass little more than the messages it takes.
func (s *Service) claimDueSMS(ctx context.Context, n int) ([]queuedSMS, time.Duration, error) {
	var due []queuedSMS
	next := time.Minute
	var events []store.Event
	depth := 0
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		due, next, events, depth = due[:0], time.Minute, events[:0], 0
		now := txn.Now()
		var expired []queuedSMS
		more := false // a due message is left for a later pass
		err := txn.Scan(smsQueuePrefix, false, func(_ []byte, val func(any) error) (bool, error) {
			depth++
			if more {
				return true, nil // counted, for the queue depth
			}
			var q queuedSMS
			if err := val(&q); err != nil {
				return false, err
			}
			switch {
			case q.Sending:
			case !now.Before(q.Deadline):
				expired = append(expired, q)
			case now.Before(q.NextAttempt):
				next = min(next, q.NextAttempt.Sub(now))
			case len(due) < n:
				due = append(due, q)
			default:
				more, next = true, 0
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, q := range expired {
			if err := txn.Delete(smsQueueKey(q.ID)); err != nil {
				return err
			}
			ev := auditEvent(Internal, q.User, "sms.expired")
			ev.Method, ev.Result = "sms", "fail"
			ev.Detail = fmt.Sprintf("message %s (%s) to %s expired after %d attempts", q.ID, q.Purpose, MaskPhone(q.To), q.Attempts)
			if q.LastError != "" {
				ev.Detail += ": " + q.LastError
			}
			if err := txn.Audit(ev, s.Settings().AuditRetention); err != nil {
				return err
			}
			events = append(events, ev)
		}
		depth -= len(expired)
		for i := range due {
			due[i].Sending = true
			due[i].Attempts++
			if err := txn.PutTTL(smsQueueKey(due[i].ID), due[i], max(due[i].Deadline.Sub(now), time.Second)+time.Hour); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(due) > 0 {
		// The claim may have committed although the wait for its sync
		// failed: send what the store shows as claimed by this pass, or it
		// would stay claimed by nobody until a restart.
		due = s.claimedInStore(due)
	}
	for _, ev := range events {
		s.logEvent(ev)
	}
	s.Metrics.SMSQueue(depth)
	if err == nil {
		// With more due than workers were free, a finishing worker wakes
		// the loop, and new messages queue behind the waiting ones.
		s.sms.backlog.Store(next == 0)
	}
	if next == 0 {
		next = time.Minute
	}
	return due, max(next, 10*time.Millisecond), err
}

// deliverSMS sends one claimed message and records the outcome. It
// reports whether the message was put back in the queue for a retry.
func (s *Service) deliverSMS(ctx context.Context, q queuedSMS) (retry bool) {
	// The deadline is on the service's clock; contexts run on the wall clock.
	sctx, cancel := context.WithTimeout(ctx, max(q.Deadline.Sub(s.now()), time.Second))
	rep, err := s.SMS.SendSMS(sctx, q.ID, q.To, q.Text)
	cancel()
	if ctx.Err() != nil && rep.Outcome != SMSSent {
		// Shutting down: leave the message to the next start (it is marked
		// as being sent, so it will be sent again and audited as such).
		return false
	}
	s.Metrics.SMSSend(rep.Modem, string(rep.Outcome))
	masked := MaskPhone(q.To)
	ev := auditEvent(Internal, q.User, "sms.send")
	ev.Method = "sms"
	var resched *queuedSMS
	switch rep.Outcome {
	case SMSSent:
		ev.Result = "ok"
		ev.Detail = fmt.Sprintf("message %s (%s) to %s via %s, %d parts, attempt %d", q.ID, q.Purpose, masked, rep.Modem, rep.Parts, q.Attempts)
	case SMSUnknown:
		ev.Result = "unknown"
		ev.Detail = fmt.Sprintf("message %s (%s) to %s via %s: the modem took it but gave no result; not sent again, to avoid a duplicate (%v)",
			q.ID, q.Purpose, masked, rep.Modem, err)
	default:
		ev.Result = "fail"
		reason := "unknown error"
		if err != nil {
			reason = err.Error()
		}
		ev.Detail = fmt.Sprintf("message %s (%s) to %s, attempt %d: %s", q.ID, q.Purpose, masked, q.Attempts, reason)
		if !rep.Permanent {
			q.Sending, q.LastError = false, reason
			q.NextAttempt = s.now().Add(smsRetryBackoff(q.Attempts))
			if q.NextAttempt.Before(q.Deadline) {
				resched = &q
				ev.Result = "retry"
			}
		}
	}
	// The outcome does not hold up the next request's commit (its own
	// sync round would): it reaches the disk with the next round anyone
	// waits for, and within smsOutcomeSync in any case. A power loss
	// before that makes the message go out again after the restart,
	// audited as a possible duplicate, as a stop in mid-send does.
	err = s.db.UpdateLazy(context.WithoutCancel(ctx), func(txn *store.Txn) error {
		e := ev
		e.Time = txn.Now()
		if err := txn.Audit(e, s.Settings().AuditRetention); err != nil {
			return err
		}
		if resched != nil {
			return txn.PutTTL(smsQueueKey(q.ID), *resched, max(q.Deadline.Sub(txn.Now()), time.Second)+time.Hour)
		}
		if err := txn.Delete(smsQueueKey(q.ID)); err != nil {
			return err
		}
		if rep.Outcome == SMSSent && rep.Modem != "" {
			for _, ref := range rep.Refs {
				if ref < 0 {
					continue
				}
				r := smsRefRecord{ID: q.ID, User: q.User, To: masked}
				if err := txn.PutTTL(store.Key("smsref", rep.Modem, fmt.Sprint(ref)), r, 48*time.Hour); err != nil {
					return err
				}
			}
		}
		return nil
	}, smsOutcomeSync)
	if err != nil {
		s.log.Error("recording an sms outcome failed", "msg", q.ID, "err", err)
	} else {
		s.logEvent(ev)
	}
	return resched != nil && err == nil
}

// smsOutcomeSync bounds the time a message's recorded outcome may stay
// off the disk (see deliverSMS).
const smsOutcomeSync = 100 * time.Millisecond

// RecordDelivery records a delivery report (+CDS) from modem for the part
// with message reference ref: delivered, or failed for good. Reports can
// overtake the record of the send they belong to (a modem may report
// delivery within milliseconds), so found is false, and nothing is written,
// while the part is unknown, unless lastTry is set: then the orphan report
// is audited as such.
func (s *Service) RecordDelivery(ctx context.Context, modem string, ref int, delivered bool, status string, lastTry bool) (found bool, err error) {
	key := store.Key("smsref", modem, fmt.Sprint(ref))
	ev := auditEvent(Internal, "", "sms.delivery")
	ev.Method = "sms"
	var r smsRefRecord
	if err := s.db.View(func(txn *store.Txn) error {
		found, err = txn.Get(key, &r)
		return err
	}); err != nil || (!found && !lastTry) {
		return false, err
	}
	err = s.change(ctx, &ev, func(txn *store.Txn) error {
		found, err = txn.Get(key, &r)
		if err != nil {
			return err
		}
		ev.Result = "delivered"
		if !delivered {
			ev.Result = "undelivered"
		}
		if !found {
			ev.Detail = fmt.Sprintf("report for an unknown message (modem %s, reference %d): %s", modem, ref, status)
			return nil
		}
		ev.User = r.User
		ev.Detail = fmt.Sprintf("message %s to %s via %s: %s", r.ID, r.To, modem, status)
		return txn.Delete(key)
	})
	return found, err
}

// DeliveryReported records a delivery report in the background, trying
// again for a few seconds while its send is not recorded yet; it never
// blocks the caller (a modem's event loop).
func (s *Service) DeliveryReported(ctx context.Context, modem string, ref int, delivered bool, status string) {
	go func() {
		for try := 1; ; try++ {
			last := try == 20
			found, err := s.RecordDelivery(ctx, modem, ref, delivered, status, last)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("recording a delivery report failed", "modem", modem, "err", err)
			}
			if found || last || err != nil {
				return
			}
			t := time.NewTimer(250 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
}

// Notify queues text to every confirmed phone of user (a Notifier over
// the service's own SMS queue). Notices are not counted against the
// per-user and per-number limits, which protect against SMS pumping by
// callers; they count toward the global limit.
func (s *Service) Notify(ctx context.Context, user, text string) (int, error) {
	if s.SMS == nil {
		return 0, nil
	}
	n := 0
	h := s.reserveSMSWorker()
	err := s.db.Update(ctx, func(txn *store.Txn) error {
		n = 0
		h.reset()
		u, found, err := loadUser(txn, user)
		if err != nil || !found {
			return err
		}
		deadline := txn.Now().Add(time.Hour)
		for _, f := range u.Factors {
			if f.Phone == nil || f.Status != StatusActive {
				continue
			}
			if err := s.enqueueSMS(txn, h, user, "notice", f.Phone.Number, text, deadline); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	s.startSMS(h, err)
	return n, err
}

// SendTestSMS (admin) sends text to number now, through the modems, and
// reports what happened; for operators checking a modem.
func (s *Service) SendTestSMS(ctx context.Context, c Caller, number, text string) (*SMSReport, error) {
	if s.SMS == nil {
		return nil, ErrSMSUnavailable
	}
	st := s.Settings()
	e164, err := NormalizePhone(number, st.SMS.DefaultRegion)
	if err != nil {
		return nil, err
	}
	if text == "" {
		text = "mfad test message: the modem works."
	}
	if len(text) > 640 {
		return nil, invalid("text must be at most 640 bytes")
	}
	ev := auditEvent(c, "", "sms.test")
	ev.Method, ev.Detail, ev.Result = "sms", MaskPhone(e164), "accepted"
	var limited error
	if err := s.change(ctx, &ev, func(txn *store.Txn) error {
		limited = s.smsAllowed(txn, st, "", e164, &ev)
		return nil
	}); err != nil {
		return nil, err
	}
	if limited != nil {
		return nil, limited
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, serr := s.SMS.SendSMS(sctx, "test", e164, text)
	res := auditEvent(c, "", "sms.test")
	res.Method, res.Result = "sms", string(rep.Outcome)
	res.Detail = fmt.Sprintf("%s via %s, %d parts", MaskPhone(e164), rep.Modem, rep.Parts)
	if serr != nil {
		res.Detail += ": " + serr.Error()
	}
	if err := s.change(ctx, &res, nil); err != nil {
		return nil, err
	}
	return &rep, serr
}
